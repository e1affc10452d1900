"""Pure renderers: plain values in, host file text or host specs out. No Pulumi types in here.

The components call these through `.apply()`; the tests and the loopback rehearsal call them with plain
strings. A "spec" is the JSON document that scripts/apply_spec.py applies on a host (files with modes, YAML keys
to merge, env.list variables, checks, and what to restart when something changed).
"""

from __future__ import annotations

import json
from typing import Any, Optional, Sequence
from urllib.parse import urlsplit

from . import versions

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
NGINX_UPSTREAM_CA = "/etc/nginx/wallarm/upstream-ca.crt"
SYSTEM_TRUST_STORE = "/etc/ssl/certs/ca-certificates.crt"
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


def proxy_pass(protected_upstream: str) -> str:
    """proxy_pass's argument under `location /`. NGINX's proxy_pass docs: "If the proxy_pass directive is specified
    with a URI, then when a request is passed to the server, the part of a normalized request URI matching the
    location is replaced by a URI specified in the directive"; without a URI, "request URI is passed to the server
    in the same form as sent by a client". The matched part is "/", so the upstream's path gets exactly one trailing
    slash (http://app/base: /x/y?q -> /base/x/y?q, never /basex/y); a path of "/" or none passes the URI unchanged.
    https://nginx.org/en/docs/http/ngx_http_proxy_module.html#proxy_pass"""
    parts = urlsplit(protected_upstream)
    path = parts.path.rstrip("/")
    return f"{parts.scheme}://{parts.netloc}" + (f"{path}/" if path else "")


def _upstream_tls(protected_upstream: str, upstream_ca: bool) -> str:
    """For an https:// application: NGINX checks nothing by default (proxy_ssl_verify off, no SNI). Verify the chain
    against the system trust store (Debian's and Ubuntu's ca-certificates bundle) or the CA of the setting
    protectedUpstreamCaCertificate, and the name; send that name as SNI. proxy_ssl_verify_depth defaults to 1 (one
    intermediate), fewer than some public chains have."""
    if urlsplit(protected_upstream).scheme != "https":
        return ""
    host = urlsplit(protected_upstream).hostname
    return (
        "        proxy_ssl_verify on;\n"
        "        proxy_ssl_verify_depth 4;\n"
        f"        proxy_ssl_trusted_certificate {NGINX_UPSTREAM_CA if upstream_ca else SYSTEM_TRUST_STORE};\n"
        "        proxy_ssl_server_name on;\n"
        f"        proxy_ssl_name {host};\n"
    )


def _proxy_server(listen: str, protected_upstream: str, mode: str, proto: str, real_ip_from: Optional[str],
                  upstream_ca: bool = False) -> str:
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
        f"        proxy_pass {proxy_pass(protected_upstream)};\n"
        f"{_upstream_tls(protected_upstream, upstream_ca)}"
        "        proxy_set_header Host $host;\n"
        "        proxy_set_header X-Real-IP $remote_addr;\n"
        "        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
        f"        proxy_set_header X-Forwarded-Proto {proto};\n"
        "    }\n"
        "}\n"
    )


def _health_server(listen: str) -> str:
    """A server that answers the load balancer's HTTP health check itself: never proxied, never analysed."""
    return (
        "server {\n"
        f"    listen {listen};\n"
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


def render_nginx_conf(upstream: str, protected_upstream: str, mode: str, health_port: int,
                      tls_port: Optional[int] = None, vpc_cidr: Optional[str] = None,
                      proxy_health_port: Optional[int] = None, upstream_ca: bool = False) -> str:
    """Our one NGINX file (http context, conf.d): the wstore upstream, the proxying server, and the health server
    the load balancer checks on `health_port`. With `tls_port`, a second proxying server for what the load
    balancer's TLS listener decrypted: the client address comes in the PROXY protocol header, and the application
    is told the client used https. That target group has proxy protocol v2 on, and AWS sends the PROXY header on
    its health checks too ("Health check connections", load-balancer-target-groups.md of the NLB guide), so it is
    checked on a second health server, on `proxy_health_port`, whose `listen` expects the header: a plain `listen`
    answers 400 to it, and a `proxy_protocol` one answers 400 without it."""
    servers = _proxy_server("80 default_server", protected_upstream, mode, "$scheme", None, upstream_ca)
    health = _health_server(str(health_port))
    if tls_port is not None:
        if proxy_health_port is None:
            raise ValueError("a proxy-protocol listener needs its own health port (proxy_health_port)")
        servers += _proxy_server(f"{tls_port} proxy_protocol", protected_upstream, mode, "https", vpc_cidr,
                                 upstream_ca)
        health += _health_server(f"{proxy_health_port} proxy_protocol")
    return f"{MANAGED}\n{upstream}\n{servers}{health}"


def _file(path: str, content: Optional[str], mode: str, owner: str = "root") -> dict[str, Any]:
    if content is None:  # a TLS spec without its certificate or key would write an empty file on the host
        raise ValueError(f"{path}: no content given (TLS needs its certificates and keys)")
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
    upstream_ca: Optional[str] = None,
    protected_upstream: Optional[str] = None,
) -> dict[str, Any]:
    """What one filtering node must look like after NGINX and the installer ran. The application's host is
    resolved on the node before `nginx -t` and the reload, and refused there if it means this host or the metadata
    service (a name's addresses are known only to the node's resolver)."""
    files = [_file(NGINX_CONF, nginx_conf, "0644")]
    absent = [NGINX_DEFAULT_SITE]  # its `listen 80 default_server` would clash with ours
    if upstream_ca:
        files.append(_file(NGINX_UPSTREAM_CA, upstream_ca, "0644"))
    else:
        absent.append(NGINX_UPSTREAM_CA)
    if tls:
        files.append(_file(NGINX_CA, ca_cert, "0644"))
    else:
        absent.append(NGINX_CA)
    if mutual_tls:
        files += [_file(NGINX_CLIENT_CERT, client_cert, "0644"), _file(NGINX_CLIENT_KEY, client_key, "0600")]
    else:
        absent += [NGINX_CLIENT_CERT, NGINX_CLIENT_KEY]
    extra = {"upstream_names": [urlsplit(protected_upstream).hostname]} if protected_upstream else {}
    return {
        "name": name,
        "files": files,
        "absent": absent,
        **extra,
        # The installer leaves its own (commented) wallarm_wstore_upstream line; ours must be the only live one.
        "unique_directive": {"directive": "wallarm_wstore_upstream", "under": NGINX_DIR, "owner": NGINX_CONF},
        "check": [["nginx", "-t", "-q"]],
        "on_change": [["systemctl", "reload-or-restart", "nginx"]],
    }


def spec_json(spec: dict[str, Any]) -> str:
    """Deterministic text, so that the same input never shows as a diff."""
    return json.dumps(spec, sort_keys=True, indent=1) + "\n"
