"""The load balancer of the rehearsal: HAProxy in front of real NGINX servers, generated from what the program declares.

One description, not two: the listeners, target groups, attachments and the load balancer the program declares
(captured by the mocks) become HAProxy's frontends, backends and servers; the security-group rules it declares
become nftables rules. Nothing here names a port. What an AWS Network Load Balancer does, and how it is modelled
(awsdocs/elb-network-load-balancers-user-guide, doc_source/):
- Health checks per target group, at its port, path, protocol, matcher, interval and thresholds
  (target-group-health-checks.md): HAProxy `option httpchk` / `http-check send`, `check port N`, `inter`, `rise`,
  `fall`. Intervals are scaled down by SCALE so that the rehearsal stays short; the report prints the factor.
- "If proxy protocol is enabled, the proxy protocol header is also included in health check connections"
  (load-balancer-target-groups.md, "Health check connections"): `send-proxy-v2` + `check-send-proxy`.
- Traffic goes only to healthy targets (HAProxy takes a server out when its checks fail).
- A TLS listener terminates TLS (a throwaway certificate made at run time here, never on disk after the run) and
  opens a new connection to the target from the load balancer's own address, the client's address only in the
  PROXY v2 header when the target group has proxy protocol on (load-balancer-target-groups.md, "Client IP
  preservation"; load-balancer-listeners.md, "TLS listeners").
- A TCP target group with client IP preservation: the target sees the client's address. HAProxy's
  `source 0.0.0.0 usesrc clientip` does that; it needs root and transparent proxying, so it runs in a network
  namespace of the rehearsal's own (`unshare -n`, loopback up), where the rehearsal may also add the client and
  load balancer addresses and load the security-group table into nftables. Security groups are stateful and
  refuse silently (`drop` after `ct state established,related accept`).
Without root none of that is possible: everything listens on the 127.N addresses of the host's own network, ports
below 1024 on free ports instead, and the report says that client addresses and the firewall were not exercised.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import http.client
import http.server
import ipaddress
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Optional
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from components import render
from harness.nginxconf import nginx_binary, without_wallarm

SCALE = 20
"""AWS's health-check intervals and timeouts are divided by this (10 s -> 0.5 s)."""
ATTACK_PATH = "/etc/passwd"
"""The test attack of scripts/health-check.sh (ATTACK_URL), sent through the load balancer."""
OUTSIDE_CANDIDATES = ("198.18.0.77", "203.0.113.77", "198.51.100.77", "192.0.2.77", "100.64.0.77")
"""Client addresses to try, in this order, for a client inside and one outside clientCidrs (test ranges)."""
CLIENT_TIMEOUT = 3.0
OUTSIDE_TIMEOUT = 1.5
"""A security group drops what it refuses: the outside client waits this long for nothing."""

TG = "aws:lb/targetGroup:TargetGroup"
LISTENER = "aws:lb/listener:Listener"
ATTACHMENT = "aws:lb/targetGroupAttachment:TargetGroupAttachment"
LB = "aws:lb/loadBalancer:LoadBalancer"
INSTANCE = "aws:ec2/instance:Instance"
SG = "aws:ec2/securityGroup:SecurityGroup"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"


# ---------------------------------------------------------------- the declared load balancer
@dataclasses.dataclass
class Target:
    node: str
    address: str
    port: int


@dataclasses.dataclass
class TargetGroup:
    name: str
    arn: str
    port: int
    protocol: str
    proxy_protocol: bool
    preserve_client_ip: bool
    health: dict
    targets: list[Target] = dataclasses.field(default_factory=list)

    def health_port(self, target: Target) -> int:
        port = str(self.health.get("port", "traffic-port"))
        return target.port if port == "traffic-port" else int(port)


@dataclasses.dataclass
class Listener:
    name: str
    port: int
    protocol: str
    group: TargetGroup


@dataclasses.dataclass
class Declared:
    name: str
    dns_name: str
    security_groups: list[str]
    listeners: list[Listener]
    groups: list[TargetGroup]


def _preserves_client_ip(inputs: dict) -> bool:
    # load-balancer-target-groups.md, "Client IP preservation": on by default for instance targets over TCP/TLS.
    value = inputs.get("preserveClientIp")
    if value is None:
        return inputs.get("targetType", "instance") == "instance"
    return str(value).lower() == "true"


def declared(run) -> Optional[Declared]:
    """The load balancer as the program declared it: listeners in port order, each target group with its
    registered nodes (by their addresses)."""
    lbs = run.mocks.of_type(LB)
    if not lbs:
        return None
    [lb] = lbs
    nodes = {r.id: (r.inputs["tags"]["Node"], r.outputs["privateIp"]) for r in run.mocks.of_type(INSTANCE)}
    groups = {}
    for r in run.mocks.of_type(TG):
        inputs = r.inputs
        groups[r.outputs["arn"]] = TargetGroup(
            r.name, r.outputs["arn"], int(inputs["port"]), inputs.get("protocol", "TCP"),
            bool(inputs.get("proxyProtocolV2")), _preserves_client_ip(inputs), dict(inputs.get("healthCheck") or {}))
    for r in run.mocks.of_type(ATTACHMENT):
        node, address = nodes[r.inputs["targetId"]]
        group = groups[r.inputs["targetGroupArn"]]
        group.targets.append(Target(node, address, int(r.inputs.get("port") or group.port)))
    for group in groups.values():
        group.targets.sort(key=lambda t: int(t.node.rpartition("-")[2]))
    listeners = []
    for r in sorted(run.mocks.of_type(LISTENER), key=lambda r: r.inputs["port"]):
        forward = [a for a in r.inputs.get("defaultActions", []) if a.get("type") == "forward"]
        if forward:
            listeners.append(Listener(r.name, int(r.inputs["port"]), r.inputs["protocol"],
                                      groups[forward[0]["targetGroupArn"]]))
    return Declared(lb.name, lb.outputs.get("dnsName", lb.name), list(lb.inputs.get("securityGroups") or []),
                    listeners, list(groups.values()))


# ---------------------------------------------------------------- where everything listens
@dataclasses.dataclass
class Layout:
    privileged: bool
    lb: str
    """The load balancer's address."""
    app: tuple[str, int]
    """Where the application stand-in listens."""
    inside: str
    """A client inside clientCidrs."""
    outside: Optional[str]
    """A client outside clientCidrs (None: they admit every address)."""
    ports: dict[int, int]
    """Declared port -> the port used here (identity as root)."""
    extra: list[str]
    """Addresses to add to the namespace's loopback."""

    def port(self, port: int) -> int:
        return self.ports.setdefault(port, port if self.privileged else _free_port())


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _in_any(address: str, cidrs: list[str]) -> bool:
    ip = ipaddress.ip_address(address)
    return any(ip in ipaddress.ip_network(c, strict=False) for c in cidrs)


def vpc_cidr(run) -> str:
    """The VPC's range, where the load balancer's own address lies: the new VPC's cidrBlock, or the existing one's
    (as the mocks answer aws:ec2/getVpc)."""
    from harness.mocks import EXISTING_VPC_CIDR
    vpcs = run.mocks.of_type("awsx:ec2:Vpc")
    return vpcs[0].inputs.get("cidrBlock") if vpcs and vpcs[0].inputs.get("cidrBlock") else EXISTING_VPC_CIDR


def layout(run, net: int, privileged: bool, client_cidrs: list[str], upstream: str) -> Layout:
    if not privileged:
        return Layout(False, f"127.{net}.250.1", (f"127.{net}.250.2", _free_port()), "127.0.0.1", None, {}, [])
    vpc = ipaddress.ip_network(vpc_cidr(run))
    lb = str(vpc.network_address + vpc.num_addresses - 6)
    parts = urlsplit(upstream)
    try:  # the application at the address the program proxies to, so that the egress rules see it as declared
        app = (str(ipaddress.IPv4Address(parts.hostname)), parts.port or (443 if parts.scheme == "https" else 80))
    except ValueError:
        app = ("192.0.2.1", 8080)
    firsts = [str(next(iter(n.hosts()), n.network_address)) for n in map(ipaddress.ip_network, client_cidrs)]
    inside = next((a for a in [*OUTSIDE_CANDIDATES, *firsts] if _in_any(a, client_cidrs) and a not in (lb, app[0])),
                  None)
    outside = next((a for a in OUTSIDE_CANDIDATES if not _in_any(a, client_cidrs)), None)
    extra = [a for a in (lb, inside, outside, app[0]) if a and not a.startswith("127.")]
    return Layout(True, lb, app, inside or OUTSIDE_CANDIDATES[0], outside, {}, sorted(set(extra)))


# ---------------------------------------------------------------- the namespace
class Namespace:
    """A network namespace of the rehearsal's own, held by a `sleep` started with `unshare -n`; its processes start
    through `nsenter`, its sockets are made by a thread that joined it (setns is per thread)."""

    def __init__(self, addresses: list[str]):
        self.holder = subprocess.Popen(["unshare", "-n", "--", "sleep", "300"], stdin=subprocess.DEVNULL,
                                       preexec_fn=_die_with_parent)
        self.path = f"/proc/{self.holder.pid}/ns/net"
        deadline = time.monotonic() + 5
        while os.readlink(self.path) == os.readlink("/proc/self/ns/net"):
            if time.monotonic() > deadline:
                raise RuntimeError("unshare -n did not make a network namespace")
            time.sleep(0.01)
        self.run(["ip", "link", "set", "lo", "up"])
        for address in addresses:
            self.run(["ip", "addr", "add", f"{address}/32", "dev", "lo"])
        self.pool = ThreadPoolExecutor(max_workers=4, initializer=self._enter)

    def _enter(self) -> None:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        with open(self.path) as handle:
            if libc.setns(handle.fileno(), 0x40000000) != 0:  # CLONE_NEWNET
                raise OSError(ctypes.get_errno(), "setns failed")

    def argv(self, argv: list[str]) -> list[str]:
        return ["nsenter", f"--net={self.path}", "--", *argv]

    def run(self, argv: list[str], stdin: Optional[str] = None) -> subprocess.CompletedProcess:
        proc = subprocess.run(self.argv(argv), input=stdin, capture_output=True, text=True)
        if proc.returncode:
            raise RuntimeError(f"{' '.join(argv)}: {proc.stderr.strip()}")
        return proc

    def call(self, fn: Callable[[], Any]) -> Any:
        return self.pool.submit(fn).result()

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.holder.kill()
        self.holder.wait()


class HostNetwork:
    """Without root: the host's own network (the 127.N addresses are local already)."""

    def argv(self, argv: list[str]) -> list[str]:
        return argv

    def call(self, fn: Callable[[], Any]) -> Any:
        return fn()

    def close(self) -> None:
        pass


# ---------------------------------------------------------------- the application stand-in
class App:
    """Records what each request that reaches the application carries."""

    def __init__(self, address: tuple[str, int], network):
        self.seen: list[dict] = []
        seen = self.seen

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                seen.append({"path": self.path, "host": self.headers.get("Host"), "peer": self.client_address[0],
                             "x-real-ip": self.headers.get("X-Real-IP"),
                             "x-forwarded-for": self.headers.get("X-Forwarded-For"),
                             "x-forwarded-proto": self.headers.get("X-Forwarded-Proto")})
                body = b"application stand-in\n"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = network.call(lambda: http.server.ThreadingHTTPServer(address, Handler))
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------- NGINX stand-ins
LISTEN = re.compile(r"(?m)^(\s*listen\s+)(?:[0-9.]+:)?(\d+)(?=[\s;])")
PROXY_PASS = re.compile(r"(?m)^(\s*proxy_pass\s+)https?://[^/;\s]+")


def node_conf(text: str, address: str, layout_: Layout) -> str:
    """The node's NGINX file as this machine can run it: Wallarm directives set aside, every `listen` on the
    node's address, the application at its stand-in (the URI part of proxy_pass kept)."""
    text = without_wallarm(text)
    text = LISTEN.sub(lambda m: f"{m.group(1)}{address}:{layout_.port(int(m.group(2)))}", text)
    text = PROXY_PASS.sub(lambda m: f"{m.group(1)}http://{layout_.app[0]}:{layout_.app[1]}", text)
    return re.sub(r"(?m)^(\s*)(proxy_ssl_\w+\b[^\n]*)$", r"\1# the stand-in application speaks HTTP: \2", text)


def _die_with_parent() -> None:
    """Run in the child before exec: it gets SIGTERM when the rehearsal dies (prctl PR_SET_PDEATHSIG), so that no
    stand-in outlives a killed rehearsal."""
    import ctypes
    import signal
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)


def start_nginx(node: str, text: str, address: str, workdir: Path, network) -> subprocess.Popen:
    d = workdir / f"nginx-{node}"
    d.mkdir(parents=True)
    (d / "fragment.conf").write_text(text)
    # proxy_bind: the node has one address, as in EC2; the application (and the firewall) see it as the source.
    (d / "nginx.conf").write_text(
        f"daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{}}\n"
        f"http {{\n    access_log off;\n    proxy_bind {address};\n    include {d}/fragment.conf;\n}}\n")
    return subprocess.Popen(network.argv([nginx_binary(), "-p", str(d), "-c", str(d / "nginx.conf")]),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            preexec_fn=_die_with_parent)


# ---------------------------------------------------------------- HAProxy
def _expect(matcher: str) -> str:
    """A target group's matcher ("200", "200,202", "200-399") as HAProxy's http-check expect."""
    codes = []
    for part in str(matcher or "200").split(","):
        low, _, high = part.strip().partition("-")
        codes += [str(c) for c in range(int(low), int(high or low) + 1)]
    return f"status {codes[0]}" if len(codes) == 1 else "rstatus ^(" + "|".join(codes) + ")$"


def _ms(seconds: float) -> int:
    return max(50, int(seconds * 1000 / SCALE))


def haproxy_config(lb: Declared, lay: Layout, cert: Path, stats: Path) -> str:
    lines = ["global", f"    stats socket {stats} mode 600 level admin", "    maxconn 512", "",
             "defaults", "    mode tcp", "    timeout connect 1s", "    timeout client 10s", "    timeout server 10s",
             "    retries 1", ""]
    for listener in lb.listeners:
        tls = f" ssl crt {cert}" if listener.protocol == "TLS" else ""
        lines += [f"frontend {listener.name}", f"    bind {lay.lb}:{lay.port(listener.port)}{tls}",
                  f"    default_backend {listener.group.name}", ""]
    for group in lb.groups:
        h = group.health
        interval, timeout = float(h.get("interval", 30)), float(h.get("timeout") or 6)
        lines += [f"backend {group.name}", "    balance roundrobin"]
        protocol = str(h.get("protocol", "TCP")).upper()
        if protocol in ("HTTP", "HTTPS"):
            lines += ["    option httpchk",
                      f"    http-check send meth GET uri {h.get('path', '/')} ver HTTP/1.1 hdr Host {lay.lb}",
                      f"    http-check expect {_expect(h.get('matcher', '200'))}"]
        lines.append(f"    timeout check {_ms(timeout)}")
        if group.preserve_client_ip and lay.privileged:
            # Health checks from the load balancer's own address, traffic from the client's.
            lines.append(f"    source {lay.lb} usesrc clientip")
        else:
            lines.append(f"    source {lay.lb}")
        for t in group.targets:
            extra = " send-proxy-v2 check-send-proxy" if group.proxy_protocol else ""
            extra += " check-ssl verify none" if protocol == "HTTPS" else ""
            lines.append(f"    server {t.node} {t.address}:{lay.port(t.port)} check port "
                         f"{lay.port(group.health_port(t))} inter {_ms(interval)} "
                         f"rise {int(h.get('healthyThreshold', 5))} fall {int(h.get('unhealthyThreshold', 2))}{extra}")
        lines.append("")
    return "\n".join(lines)


def haproxy_binary() -> str:
    """Debian's haproxy: on PATH, or in /usr/sbin (not on an ordinary user's PATH)."""
    found = shutil.which("haproxy") or ("/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy") else None)
    if found is None:
        raise FileNotFoundError("haproxy is not installed (Debian: apt-get install haproxy)")
    return found


def throwaway_certificate(address: str, dns_name: str, path: Path) -> bytes:
    """A self-signed certificate for the TLS listener (made now, deleted with the run); returns it in PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rehearsal load balancer")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(address)),
                                                        x509.DNSName(dns_name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM)
    path.write_bytes(pem + key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()))
    path.chmod(0o600)
    return pem


def haproxy_stat(stats: Path, network) -> list[dict]:
    def ask():
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(2)
            s.connect(str(stats))
            s.sendall(b"show stat\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        return data.decode()
    text = ask().lstrip("# ")
    return [row for row in csv.DictReader(text.splitlines()) if row.get("svname") not in ("FRONTEND", "BACKEND")]


# ---------------------------------------------------------------- the firewall
def nft_ruleset(run, lb: Declared, lay: Layout) -> tuple[str, list[str]]:
    """The security groups' rules on the rehearsal's addresses as an nftables ruleset; also which groups were
    enforced. Members: the instances in a group (by vpcSecurityGroupIds), the load balancer's address when its
    securityGroups name the group. A rule that references the load balancer's group also admits the clients: AWS
    evaluates traffic forwarded with client IP preservation against the load balancer's group
    (load-balancer-security-groups.md), and the rehearsal's clients reach the nodes only through it."""
    members: dict[str, set[str]] = {}
    names = {r.id: r.name for r in run.mocks.of_type(SG)}
    for r in run.mocks.of_type(INSTANCE):
        for sg in r.inputs.get("vpcSecurityGroupIds") or []:
            members.setdefault(sg, set()).add(r.outputs["privateIp"])
    for sg in lb.security_groups:
        members.setdefault(sg, set()).add(lay.lb)
    clients = {a for a in (lay.inside, lay.outside) if a}
    sources = {sg: set(m) | (clients if sg in lb.security_groups else set()) for sg, m in members.items()}
    running = {t.address for g in lb.groups for t in g.targets} | {lay.lb}

    def peer(rule: dict) -> Optional[str]:
        if rule.get("cidrIpv4"):
            return rule["cidrIpv4"]
        ref = sources.get(rule.get("referencedSecurityGroupId", ""))
        return "{ " + ", ".join(sorted(ref)) + " }" if ref else None

    def match(rule: dict) -> str:
        proto = str(rule.get("ipProtocol", "-1"))
        if proto in ("-1", "all"):
            return ""
        low, high = int(rule.get("fromPort", 0)), int(rule.get("toPort", 0))
        return f"{proto} dport {low if low == high else f'{low}-{high}'} "

    chains: dict[str, list[str]] = {"input": [], "output": []}
    enforced: list[str] = []
    for kind, chain, own, other in ((INGRESS, "input", "daddr", "saddr"), (EGRESS, "output", "saddr", "daddr")):
        guarded = set()
        for sg, addresses in sorted(members.items()):
            here = sorted(addresses & running)
            if not here:
                continue
            rules = [r.inputs for r in run.mocks.of_type(kind) if r.inputs.get("securityGroupId") == sg]
            guarded |= set(here)
            enforced.append(f"{names.get(sg, sg)} {'ingress' if chain == 'input' else 'egress'} ({len(rules)} rules)")
            own_set = "{ " + ", ".join(here) + " }"
            for rule in rules:
                p = peer(rule)
                if p:
                    chains[chain].append(f"ip {own} {own_set} ip {other} {p} {match(rule)}accept")
        if guarded:
            chains[chain].append(f"ip {own} {{ {', '.join(sorted(guarded))} }} drop")
    text = "table inet rehearsal {\n"
    for chain, rules in chains.items():
        text += (f"  chain {chain} {{\n    type filter hook {chain} priority 0; policy accept;\n"
                 "    ct state established,related accept\n" + "".join(f"    {r}\n" for r in rules) + "  }\n")
    return text + "}\n", enforced


# ---------------------------------------------------------------- requests through the load balancer
@dataclasses.dataclass
class Sent:
    listener: Listener
    client: str
    path: str
    answer: str = ""
    status: Optional[int] = None
    seen: Optional[dict] = None


def send(lay: Layout, lb: Declared, listener: Listener, client: str, path: str, ca: Optional[bytes],
         timeout: float = CLIENT_TIMEOUT) -> Sent:
    sent = Sent(listener, client, path)
    port = lay.port(listener.port)
    source = (client, 0) if lay.privileged else None
    conn: http.client.HTTPConnection
    try:
        if listener.protocol == "TLS":
            context = ssl.create_default_context(cadata=ca.decode() if ca is not None else None)
            conn = http.client.HTTPSConnection(lay.lb, port, timeout=timeout, source_address=source,
                                               context=context)
        else:
            conn = http.client.HTTPConnection(lay.lb, port, timeout=timeout, source_address=source)
        conn.request("GET", path, headers={"Host": lb.dns_name})
        response = conn.getresponse()
        response.read()
        sent.status = response.status
        sent.answer = f"{response.status} {response.reason}"
        conn.close()
    except (OSError, http.client.HTTPException) as exc:
        sent.answer = f"no answer ({type(exc).__name__}: {exc or 'closed'})"
    return sent


# ---------------------------------------------------------------- the whole pass
def _wait_listening(network, addresses: list[tuple[str, int]], procs: list[subprocess.Popen], seconds: float) -> bool:
    def probe(a):
        try:
            with socket.create_connection(a, timeout=0.2):
                return True
        except OSError:
            return False
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            return False
        if all(network.call(lambda a=a: probe(a)) for a in addresses):
            return True
        time.sleep(0.05)
    return False


def _reason(row: dict) -> str:
    status = row.get("check_status", "").lstrip("* ")
    code, desc = row.get("check_code", ""), row.get("check_desc", "")
    if status.startswith("L7") and code:
        return f"answered HTTP {code}" + (f" ({desc})" if desc else "")
    return f"{status or 'no check'}" + (f": {desc}" if desc else "")


class Traffic:
    """Runs the load balancer stand-in for one rehearsal and reports on `host` rows of the report."""

    def __init__(self, run, sandboxes: dict, nodes: list[str], report, net: int, privileged: bool):
        self.run, self.sandboxes, self.nodes, self.report = run, sandboxes, nodes, report
        self.net, self.privileged = net, privileged
        self.procs: list[subprocess.Popen] = []
        self.cleanup: list[Callable[[], None]] = []

    def fail(self, text: str) -> None:
        self.report.fail(self.host, "check", text)

    def go(self) -> None:
        lb = declared(self.run)
        if lb is None:
            return
        self.host = f"load balancer {lb.name} (HAProxy stand-in)"
        settings = self.run.namespace.get("s")
        client_cidrs, upstream = list(settings.client_cidrs), settings.protected_upstream
        lay = layout(self.run, self.net, self.privileged, client_cidrs, upstream)
        workdir = Path(tempfile.mkdtemp(prefix="wallarm-lb-"))
        self.cleanup.append(lambda: shutil.rmtree(workdir, ignore_errors=True))
        started = time.monotonic()
        try:
            self._go(lb, lay, workdir, client_cidrs, upstream)
        finally:
            self.report.row(self.host, "time", f"{time.monotonic() - started:.1f} s for the load balancer's checks")
            for proc in reversed(self.procs):
                proc.terminate()
            for proc in self.procs:
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
            for step in reversed(self.cleanup):
                step()

    def _go(self, lb: Declared, lay: Layout, workdir: Path, client_cidrs: list[str], upstream: str) -> None:
        r = self.report
        r.row(self.host, "address", f"{lay.lb} (" + ", ".join(f"{l.protocol}/{l.port} -> {l.group.name}"
                                                             for l in lb.listeners) + ")")
        network: Namespace | HostNetwork
        if self.privileged:
            network = Namespace(lay.extra)
            r.row(self.host, "network", "a namespace of the rehearsal's own (unshare -n); client addresses kept "
                  f"(usesrc clientip); client inside clientCidrs {lay.inside}, outside "
                  + (lay.outside or "none (clientCidrs admit every address)"))
        else:
            network = HostNetwork()
            r.row(self.host, "network", "NOT ROOT: client addresses and the firewall were not exercised (no "
                  "namespace, no usesrc clientip, no nftables); ports below 1024 on free ports: "
                  + ", ".join(f"{p}->{lay.port(p)}" for p in sorted({l.port for l in lb.listeners})))
        self.cleanup.append(network.close)
        app = App(lay.app, network)
        self.cleanup.append(app.close)
        targets = {t.node: t for g in lb.groups for t in g.targets}
        listening, procs = [], []
        for node in self.nodes:
            if node not in targets:
                continue
            address = targets[node].address
            try:
                text = node_conf(self.sandboxes[node].path(render.NGINX_CONF).read_text(), address, lay)
            except (OSError, UnicodeDecodeError) as exc:  # named in the node's table; its targets stay unhealthy
                self.report.row(self.host, "nginx", f"no NGINX stand-in for {node}: {type(exc).__name__}")
                continue
            procs.append(start_nginx(node, text, address, workdir, network))
            listening += [(address, int(m.group(1))) for m in re.finditer(rf"listen\s+{re.escape(address)}:(\d+)",
                                                                           text)]
        self.procs += procs
        if not _wait_listening(network, listening, procs, 10):
            errors = [p.communicate()[1].decode().strip() for p in procs if p.poll() is not None]
            self.fail(f"the NGINX stand-ins did not start: {'; '.join(errors) or 'not listening after 10 s'}")
            return
        cert = workdir / "lb.pem"
        ca = throwaway_certificate(lay.lb, lb.dns_name, cert)
        self.cleanup.append(lambda: cert.unlink(missing_ok=True))
        stats = workdir / "haproxy.sock"
        (workdir / "haproxy.cfg").write_text(haproxy_config(lb, lay, cert, stats))
        haproxy = subprocess.Popen(network.argv([haproxy_binary(), "-db", "-f", str(workdir / "haproxy.cfg")]),
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                   preexec_fn=_die_with_parent)
        self.procs.append(haproxy)
        if not _wait_listening(network, [(lay.lb, lay.port(l.port)) for l in lb.listeners], [haproxy], 10):
            exited = haproxy.poll() is not None
            reason = haproxy.communicate()[1].decode().strip() if exited else "not listening"
            self.fail(f"HAProxy did not start: {reason}")
            return
        # Privileged (a Namespace); once everything listens (the readiness probes come from addresses it would refuse).
        if isinstance(network, Namespace):
            ruleset, enforced = nft_ruleset(self.run, lb, lay)
            (workdir / "rules.nft").write_text(ruleset)
            network.run(["nft", "-f", str(workdir / "rules.nft")])
            r.row(self.host, "firewall", "nftables in the namespace: " + "; ".join(enforced))
        healthy = self._health(lb, stats, network)
        self._traffic(lb, lay, network, app, ca, upstream, healthy)

    def _health(self, lb: Declared, stats: Path, network) -> set[str]:
        """Waits as long as the load balancer needs to judge every target; returns the healthy target groups."""
        def wait_ms(g):
            h = g.health
            return _ms(float(h.get("interval", 30))) * (max(int(h.get("healthyThreshold", 5)),
                                                            int(h.get("unhealthyThreshold", 2))) + 1)
        time.sleep(max(wait_ms(g) for g in lb.groups) / 1000)
        rows = {(row["pxname"], row["svname"]): row for row in haproxy_stat(stats, network)}
        healthy = set()
        for g in lb.groups:
            h = g.health
            how = (f"{h.get('protocol', 'TCP')} GET {h.get('path', '/')} on port {h.get('port', 'traffic-port')}"
                   if str(h.get("protocol", "TCP")).upper().startswith("HTTP") else
                   f"TCP on port {h.get('port', 'traffic-port')}")
            how += ", with the PROXY v2 header" if g.proxy_protocol else ""
            interval = float(h.get("interval", 30))
            bad = []
            for t in g.targets:
                row = rows.get((g.name, t.node), {})
                if row.get("status") != "UP":
                    bad.append(f"{t.node} ({t.address}:{t.port}) is unhealthy: health check {how} {_reason(row)}")
            for line in bad:
                self.fail(f"target group {g.name}: {line}")
            if len(bad) < len(g.targets):
                healthy.add(g.name)
                up = len(g.targets) - len(bad)
                self.report.row(self.host, "health", f"{g.name}: {up}/{len(g.targets)} healthy "
                                f"({how}; every {interval:g} s in AWS, {_ms(interval)} ms here: scaled down "
                                f"{SCALE}x)")
        return healthy

    def _traffic(self, lb: Declared, lay: Layout, network, app: App, ca: bytes, upstream: str,
                 healthy: set[str]) -> None:
        base = urlsplit(upstream).path.rstrip("/")
        nodes = {t.address: t.node for g in lb.groups for t in g.targets}
        rows = []
        for listener in lb.listeners:
            if listener.group.name not in healthy:  # judged above; one request shows that nothing goes through
                sent = network.call(lambda: send(lay, lb, listener, lay.inside, "/rehearsal/unhealthy", ca))
                rows.append((listener, "-", "-", "-", f"FAILED: no healthy target in {listener.group.name}: "
                             f"{sent.answer}"))
                continue
            n = max(2, len(listener.group.targets))
            paths = [f"/rehearsal/{listener.name}/{i}?q={i}" for i in range(n)] + [ATTACK_PATH]
            for path in paths:
                before = len(app.seen)
                sent = network.call(lambda: send(lay, lb, listener, lay.inside, path, ca))
                time.sleep(0.01)
                arrived = app.seen[before:]
                seen = next((s for s in arrived if s["path"] == base + path), arrived[0] if arrived else None)
                rows.append(self._judge(listener, sent, seen, base, lb, lay, nodes, healthy))
            if lay.outside:
                before = len(app.seen)
                sent = network.call(lambda: send(lay, lb, listener, lay.outside, "/rehearsal/outside", ca,
                                                         timeout=OUTSIDE_TIMEOUT))
                reached = [s for s in app.seen[before:] if lay.outside in (s["x-real-ip"], s["peer"])]
                result = (f"FAILED: a client outside clientCidrs ({lay.outside}) reached the application" if reached
                          else f"ok: refused ({sent.answer})")
                if reached:
                    self.fail(f"listener {listener.name}: a client outside clientCidrs ({lay.outside}) reached the "
                              f"application through {nodes.get(reached[0]['peer'], reached[0]['peer'])}")
                rows.append((listener, nodes.get(reached[0]["peer"], "-") if reached else "-", "/rehearsal/outside",
                             lay.outside, result))
        self.report.row(self.host, "traffic", f"{'listener':<18} {'target':<13} {'path seen':<34} "
                        f"{'client seen':<16} result")
        for listener, target, path, client, result in rows:
            self.report.row(self.host, "traffic", f"{listener.protocol + '/' + str(listener.port):<18} {target:<13} "
                            f"{path:<34} {client:<16} {result}")

    def _judge(self, listener, sent: Sent, seen, base, lb, lay, nodes, healthy):
        where = f"listener {listener.name} ({listener.protocol}/{listener.port})"
        if seen is None:
            why = (f"target group {listener.group.name} has no healthy target" if listener.group.name not in healthy
                   else "it never reached the application")
            self.fail(f"{where}: GET {sent.path} got {sent.answer}: {why}")
            return listener, "-", "-", "-", f"FAILED: {sent.answer}"
        target = nodes.get(seen["peer"], seen["peer"])
        client = seen["x-real-ip"] or "-"
        problems = []
        if seen["path"] != base + sent.path:
            problems.append(f"the application got path {seen['path']!r} for {base + sent.path!r}")
        if seen["host"] != lb.dns_name:
            problems.append(f"Host {seen['host']!r} instead of {lb.dns_name!r}")
        if self.privileged and client != lay.inside:
            problems.append(f"client address {client} instead of the client's {lay.inside}")
        proto = "https" if listener.protocol == "TLS" else "http"
        if seen["x-forwarded-proto"] != proto:
            problems.append(f"X-Forwarded-Proto {seen['x-forwarded-proto']!r} instead of {proto!r}")
        if sent.status != 200:
            problems.append(f"the client got {sent.answer}")
        for p in problems:
            self.fail(f"{where}: GET {sent.path} via {target}: {p}")
        what = "test attack " if sent.path == ATTACK_PATH else ""
        result = ("FAILED: " + "; ".join(problems)) if problems else (
            f"ok: {what}{sent.answer}, Host kept, X-Forwarded-Proto {proto}"
            + ("" if self.privileged else " (client address not exercised)"))
        return listener, target, seen["path"], client, result
