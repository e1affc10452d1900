"""The rehearsal scrapes Wallarm's endpoints (stand-ins) with the targets of the rendered agent configuration: a wrong
port, path or query, or a metric name Wallarm does not serve, fails it."""

from __future__ import annotations

import json
import random

import pytest

from components import telemetry
from harness import scrape
from tools.rehearse import rehearse


def address() -> str:
    rng = random.SystemRandom()
    return f"127.{rng.randint(1, 254)}.{rng.randint(200, 254)}.{rng.randint(1, 254)}"


def bundle(role: str, edit=lambda text: text) -> str:
    data = json.loads(telemetry.agent_bundle("dev", role, f"dev-{role}-0", "eu-central-1",
                                             telemetry.agent_package_url("eu-central-1", "x86_64")))
    data["files"][telemetry.PROMETHEUS_CONFIG] = edit(data["files"][telemetry.PROMETHEUS_CONFIG])
    return json.dumps(data)


@pytest.fixture
def stand_in(tmp_path):
    started = []

    def start(role: str) -> str:
        where = address()
        (tmp_path / "wallarm-status").write_text("12 3 0\n")
        started.append(scrape.start(role, where, tmp_path))
        return where
    yield start
    for s in started:
        s.close()


@pytest.mark.parametrize("role", ["filtering", "postanalytics"])
def test_the_rendered_targets_scrape_every_declared_metric(stand_in, role):
    lines, failures = scrape.scrape(bundle(role), stand_in(role))
    assert failures == [] and len(lines) == 2, failures
    if role == "filtering":
        assert "wallarm_requests=12" in lines[0] and "wallarm_tnt_errors=0" in lines[0]


@pytest.mark.parametrize("edit,words", [
    (lambda t: t.replace("127.0.0.1:9003", "127.0.0.1:9004"), "wallarm-wcli: scraping http://127.0.0.1:9004/metrics failed"),
    (lambda t: t.replace("/wallarm-status", "/status"), "wallarm-status: scraping http://127.0.0.8:80/status?format=prometheus failed: Not Found"),
    (lambda t: t.replace("- prometheus", "- json"), "answered no Prometheus metric"),
    (lambda t: t.replace("127.0.0.8:80", "10.0.0.5:80"), "is not on the node's loopback"),
])
def test_a_wrong_target_fails(stand_in, edit, words):
    """Guards against an agent configuration that scrapes nothing in production (a typo in a port or path)."""
    lines, failures = scrape.scrape(bundle("filtering", edit), stand_in("filtering"))
    assert any(words in f for f in failures), failures


def test_a_metric_wallarm_does_not_serve_fails(stand_in, monkeypatch):
    """Guards against an EMF declaration that names a metric the endpoint does not have (it would publish nothing)."""
    monkeypatch.setattr(telemetry, "WSTORE_METRICS", ("wallarm_wstore_request_storage_timeframe",))
    lines, failures = scrape.scrape(bundle("postanalytics"), stand_in("postanalytics"))
    assert any("serves no wallarm_wstore_request_storage_timeframe" in f for f in failures), failures


def wrong_wstore_port(sandboxes, run):
    step = run.mocks.named("postanalytics-0-agent").inputs
    data = json.loads(step["stdin"])
    data["files"][telemetry.PROMETHEUS_CONFIG] = data["files"][telemetry.PROMETHEUS_CONFIG].replace(":9001", ":9091")
    step["stdin"] = json.dumps(data)


def test_the_rehearsal_lists_what_it_scraped_and_fails_a_wrong_port(tmp_path):
    report = rehearse("dev", None, tmp_path / "bad", tamper=wrong_wstore_port)
    assert not report.ok
    assert any(f.startswith("postanalytics-0: wallarm-wstore: scraping http://127.0.0.1:9091/metrics failed")
               for f in report.failures), report.failures
    scraped = [t for label, t in report.hosts["filtering-0"] if label == "scraped"]
    assert any("wallarm-status?format=prometheus" in t and "wallarm_tnt_errors=0" in t for t in scraped), scraped
