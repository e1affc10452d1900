"""Reading NGINX files with a real parser (crossplane), and checking them with Debian's `nginx -t`.

Our file is an http-context fragment (it lives in conf.d). Stock NGINX does not know the Wallarm directives, so
`nginx -t` runs on the file with them set aside (commented out), inside a minimal main config of its own.
"""

from __future__ import annotations

import os
import re
import shutil
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


def nginx_test(fragment: str) -> tuple[bool, str]:
    """`nginx -t` on the fragment (Wallarm directives set aside) in an http block of a throwaway config."""
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if nginx is None:
        raise FileNotFoundError("nginx is not installed (Debian: apt-get install nginx-light)")
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "fragment.conf").write_text(without_wallarm(fragment))
        Path(tmp, "nginx.conf").write_text(
            f"pid {tmp}/nginx.pid;\nerror_log {tmp}/error.log;\nevents {{}}\n"
            f"http {{\n    access_log off;\n    include {tmp}/fragment.conf;\n}}\n")
        proc = subprocess.run([nginx, "-t", "-q", "-p", tmp, "-c", f"{tmp}/nginx.conf"],
                              capture_output=True, text=True)
    return proc.returncode == 0, proc.stderr.strip()
