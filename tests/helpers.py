"""Reading what a program run declared: specs, files and certificates per host."""

from __future__ import annotations

import json
from typing import Any

import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from harness.mocks import ProviderMocks


def instances(mocks: ProviderMocks, role: str) -> dict[str, dict]:
    """node name (filtering-0, ...) -> outputs of every instance of a role."""
    return {r.inputs["tags"]["Node"]: r.outputs for r in instance_records(mocks, role)}


def instance_records(mocks: ProviderMocks, role: str) -> list:
    """The recorded instances of a role (postanalytics, filtering, jumphost), in node order (registrations arrive
    in any order)."""
    found = [r for r in mocks.of_type("aws:ec2/instance:Instance") if r.inputs["tags"]["Role"] == role]
    index = lambda r: r.inputs["tags"]["Node"].rpartition("-")[2]  # noqa: E731 - "jumphost" has none
    return sorted(found, key=lambda r: int(index(r)) if index(r).isdigit() else 0)


def command(mocks: ProviderMocks, name: str) -> dict:
    return mocks.named(name).inputs


def spec(mocks: ProviderMocks, host: str) -> dict[str, Any]:
    """The spec that a host's configure step sends on stdin."""
    return json.loads(command(mocks, f"{host}-configure")["stdin"])


def spec_file(spec_: dict, path: str) -> dict:
    matches = [f for f in spec_["files"] if f["path"] == path]
    assert len(matches) == 1, f"{spec_['name']}: {len(matches)} files at {path}"
    return matches[0]


def cert(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


def sans(certificate: x509.Certificate) -> set[str]:
    ext = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(v) for v in ext.get_values_for_type(x509.IPAddress)} | set(ext.get_values_for_type(x509.DNSName))


def rogue_pair(cn: str) -> tuple[bytes, bytes]:
    """A self-signed certificate and key (PEM) from no CA of the stack's."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM), key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


# A wstore.yaml edited by hand, with what a careless YAML round trip loses: comments, an anchor, YAML 1.1 values
# (sexagesimal, boolean, octal, a float that reads as a string), a quoted string and a flow mapping.
WSTORE_HOSTILE = """\
# wstore settings, edited by hand
service:
    address: 0.0.0.0:3313      # the plain listener
    protocol: tcp
    TLS:
        enabled: false         # TLS comes later
defaults: &logdefaults
    level: info
    rotate: 1:30               # YAML 1.1 sexagesimal: 90
logging: *logdefaults
metrics:
    enabled: off               # YAML 1.1 boolean
    mode: 0640                 # YAML 1.1 octal: 416
    version: 1.10              # a float, not "1.10"
    quoted: 'yes'
    flow: {a: 1, b: [x, y]}
"""
