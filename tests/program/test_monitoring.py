"""Monitoring: the agent's configuration against its published schema, what it scrapes, the alarms, the dashboard,
the agent's permissions, and the nodes' names; the host scripts run for real in a sandbox."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import jsonschema
import pytest

from components import telemetry
from components.host import host_name
from tests.conftest import ROOT, program_run

# Beside the clone (CI, /work/main); a git worktree under /work/wt/<branch> finds it one level up.
SCHEMA = next((p for p in (base / "shared" / "reference" / "cloudwatch-agent" / "schema.json"
                           for base in (ROOT.parent, ROOT.parent.parent)) if p.exists()),
              ROOT.parent / "shared" / "reference" / "cloudwatch-agent" / "schema.json")
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
CERT_ARN = "arn:aws:acm:eu-central-1:123456789012:certificate/12345678-1234-1234-1234-123456789012"
KINDS = {"unhealthy-targets", "tnt-errors", "requests-lost", "wstore-timeframe", "wstore-drops", "memory", "disk",
         "status-check", "certificate", "node-certificate"}


def validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA.read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


# ------------------------------------------------------------------------------------------- agent configuration
@pytest.mark.parametrize("role", ["filtering", "postanalytics"])
def test_agent_configuration_follows_the_agents_schema(role):
    """Guards against a configuration the agent's translator refuses (a misspelt key, a wrong type)."""
    errors = [e.message for e in validator().iter_errors(json.loads(telemetry.agent_config("dev", role, "eu-central-1")))]
    assert errors == [], f"{role}: {errors}"


def test_the_schema_check_can_fail():
    """Guards against a validation that accepts anything: a misplaced key and a bad retention are refused."""
    config = json.loads(telemetry.agent_config("dev", "filtering", "eu-central-1"))
    config["logs"]["metrics_collected"]["prometheus"]["emf_processor"]["metric_selectors"] = ["x"]
    config["logs"]["logs_collected"]["files"]["collect_list"][0]["retention_in_days"] = 31
    assert len(list(validator().iter_errors(config))) >= 2


@pytest.mark.parametrize("role", ["filtering", "postanalytics"])
def test_prometheus_goes_to_cloudwatch_through_emf(role):
    """Guards against scrapes sent to Amazon Managed Prometheus (metrics section) instead of CloudWatch."""
    config = json.loads(telemetry.agent_config("dev", role, "eu-central-1"))
    assert "prometheus" not in config["metrics"]["metrics_collected"]
    prometheus = config["logs"]["metrics_collected"]["prometheus"]
    assert prometheus["prometheus_config_path"] == telemetry.PROMETHEUS_CONFIG
    declared = {s.strip("^$") for d in prometheus["emf_processor"]["metric_declaration"] for s in d["metric_selectors"]}
    assert {"wallarm_tnt_errors", "wallarm_wstore_request_storage_timeframe_size"} <= declared
    # statsd: only the certificate check's gauge (tests/host/test_cert_expiry.py).
    assert set(config["metrics"]["metrics_collected"]) == {"mem", "disk", "statsd"}


def test_scrape_targets_are_wallarms_loopback_endpoints():
    """Guards against a wrong port or path (Wallarm 6.x: status on 127.0.0.8, wstore 9001, wcli 9003), or an
    endpoint off loopback."""
    assert telemetry.scrape_targets(telemetry.prometheus_config("dev", "filtering", "dev-filtering-0")) == [
        ("wallarm-status", "http://127.0.0.8:80/wallarm-status?format=prometheus"),
        ("wallarm-wcli", "http://127.0.0.1:9003/metrics")]
    assert telemetry.scrape_targets(telemetry.prometheus_config("dev", "postanalytics", "dev-postanalytics-0")) == [
        ("wallarm-wstore", "http://127.0.0.1:9001/metrics"), ("wallarm-wcli", "http://127.0.0.1:9003/metrics")]


def test_logs_of_both_fleets_are_shipped():
    """Guards against NGINX's or Wallarm's logs left on the host only."""
    for role, wanted in (("filtering", "/var/log/nginx/error.log"),
                         ("postanalytics", "/opt/wallarm/var/log/wallarm/wstore-out.log")):
        files = json.loads(telemetry.agent_config("dev", role, "eu-central-1"))["logs"]["logs_collected"]["files"]
        assert wanted in [f["file_path"] for f in files["collect_list"]], role


# ------------------------------------------------------------------------------------------- under the mocks
def alarms(run) -> dict[str, dict]:
    return {r.inputs["name"]: r.inputs for r in run.mocks.of_type(ALARM)}


def test_an_alarm_of_each_kind_exists_for_the_dev_stack():
    """Guards against a kind of failure nobody is told about (the ACM certificate alarm needs an ACM certificate;
    the nodes' own certificates from the stack's CA are alarmed without one)."""
    run = program_run(tlsCertificateArn=CERT_ARN)
    kinds = {a["tags"]["Kind"] for a in alarms(run).values()}
    assert kinds == KINDS
    plain = {a["tags"]["Kind"] for a in alarms(program_run()).values()}
    assert plain == KINDS - {"certificate"}


def test_per_node_alarms_cover_every_node():
    """Guards against a node whose broken wstore link or dead hardware raises nothing."""
    run = program_run(postanalyticsCount=2, filteringCount=3)
    names = set(alarms(run))
    for i in range(3):
        assert {f"dev-filtering-{i}-tnt-errors", f"dev-filtering-{i}-status-check"} <= names
    for i in range(2):
        assert {f"dev-postanalytics-{i}-wstore-timeframe", f"dev-postanalytics-{i}-status-check"} <= names


def test_counters_exported_as_gauges_alarm_on_their_growth():
    """Guards against an alarm on the raw cumulative tnt_errors (stays red forever after one error)."""
    tnt = alarms(program_run())["dev-filtering-0-tnt-errors"]
    returned = [q for q in tnt["metricQueries"] if q.get("returnData")]
    assert len(returned) == 1 and "DIFF(" in returned[0]["expression"], tnt["metricQueries"]
    timeframe = alarms(program_run())["dev-postanalytics-0-wstore-timeframe"]
    assert timeframe["threshold"] == 900 and timeframe["comparisonOperator"] == "LessThanThreshold"


def test_status_check_alarms_recover_the_instance():
    run = program_run()
    ids = {r.inputs["tags"]["Node"]: r.id for r in run.mocks.of_type("aws:ec2/instance:Instance")}
    for name, alarm in alarms(run).items():
        if alarm["tags"]["Kind"] == "status-check":
            node = name[len("dev-"):-len("-status-check")]
            assert alarm["dimensions"] == {"InstanceId": ids[node]}, name
            assert "arn:aws:automate:eu-central-1:ec2:recover" in alarm["alarmActions"], name


def test_alarm_emails_make_a_topic_every_alarm_notifies():
    run = program_run(alarmEmails=["ops@example.com", "oncall@example.com"])
    topics = run.mocks.of_type("aws:sns/topic:Topic")
    subs = run.mocks.of_type("aws:sns/topicSubscription:TopicSubscription")
    assert len(topics) == 1 and sorted(s.inputs["endpoint"] for s in subs) == ["oncall@example.com", "ops@example.com"]
    for name, alarm in alarms(run).items():
        assert topics[0].outputs["arn"] in alarm["alarmActions"], name
    assert program_run().mocks.of_type("aws:sns/topic:Topic") == []


def test_thresholds_come_from_the_settings():
    run = program_run(alarmMemoryPercent=75, alarmWstoreTimeframeSeconds=1200)
    assert alarms(run)["dev-filtering-memory"]["threshold"] == 75
    assert alarms(run)["dev-postanalytics-0-wstore-timeframe"]["threshold"] == 1200


def test_every_node_has_the_agents_profile_and_nothing_more():
    """Guards against a node without the agent's permissions, or a role that can do more than the agent needs."""
    run = program_run()
    [profile] = run.mocks.of_type("aws:iam/instanceProfile:InstanceProfile")
    for r in run.mocks.of_type("aws:ec2/instance:Instance"):
        expected = None if r.inputs["tags"]["Role"] == "jumphost" else profile.outputs["name"]
        assert r.inputs.get("iamInstanceProfile") == expected, r.name
    [role] = run.mocks.of_type("aws:iam/role:Role")
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert [s["Principal"] for s in trust] == [{"Service": "ec2.amazonaws.com"}]
    assert not role.inputs.get("managedPolicyArns")
    assert run.mocks.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment") == []
    [policy] = run.mocks.of_type("aws:iam/rolePolicy:RolePolicy")
    statements = json.loads(policy.inputs["policy"])["Statement"]
    actions = sorted(a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"]))
    assert actions == ["cloudwatch:PutMetricData", "logs:CreateLogStream", "logs:DescribeLogStreams",
                       "logs:PutLogEvents"]
    metrics = next(s for s in statements if s["Action"] == "cloudwatch:PutMetricData")
    assert metrics["Condition"] == {"StringEquals": {"cloudwatch:namespace": "Wallarm"}}
    groups = {g.outputs["arn"] for g in run.mocks.of_type("aws:cloudwatch/logGroup:LogGroup")}
    logs = next(s for s in statements if s["Sid"] == "WriteOurLogGroups")
    assert {r.removesuffix(":log-stream:*") for r in logs["Resource"]} == groups


def test_log_groups_keep_logs_for_the_retention_setting():
    run = program_run(logRetentionDays=14)
    assert {g.inputs["retentionInDays"] for g in run.mocks.of_type("aws:cloudwatch/logGroup:LogGroup")} == {14}


def test_the_dashboard_is_an_output_and_searches_per_node():
    """Guards against a dashboard that lists nodes one by one (500 widgets at most) or is not findable."""
    run = program_run(filteringCount=20)
    [dash] = run.mocks.of_type("aws:cloudwatch/dashboard:Dashboard")
    assert run.exports["dashboardUrl"].endswith(f"#dashboards/dashboard/{dash.inputs['dashboardName']}")
    body = json.loads(dash.inputs["dashboardBody"])
    assert len(body["widgets"]) <= 10
    text = json.dumps(body)
    assert "SEARCH(" in text and "wallarm_tnt_errors" in text and "wallarm_wstore_request_storage_timeframe_size" in text
    assert "filtering-19" not in text


def test_every_agent_step_follows_the_configure_step_and_the_log_groups():
    """Guards against an agent that starts before its log groups exist (its policy cannot create them)."""
    run = program_run()
    groups = {g.urn for g in run.mocks.of_type("aws:cloudwatch/logGroup:LogGroup")}
    for node in ("postanalytics-0", "filtering-0", "filtering-1"):
        step = run.mocks.named(f"{node}-agent")
        deps = set(step.options["dependencies"])
        assert groups <= deps and run.mocks.named(f"{node}-configure").urn in deps, node
        bundle = json.loads(step.inputs["stdin"])
        assert bundle["package_url"].startswith("https://amazoncloudwatch-agent-eu-central-1.s3.")
        assert f'"Node": "dev-{node}"' in json.dumps(bundle) or f"Node: dev-{node}" in bundle["files"][
            telemetry.PROMETHEUS_CONFIG], node


# ------------------------------------------------------------------------------------------- host names
def test_every_node_is_named_before_the_installer_registers_it():
    run = program_run()
    for node in ("postanalytics-0", "filtering-0", "filtering-1"):
        named = run.mocks.named(f"{node}-wait")  # stages the scripts, waits for boot, then names the host
        assert f"set-hostname.sh --name dev-{node}; }} </dev/null" in named.inputs["stdin"], node
        assert named.urn in run.mocks.named(f"{node}-install").options["dependencies"], node


def test_monitoring_settings_do_not_touch_the_machines():
    """Guards against a monitoring change replacing instances (user data or generation): it must not."""
    def machines(run):
        return {r.name: r.inputs.get("userData") for r in run.mocks.of_type("aws:ec2/instance:Instance")}
    assert machines(program_run()) == machines(program_run(logRetentionDays=7, alarmEmails=["ops@example.com"],
                                                           alarmDiskPercent=70))


@pytest.mark.parametrize("stack,node,name", [
    ("dev", "filtering-3", "dev-filtering-3"),
    ("Prod_EU.1", "postanalytics-0", "prod-eu-1-postanalytics-0"),
    ("x" * 80, "filtering-499", "x" * 49 + "-filtering-499"),
])
def test_host_names_are_valid_labels(stack, node, name):
    assert host_name(stack, node) == name and len(name) <= 63


# ------------------------------------------------------------------------------------------- host scripts
def stub(directory: Path, name: str, body: str) -> None:
    path = directory / name
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(0o755)


@pytest.fixture
def host(tmp_path):
    root, bin_dir = tmp_path / "root", tmp_path / "bin"
    root.mkdir(), bin_dir.mkdir()
    log = tmp_path / "calls.log"
    stub(bin_dir, "hostnamectl", f'echo "hostnamectl $*" >>{log}; printf "%s\\n" "$2" >"$WALLARM_ROOT/etc/hostname"\n')
    stub(bin_dir, "curl", f'echo "curl $*" >>{log}\nwhile [[ $# -gt 0 ]]; do [[ $1 == -o ]] && out=$2; shift; done\n'
                          'echo deb >"$out"\n')
    ctl = "/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl"
    stub(bin_dir, "dpkg", f'echo "dpkg $*" >>{log}\nmkdir -p "$WALLARM_ROOT{os.path.dirname(ctl)}"\n'
                          f'printf "#!/usr/bin/env bash\\necho \\"ctl \\$*\\" >>{log}\\n'
                          f'[[ -z \\${{CTL_FAILS:-}} ]]\\n" >"$WALLARM_ROOT{ctl}"; chmod +x "$WALLARM_ROOT{ctl}"\n')
    env = {**os.environ, "WALLARM_ROOT": str(root), "PATH": f"{bin_dir}:{os.environ['PATH']}"}

    def run(script: str, *args: str, stdin: str = "", **extra: str) -> subprocess.CompletedProcess:
        runner = ["python3"] if script.endswith(".py") else ["bash"]
        return subprocess.run([*runner, str(ROOT / "scripts" / script), *args], input=stdin, text=True,
                              capture_output=True, env={**env, **extra}, timeout=60)

    return root, log, run


def test_set_hostname_names_the_host_once(host):
    root, log, run = host
    (root / "etc").mkdir()
    (root / "etc" / "hosts").write_text("127.0.0.1 localhost\n127.0.1.1 ip-10-0-1-5\n")
    first = run("set-hostname.sh", "--name", "dev-filtering-3")
    assert first.returncode == 0, first.stderr
    assert (root / "etc/hosts").read_text() == "127.0.0.1 localhost\n127.0.1.1 dev-filtering-3\n"
    assert "hostname: dev-filtering-3" in (root / "etc/cloud/cloud.cfg.d/99-wallarm-hostname.cfg").read_text()
    second = run("set-hostname.sh", "--name", "dev-filtering-3")
    assert second.returncode == 0 and "no change" in second.stderr
    assert log.read_text().count("hostnamectl set-hostname dev-filtering-3") == 1


@pytest.mark.parametrize("bad", ["Dev-Filtering", "-x", "a" * 64, "a_b", ""])
def test_set_hostname_refuses_a_bad_name(host, bad):
    root, log, run = host
    result = run("set-hostname.sh", "--name", bad)
    assert result.returncode != 0 and "--name" in result.stderr.strip().splitlines()[-1]
    assert not (root / "etc").exists()


def bundle(extra: str = "") -> str:
    return telemetry.agent_bundle("dev", "filtering", "dev-filtering-0" + extra, "eu-central-1",
                                  telemetry.agent_package_url("eu-central-1", "x86_64"))


def test_agent_installs_once_and_reloads_only_on_change(host):
    root, log, run = host
    first = run("cloudwatch_agent.py", stdin=bundle())
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) == {"installed": True, "changed": sorted(json.loads(bundle())["files"]),
                                        "restarted": True} or json.loads(first.stdout)["restarted"]
    assert (root / telemetry.AGENT_CONFIG.lstrip("/")).read_text() == json.loads(bundle())["files"][telemetry.AGENT_CONFIG]
    calls = log.read_text()
    assert "curl" in calls and "--proto =https" in calls and "dpkg -i" in calls
    assert f"ctl -a fetch-config -m ec2 -s -c file:{telemetry.AGENT_CONFIG}" in calls
    again = run("cloudwatch_agent.py", stdin=bundle())
    assert again.returncode == 0 and "no change" in again.stderr
    assert log.read_text().count("fetch-config") == 1 and log.read_text().count("dpkg") == 1
    changed = run("cloudwatch_agent.py", stdin=bundle("x"))
    assert json.loads(changed.stdout) == {"installed": False, "changed": [telemetry.PROMETHEUS_CONFIG],
                                          "restarted": True}


def test_agent_that_failed_to_load_is_loaded_again(host):
    """Guards against a configuration written but never loaded (a failed or killed fetch-config)."""
    root, log, run = host
    failed = run("cloudwatch_agent.py", stdin=bundle(), CTL_FAILS="1")
    assert failed.returncode == 1 and "fetch-config exited 1" in failed.stderr
    retried = run("cloudwatch_agent.py", stdin=bundle())
    assert retried.returncode == 0 and json.loads(retried.stdout)["restarted"] is True


@pytest.mark.parametrize("stdin,words", [
    ("not json", "not JSON"),
    ('{"package_url": "http://example.com/x.deb", "files": {"/opt/aws/amazon-cloudwatch-agent/etc/a.json": "{}"}}',
     "package_url"),
    ('{"package_url": "https://amazoncloudwatch-agent-eu-central-1.s3.eu-central-1.amazonaws.com/a.deb", '
     '"files": {"/etc/passwd": "x"}}', "/etc/passwd"),
])
def test_agent_refuses_bad_input_and_changes_nothing(host, stdin, words):
    root, log, run = host
    result = run("cloudwatch_agent.py", stdin=stdin)
    assert result.returncode == 2 and words in result.stderr and "nothing was changed" in result.stderr
    assert not log.exists()
