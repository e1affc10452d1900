"""Pure renderers: plain values in, host file text or host specs out. No Pulumi types in here.

The components call these through `.apply()`; the tests and the loopback rehearsal call them with plain
strings. A "spec" is the JSON document that scripts/apply_spec.py applies on a host (files with modes, YAML keys
to merge, env.list variables, checks, and what to restart when something changed).
"""

from __future__ import annotations

import json
from typing import Any, Optional, Sequence

from components import versions

# Where things live on the hosts (Wallarm 6.x all-in-one layout).
ENV_LIST = "/opt/wallarm/env.list"
WSTORE_YAML = "/opt/wallarm/wstore/wstore.yaml"
NODE_YAML = "/opt/wallarm/etc/wallarm/node.yaml"
WSTORE_CERT = "/opt/wallarm/wstore/wstore.crt"
WSTORE_KEY = "/opt/wallarm/wstore/wstore.key"
WSTORE_CA = "/opt/wallarm/wstore/wallarm-ca.crt"
NGINX_DIR = "/etc/nginx"
NGINX_CONF = "/etc/nginx/conf.d/wallarm-wstore.conf"
NGINX_DEFAULT_SITE = "/etc/nginx/sites-enabled/default"
NGINX_CA = "/etc/nginx/wallarm/wstore-ca.crt"
NGINX_CLIENT_CERT = "/etc/nginx/wallarm/client.crt"
NGINX_CLIENT_KEY = "/etc/nginx/wallarm/client.key"
WSTORE_UPSTREAM = "wallarm_wstore"
MANAGED = "# Managed by Pulumi (wallarm-postanalytics): local changes are overwritten."


def installer_url(version: str, arch: str) -> str:
    """The all-in-one installer for a version X.Y.Z and an architecture (x86_64 or aarch64), from the version's
    major in components/versions.py."""
    major_minor = ".".join(version.split(".")[:2])
    return versions.major(version).installer.format(major_minor=major_minor, version=version, arch=arch)


def wstore_settings(private_ip: str, port: int, tls_port: int, tls: bool, mutual_tls: bool) -> dict[str, Any]:
    """Dotted keys of wstore.yaml that we own. With TLS on, the plain listener is bound to loopback."""
    if not tls:
        return {
            "service.address": f"{private_ip}:{port}",
            "service.TLS.enabled": False,
            "service.TLS.mutualTLS.enabled": False,
        }
    keys: dict[str, Any] = {
        # wstore binds IPv4 only since 6.6.0: 127.0.0.1, never "localhost".
        "service.address": f"127.0.0.1:{port}",
        "service.TLS.enabled": True,
        "service.TLS.address": f"{private_ip}:{tls_port}",
        "service.TLS.certFile": WSTORE_CERT,
        "service.TLS.keyFile": WSTORE_KEY,
        "service.TLS.caCertFile": WSTORE_CA,
        "service.TLS.mutualTLS.enabled": mutual_tls,
    }
    if mutual_tls:
        keys["service.TLS.mutualTLS.clientCACertFile"] = WSTORE_CA
    return keys


def node_settings(wstore: dict[str, Any]) -> dict[str, Any]:
    """node.yaml's wstore.host/port follow service.address (the plain listener)."""
    host, port = wstore["service.address"].rsplit(":", 1)
    return {"wstore.host": host, "wstore.port": int(port)}


def upstream_servers(private_ips: Sequence[str], port: int, tls_port: int, tls: bool) -> list[str]:
    """`host:port` of every postanalytics server, as the filtering nodes reach them."""
    return [f"{ip}:{tls_port if tls else port}" for ip in private_ips]


def render_upstream(servers: Sequence[str], tls: bool, mutual_tls: bool) -> str:
    """The http-context block that points the NGINX-Wallarm module at wstore."""
    if not servers:
        raise ValueError("the wallarm_wstore upstream needs at least one postanalytics server")
    lines = [f"upstream {WSTORE_UPSTREAM} {{"]
    lines += [f"    server {s} max_fails=0 fail_timeout=0 max_conns=1;" for s in servers]
    # keepalive must not be lower than the number of servers.
    lines += [f"    keepalive {len(servers)};", "}"]
    if tls:
        lines.append(f"wallarm_wstore_upstream {WSTORE_UPSTREAM} ssl=on;")
        lines.append(f"wallarm_wstore_ssl_ca_cert_file {NGINX_CA};")
        if mutual_tls:
            lines.append(f"wallarm_wstore_ssl_cert_file {NGINX_CLIENT_CERT};")
            lines.append(f"wallarm_wstore_ssl_key_file {NGINX_CLIENT_KEY};")
    else:
        lines.append(f"wallarm_wstore_upstream {WSTORE_UPSTREAM};")
    return "\n".join(lines) + "\n"


HEALTH_PATH = "/healthz"


def _proxy_server(listen: str, protected_upstream: str, mode: str, proto: str, real_ip_from: Optional[str]) -> str:
    """A server that analyses and proxies to the application; `real_ip_from` takes the client address from the
    load balancer's PROXY protocol header."""
    real_ip = (f"    set_real_ip_from {real_ip_from};\n    real_ip_header proxy_protocol;\n" if real_ip_from else "")
    return (
        "server {\n"
        f"    listen {listen};\n"
        "    server_name _;\n"
        f"{real_ip}"
        f"    wallarm_mode {mode};\n"
        "    location / {\n"
        f"        proxy_pass {protected_upstream};\n"
        "        proxy_set_header Host $host;\n"
        "        proxy_set_header X-Real-IP $remote_addr;\n"
        "        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
        f"        proxy_set_header X-Forwarded-Proto {proto};\n"
        "    }\n"
        "}\n"
    )


def render_nginx_conf(upstream: str, protected_upstream: str, mode: str, health_port: int,
                      tls_port: Optional[int] = None, vpc_cidr: Optional[str] = None) -> str:
    """Our one NGINX file (http context, conf.d): the wstore upstream, the proxying server, and the location the
    load balancer checks (answered by NGINX itself, never proxied, never analysed). With `tls_port`, a second
    proxying server for what the load balancer's TLS listener decrypted: the client address comes in the PROXY
    protocol header (from the VPC only), and the application is told the client used https."""
    servers = _proxy_server("80 default_server", protected_upstream, mode, "$scheme", None)
    if tls_port is not None:
        servers += _proxy_server(f"{tls_port} proxy_protocol", protected_upstream, mode, "https", vpc_cidr)
    return (
        f"{MANAGED}\n{upstream}\n{servers}"
        "server {\n"
        f"    listen {health_port};\n"
        "    server_name _;\n"
        "    wallarm_mode off;\n"
        "    access_log off;\n"
        f"    location = {HEALTH_PATH} {{\n"
        "        default_type text/plain;\n"
        '        return 200 "ok\\n";\n'
        "    }\n"
        "    location / {\n"
        "        return 404;\n"
        "    }\n"
        "}\n"
    )


def _file(path: str, content: str, mode: str, owner: str = "root") -> dict[str, Any]:
    return {"path": path, "content": content, "mode": mode, "owner": owner}


def postanalytics_spec(
    name: str,
    private_ip: str,
    arena: str,
    port: int,
    tls_port: int,
    tls: bool,
    mutual_tls: bool,
    server_cert: Optional[str] = None,
    server_key: Optional[str] = None,
    ca_cert: Optional[str] = None,
) -> dict[str, Any]:
    """What one postanalytics server must look like after the installer ran."""
    wstore = wstore_settings(private_ip, port, tls_port, tls, mutual_tls)
    files, absent = [], []
    if tls:
        files = [
            _file(WSTORE_CA, ca_cert, "0644"),
            _file(WSTORE_CERT, server_cert, "0644"),
            # wstore's user is not documented: the key goes to `wallarm` when that user exists, else root.
            _file(WSTORE_KEY, server_key, "0600", owner="wallarm"),
        ]
    else:
        absent = [WSTORE_KEY, WSTORE_CERT, WSTORE_CA]
    return {
        "name": name,
        "files": files,
        "absent": absent,
        "env": [{"path": ENV_LIST, "set": {"SLAB_ALLOC_ARENA": arena}}],
        "yaml": [{"path": WSTORE_YAML, "set": wstore}, {"path": NODE_YAML, "set": node_settings(wstore)}],
        "on_change": [["systemctl", "restart", "wallarm.service"]],
        "verify": [["systemctl", "is-active", "--quiet", "wallarm.service"]],
    }


def filtering_spec(
    name: str,
    nginx_conf: str,
    tls: bool,
    mutual_tls: bool,
    ca_cert: Optional[str] = None,
    client_cert: Optional[str] = None,
    client_key: Optional[str] = None,
) -> dict[str, Any]:
    """What one filtering node must look like after NGINX and the installer ran."""
    files = [_file(NGINX_CONF, nginx_conf, "0644")]
    absent = [NGINX_DEFAULT_SITE]  # its `listen 80 default_server` would clash with ours
    if tls:
        files.append(_file(NGINX_CA, ca_cert, "0644"))
    else:
        absent.append(NGINX_CA)
    if mutual_tls:
        files += [_file(NGINX_CLIENT_CERT, client_cert, "0644"), _file(NGINX_CLIENT_KEY, client_key, "0600")]
    else:
        absent += [NGINX_CLIENT_CERT, NGINX_CLIENT_KEY]
    return {
        "name": name,
        "files": files,
        "absent": absent,
        # The installer leaves its own (commented) wallarm_wstore_upstream line; ours must be the only live one.
        "unique_directive": {"directive": "wallarm_wstore_upstream", "under": NGINX_DIR, "owner": NGINX_CONF},
        "check": [["nginx", "-t", "-q"]],
        "on_change": [["systemctl", "reload-or-restart", "nginx"]],
    }


def spec_json(spec: dict[str, Any]) -> str:
    """Deterministic text, so that the same input never shows as a diff."""
    return json.dumps(spec, sort_keys=True, indent=1) + "\n"
