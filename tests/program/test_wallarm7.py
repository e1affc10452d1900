"""Wallarm 7 beside 6: which versions are accepted, what follows the version (installer URL, scrape targets, the
health check's endpoints; components/versions.py), and the 6 -> 7 upgrade: postanalytics first, under the mocks.
The 7.x values are checked against Wallarm's documentation only (see components/versions.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from components import render, telemetry, versions
from components.settings import SettingsError
from harness import scrape
from harness.program import run_program, stack_config
from harness.sandbox import Sandbox
from tests.conftest import program_run
from tests.helpers import command, instances
from tests.program.test_monitoring import validator
from tests.program.test_ordering import closure

HEALTH = Path(__file__).resolve().parents[2] / "scripts" / "health-check.sh"


# ------------------------------------------------------------------------------------------------ the table
def test_the_table_of_majors():
    """Guards against a 7.x endpoint or URL drifting from what Wallarm documents (docs/latest/admin-en/
    nginx-node-metrics.md, installation-postanalytics-en.md), or a 6.x one changing with it."""
    assert render.installer_url("6.12.1", "x86_64") == "https://meganode.wallarm.com/6.12/wallarm-6.12.1.x86_64-glibc.sh"
    assert render.installer_url("7.1.0", "aarch64") == "https://meganode.wallarm.com/7.1/wallarm-7.1.0.aarch64-glibc.sh"
    six, seven = versions.MAJORS[6], versions.MAJORS[7]
    assert six.status_url == seven.status_url == "http://127.0.0.8/wallarm-status"
    assert (six.ready_url, six.live_url) == (None, None)
    assert (seven.ready_url, seven.live_url) == ("http://127.0.0.1:9446/ready", "http://127.0.0.1:9446/health")
    # The script's own status URL is the table's (the component passes no --status-url).
    assert f'readonly STATUS_URL="{six.status_url}"' in HEALTH.read_text()


@pytest.mark.parametrize("role,six", [
    ("filtering", [("wallarm-status", "http://127.0.0.8:80/wallarm-status?format=prometheus"),
                   ("wallarm-wcli", "http://127.0.0.1:9003/metrics")]),
    ("postanalytics", [("wallarm-wstore", "http://127.0.0.1:9001/metrics"),
                       ("wallarm-wcli", "http://127.0.0.1:9003/metrics")]),
])
def test_scrape_targets_follow_the_version(role, six):
    """Guards against a 7.x node scraped on 6.x's separate endpoints only, or wd's endpoint shipping its go_*,
    process_* and vm_* series to CloudWatch Logs too."""
    assert telemetry.scrape_targets(telemetry.prometheus_config("dev", role, "n", "6.12.1")) == six
    rendered = telemetry.prometheus_config("dev", role, "n", "7.1.0")
    assert telemetry.scrape_targets(rendered) == [("wallarm", "http://127.0.0.1:9445/metrics")]
    job = yaml.safe_load(rendered)["scrape_configs"][0]
    assert job["metric_relabel_configs"] == [{"source_labels": ["__name__"], "regex": "wallarm_.*", "action": "keep"}]
    declarations = json.loads(telemetry.agent_config("dev", role, "eu-central-1", "7.1.0"))[
        "logs"]["metrics_collected"]["prometheus"]["emf_processor"]["metric_declaration"]
    assert {d["label_matcher"] for d in declarations} == {"^wallarm$"}
    own = telemetry.STATUS_METRICS if role == "filtering" else telemetry.WSTORE_METRICS
    assert [s.strip("^$") for d in declarations for s in d["metric_selectors"]] == list(own)
    config = json.loads(telemetry.agent_config("dev", role, "eu-central-1", "7.1.0"))
    assert [e.message for e in validator().iter_errors(config)] == []


@pytest.mark.parametrize("role", ["filtering", "postanalytics"])
def test_a_7x_configuration_scrapes_every_declared_metric(tmp_path, role):
    """Guards against a 7.x EMF declaration naming a series wd's aggregated endpoint does not carry."""
    (tmp_path / "wallarm-status").write_text("12 3 0\n")
    where = "127.77.201.9" if role == "filtering" else "127.77.202.9"
    stand_in = scrape.start(role, where, tmp_path)
    try:
        bundle = telemetry.agent_bundle("dev", role, f"dev-{role}-0", "eu-central-1",
                                        telemetry.agent_package_url("eu-central-1", "x86_64"), "7.1.0")
        lines, failures = scrape.scrape(bundle, where)
    finally:
        stand_in.close()
    assert failures == [] and len(lines) == 1, failures
    wanted = "wallarm_tnt_errors=0" if role == "filtering" else "wallarm_wstore_request_storage_timeframe_size=1800"
    assert wanted in lines[0], lines


# ------------------------------------------------------------------------------------------------ settings
ACCEPTED = [{"wallarmVersion": "6.2.0"}, {"wallarmVersion": "7.1.0"}, {"wallarmVersion": "7.0.0"},
            {"postanalyticsVersion": "7.1.0"}]
REFUSED = [
    ("5x", {"wallarmVersion": "5.3.0"}, "wallarmVersion", "'5.3.0'"),
    ("8x", {"wallarmVersion": "8.0.0"}, "wallarmVersion", "'8.0.0'"),
    ("6.1", {"wallarmVersion": "6.1.9"}, "wallarmVersion", "'6.1.9'"),
    ("7-two-parts", {"postanalyticsVersion": "7.1"}, "postanalyticsVersion", "'7.1'"),
    ("7-word", {"filteringVersion": "7.x"}, "filteringVersion", "'7.x'"),
]


@pytest.mark.parametrize("overrides", ACCEPTED, ids=[next(iter(o.values())) for o in ACCEPTED])
def test_6_2_and_later_and_7x_are_accepted(overrides):
    run = run_program(stack_config("dev", **overrides))
    assert run.error is None, run.error


@pytest.mark.parametrize("overrides,key,shown", [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_other_versions_are_refused_in_one_sentence(overrides, key, shown):
    """Guards against a 5.x, 8.x or malformed version reaching a host, or a message that does not say what is
    allowed."""
    run = run_program(stack_config("dev", **overrides))
    assert isinstance(run.error, SettingsError), overrides
    message = str(run.error)
    for word in (key, shown, "6.2.0 or later in 6.x, or 7.x", "such as 6.12.1 or 7.1.0"):
        assert word in message, message
    assert message.count(". ") == 0 and message.endswith("."), message


def test_filtering_never_newer_than_postanalytics_across_majors():
    """Guards against a 6 -> 7 upgrade done filtering first (Wallarm upgrades postanalytics first)."""
    assert run_program(stack_config("dev", postanalyticsVersion="7.1.0", filteringVersion="6.12.1")).error is None
    run = run_program(stack_config("dev", postanalyticsVersion="6.12.1", filteringVersion="7.1.0"))
    assert isinstance(run.error, SettingsError)
    assert "filteringVersion" in str(run.error) and "postanalyticsVersion (6.12.1)" in str(run.error)


# ------------------------------------------------------------------------------------------------ a 7.x stack
def test_a_7x_stack_installs_scrapes_and_checks_7x():
    """Guards against a 7.1.0 stack that installs, scrapes or checks as if it were 6.x."""
    run = program_run(wallarmVersion="7.1.0")
    url = "https://meganode.wallarm.com/7.1/wallarm-7.1.0.x86_64-glibc.sh"
    for role in ("postanalytics", "filtering"):
        for name in instances(run.mocks, role):
            assert f"--url {url}" in command(run.mocks, f"{name}-install")["create"], name
            files = json.loads(command(run.mocks, f"{name}-agent")["stdin"])["files"]
            assert telemetry.scrape_targets(files[telemetry.PROMETHEUS_CONFIG]) == [
                ("wallarm", "http://127.0.0.1:9445/metrics")], name
    for name in instances(run.mocks, "filtering"):
        assert command(run.mocks, f"{name}-health")["create"].endswith(
            f"--node {name} --wallarm-mode monitoring --ready-url http://127.0.0.1:9446/ready"), name


def test_a_6x_stack_keeps_its_health_command():
    """Guards against every 6.x stack's health step changing (and running again) because 7.x came."""
    run = program_run()
    for name in instances(run.mocks, "filtering"):
        create = command(run.mocks, f"{name}-health")["create"]
        assert "--ready-url" not in create and create.endswith(f"--node {name} --wallarm-mode monitoring")


def test_upgrade_6_to_7_postanalytics_first():
    """The upgrade recipe's two steps (docs/operations.md): postanalytics 7.1.0 beside filtering 6.12.1, then both
    7.1.0; in each, every new wstore server installs before any filtering node is configured, and each fleet gets
    its own version's installer and scrape targets."""
    first = program_run(postanalyticsVersion="7.1.0", filteringVersion="6.12.1")
    ns = first.namespace
    for name in instances(first.mocks, "postanalytics"):
        assert "wallarm-7.1.0" in command(first.mocks, f"{name}-install")["create"]
        assert "9445" in command(first.mocks, f"{name}-agent")["stdin"]
    for name in instances(first.mocks, "filtering"):
        assert "wallarm-6.12.1" in command(first.mocks, f"{name}-install")["create"]
        assert "9445" not in command(first.mocks, f"{name}-agent")["stdin"]
        assert "--ready-url" not in command(first.mocks, f"{name}-health")["create"]
    second = program_run(wallarmVersion="7.1.0", postanalyticsCount=2, filteringCount=3)
    for run in (first, second):
        ns = run.namespace
        installs = {f"{p.name}-install" for p in ns["postanalytics"]}
        assert installs
        for node in ns["filtering"]:
            assert not installs - closure(node.configured), node.name
        for server in ns["postanalytics"]:
            assert not [d for d in closure(server.installed) if d.startswith("filtering-")], server.name


# ------------------------------------------------------------------------------------------------ the health check
def test_health_check_waits_for_wd_readiness(tmp_path):
    """The script for real in its sandbox against a 7.x stand-in: not ready (503) then ready; never ready fails
    in one line naming the endpoint; a --ready-url off loopback is refused."""
    sb = Sandbox(tmp_path / "seven")
    base = f"bash {HEALTH} --node filtering-0 --wallarm-mode block --attempts 3 --interval 0"
    ready = f"{base} --ready-url http://127.0.0.1:9446/ready"
    result = sb.run("health", ready, STUB_NOT_READY="2")
    assert result.returncode == 0, result.stderr
    assert "ready (http://127.0.0.1:9446/ready answered 200)" in result.stderr
    assert json.loads(result.stdout)["attack_counted"] is True
    sb.reset_counters()
    (sb.state / "ready-reads").unlink()
    result = sb.run("health", ready, STUB_NOT_READY="always")
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and re.search(
        r"filtering node filtering-0 is unhealthy: the readiness endpoint http://127.0.0.1:9446/ready answered "
        r"HTTP 503, not 200: .* \(after 3 tries\)", errors[0]), result.stderr
    bad = sb.run("health", f"{base} --ready-url http://10.0.0.5:9446/ready")
    assert bad.returncode == 1 and "--ready-url must be an http:// URL on loopback" in bad.stderr
