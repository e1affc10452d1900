"""A CA rotation in the loopback rehearsal: every step, and every mix of hosts a rolling `pulumi up` can leave.

    venv/bin/python -m tools.rehearse_rotation --stack dev [--one-step]

Rehearses the stack once per step (tools/rehearse.py, in one process: like a stack's state, the mocks keep a CA
whose name and inputs did not change; each run's own 127.N network gives the leaves other SANs, so the rehearsal
re-issues them each step, from the CA the step says: tests/program/test_ca_rotation.py shows under the mocks which leaves a
step really keeps), then, between two steps, connects every
filtering node, with its files before and after the step (the CA bundle, client certificate and key that its NGINX
file names), to a wstore stand-in of every postanalytics server, with its files before and after the step (the
certificate, key and client CA bundle that its wstore.yaml names). During one `pulumi up` a host has either set;
the order of configure steps (filtering first, then wstore, several at once) decides only how long each mix lasts.
--one-step rehearses what a plain CA replacement does (caGeneration + 1 at once), which fails in the mixes.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path
from typing import Any, Optional

import yaml

from components import render
from harness.nginxconf import parse_text
from harness.tlsprobe import Result, StandIn, connect
from tools.rehearse import Report, rehearse

ROTATION: list[tuple[str, dict[str, Any]]] = [
    ("before", {}), ("prepare", {"caRotation": "prepare"}), ("switch", {"caRotation": "switch"}),
    ("finish", {"caGeneration": 2, "caRotation": "none"})]
"""The documented rotation from generation 1 to 2, each step one `pulumi up`."""
ONE_STEP: list[tuple[str, dict[str, Any]]] = [("before", {}), ("swap", {"caGeneration": 2})]
"""A CA replaced in one `pulumi up` (as `--replace <pki-ca-key>` or a new CA validity does): the negative control."""


@dataclasses.dataclass
class Phase:
    name: str
    report: Report
    base: Path
    """One directory per host (its sandbox; root/ is its "/")."""

    def hosts(self, role: str) -> list[str]:
        return sorted(p.name for p in self.base.iterdir() if p.name.startswith(f"{role}-"))

    def file(self, host: str, path: str) -> Path:
        return self.base / host / "root" / path.lstrip("/")


@dataclasses.dataclass
class Handshake:
    wstore: str
    """"<host> (<phase>)" of the stand-in."""
    nginx: str
    """"<host> (<phase>)" of the client's files."""
    result: Result

    def __str__(self) -> str:
        return f"{self.nginx} -> {self.wstore}: {'ok' if self.result.ok else 'FAILED'}: {self.result.detail}"


def rehearse_steps(stack: str, steps: list[tuple[str, dict]], workdir: Path,
                   overrides: Optional[dict] = None) -> list[Phase]:
    """One rehearsal per step, its sandboxes kept in workdir/<step>."""
    return [Phase(name, rehearse(stack, {**(overrides or {}), **values}, workdir / name), workdir / name)
            for name, values in steps]


def _wstore_files(phase: Phase, host: str) -> tuple[str, str, str, Optional[str]]:
    """(TLS address, certificate, key, client CA bundle or None) from the host's wstore.yaml."""
    tls = yaml.safe_load(phase.file(host, render.WSTORE_YAML).read_text())["service"]["TLS"]
    client_ca = tls["mutualTLS"]["clientCACertFile"] if tls["mutualTLS"]["enabled"] else None
    return (tls["address"], str(phase.file(host, tls["certFile"])), str(phase.file(host, tls["keyFile"])),
            str(phase.file(host, client_ca)) if client_ca else None)


def _nginx_files(phase: Phase, host: str) -> dict[str, Optional[str]]:
    """The CA bundle, client certificate and key that the node's NGINX file names (wallarm_wstore_ssl_*)."""
    top = parse_text(phase.file(host, render.NGINX_CONF).read_text())
    named = {d["directive"]: d["args"][0] for d in top if d["directive"].startswith("wallarm_wstore_ssl_")}
    return {k: str(phase.file(host, named[f"wallarm_wstore_ssl_{k}_file"])) if f"wallarm_wstore_ssl_{k}_file" in named
            else None for k in ("ca_cert", "cert", "key")}


def mixed_handshakes(old: Phase, new: Phase) -> list[Handshake]:
    """Every filtering node's files (old and new) against every wstore's (old and new): four mixes per pair. The
    stand-in listens on 127.0.0.1 (the steps' rehearsals ran on other 127.N networks, since released); the client
    verifies the server certificate for the address in that wstore's wstore.yaml, as NGINX does for the upstream's."""
    found = []
    for host in old.hosts("postanalytics"):
        for w in (old, new):
            address, cert, key, client_ca = _wstore_files(w, host)
            stand_in = StandIn("127.0.0.1", 0, cert, key, client_ca)
            try:
                ip, port = stand_in.address
                for node in old.hosts("filtering"):
                    for n in (old, new):
                        files = _nginx_files(n, node)
                        result = connect(ip, port, files["ca_cert"] or "", files["cert"], files["key"],
                                         server_name=address.rsplit(":", 1)[0])
                        found.append(Handshake(f"{host} ({w.name})", f"{node} ({n.name})", result))
            finally:
                stand_in.close()
    return found


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="venv/bin/python -m tools.rehearse_rotation",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", default="dev")
    parser.add_argument("--one-step", action="store_true", help="rehearse a one-step CA swap instead")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="wallarm-rotation-") as tmp:
        phases = rehearse_steps(args.stack, ONE_STEP if args.one_step else ROTATION, Path(tmp),
                                {"tls": True, "mutualTls": True})
        ok = True
        for p in phases:
            print(f"step {p.name}: rehearsal {'OK' if p.report.ok else 'FAILED: ' + '; '.join(p.report.failures)}")
            ok &= p.report.ok
        for old, new in zip(phases, phases[1:]):
            print(f"\n{old.name} -> {new.name}, every mix:")
            for h in mixed_handshakes(old, new):
                print(f"  {h}")
                ok &= h.result.ok
    print(f"\nResult: {'OK' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
