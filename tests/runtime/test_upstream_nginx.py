"""The proxying server as a real NGINX (Debian's) runs it: how request paths map onto protectedUpstream's path,
and how an https:// application is verified. NGINX runs on loopback ports from the rendered file (Wallarm
directives set aside, as harness/nginxconf.py does for `nginx -t`); an application stand-in records what arrives."""

from __future__ import annotations

import http.client
import http.server
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path
from typing import Optional

import pytest

from components import render
from harness.nginxconf import nginx_binary, without_wallarm

pytestmark = pytest.mark.skipif(not Path("/usr/sbin/nginx").exists() and not shutil.which("nginx"),
                                reason="Debian's nginx is not installed (apt-get install nginx-light)")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class App:
    """The application stand-in: answers 200 and records the request target exactly as it arrived, and the SNI
    name of a TLS handshake."""

    def __init__(self, context: Optional[ssl.SSLContext] = None):
        self.paths: list[str] = []
        self.server_names: list[Optional[str]] = []
        app = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                app.paths.append(self.path)
                self.send_response(200)
                self.send_header("Content-Length", "3")
                self.end_headers()
                self.wfile.write(b"ok\n")

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if context is not None:
            context.sni_callback = lambda _sock, name, _ctx: self.server_names.append(name)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class Nginx:
    """Debian's nginx on the rendered file: listen ports moved to free loopback ports, the application's host name
    (resolved on the node in production) pointed at the stand-in on 127.0.0.1, proxy_ssl_name kept."""

    def __init__(self, conf: str, tmp: Path):
        self.port = _free_port()
        conf = without_wallarm(conf)
        conf = conf.replace("listen 80 default_server;", f"listen 127.0.0.1:{self.port} default_server;")
        conf = re.sub(r"listen (\d+);", lambda m: f"listen 127.0.0.1:{_free_port()};", conf)
        conf = re.sub(r"(proxy_pass https?://)[^:/;]+", r"\g<1>127.0.0.1", conf)
        (tmp / "fragment.conf").write_text(conf)
        temp = "".join(f"    {d}_temp_path {tmp}/{d};\n" for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        (tmp / "nginx.conf").write_text(
            f"daemon off;\nmaster_process off;\npid {tmp}/nginx.pid;\nerror_log {tmp}/error.log info;\nevents {{}}\n"
            f"http {{\n    access_log off;\n{temp}    include {tmp}/fragment.conf;\n}}\n")
        self.log = tmp / "error.log"
        self.proc = subprocess.Popen([nginx_binary(), "-p", str(tmp), "-e", str(self.log), "-c", f"{tmp}/nginx.conf"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited: {self.proc.stderr.read().decode()} {self.log.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("nginx did not listen within 10 s")

    def get(self, target: str) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", target, headers={"Host": "shop.example.com"})
            return conn.getresponse().status
        finally:
            conn.close()

    def close(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


def _conf(protected_upstream: str, upstream_ca: bool = False) -> str:
    upstream = render.render_upstream(["127.0.0.1:3313"], False, False)
    return render.render_nginx_conf(upstream, protected_upstream, "block", 8081, upstream_ca=upstream_ca)


@pytest.fixture
def run(tmp_path):
    started = []

    def start(conf: str) -> Nginx:
        d = tmp_path / f"nginx{len(started)}"
        d.mkdir()
        started.append(Nginx(conf, d))
        return started[-1]

    yield start
    for n in started:
        n.close()


@pytest.fixture
def app():
    a = App()
    yield a
    a.close()


# request target -> what the application receives, with protectedUpstream http://app.internal:PORT/base.
# NGINX passes the normalized URI with a path in proxy_pass: percent-decoded, "." and ".." resolved, repeated
# slashes merged (merge_slashes on), then re-escaped; the query string is passed as sent.
WITH_PATH = [
    ("/", "/base/"),
    ("/x/y?q", "/base/x/y?q"),
    ("/x/y/?a=1&b=%2F", "/base/x/y/?a=1&b=%2F"),
    ("/x//y", "/base/x/y"),
    ("/a%20b", "/base/a%20b"),
    ("/caf%C3%A9", "/base/caf%C3%A9"),
    ("/x/%2e%2e/y", "/base/y"),
    ("/x/../../y", None),  # above the root: NGINX answers 400 itself and passes nothing
]


@pytest.mark.parametrize("base", ["/base", "/base/", "/base//"])
def test_paths_map_under_the_upstream_path(run, app, base):
    """Guards against `proxy_pass http://app/base` under `location /` sending /x/y as /basex/y (issue 12): the path
    the application sees is the upstream's path, one slash, then the request's path; the query is kept."""
    nginx = run(_conf(f"http://app.internal:{app.port}{base}"))
    for target, expected in WITH_PATH:
        before = len(app.paths)
        status = nginx.get(target)
        seen = app.paths[before:]
        if expected is None:
            assert status == 400 and seen == [], f"{target}: {status}, the application saw {seen}"
        else:
            assert status == 200 and seen == [expected], f"{target} arrived as {seen} (status {status}), not {expected}"


@pytest.mark.parametrize("root", ["", "/"])
def test_without_a_path_the_request_target_is_passed_unchanged(run, app, root):
    """Guards against the mapping altering requests when protectedUpstream has no path: NGINX passes the request
    target as the client sent it (no decoding, no slash merging)."""
    nginx = run(_conf(f"http://app.internal:{app.port}{root}"))
    for target in ["/", "/x/y?q", "/x//y", "/a%20b", "/c%2Fd?e=%26", "/caf%C3%A9"]:
        before = len(app.paths)
        assert nginx.get(target) == 200
        assert app.paths[before:] == [target], f"{target} arrived as {app.paths[before:]}"


# ---------------------------------------------------------------- https:// applications


def _pki(d: Path, name: str, host: str) -> None:
    """A throwaway CA and a leaf for `host`, in the order CA key, self-signed CA, leaf key, CSR with SANs, leaf."""
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(d / f"{name}-ca.key"))
    openssl("req", "-x509", "-new", "-key", str(d / f"{name}-ca.key"), "-subj", f"/CN={name} CA", "-days", "1",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign",
            "-out", str(d / f"{name}-ca.crt"))
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(d / f"{name}.key"))
    openssl("req", "-new", "-key", str(d / f"{name}.key"), "-subj", f"/CN={host}", "-out", str(d / f"{name}.csr"))
    (d / f"{name}.ext").write_text(f"subjectAltName=DNS:{host}\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", str(d / f"{name}.csr"), "-CA", str(d / f"{name}-ca.crt"), "-CAkey",
            str(d / f"{name}-ca.key"), "-CAcreateserial", "-days", "1", "-extfile", str(d / f"{name}.ext"),
            "-out", str(d / f"{name}.crt"))


@pytest.fixture
def tls_app(tmp_path):
    _pki(tmp_path, "app", "app.internal")
    _pki(tmp_path, "other", "app.internal")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "app.crt", tmp_path / "app.key")
    a = App(context)
    yield a, tmp_path
    a.close()


def _with_ca(conf: str, ca: Path) -> str:
    """The rendered file with the CA file where the spec puts it on the node, here a path of the test's own."""
    assert render.NGINX_UPSTREAM_CA in conf, "the rendered file does not trust protectedUpstreamCaCertificate"
    return conf.replace(render.NGINX_UPSTREAM_CA, str(ca))


def test_https_upstream_is_verified_against_its_ca_and_gets_sni(run, tls_app):
    """Guards against an https:// application being proxied with no certificate check and no SNI (issue 12): with
    the application's CA configured, NGINX proxies, and the name the application sees is the upstream's host."""
    app, d = tls_app
    nginx = run(_with_ca(_conf(f"https://app.internal:{app.port}/base", upstream_ca=True), d / "app-ca.crt"))
    assert nginx.get("/x/y?q") == 200
    assert app.paths == ["/base/x/y?q"]
    assert app.server_names and set(app.server_names) == {"app.internal"}, app.server_names


def test_https_upstream_with_another_ca_is_refused(run, tls_app):
    """Guards against NGINX trusting whatever certificate the application (or someone in between) shows: with a
    CA that did not sign it, the request fails (502) and nothing reaches the application."""
    app, d = tls_app
    nginx = run(_with_ca(_conf(f"https://app.internal:{app.port}", upstream_ca=True), d / "other-ca.crt"))
    assert nginx.get("/x") == 502
    assert app.paths == []
    assert re.search(r"certificate verify (error|failed)", nginx.log.read_text()), nginx.log.read_text()[-500:]


def test_https_upstream_trusts_the_system_store_by_default(run, tls_app):
    """Guards against an https:// application without a CA setting being trusted blindly: the rendered file uses
    the system trust store, which does not hold a throwaway CA, so the request fails (502)."""
    app, _ = tls_app
    conf = _conf(f"https://app.internal:{app.port}")
    assert f"proxy_ssl_trusted_certificate {render.SYSTEM_TRUST_STORE};" in conf
    if not Path(render.SYSTEM_TRUST_STORE).exists():
        pytest.skip(f"{render.SYSTEM_TRUST_STORE} is missing here (apt-get install ca-certificates)")
    nginx = run(conf)
    assert nginx.get("/x") == 502
    assert app.paths == []


def test_https_upstream_by_address_never_verifies(run, tmp_path):
    """Why the settings refuse https:// with an IP address: Debian's NGINX checks the upstream's certificate by name
    only, so even a certificate naming that address (an IP SAN) from the trusted CA is refused (502)."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(tmp_path / "ip.key"), "-out", str(tmp_path / "ip.crt"), "-subj", "/CN=app",
                    "-days", "1", "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "ip.crt", tmp_path / "ip.key")
    app = App(context)
    try:
        nginx = run(_with_ca(_conf(f"https://127.0.0.1:{app.port}", upstream_ca=True), tmp_path / "ip.crt"))
        assert nginx.get("/x") == 502 and app.paths == []
        assert 'upstream SSL certificate does not match "127.0.0.1"' in nginx.log.read_text()
    finally:
        app.close()
