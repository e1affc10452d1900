"""Mocks that behave like the providers, for the unit tests, the loopback rehearsal and the benchmark.

- EC2 instances get deterministic private/public addresses and private DNS names (loopback addresses for
  the rehearsal), security groups and key pairs get IDs.
- pulumi-tls resources produce real keys, CSRs and certificates, made with `cryptography` from the resources'
  inputs (key algorithm and curve, subject, SANs, allowed uses, validity, CA flag), so a test can check the
  chain and complete a real TLS handshake. Private keys come back as secret outputs, as the provider marks them.
- Command stdout/stderr are secret outputs, as `additional_secret_outputs` makes them for real.
- Invokes answer what the program looks up: instance types (memory, architecture; unknown types fail as
  AWS does), the default VPC, its subnets, AMIs.
Like a stack's state, a TLS resource whose name and inputs did not change keeps its outputs across runs in one
process (a real `pulumi up` does not re-key an unchanged stack), so a test can change one setting and see only
what that setting changes.
Every registration is recorded (type, name, inputs as given, outputs) for the tests to inspect.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import ipaddress
import json
from typing import Any, Optional

import pulumi
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SECRET_SIG = "4dabf18193072939515e22adb298388d"
# (type, name, inputs) -> (outputs, {private key PEM: key object} it made): what state keeps between runs.
_STATE: dict[tuple[str, str, str], tuple[dict, dict[str, Any]]] = {}

# memory (MiB) and architectures, as aws:ec2/getInstanceType answers
INSTANCE_TYPES = {
    "t3.medium": (4096, ["x86_64"]),
    "t3.large": (8192, ["x86_64"]),
    "t3.xlarge": (16384, ["x86_64"]),
    "m6i.large": (8192, ["x86_64"]),
    "m6i.xlarge": (16384, ["x86_64"]),
    "c6i.large": (4096, ["x86_64"]),
    "r6i.large": (16384, ["x86_64"]),
    "m7g.large": (8192, ["arm64"]),
    "c7g.large": (4096, ["arm64"]),
    "t4g.medium": (4096, ["arm64"]),
}
SUBNETS = ["subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60002", "subnet-0a1b2c3d4e5f60003"]
DEFAULT_VPC = "vpc-0a1b2c3d4e5f60718"
CURVES = {"P224": ec.SECP224R1, "P256": ec.SECP256R1, "P384": ec.SECP384R1, "P521": ec.SECP521R1}
KEY_USAGES = {
    "digital_signature": "digital_signature", "content_commitment": "content_commitment",
    "key_encipherment": "key_encipherment", "data_encipherment": "data_encipherment",
    "key_agreement": "key_agreement", "cert_signing": "key_cert_sign", "crl_signing": "crl_sign",
    "encipher_only": "encipher_only", "decipher_only": "decipher_only",
}
EXT_USAGES = {"server_auth": ExtendedKeyUsageOID.SERVER_AUTH, "client_auth": ExtendedKeyUsageOID.CLIENT_AUTH,
              "code_signing": ExtendedKeyUsageOID.CODE_SIGNING}


def unwrap(value: Any) -> Any:
    """Inputs with secrets unwrapped (a secret arrives as {SECRET_SIG: ..., "value": ...})."""
    if isinstance(value, dict):
        if SECRET_SIG in value:
            return unwrap(value.get("value"))
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


@dataclasses.dataclass
class Recorded:
    typ: str
    name: str
    raw_inputs: dict
    """As the engine got them: secrets still wrapped."""
    inputs: dict
    """Secrets unwrapped."""
    outputs: dict
    id: str = ""


def _pem_key(key) -> str:
    # As pulumi-tls: SEC1 for ECDSA, PKCS#1 for RSA, PKCS#8 for ED25519.
    traditional = isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey))
    fmt = serialization.PrivateFormat.TraditionalOpenSSL if traditional else serialization.PrivateFormat.PKCS8
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()).decode()


def _name(subject: Optional[dict]) -> x509.Name:
    subject = subject or {}
    attrs = []
    if subject.get("organization"):
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, subject["organization"]))
    if subject.get("commonName"):
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, subject["commonName"]))
    return x509.Name(attrs)


def _usage_extensions(builder: x509.CertificateBuilder, uses: list[str], is_ca: bool) -> x509.CertificateBuilder:
    flags = {v: False for v in KEY_USAGES.values()}
    for use in uses:
        if use in KEY_USAGES:
            flags[KEY_USAGES[use]] = True
    if any(flags.values()):
        builder = builder.add_extension(x509.KeyUsage(**flags), critical=True)
    ext = [EXT_USAGES[u] for u in uses if u in EXT_USAGES]
    if ext:
        builder = builder.add_extension(x509.ExtendedKeyUsage(ext), critical=False)
    return builder.add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)


class ProviderMocks(pulumi.runtime.Mocks):
    def __init__(self, loopback: bool = False):
        self.loopback = loopback
        self.resources: list[Recorded] = []
        self._counts: dict[str, int] = {}
        self._keys: dict[str, Any] = {}  # private key PEM -> key object, for signing

    # ------------------------------------------------------------ lookups for tests
    def of_type(self, typ: str) -> list[Recorded]:
        return [r for r in self.resources if r.typ == typ]

    def named(self, name: str) -> Recorded:
        return next(r for r in self.resources if r.name == name)

    # ------------------------------------------------------------ addresses
    def _address(self, name: str) -> tuple[str, str]:
        """(private IP, public IP) for an instance, from its role and index."""
        role, _, index = name.rpartition("-")
        i = int(index) if index.isdigit() else 0
        if self.loopback:
            subnet = 0 if role == "postanalytics" else 1
            return f"127.0.{subnet}.{10 + i}", f"127.0.{subnet + 2}.{10 + i}"
        subnet = 1 if role == "postanalytics" else 2
        return f"10.0.{subnet}.{10 + i}", f"198.51.{subnet}.{10 + i}"

    def _id(self, prefix: str, name: str) -> str:
        return f"{prefix}-{hashlib.sha256(name.encode()).hexdigest()[:17]}"

    # ------------------------------------------------------------ resources
    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        inputs = unwrap(args.inputs)
        handler = {
            "aws:ec2/instance:Instance": self._instance,
            "command:remote:Command": self._command,
            "tls:index/privateKey:PrivateKey": self._private_key,
            "tls:index/selfSignedCert:SelfSignedCert": self._self_signed_cert,
            "tls:index/certRequest:CertRequest": self._cert_request,
            "tls:index/locallySignedCert:LocallySignedCert": self._locally_signed_cert,
        }.get(args.typ)
        outputs = dict(args.inputs)  # secret inputs stay secret outputs, as the engine keeps them
        if args.typ.startswith("tls:"):
            extra, rid = self._kept(args.typ, args.name, inputs, handler), None
        else:
            extra, rid = handler(args.name, inputs) if handler else ({}, None)
        outputs.update(extra)
        prefix = {"aws:ec2/securityGroup:SecurityGroup": "sg", "aws:ec2/keyPair:KeyPair": "key"}.get(args.typ, "id")
        rid = rid or self._id(prefix, args.name)
        if args.typ == "aws:ec2/keyPair:KeyPair":
            outputs.setdefault("keyName", args.name)
        self.resources.append(Recorded(args.typ, args.name, args.inputs, inputs, outputs, rid))
        return rid, outputs

    def _kept(self, typ: str, name: str, inputs: dict, handler) -> dict:
        key = (typ, name, json.dumps(inputs, sort_keys=True, default=str))
        if key not in _STATE:
            before = set(self._keys)
            extra, _ = handler(name, inputs)
            _STATE[key] = (extra, {pem: self._keys[pem] for pem in set(self._keys) - before})
        extra, made = _STATE[key]
        self._keys.update(made)
        return extra

    def _instance(self, name: str, inputs: dict):
        private_ip, public_ip = self._address(name)
        dns = f"ip-{private_ip.replace('.', '-')}.eu-central-1.compute.internal"
        return {"privateIp": private_ip, "publicIp": public_ip, "privateDns": dns,
                "arn": f"arn:aws:ec2:eu-central-1:123456789012:instance/{name}"}, self._id("i", name)

    def _command(self, name: str, inputs: dict):
        return {"stdout": pulumi.Output.secret(""), "stderr": pulumi.Output.secret("")}, None

    def _private_key(self, name: str, inputs: dict):
        algorithm = inputs.get("algorithm", "RSA")
        if algorithm == "ECDSA":
            key = ec.generate_private_key(CURVES[inputs.get("ecdsaCurve", "P224")]())
        elif algorithm == "ED25519":
            key = ed25519.Ed25519PrivateKey.generate()
        else:
            key = rsa.generate_private_key(65537, int(inputs.get("rsaBits", 2048)))
        pem = _pem_key(key)
        self._keys[pem] = key
        # P224 has no OpenSSH form (the provider leaves it empty too).
        openssh_private = "" if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp224r1" else \
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                              serialization.NoEncryption()).decode()
        public = key.public_key()
        return {
            "privateKeyPem": pulumi.Output.secret(pem),
            "privateKeyOpenssh": pulumi.Output.secret(openssh_private),
            "publicKeyPem": public.public_bytes(serialization.Encoding.PEM,
                                                serialization.PublicFormat.SubjectPublicKeyInfo).decode(),
            "publicKeyOpenssh": public.public_bytes(serialization.Encoding.OpenSSH,
                                                    serialization.PublicFormat.OpenSSH).decode() + "\n",
        }, None

    def _key(self, pem: str):
        return self._keys.get(pem) or serialization.load_pem_private_key(pem.encode(), None)

    def _validity(self, inputs: dict) -> tuple[datetime.datetime, datetime.datetime]:
        start = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
        return start, start + datetime.timedelta(hours=int(inputs["validityPeriodHours"]))

    def _self_signed_cert(self, name: str, inputs: dict):
        key = self._key(inputs["privateKeyPem"])
        start, end = self._validity(inputs)
        subject = _name(inputs.get("subject"))
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(start).not_valid_after(end)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
        builder = _usage_extensions(builder, inputs.get("allowedUses", []), bool(inputs.get("isCaCertificate")))
        cert = builder.sign(key, None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256())
        return {"certPem": cert.public_bytes(serialization.Encoding.PEM).decode(),
                "validityStartTime": start.isoformat(), "validityEndTime": end.isoformat()}, None

    def _cert_request(self, name: str, inputs: dict):
        key = self._key(inputs["privateKeyPem"])
        sans = [x509.DNSName(d) for d in inputs.get("dnsNames", [])]
        sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in inputs.get("ipAddresses", [])]
        builder = x509.CertificateSigningRequestBuilder().subject_name(_name(inputs.get("subject")))
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        csr = builder.sign(key, None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256())
        return {"certRequestPem": csr.public_bytes(serialization.Encoding.PEM).decode()}, None

    def _locally_signed_cert(self, name: str, inputs: dict):
        csr = x509.load_pem_x509_csr(inputs["certRequestPem"].encode())
        ca_cert = x509.load_pem_x509_certificate(inputs["caCertPem"].encode())
        ca_key = self._key(inputs["caPrivateKeyPem"])
        start, end = self._validity(inputs)
        builder = (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(ca_cert.subject)
                   .public_key(csr.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(start).not_valid_after(end)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(csr.public_key()), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                                  critical=False))
        try:
            san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            builder = builder.add_extension(san.value, critical=False)
        except x509.ExtensionNotFound:
            pass
        builder = _usage_extensions(builder, inputs.get("allowedUses", []), bool(inputs.get("isCaCertificate")))
        cert = builder.sign(ca_key, hashes.SHA256())
        return {"certPem": cert.public_bytes(serialization.Encoding.PEM).decode(),
                "validityStartTime": start.isoformat(), "validityEndTime": end.isoformat()}, None

    # ------------------------------------------------------------ invokes
    def call(self, args: pulumi.runtime.MockCallArgs):
        token, a = args.token, unwrap(args.args)
        if token == "aws:ec2/getInstanceType:getInstanceType":
            if a["instanceType"] not in INSTANCE_TYPES:  # the provider answers with a failed invoke
                return {}, [("instanceType", f"InvalidInstanceType: {a['instanceType']}")]
            memory, arches = INSTANCE_TYPES[a["instanceType"]]
            return {"instanceType": a["instanceType"], "memorySize": memory, "supportedArchitectures": arches}, []
        if token == "aws:ec2/getVpc:getVpc":
            return {"id": DEFAULT_VPC, "default": True, "cidrBlock": "172.31.0.0/16"}, []
        if token == "aws:ec2/getSubnets:getSubnets":
            return {"id": "subnets", "ids": list(SUBNETS)}, []
        if token == "aws:ec2/getAmi:getAmi":
            pattern = next(f["values"][0] for f in a.get("filters", []) if f["name"] == "name")
            return {"id": self._id("ami", pattern), "name": pattern, "architecture": "x86_64"}, []
        raise NotImplementedError(f"the mocks do not answer {token}")
