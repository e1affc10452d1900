"""The rehearsal's metrics check: Wallarm's endpoints stand in on each node's loopback address, and are scraped with
the targets of the agent configuration the program rendered for that node (its agent step's stdin).

The stand-ins serve what Wallarm 6.x documents, written here independently of components/telemetry.py: the
filtering node's status service at 127.0.0.8:80/wallarm-status (Prometheus text only with ?format=prometheus, JSON
otherwise; docs/6.x/admin-en/configure-statistics-service.md), wstore's metrics at 127.0.0.1:9001/metrics
(docs/6.x/admin-en/wstore-metrics.md), wcli's at 127.0.0.1:9003/metrics. Each node has its own 127.N.x.y address
in the rehearsal, so a target's host (127.0.0.8, 127.0.0.1, localhost: the node itself) becomes the node's
address; its port is shifted by PORT_SHIFT, so that an ordinary user may bind it. Path, query and port otherwise
come from the rendered configuration: a wrong one finds no stand-in and fails, and so does a metric the agent's
EMF declarations select that the endpoint does not serve (the agent would publish nothing under that name).
The filtering status reports the counters the health check's test attack left (harness/sandbox/bin/curl's state).
Wallarm 7.x adds wd's aggregated endpoint at 127.0.0.1:9445/metrics on every node (the groups above, plus go_* and
process_* series of its own; docs/latest/admin-en/nginx-node-metrics.md): a 7.x configuration scrapes that.
"""

from __future__ import annotations

import http.server
import json
import re
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Optional
from urllib.parse import parse_qs, urlsplit

from components import telemetry

PORT_SHIFT = 10000
LOCAL_HOSTS = ("127.0.0.8", "127.0.0.1", "localhost")


def _status(counters: dict[str, int], prometheus: bool) -> tuple[str, str]:
    if not prometheus:
        return "application/json", json.dumps(counters)
    lines = []
    for name, value in counters.items():
        lines += [f"# HELP wallarm_{name} {name.replace('_', ' ')}", f"# TYPE wallarm_{name} gauge",
                  f"wallarm_{name} {value}"]
    return "text/plain; version=0.0.4", "\n".join(lines) + "\n"


WSTORE = """# TYPE wallarm_wstore_request_storage_timeframe_size gauge
wallarm_wstore_request_storage_timeframe_size 1800
# TYPE wallarm_wstore_request_storage_drops counter
wallarm_wstore_request_storage_drops 0
# TYPE wallarm_wstore_kvstore_oom_errors_total counter
wallarm_wstore_kvstore_oom_errors_total 0
# TYPE wallarm_wstore_current_connections gauge
wallarm_wstore_current_connections 2
"""
WCLI = """# TYPE wallarm_wcli_job_error gauge
wallarm_wcli_job_error{job="export-attacks"} 0
"""


class StandIn:
    """One node's Wallarm endpoints: (port -> path -> answer(query))."""

    def __init__(self, address: str, routes: dict[int, dict[str, Callable[[dict], tuple[str, str]]]]):
        self.servers = []
        for port, paths in routes.items():
            handler = _handler(paths)
            server = http.server.ThreadingHTTPServer((address, port + PORT_SHIFT), handler)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            self.servers.append(server)

    def close(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()


def _handler(paths: dict[str, Callable[[dict], tuple[str, str]]]):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            parts = urlsplit(self.path)
            answer = paths.get(parts.path)
            if answer is None:
                self.send_error(404)
                return
            kind, body = answer(parse_qs(parts.query))
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:
            pass
    return Handler


def start(role: str, address: str, state: Path) -> StandIn:
    """Wallarm's endpoints of a node of `role`, on its rehearsal address."""
    def status(query: dict) -> tuple[str, str]:
        try:
            requests, attacks, errors = (int(v) for v in (state / "wallarm-status").read_text().split())
        except (OSError, ValueError):
            requests, attacks, errors = 0, 0, 0
        counters = {"requests": requests, "attacks": attacks, "blocked": 0, "abnormal": requests,
                    "tnt_errors": errors, "api_errors": 0, "requests_lost": 0, "segfaults": 0}
        return _status(counters, query.get("format") == ["prometheus"])

    text = lambda body: lambda query: ("text/plain; version=0.0.4", body)  # noqa: E731
    own = "# TYPE go_goroutines gauge\ngo_goroutines 12\n"
    if role == "filtering":
        wd = lambda query: ("text/plain; version=0.0.4", status({"format": ["prometheus"]})[1] + WCLI + own)  # noqa: E731
        return StandIn(address, {80: {"/wallarm-status": status}, 9003: {"/metrics": text(WCLI)},
                                 9445: {"/metrics": wd}})
    return StandIn(address, {9001: {"/metrics": text(WSTORE)}, 9003: {"/metrics": text(WCLI)},
                             9445: {"/metrics": text(WSTORE + WCLI + own)}})


def names(exposition: str) -> dict[str, str]:
    """metric name -> its first value, from Prometheus text."""
    found: dict[str, str] = {}
    for line in exposition.splitlines():
        match = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)", line)
        if match and not line.startswith("#"):
            found.setdefault(match.group(1), match.group(3))
    return found


def scrape(bundle: str, address: str) -> tuple[list[str], list[str]]:
    """Scrapes every target of a node's rendered agent configuration; returns (report lines, failures)."""
    files = json.loads(bundle)["files"]
    agent = json.loads(files[telemetry.AGENT_CONFIG])
    declarations = agent["logs"]["metrics_collected"]["prometheus"]["emf_processor"]["metric_declaration"]
    lines, failures = [], []
    for job, url in telemetry.scrape_targets(files[telemetry.PROMETHEUS_CONFIG]):
        parts = urlsplit(url)
        if parts.hostname not in LOCAL_HOSTS:
            failures.append(f"{job}: {url} is not on the node's loopback")
            continue
        local = url.replace(f"//{parts.netloc}", f"//{address}:{(parts.port or 80) + PORT_SHIFT}", 1)
        try:
            with urllib.request.urlopen(local, timeout=5) as answer:
                body = answer.read().decode()
        except (urllib.error.URLError, OSError) as exc:
            failures.append(f"{job}: scraping {url} failed: {getattr(exc, 'reason', exc)}")
            continue
        got = names(body)
        wanted = [s.strip("^$") for d in declarations if re.fullmatch(d["label_matcher"], job)
                  for s in d["metric_selectors"]]
        missing = [m for m in wanted if m not in got]
        if not got:
            failures.append(f"{job}: {url} answered no Prometheus metric (format?)")
        elif missing:
            failures.append(f"{job}: {url} serves no {', '.join(missing)}, which the agent would publish")
        else:
            shown = ", ".join(f"{m}={got[m]}" for m in wanted) or ", ".join(list(got)[:3])
            lines.append(f"{url}: {len(got)} metrics ({shown})")
    return lines, failures


def check_hosts(run, hosts: list[str], addresses: dict[str, str], states: dict[str, Path],
                row: Callable[[str, str, str], None], fail: Callable[[str, str, str], None]) -> None:
    """The rehearsal's step: stand-ins up, every host scraped with its own configuration, stand-ins down."""
    stand_ins: list[StandIn] = []
    try:
        for host in hosts:
            role = "filtering" if host.startswith("filtering") else "postanalytics"
            stand_ins.append(start(role, addresses[host], states[host]))
        for host in hosts:
            try:
                step: dict = run.mocks.named(f"{host}-agent").inputs
            except StopIteration:
                fail(host, "scraped", "no agent step: nothing would report this node's metrics")
                continue
            lines, failures = scrape(step["stdin"], addresses[host])
            for line in lines:
                row(host, "scraped", line)
            for failure in failures:
                fail(host, "scraped", failure)
    finally:
        for stand_in in stand_ins:
            stand_in.close()
