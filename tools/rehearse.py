"""Loopback rehearsal: see exactly what every host of a stack will get, and that it connects, before `pulumi up`.

    venv/bin/python -m tools.rehearse --stack dev [--set postanalyticsCount=2 ...] [--keep DIR]

1. Runs the program under the project's mocks with the stack's settings (Pulumi.<stack>.yaml), the mocked
   nodes on 127.N.x.y addresses (N random per run, so that two rehearsals never collide).
2. Applies every host's steps (the exact command text and stdin the program declares) into its own sandbox.
3. Starts a TLS stand-in for each wstore from its rendered wstore.yaml: the TLS address, certificate and key,
   and the client CA when mutual TLS is on (plain TCP when TLS is off).
4. For every filtering node, reads the rendered NGINX file with crossplane and `nginx -t` (Wallarm directives set
   aside), and connects to every `server` of the wallarm_wstore upstream with the CA, certificate and key files
   that the NGINX file names, verifying the server certificate against the address it connects to.
5. Runs each node's health check against a status service that reports the failed connections as tnt_errors.
6. Scrapes stand-ins of Wallarm's metrics endpoints with the targets of each node's rendered CloudWatch agent
   configuration (harness/scrape.py) and lists what it got.
7. Puts a load balancer stand-in (HAProxy, harness/lbstandin.py) generated from the declared listeners, target groups
   and attachments in front of real NGINX servers run from each node's NGINX file, with health checks as AWS sends
   them (intervals scaled down, the factor printed), and sends requests and the test attack through every listener
   to an application stand-in that records what arrives. As root, in a network namespace of its own: client
   addresses kept, and the security groups enforced with nftables (a client outside clientCidrs must be refused).
Prints one table per host (address, steps, files changed and removed, listener or NGINX check, upstream
connections, health check, result), one for the load balancer (health per target group, firewall, and what went
through it: listener, target, path seen, client address seen, result), the warnings again, and a verdict; exits 1
when anything failed. The sandboxes are kept, and named, with --keep or after a failure. No cloud, no Pulumi CLI,
nothing leaves this machine (the load balancer's traffic stays on loopback, in its own namespace as root).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import random
import socket
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Optional

import yaml

from components import render
from harness.lbstandin import Traffic
from harness.mocks import ProviderMocks
from harness.nginxconf import STAND_IN_ADDRESS, nginx_test, parse_text, resolved_on_node
from harness.program import Run, StackFileError, run_program, stack_config
from harness.sandbox import Sandbox, replay
from harness.scrape import check_hosts as scrape_metrics
from harness.tlsprobe import StandIn, connect, connect_plain, diagnose

PARALLEL_HOSTS = 8
SENTINEL_PORT = 64999
Tamper = Callable[[dict[str, Sandbox], Run], None]
"""Changes what the hosts got before they are checked (tests of the rehearsal's own failures)."""


@dataclasses.dataclass
class Report:
    ok: bool = True
    lines: list[str] = dataclasses.field(default_factory=list)
    """The rendered report (render() fills it)."""
    failures: list[str] = dataclasses.field(default_factory=list)
    """One line per failure, "<host>: <what failed>"."""
    warnings: list[str] = dataclasses.field(default_factory=list)
    connections: int = 0
    wstore: dict[str, str] = dataclasses.field(default_factory=dict)
    """host:port of each postanalytics server's stand-in (where the filtering nodes connect)."""
    header: list[str] = dataclasses.field(default_factory=list)
    hosts: dict[str, list[tuple[str, str]]] = dataclasses.field(default_factory=dict)
    """host -> its table rows (label, text), in the order the checks ran."""

    def __post_init__(self) -> None:
        self._lock = threading.Lock()  # hosts are checked side by side

    def count_connection(self) -> None:
        with self._lock:
            self.connections += 1

    def row(self, host: str, label: str, text: str) -> None:
        self.hosts.setdefault(host, []).append((label, text))

    def fail(self, host: str, label: str, text: str) -> None:
        self.ok = False
        self.failures.append(f"{host}: {text}")
        self.row(host, label, f"FAILED: {text}")

    def warn(self, text: str) -> None:
        if text not in self.warnings:
            self.warnings.append(text)

    def render(self, footer: str) -> None:
        """One table per host, then the warnings again, then the verdict."""
        lines = list(self.header)
        for host, rows in self.hosts.items():
            verdict = "FAILED" if any(t.startswith("FAILED") for _, t in rows) else "ok"
            lines += ["", host] + [f"  {label:<9} {text}" for label, text in rows] + [f"  {'result':<9} {verdict}"]
        lines.append("")
        lines += [f"Warning: {w}" for w in self.warnings]
        lines.append(footer)
        self.lines = lines


def _hosts(run, role: str) -> list[str]:
    # Instance names carry a generation (filtering-0-1a2b3c4d); the node's name is its Node tag.
    nodes = [r.inputs["tags"]["Node"] for r in run.mocks.of_type("aws:ec2/instance:Instance")
             if r.inputs["tags"]["Role"] == role]
    return sorted(nodes, key=lambda n: int(n.rpartition("-")[2]))  # registrations arrive in any order


def _split(address: str) -> tuple[str, int]:
    host, port = address.rsplit(":", 1)
    return host, int(port)


def _apply(run, host: str, sandbox: Sandbox, report: Report) -> bool:
    results = replay(run.mocks, host, sandbox, steps=("wait", "install", "configure"))
    summary = ", ".join(f"{r.step} {'ok' if r.returncode == 0 else f'exit {r.returncode}'}" for r in results)
    report.row(host, "steps", summary or "none ran")
    if not results or results[-1].returncode != 0:
        last = results[-1] if results else None
        report.fail(host, "steps", f"{last.step if last else 'no step'} failed: "
                    f"{(last.stderr.strip().splitlines() or ['?'])[-1] if last else ''}")
        return False
    changed = json.loads(results[-1].stdout)["changed"]
    absent = set(json.loads(run.mocks.named(f"{host}-configure").inputs["stdin"]).get("absent", []))
    report.row(host, "changed", ", ".join(p for p in changed if p not in absent) or "none")
    report.row(host, "removed", ", ".join(p for p in changed if p in absent) or "none")
    return True


def _shown(sandbox: Sandbox) -> Callable[[str], str]:
    """A sandbox path as the host path it stands for (/opt/..., /etc/...)."""
    root = str(sandbox.root)
    return lambda path: path[len(root):] if path.startswith(root) else path


def _start_wstore(host: str, sandbox: Sandbox, report: Report) -> Optional[StandIn]:
    try:
        service = yaml.safe_load(sandbox.path(render.WSTORE_YAML).read_text())["service"]
        tls = service.get("TLS") or {}
        if tls.get("enabled"):
            mutual = (tls.get("mutualTLS") or {}).get("enabled")
            address = tls["address"]
            cert, key = str(sandbox.path(tls["certFile"])), str(sandbox.path(tls["keyFile"]))
            ca = str(sandbox.path(tls["caCertFile"])) if tls.get("caCertFile") else None
            client_ca = str(sandbox.path(tls["mutualTLS"]["clientCACertFile"])) if mutual else None
            kind = "TLS, client certificates required" if mutual else "TLS"
        else:
            address, cert, key, ca, client_ca, kind = service["address"], None, None, None, None, "plain TCP"
    except FileNotFoundError:
        report.fail(host, "listener", f"{render.WSTORE_YAML} is missing")
        return None
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError) as exc:
        report.fail(host, "listener", f"{render.WSTORE_YAML} does not say where and how wstore listens "
                    f"({type(exc).__name__}: {' '.join(str(exc).split())})")
        return None
    report.row(host, "listener", f"{address} ({kind}); plain listener {service['address']}"
               + (" (loopback only)" if tls.get("enabled") and service["address"].startswith("127.0.0.1:") else ""))
    if tls.get("enabled") and not service["address"].startswith("127.0.0.1:"):
        report.fail(host, "listener", f"the plain listener {service['address']} is not on loopback while TLS is on")
    if cert:
        problems = diagnose("server", cert, key, ca, show=_shown(sandbox))
        if client_ca:
            problems += [p for p in diagnose("server", ca=client_ca, show=_shown(sandbox)) if p not in problems]
        for problem in problems:
            report.fail(host, "files", problem)
        if problems:
            return None
    try:
        h, p = _split(address)
        return StandIn(h, p, cert, key, client_ca)
    except (OSError, ValueError) as exc:
        report.fail(host, "listener", f"cannot start the wstore stand-in on {address}: {exc}")
        return None


def _check_filtering(host: str, sandbox: Sandbox, wstore: dict[str, str], stand_ins: dict[str, StandIn],
                     report: Report) -> int:
    """Checks one node's NGINX file and TLS files, and connects to each upstream server; returns the failed
    connections."""
    try:
        text = sandbox.path(render.NGINX_CONF).read_text()
        top = parse_text(text)
    except FileNotFoundError:
        report.fail(host, "nginx", f"cannot read {render.NGINX_CONF}: it is missing")
        return 1
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        report.fail(host, "nginx", f"cannot read {render.NGINX_CONF}: {' '.join(str(exc).split())}")
        return 1
    ok, err = nginx_test(text)
    names = resolved_on_node(text)
    aside = "Wallarm directives set aside"
    if names:
        report.warn(f"{', '.join(names)} (protectedUpstream) is a host name the node resolves, not this machine: "
                    f"nginx -t used {STAND_IN_ADDRESS} in its place")
    if ok:
        report.row(host, "nginx", f"crossplane parse ok; nginx -t ok ({aside})")
    else:
        report.fail(host, "nginx", f"nginx -t failed: {err}")
    directives = {d["directive"]: d["args"] for d in top if d["directive"].startswith("wallarm_")}
    upstream = next((d for d in top if d["directive"] == "upstream" and d["args"] == [render.WSTORE_UPSTREAM]), None)
    if upstream is None:
        report.fail(host, "upstream", f"no upstream {render.WSTORE_UPSTREAM} in {render.NGINX_CONF}")
        return 1
    servers = [d["args"][0] for d in upstream["block"] if d["directive"] == "server"]
    ssl_on = "ssl=on" in directives.get("wallarm_wstore_upstream", [])
    files = {k: str(sandbox.path(v[0])) for k, v in directives.items() if k.startswith("wallarm_wstore_ssl_")}
    if ssl_on:
        ca, cert, key = (files.get(f"wallarm_wstore_ssl_{k}_file") for k in ("ca_cert", "cert", "key"))
        for problem in diagnose("client", cert, key, ca or "", show=_shown(sandbox)):
            report.fail(host, "files", problem)
    failed = 0
    for name, address in wstore.items():
        if address not in servers:
            report.fail(host, "upstream", f"upstream lacks {name} ({address})")
            failed += 1
    for server in servers:
        h, p = _split(server)
        stand_in = stand_ins.get(server)
        refused_before = len(stand_in.refused) if stand_in else 0
        if ssl_on:
            result = connect(h, p, files.get("wallarm_wstore_ssl_ca_cert_file", ""),
                             files.get("wallarm_wstore_ssl_cert_file"), files.get("wallarm_wstore_ssl_key_file"))
        else:
            result = connect_plain(h, p)
        report.count_connection()
        presented = ", client certificate presented" if files.get("wallarm_wstore_ssl_cert_file") else ""
        if result.ok:
            report.row(host, "upstream", f"{server} ok: {result.detail}{presented}")
        else:
            time.sleep(0.05)  # the stand-in notes its side of a refused handshake a moment later
            why = stand_in.refused[refused_before:] if stand_in else []
            note = f"; wstore refused it: {why[-1]}" if why else (
                "" if stand_in else " (no wstore stand-in runs there: see that server's lines above)")
            report.fail(host, "upstream", f"upstream {server}: {result.detail}{note}")
            failed += 1
    return failed


def _guarded(host: str, report: Report, check: Callable[[], Any]) -> Any:
    """Runs one host's check; whatever a broken file makes it raise becomes a report line, never a traceback."""
    try:
        return check()
    except Exception as exc:  # noqa: BLE001 - the rehearsal reports, it does not crash
        report.fail(host, "check", f"the rehearsal could not check this host: {type(exc).__name__}: {exc}")
        return None


def _topology(run, pa_hosts: list[str], f_hosts: list[str]) -> str:
    """The declared topology in one line: entry point, fleets, management path."""
    listeners = ", ".join(f"{r.inputs['protocol']}/{int(r.inputs['port'])}" for r in
                          sorted(run.mocks.of_type("aws:lb/listener:Listener"), key=lambda r: r.inputs["port"]))
    lbs = [r.name for r in run.mocks.of_type("aws:lb/loadBalancer:LoadBalancer")]
    entry = f"clients -> load balancer {', '.join(lbs)} ({listeners}) -> " if lbs else "clients -> "
    jump = run.exports.get("jumpHostPublicIp")
    manage = (f"operators and pulumi -> jump host {jump} -> every node (ssh -J, see the sshCommands output)" if jump
              else "operators and pulumi -> every node's private IP directly (jumpHost false)")
    return (f"Topology: {entry}filtering nodes ({len(f_hosts)}) -> postanalytics servers ({len(pa_hosts)}, wstore); "
            f"{manage}")


def reserve_loopback_network() -> tuple[int, socket.socket]:
    """A 127.N.0.0/16 network no other rehearsal on this machine uses: held by binding a sentinel address of it
    for as long as the returned socket stays open."""
    rng = random.SystemRandom()
    for _ in range(100):
        net = rng.randint(1, 254)
        sentinel = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sentinel.bind((f"127.{net}.255.254", SENTINEL_PORT))
            return net, sentinel
        except OSError:
            sentinel.close()
    raise RuntimeError("no free 127.N.0.0/16 network for the rehearsal: too many rehearsals at once")


def rehearse(stack: str = "dev", overrides: Optional[dict] = None, workdir: Optional[Path] = None,
             tamper: Optional[Tamper] = None, privileged: Optional[bool] = None) -> Report:
    """privileged: run the load balancer stand-in in a namespace with client addresses kept and the firewall
    enforced (needs root; the default when running as root)."""
    net, sentinel = reserve_loopback_network()
    try:
        return _rehearse(stack, overrides, workdir, tamper, net,
                         os.geteuid() == 0 if privileged is None else privileged)
    finally:
        sentinel.close()


def _rehearse(stack: str, overrides: Optional[dict], workdir: Optional[Path], tamper: Optional[Tamper],
              net: int, privileged: bool) -> Report:
    report, started = Report(), time.monotonic()
    # A stack given by path (examples/prod, examples/Pulumi.prod.yaml) is stack "prod", as `pulumi stack init prod`
    # makes it.
    name = Path(stack).name.removeprefix("Pulumi.").removesuffix(".yaml")
    try:
        config = stack_config(stack, **(overrides or {}))
    except (FileNotFoundError, StackFileError) as exc:
        report.ok = False
        report.failures.append(str(exc))
        report.header = [f"Loopback rehearsal of stack {stack}: {exc}"]
        report.render("Result: FAILED: the stack file cannot be read")
        return report
    run = run_program(config, stack=name, mocks=ProviderMocks(loopback=True, loopback_net=net))
    if run.error is not None:
        report.ok = False
        report.failures += [f"the program stops: {line}" for line in str(run.error).splitlines()]
        report.header = [f"Loopback rehearsal of stack {stack}: the program stops before declaring anything:"]
        report.header += [f"  {line}" for line in str(run.error).splitlines()]
        report.render(f"Result: FAILED: {len(report.failures)} wrong settings")
        return report
    for warning in run.warnings:
        report.warn(warning)
    base = Path(workdir or tempfile.mkdtemp(prefix="wallarm-rehearsal-"))
    pa_hosts, f_hosts = _hosts(run, "postanalytics"), _hosts(run, "filtering")
    user = run.mocks.of_type("command:remote:Command")[0].inputs["connection"]["user"]
    sandboxes = {h: Sandbox(base / h, user=user) for h in pa_hosts + f_hosts}
    tls_on = bool(run.exports.get("caCertificate"))
    mutual = tls_on and any(r.name.endswith("-client-cert") for r in run.mocks.resources)
    report.header = [f"Loopback rehearsal of stack {stack}: {len(pa_hosts)} postanalytics, {len(f_hosts)} filtering, "
                     f"TLS {'on' if tls_on else 'off'}, mutual TLS {'on' if mutual else 'off'}",
                     _topology(run, pa_hosts, f_hosts)]
    report.header += [f"Assumed offline: {note}" for note in run.mocks.assumed]
    addresses = {r.inputs["tags"]["Node"]: r.outputs["privateIp"] for r in run.mocks.of_type("aws:ec2/instance:Instance")}
    for host in pa_hosts + f_hosts:  # the tables' order, before the hosts run at once
        report.row(host, "address", addresses[host])
    # Each host is its own sandbox and its steps are subprocesses: the hosts run side by side, as in the cloud.
    with ThreadPoolExecutor(max_workers=PARALLEL_HOSTS) as pool:
        applied = dict(zip(pa_hosts + f_hosts, pool.map(
            lambda h: _guarded(h, report, lambda: _apply(run, h, sandboxes[h], report)), pa_hosts + f_hosts)))
    if tamper:
        tamper(sandboxes, run)
    stand_ins: dict[str, StandIn] = {}
    wstore = report.wstore
    try:
        for host in pa_hosts:
            if not applied[host]:
                continue
            stand_in = _guarded(host, report, lambda: _start_wstore(host, sandboxes[host], report))
            if stand_in:
                wstore[host] = f"{stand_in.address[0]}:{stand_in.address[1]}"
                stand_ins[wstore[host]] = stand_in
        def check(host: str) -> None:
            failed = _guarded(host, report, lambda: _check_filtering(host, sandboxes[host], wstore, stand_ins,
                                                                     report))
            # Each failed connection is a failed wstore write of the test attack, as NGINX would count it.
            [health] = replay(run.mocks, host, sandboxes[host], steps=("health",), upload=False,
                              STUB_TNT_ERRORS_PER_ATTACK=str(1 if failed is None else failed))
            if health.returncode == 0:
                report.row(host, "health", "ok: the test attack was counted; tnt_errors did not grow")
            else:
                last = health.stderr.strip().splitlines()[-1]
                report.fail(host, "health", f"health check: {last.split('ERROR: ', 1)[-1]}")

        with ThreadPoolExecutor(max_workers=PARALLEL_HOSTS) as pool:
            list(pool.map(check, [h for h in f_hosts if applied[h]]))
        # Wallarm's metrics endpoints, scraped with each node's rendered agent configuration (harness/scrape.py).
        scrape_metrics(run, [h for h in pa_hosts + f_hosts if applied[h]], addresses,
                       {h: sandboxes[h].state for h in sandboxes}, report.row, report.fail)
        traffic = Traffic(run, sandboxes, [h for h in f_hosts if applied[h]], report, net, privileged)
        # The load balancer's table, after the hosts'.
        _guarded("load balancer", report, traffic.go)
    finally:
        for stand_in in stand_ins.values():
            stand_in.close()
    kept = workdir is not None or not report.ok
    if kept:
        report.warn(f"the sandboxes (every file each host got) are kept in {base}")
    else:
        shutil.rmtree(base, ignore_errors=True)
    verdict = "OK" if report.ok else "FAILED"
    report.render(f"Result: {verdict}: {len(pa_hosts) + len(f_hosts)} hosts, {report.connections} upstream connections, "
                  f"{len(report.failures)} failures, {len(report.warnings)} warnings, {time.monotonic() - started:.1f}s")
    return report


def _value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="venv/bin/python -m tools.rehearse",
                                     description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stack", default="dev",
                        help="stack whose Pulumi.<stack>.yaml to rehearse (default dev), or DIR/<stack> for a "
                             "stack file in another folder (examples/prod)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting for this rehearsal (JSON values: 2, true, [\"10.0.0.0/8\"])")
    parser.add_argument("--keep", type=Path, help="keep the sandboxes in this directory")
    args = parser.parse_args(argv)
    overrides = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--set takes KEY=VALUE, got {item!r}")
        overrides[key] = _value(value)
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    report = rehearse(args.stack, overrides, args.keep)
    print("\n".join(report.lines))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
