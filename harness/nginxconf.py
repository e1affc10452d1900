"""Reading NGINX files with a real parser (crossplane), and checking them with Debian's `nginx -t`.

Our file is an http-context fragment (it lives in conf.d). Stock NGINX does not know the Wallarm directives, so
`nginx -t` runs on the file with them set aside (commented out), inside a minimal main config of its own.
NGINX resolves a `proxy_pass` host name when it loads the configuration; a name such as app.internal resolves on
the node (its VPC's DNS), not here, so for `nginx -t` the name is replaced by 192.0.2.1 (TEST-NET-1, RFC 5737),
keeping scheme, port and path, and `resolved_on_node()` lists the names set aside for the report. `nginx -t` also
binds every `listen`: the test copy listens on free loopback ports instead (port 80 needs root, and may be taken).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import crossplane


def parse_text(text: str) -> list[dict]:
    """crossplane's directive tree of an http-context fragment; raises on a syntax error."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fragment.conf"
        path.write_text(text)
        payload = crossplane.parse(str(path), single=True, check_ctx=False, check_args=False, catch_errors=False)
    if payload["status"] != "ok":
        raise ValueError(f"NGINX syntax error: {payload['errors']}")
    return payload["config"][0]["parsed"]


def without_wallarm(text: str) -> str:
    """The fragment with every wallarm_* directive commented out (stock NGINX does not know them)."""
    return re.sub(r"(?m)^(\s*)(wallarm_\w+\b[^\n]*)$", r"\1# set aside for nginx -t: \2", text)


STAND_IN_ADDRESS = "192.0.2.1"
PROXY_PASS = re.compile(r"(?m)^(\s*proxy_pass\s+https?://)([A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)(?=[:/;\s])")
IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")


def _upstream_names(text: str) -> set[str]:
    return set(re.findall(r"(?m)^\s*upstream\s+(\S+)\s*\{", text))


def resolved_on_node(text: str) -> list[str]:
    """Host names in proxy_pass that NGINX would resolve when it loads the file (not IPs, not upstream groups)."""
    groups = _upstream_names(text)
    return sorted({m.group(2) for m in PROXY_PASS.finditer(text)
                   if not IPV4.fullmatch(m.group(2)) and m.group(2) not in groups})


def without_names(text: str) -> str:
    """The fragment with those host names replaced by a stand-in address (nothing to resolve here)."""
    names = set(resolved_on_node(text))
    return PROXY_PASS.sub(lambda m: m.group(1) + (STAND_IN_ADDRESS if m.group(2) in names else m.group(2)), text)


LISTEN = re.compile(r"(?m)^(\s*listen\s+)(?:[0-9.]+:)?(\d+)(?=[\s;])")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def on_free_ports(text: str) -> str:
    """The fragment listening on free loopback ports: `nginx -t` binds what it would listen on, which needs root
    for port 80 and fails where something already listens there. Each port keeps its own stand-in."""
    ports: dict[str, int] = {}
    return LISTEN.sub(lambda m: f"{m.group(1)}127.0.0.1:{ports.setdefault(m.group(2), _free_port())}", text)


def nginx_binary() -> str:
    """Debian's nginx: on PATH, or in /usr/sbin (which is not on an ordinary user's PATH)."""
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if nginx is None:
        raise FileNotFoundError("nginx is not installed (Debian: apt-get install nginx-light)")
    return nginx


def nginx_test(fragment: str) -> tuple[bool, str]:
    """`nginx -t` on the fragment (Wallarm directives and proxy_pass host names set aside) in an http block of a
    throwaway config."""
    nginx = nginx_binary()
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "fragment.conf").write_text(on_free_ports(without_names(without_wallarm(fragment))))
        Path(tmp, "nginx.conf").write_text(
            f"pid {tmp}/nginx.pid;\nerror_log {tmp}/error.log;\nevents {{}}\n"
            f"http {{\n    access_log off;\n    include {tmp}/fragment.conf;\n}}\n")
        proc = subprocess.run([nginx, "-t", "-q", "-p", tmp, "-c", f"{tmp}/nginx.conf"],
                              capture_output=True, text=True)
    return proc.returncode == 0, proc.stderr.strip()
