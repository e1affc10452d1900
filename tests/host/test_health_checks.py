"""The load balancer's health checks, answered by a real NGINX (Debian's) from the file the program renders.

AWS's NLB guide, load-balancer-target-groups.md, "Health check connections": with proxy protocol v2 on a target
group, "the proxy protocol header is also included in health check connections from the load balancer", without
the client's connection information. So the proxy-protocol (TLS listener's) target group must be checked on an
NGINX listener that expects the header, and the plain one on a listener that does not: a plain `listen` answers
400 to the header, which is the failure the issue describes (every HTTPS stack's targets stay unhealthy).
"""

from __future__ import annotations

import re
import socket
import struct
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from components import render
from harness.nginxconf import nginx_binary, without_names, without_wallarm

PROXY_V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
HEALTH, PROXY_HEALTH, TLS_TARGET = 8081, 8082, 8443


def proxy_v2_header(local: bool) -> bytes:
    """A PROXY protocol v2 header (haproxy's proxy-protocol.txt, section 2.2): LOCAL with no address, as a health
    check may carry it, or PROXY over TCP/IPv4 with a client's address."""
    if local:
        return PROXY_V2_SIGNATURE + bytes([0x20, 0x00]) + struct.pack("!H", 0)
    addresses = socket.inet_aton("198.51.100.7") + socket.inet_aton("10.0.1.20") + struct.pack("!HH", 40000, 8082)
    return PROXY_V2_SIGNATURE + bytes([0x21, 0x11]) + struct.pack("!H", len(addresses)) + addresses


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _status(port: int, prefix: bytes, path: str = render.HEALTH_PATH) -> str:
    """The status line NGINX answers to an HTTP/1.0 GET sent after `prefix` (empty: no PROXY header); "" when it
    closes the connection without an answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(prefix + f"GET {path} HTTP/1.0\r\nHost: 10.0.1.20\r\n\r\n".encode())
        data = b""
        while chunk := conn.recv(4096):
            data += chunk
    return data.split(b"\r\n", 1)[0].decode()


@pytest.fixture(scope="module")
def nginx():
    """Debian's NGINX serving the rendered file (TLS listener on), on loopback ports: Wallarm directives set aside,
    the application's name replaced, each `listen` port mapped to a free one (its flags, proxy_protocol, kept)."""
    upstream = render.render_upstream(["10.0.1.5:6388"], tls=True, mutual_tls=True)
    conf = render.render_nginx_conf(upstream, "http://10.0.0.10:8080", "block", HEALTH, TLS_TARGET, "10.0.0.0/16",
                                    PROXY_HEALTH)
    ports = {p: _free_port() for p in (80, HEALTH, PROXY_HEALTH, TLS_TARGET)}
    text = re.sub(r"(?m)^(\s*listen\s+)(\d+)(?=[\s;])", lambda m: f"{m.group(1)}127.0.0.1:{ports[int(m.group(2))]}",
                  without_names(without_wallarm(conf)))
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "fragment.conf").write_text(text)
        Path(tmp, "nginx.conf").write_text(
            f"pid {tmp}/nginx.pid;\nerror_log {tmp}/error.log info;\nevents {{}}\n"
            f"http {{\n    access_log off;\n    include {tmp}/fragment.conf;\n}}\n")
        proc = subprocess.Popen([nginx_binary(), "-p", tmp, "-c", f"{tmp}/nginx.conf", "-g", "daemon off;"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", ports[PROXY_HEALTH]), timeout=1).close()
                    break
                except OSError:
                    if proc.poll() is not None:
                        pytest.fail(f"nginx did not start: {proc.stdout.read().decode()}")
                    time.sleep(0.05)
            yield ports, conf, Path(tmp, "error.log")
        finally:
            proc.terminate()
            proc.wait(timeout=10)


@pytest.mark.parametrize("local", [True, False], ids=["LOCAL-header", "PROXY-header"])
def test_the_proxy_protocol_health_listener_answers_a_check_that_carries_the_header(nginx, local):
    """Guards against the issue's failure: the 8443 target group (proxy protocol v2 on) checked on a listener that
    cannot read the header AWS sends on health checks, so no target ever becomes healthy."""
    ports, _, _ = nginx
    assert _status(ports[PROXY_HEALTH], proxy_v2_header(local)) == "HTTP/1.1 200 OK"


def test_a_plain_listener_answers_400_to_the_header_and_the_plain_check_passes(nginx):
    """Guards against checking a proxy-protocol target group on the plain health port (the issue's 400), and
    against breaking the plain check of the port 80 target group (no header) while fixing it."""
    ports, _, _ = nginx
    assert _status(ports[HEALTH], proxy_v2_header(local=True)) == "HTTP/1.1 400 Bad Request"
    assert _status(ports[HEALTH], b"") == "HTTP/1.1 200 OK"
    assert _status(ports[HEALTH], b"", path="/") == "HTTP/1.1 404 Not Found", "the health server answers only /healthz"


def test_the_proxy_protocol_health_listener_refuses_a_check_without_the_header(nginx):
    """Guards against a health server that would pass whatever the target group's proxy protocol setting: without
    the header NGINX closes the connection (a "broken header" in its log), so a mismatch shows as unhealthy."""
    ports, _, log = nginx
    assert _status(ports[PROXY_HEALTH], b"") in ("", "HTTP/1.1 400 Bad Request")
    time.sleep(0.2)
    assert "broken header" in log.read_text()


def test_each_target_group_is_checked_where_its_proxy_protocol_matches():
    """Guards against the declarations and the file disagreeing: each target group's health port is a `listen` in
    the rendered file with `proxy_protocol` exactly when the group has proxy protocol v2 on."""
    from components.entrypoint import target_groups

    conf = render.render_nginx_conf("", "http://10.0.0.10:8080", "block", HEALTH, TLS_TARGET, "10.0.0.0/16",
                                    PROXY_HEALTH)
    listens = {int(m.group(1)): "proxy_protocol" in m.group(2)
               for m in re.finditer(r"(?m)^\s*listen\s+(\d+)([^;]*);", conf)}
    for group in target_groups(True, HEALTH, PROXY_HEALTH):
        assert listens[group.health_port] == group.proxy_protocol_v2, group
        assert listens[group.port] == group.proxy_protocol_v2 or group.port == 80, group
