"""Real handshakes with the keys and certificates the program delivers to the hosts (made by the TLS mocks from
the resources' inputs): mutual TLS succeeds; a client without a certificate, a client from another CA, or a
server certificate checked against another address is refused."""

from __future__ import annotations

import datetime
import subprocess
from pathlib import Path
from typing import Optional

import pytest

from components import render
from harness.tlsprobe import Result, StandIn, connect, diagnose
from tests.conftest import program_run
from tests.helpers import rogue_pair, spec, spec_file


@pytest.fixture(scope="module")
def material(tmp_path_factory):
    """The files as postanalytics-0 and filtering-0 of the 2x3 stack get them, written to disk."""
    run = program_run(postanalyticsCount=2, filteringCount=3)
    d = tmp_path_factory.mktemp("pki")
    pa, fl = spec(run.mocks, "postanalytics-0"), spec(run.mocks, "filtering-0")
    files = {
        "server.crt": spec_file(pa, render.WSTORE_CERT), "server.key": spec_file(pa, render.WSTORE_KEY),
        "server-ca.crt": spec_file(pa, render.WSTORE_CA), "ca.crt": spec_file(fl, render.NGINX_CA),
        "client.crt": spec_file(fl, render.NGINX_CLIENT_CERT), "client.key": spec_file(fl, render.NGINX_CLIENT_KEY),
    }
    for name, f in files.items():
        (d / name).write_text(f["content"])
    ips = run.exports["postanalyticsPrivateIps"]
    return d, ips


def _handshake(d: Path, mutual: bool, server_name: str, cert: Optional[Path] = None,
               key: Optional[Path] = None) -> tuple[Result, list[str]]:
    """One connection to a wstore stand-in with postanalytics-0's files; returns it and the accepted clients."""
    server = StandIn("127.0.0.1", 0, str(d / "server.crt"), str(d / "server.key"),
                     str(d / "server-ca.crt") if mutual else None)
    try:
        result = connect("127.0.0.1", server.address[1], str(d / "ca.crt"), str(cert) if cert else None,
                         str(key) if key else None, server_name=server_name)
        return result, server.accepted
    finally:
        server.close()


def test_mutual_tls_handshake(material):
    """Guards against certificates that look right but cannot complete mutual TLS."""
    d, ips = material
    result, accepted = _handshake(d, True, ips[0], d / "client.crt", d / "client.key")
    assert result.ok, result.detail
    assert accepted == ["filtering-0"]


def test_client_without_certificate_is_refused(material):
    """Guards against wstore accepting any client once mutual TLS is on."""
    d, ips = material
    result, accepted = _handshake(d, True, ips[0])
    assert not result.ok, "a client without a certificate got through"
    assert accepted == []


def test_server_certificate_names_only_its_own_server(material):
    """Guards against a server certificate that would pass for another postanalytics server's address."""
    d, ips = material
    assert _handshake(d, False, ips[0])[0].ok
    wrong, _ = _handshake(d, False, ips[1])
    assert not wrong.ok and "IP address mismatch" in wrong.detail, wrong.detail


def test_client_from_another_ca_is_refused(material, tmp_path):
    """Guards against wstore trusting any CA rather than the stack's own."""
    d, ips = material
    cert, key = rogue_pair("intruder")
    (tmp_path / "rogue.crt").write_bytes(cert)
    (tmp_path / "rogue.key").write_bytes(key)
    result, accepted = _handshake(d, True, ips[0], tmp_path / "rogue.crt", tmp_path / "rogue.key")
    assert not result.ok and accepted == []


def test_openssl_verifies_the_chain_and_purposes(material):
    """Guards against certificates that Python accepts but OpenSSL (what NGINX uses) would not."""
    d, _ = material
    for leaf, purpose in (("server.crt", "sslserver"), ("client.crt", "sslclient")):
        proc = subprocess.run(["openssl", "verify", "-purpose", purpose, "-CAfile", str(d / "ca.crt"), str(d / leaf)],
                              capture_output=True, text=True)
        assert proc.returncode == 0 and ": OK" in proc.stdout, proc.stdout + proc.stderr
    wrong = subprocess.run(["openssl", "verify", "-purpose", "sslserver", "-CAfile", str(d / "ca.crt"),
                            str(d / "client.crt")], capture_output=True, text=True)
    assert wrong.returncode != 0, "a client certificate passed as a server certificate"


def test_diagnose_accepts_the_delivered_files_and_names_each_broken_one(material, tmp_path):
    """Guards against a diagnosis that blames good files, or says nothing (or crashes) for a broken one."""
    d, _ = material
    assert diagnose("client", str(d / "client.crt"), str(d / "client.key"), str(d / "ca.crt")) == []
    assert diagnose("server", str(d / "server.crt"), str(d / "server.key"), str(d / "server-ca.crt")) == []
    rogue_cert, rogue_key = rogue_pair("intruder")
    (tmp_path / "rogue.crt").write_bytes(rogue_cert)
    (tmp_path / "rogue.key").write_bytes(rogue_key)
    (tmp_path / "half-ca.crt").write_text((d / "ca.crt").read_text()[:200])
    (tmp_path / "empty.key").write_text("")
    cases = [
        (("client", str(d / "client.crt"), str(tmp_path / "rogue.key"), str(d / "ca.crt")),
         "the client key {k} does not match the certificate {c}"),
        (("client", str(tmp_path / "rogue.crt"), str(tmp_path / "rogue.key"), str(d / "ca.crt")),
         "the client certificate {c} is not issued by the CA in {a}"),
        (("client", str(d / "client.crt"), str(d / "client.key"), str(tmp_path / "half-ca.crt")),
         "the CA file {a} holds no complete PEM certificate (empty or truncated?)"),
        (("client", str(d / "client.crt"), str(tmp_path / "missing.key"), str(d / "ca.crt")),
         "the client key {k} is missing"),
        (("client", str(d / "client.crt"), str(tmp_path / "empty.key"), str(d / "ca.crt")),
         "the client key {k} is not an unencrypted PEM private key (empty or truncated?)"),
    ]
    for (role, cert, key, ca), sentence in cases:
        problems = diagnose(role, cert, key, ca)
        assert any(p.startswith(sentence.format(c=cert, k=key, a=ca)) for p in problems), problems
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=3650)
    [expired] = diagnose("client", str(d / "client.crt"), now=later)
    assert expired.startswith(f"the client certificate {d / 'client.crt'} expired on ")


def test_connect_reports_files_it_cannot_load(material, tmp_path):
    """Guards against a truncated CA or a missing key raising out of connect() (a rehearsal traceback)."""
    d, ips = material
    (tmp_path / "half-ca.crt").write_text((d / "ca.crt").read_text()[:200])
    for ca, cert, key in ((tmp_path / "half-ca.crt", None, None),
                          (d / "ca.crt", d / "client.crt", tmp_path / "no.key")):
        result = connect("127.0.0.1", 9, str(ca), str(cert) if cert else None, str(key) if key else None)
        assert not result.ok and result.detail.startswith("cannot load the client's TLS files"), result.detail
