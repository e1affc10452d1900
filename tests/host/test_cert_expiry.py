"""The nodes' own certificates: scripts/cert_expiry.py run for real against real certificates, the StatsD datagram
it sends caught on a UDP socket, the agent step that installs its timer, and the per-node alarm under the mocks,
which must watch exactly the series the script sends."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
from pathlib import Path

import jsonschema
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from components import render, telemetry
from components.host import host_name, script_text
from tests.conftest import ROOT, program_run
from tests.helpers import spec
from tests.program.test_monitoring import ALARM, SCHEMA, stub

SCRIPT = ROOT / "scripts" / "cert_expiry.py"
# AWS CloudWatch user guide, "Retrieve custom metrics with StatsD" (CloudWatch-Agent-custom-metrics-statsd.html):
# `MetricName:value|type|@sample_rate|#tag1:value,tag1...`; MetricName has no colons, bars, # or @; type g is a
# gauge; tags are comma-separated key:value pairs that become dimensions.
STATSD_GAUGE = re.compile(r"(?P<name>[^:|#@]+):(?P<value>[0-9]+(?:\.[0-9]+)?)\|g(?:\|#(?P<tags>[^:|,#@]+:[^:|,#@]+"
                          r"(?:,[^:|,#@]+:[^:|,#@]+)*))?")


# ------------------------------------------------------------------------------------------- certificates
def make_cert(directory: Path, name: str, days: float) -> tuple[Path, ec.EllipticCurvePrivateKey]:
    """A real certificate that ends `days` from now (negative: already expired), PEM in directory/name."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=40)).not_valid_after(now + dt.timedelta(days=days))
            .sign(key, hashes.SHA256()))
    path = directory / name
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path, key


@pytest.fixture
def statsd():
    """A UDP socket standing in for the agent's StatsD listener."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(10)
    yield sock
    sock.close()


def check(statsd: socket.socket, *args: str) -> tuple[subprocess.CompletedProcess, str]:
    """Runs the script for real; returns its result and the one datagram the socket caught."""
    address = f"127.0.0.1:{statsd.getsockname()[1]}"
    done = subprocess.run(["python3", str(SCRIPT), "--metric", telemetry.CERT_METRIC, "--statsd", address,
                           "--tag", "Stack=dev", "--tag", "Fleet=filtering", "--tag", "Node=dev-filtering-0", *args],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 2, done.stderr
    return done, statsd.recv(4096).decode("ascii")


def days(datagram: str) -> float:
    match = STATSD_GAUGE.fullmatch(datagram)
    assert match, f"not a StatsD gauge the CloudWatch agent accepts: {datagram!r}"
    return float(match["value"])


def test_a_certificate_ending_in_three_days_sends_three(tmp_path, statsd):
    """Guards against a wrong reading of notAfter (the alarm would fire late, or never)."""
    leaf, _ = make_cert(tmp_path, "client.crt", 3)
    ca, _ = make_cert(tmp_path, "ca.crt", 900)
    done, datagram = check(statsd, "--cert", str(leaf), "--cert", str(ca))
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert days(datagram) == pytest.approx(3, abs=0.01)
    assert done.stdout.strip() == datagram


def test_the_fewest_days_of_a_bundle_count(tmp_path, statsd):
    """Guards against reading only the first certificate of a CA bundle (two CAs during a rotation)."""
    new, _ = make_cert(tmp_path, "new.crt", 1000)
    old, _ = make_cert(tmp_path, "old.crt", 5)
    bundle = tmp_path / "bundle.crt"
    bundle.write_bytes(new.read_bytes() + old.read_bytes())
    _, datagram = check(statsd, "--cert", str(bundle))
    assert days(datagram) == pytest.approx(5, abs=0.01)


def test_an_expired_certificate_sends_zero_never_a_minus(tmp_path, statsd):
    """Guards against a negative gauge, which StatsD reads as a decrement of the last value, not as a value."""
    expired, _ = make_cert(tmp_path, "wstore.crt", -2)
    done, datagram = check(statsd, "--cert", str(expired))
    assert done.returncode == 0 and days(datagram) <= 0 and "-" not in datagram.split("|")[0]


@pytest.mark.parametrize("case", ["missing", "corrupt", "key-not-cert", "bad-base64", "empty"])
def test_a_bad_file_is_one_line_and_an_alarming_value(tmp_path, statsd, case):
    """Guards against a check that dies quietly (or crash-loops) on the worst day, and against printing a key."""
    good, key = make_cert(tmp_path, "ca.crt", 900)
    bad = tmp_path / "client.crt"
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    if case == "corrupt":
        bad.write_bytes(b"-----BEGIN CERTIFICATE-----\n" + b"QUJD" * 40 + b"\n-----END CERTIFICATE-----\n")
    elif case == "key-not-cert":
        bad.write_bytes(key_pem)
    elif case == "bad-base64":
        bad.write_bytes(b"-----BEGIN CERTIFICATE-----\n!!not base64!!\n-----END CERTIFICATE-----\n")
    elif case == "empty":
        bad.write_bytes(b"")
    done, datagram = check(statsd, "--cert", str(bad), "--cert", str(good))
    assert done.returncode == 1 and days(datagram) == 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and str(bad) in lines[0] and "ERROR" in lines[0], done.stderr
    secret = b"".join(key_pem.split(b"\n")[1:-2]).decode()
    assert secret[:40] not in done.stdout + done.stderr


def test_no_agent_listening_is_an_error_not_a_crash(tmp_path):
    """Guards against a traceback when the datagram cannot leave (an address that does not resolve)."""
    cert, _ = make_cert(tmp_path, "ca.crt", 900)
    done = subprocess.run(["python3", str(SCRIPT), "--metric", "m", "--statsd", "no-such-host.invalid:8125",
                           "--cert", str(cert)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "could not send" in done.stderr


@pytest.mark.parametrize("words", [["--metric", "a:b"], ["--metric", "m", "--tag", "Node=a,b"],
                                   ["--metric", "m", "--tag", "Node"], ["--metric", "m", "--statsd", "8125"]])
def test_arguments_that_would_break_the_datagram_are_refused(tmp_path, words):
    cert, _ = make_cert(tmp_path, "ca.crt", 900)
    done = subprocess.run(["python3", str(SCRIPT), *words, "--cert", str(cert)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and done.stdout == ""


# ------------------------------------------------------------------------------------------- agent configuration
@pytest.mark.parametrize("role", ["filtering", "postanalytics"])
def test_the_statsd_listener_is_on_loopback_and_follows_the_schema(role):
    """Guards against a listener on every interface, or a statsd section the agent's translator refuses."""
    config = json.loads(telemetry.agent_config("dev", role, "eu-central-1"))
    statsd = config["metrics"]["metrics_collected"]["statsd"]
    assert statsd["service_address"] == telemetry.STATSD_ADDRESS and statsd["service_address"].startswith("127.")
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    assert [e.message for e in validator.iter_errors(config)] == []
    config["metrics"]["metrics_collected"]["statsd"]["service_adress"] = ":8125"
    assert list(validator.iter_errors(config)), "the schema accepts a misspelt statsd key"


@pytest.mark.parametrize("role,tls,mutual,wanted", [
    ("postanalytics", True, True, (render.WSTORE_CERT, render.WSTORE_CA)),
    ("filtering", True, True, (render.NGINX_CLIENT_CERT, render.NGINX_CA)),
    ("filtering", True, False, (render.NGINX_CA,)),
    ("postanalytics", False, False, ()),
])
def test_each_node_checks_the_certificates_its_spec_writes(role, tls, mutual, wanted):
    """Guards against a check of a path the configure step never writes (it would alarm for ever) or one that
    misses the certificate the node uses."""
    assert telemetry.node_certificates(role, tls, mutual) == wanted
    spec = (render.postanalytics_spec("p", "10.0.0.1", "1.0", 3313, 3314, tls, mutual, "c", "k", "ca")
            if role == "postanalytics" else
            render.filtering_spec("f", "conf", tls, mutual, "ca", "c", "k"))
    written = {f["path"]: f["mode"] for f in spec["files"]}
    for path in wanted:
        assert written.get(path) == "0644", f"{path} is not a certificate the {role} spec writes"


def test_the_timer_and_service_are_valid_units(tmp_path):
    """Guards against a unit systemd refuses (the timer would never run, and the alarm would say so only later)."""
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed")
    files = telemetry.cert_check_files("dev", "filtering", "dev-filtering-0", (render.NGINX_CA,), "pass\n")
    for path in (telemetry.CERT_SERVICE, telemetry.CERT_TIMER):
        (tmp_path / Path(path).name).write_text(files[path])
    done = subprocess.run(["systemd-analyze", "verify", "--man=no", str(tmp_path / Path(telemetry.CERT_TIMER).name),
                           str(tmp_path / Path(telemetry.CERT_SERVICE).name)],
                          capture_output=True, text=True, timeout=60)
    problems = [line for line in done.stderr.splitlines() if "wallarm-cert-expiry" in line]
    assert problems == [], done.stderr


# ------------------------------------------------------------------------------------------- under the mocks
def cert_alarms(run) -> dict[str, dict]:
    return {r.inputs["name"]: r.inputs for r in run.mocks.of_type(ALARM)
            if r.inputs["tags"]["Kind"] == "node-certificate"}


def test_the_dev_stack_has_a_certificate_alarm_per_node_without_an_acm_certificate():
    """Guards against the internal certificates running out unseen (the dev stack has no tlsCertificateArn)."""
    run = program_run(postanalyticsCount=2, filteringCount=3)
    found = cert_alarms(run)
    wanted = {f"dev-{n}-certificate-days" for n in ("postanalytics-0", "postanalytics-1", "filtering-0",
                                                     "filtering-1", "filtering-2")}
    assert set(found) == wanted
    for name, alarm in found.items():
        assert alarm["comparisonOperator"] == "LessThanThreshold" and alarm["threshold"] == 7, name
        assert alarm["treatMissingData"] == "breaching", name
        assert alarm["period"] * alarm["evaluationPeriods"] == 3 * 3600, name


def test_the_alarm_watches_exactly_what_the_script_sends(statsd, tmp_path):
    """Guards against an alarm on a series nobody sends (a typo in the name, a missing or extra dimension): run the
    node's own rendered ExecStart, catch its datagram, and compare it with the node's alarm."""
    run = program_run()
    alarms = cert_alarms(run)
    for node in ("postanalytics-0", "filtering-0"):
        bundle = json.loads(run.mocks.named(f"{node}-agent").inputs["stdin"])
        files = bundle["files"]
        assert files[telemetry.CERT_CHECK] == script_text("cert_expiry.py"), node
        exec_start = next(line for line in files[telemetry.CERT_SERVICE].splitlines() if line.startswith("ExecStart="))
        words = shlex.split(exec_start[len("ExecStart="):])
        assert words[:2] == ["/usr/bin/python3", telemetry.CERT_CHECK], node
        args = words[2:]
        # The node's files are the sandbox's, and the agent is the test's socket.
        for i, word in enumerate(args):
            if args[i - 1] == "--cert":
                args[i] = str(make_cert(tmp_path, Path(word).name, 20)[0])
            elif args[i - 1] == "--statsd":
                assert word == telemetry.STATSD_ADDRESS
                args[i] = f"127.0.0.1:{statsd.getsockname()[1]}"
        done = subprocess.run(["python3", str(SCRIPT), *args], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        match = STATSD_GAUGE.fullmatch(statsd.recv(4096).decode("ascii"))
        assert match, node
        sent = dict(tag.split(":", 1) for tag in match["tags"].split(","))
        alarm = alarms[f"dev-{node}-certificate-days"]
        assert (alarm["namespace"], alarm["metricName"]) == (telemetry.NAMESPACE, match["name"]), node
        # The agent adds metric_type=gauge to every StatsD gauge (amazon-cloudwatch-agent statsd.go).
        assert alarm["dimensions"] == {**sent, "metric_type": "gauge"}, node
        assert sent["Node"] == host_name("dev", node), node


def test_a_fresh_node_reads_its_own_certificates_above_the_threshold(statsd, tmp_path):
    """Guards against a check pointed at files the configure step does not write, or misreading the PKI's real
    certificates (a fresh stack would alarm at once): each node's rendered ExecStart runs against the very PEM files
    its configure step sends; a new leaf holds certValidityHours (720 h, 30 days)."""
    run = program_run()
    threshold = next(iter(cert_alarms(run).values()))["threshold"]
    for node in ("postanalytics-0", "filtering-0"):
        written = {f["path"]: f["content"] for f in spec(run.mocks, node)["files"]}
        files = json.loads(run.mocks.named(f"{node}-agent").inputs["stdin"])["files"]
        exec_start = next(line for line in files[telemetry.CERT_SERVICE].splitlines() if line.startswith("ExecStart="))
        args = shlex.split(exec_start[len("ExecStart="):])[2:]
        for i, word in enumerate(args):
            if args[i - 1] == "--cert":
                assert word in written, f"{node} checks {word}, which its configure step does not write"
                assert "PRIVATE KEY" not in written[word], f"{node} would read a key: {word}"
                local = tmp_path / node / Path(word).name
                local.parent.mkdir(exist_ok=True)
                local.write_text(written[word])
                args[i] = str(local)
            elif args[i - 1] == "--statsd":
                args[i] = f"127.0.0.1:{statsd.getsockname()[1]}"
        done = subprocess.run(["python3", str(SCRIPT), *args], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        left = days(statsd.recv(4096).decode("ascii"))
        assert left == pytest.approx(30, abs=0.1) and left > threshold, node


def test_every_per_node_alarm_watches_the_node_label_its_agent_sends():
    """Guards against per-node alarms on Node=filtering-0 while the agent labels the series dev-filtering-0: they
    would never see a value."""
    run = program_run()
    for resource in run.mocks.of_type(ALARM):
        alarm = resource.inputs
        dims = [alarm.get("dimensions") or {}] + [q["metric"].get("dimensions") or {}
                                                   for q in alarm.get("metricQueries") or [] if q.get("metric")]
        for d in dims:
            if "Node" in d:
                bundle = json.loads(run.mocks.named(f"{d['Node'][len('dev-'):]}-agent").inputs["stdin"])
                assert f"Node: {d['Node']}" in bundle["files"][telemetry.PROMETHEUS_CONFIG], alarm["name"]


def test_emails_reach_the_certificate_alarm():
    run = program_run(alarmEmails=["ops@example.com"])
    [topic] = run.mocks.of_type("aws:sns/topic:Topic")
    for name, alarm in cert_alarms(run).items():
        assert alarm["alarmActions"] == [topic.outputs["arn"]] and alarm["okActions"] == [topic.outputs["arn"]], name


def test_without_tls_there_is_no_check_and_no_alarm():
    """Guards against a check of files that do not exist (it would alarm for ever) on a stack without TLS."""
    run = program_run(tls=False, mutualTls=False)
    assert cert_alarms(run) == {}
    files = json.loads(run.mocks.named("filtering-0-agent").inputs["stdin"])["files"]
    assert not set(telemetry.CERT_FILES) & set(files)


def test_the_threshold_is_a_setting_below_the_validity():
    assert {a["threshold"] for a in cert_alarms(program_run(alarmInternalCertificateDays=12)).values()} == {12}
    # Only the validity shortened (100 hours): the default threshold would never clear, so half the validity.
    assert {a["threshold"] for a in cert_alarms(program_run(certValidityHours=100,
                                                            certEarlyRenewalHours=48)).values()} == {100 / 48}


def test_a_threshold_no_fresh_certificate_meets_is_refused():
    from tests.program.test_settings import SettingsError, run_program, stack_config
    run = run_program(stack_config("dev", alarmInternalCertificateDays=30))
    assert isinstance(run.error, SettingsError)
    assert str(run.error) == ("alarmInternalCertificateDays is 30: a new certificate holds certValidityHours (720) "
                              "hours, so the alarm must fire below 30 days.")
    assert run.mocks.resources == []


# ------------------------------------------------------------------------------------------- the agent step
@pytest.fixture
def agent_host(tmp_path):
    root, bin_dir, log = tmp_path / "root", tmp_path / "bin", tmp_path / "calls.log"
    root.mkdir(), bin_dir.mkdir()
    ctl = "/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl"
    (root / os.path.dirname(ctl).lstrip("/")).mkdir(parents=True)
    stub(root / os.path.dirname(ctl).lstrip("/"), os.path.basename(ctl), f'echo "ctl $*" >>{log}\n')
    stub(bin_dir, "systemctl", f'echo "systemctl $*" >>{log}\n')
    env = {**os.environ, "WALLARM_ROOT": str(root), "PATH": f"{bin_dir}:{os.environ['PATH']}"}

    def run(stdin: str) -> subprocess.CompletedProcess:
        return subprocess.run(["python3", str(ROOT / "scripts" / "cloudwatch_agent.py")], input=stdin, text=True,
                              capture_output=True, env=env, timeout=60)
    return root, log, run


def bundle(certificates=(render.NGINX_CLIENT_CERT, render.NGINX_CA)) -> str:
    return telemetry.agent_bundle("dev", "filtering", "dev-filtering-0", "eu-central-1",
                                  telemetry.agent_package_url("eu-central-1", "x86_64"), certificates=certificates,
                                  check_script=script_text("cert_expiry.py"))


def test_the_agent_step_enables_the_timer_once_and_retires_it_without_tls(agent_host):
    """Guards against a timer written but never enabled, enabled again on every deploy, or left behind (alarming
    about files that are gone) after tls is turned off."""
    root, log, run = agent_host
    first = run(bundle())
    assert first.returncode == 0, first.stderr
    for path in telemetry.CERT_FILES:
        assert (root / path.lstrip("/")).read_text() == json.loads(bundle())["files"][path]
    calls = log.read_text().splitlines()
    assert calls[-4:] == ["systemctl daemon-reload", "systemctl enable wallarm-cert-expiry.timer",
                          "systemctl restart wallarm-cert-expiry.timer",
                          "systemctl start --no-block wallarm-cert-expiry.service"]
    assert calls.index("systemctl daemon-reload") > next(i for i, c in enumerate(calls) if "fetch-config" in c)
    again = run(bundle())
    assert again.returncode == 0 and "no change" in again.stderr and log.read_text().count("systemctl") == 4
    off = run(bundle(certificates=()))
    assert off.returncode == 0, off.stderr
    assert "systemctl disable --now wallarm-cert-expiry.timer" in log.read_text()
    assert not any((root / p.lstrip("/")).exists() for p in telemetry.CERT_FILES)


def test_the_agent_step_refuses_half_a_check(agent_host):
    root, log, run = agent_host
    data = json.loads(bundle())
    del data["files"][telemetry.CERT_TIMER]
    result = run(json.dumps(data))
    assert result.returncode == 2 and "needs all of" in result.stderr and not log.exists()
