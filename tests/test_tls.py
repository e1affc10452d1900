"""Real handshakes with the keys and certificates the program delivers to the hosts (made by the TLS mocks from
the resources' inputs): mutual TLS succeeds; a client without a certificate, a client from another CA, or a
server certificate checked against another address is refused."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Optional

import pytest

from components import render
from tests.conftest import program_run
from tests.helpers import rogue_pair, spec, spec_file
from tools.tlsprobe import Result, StandIn, connect


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
