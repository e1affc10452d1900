"""The load balancer waits (components/waits.py, components/awsconfig.py): what they ask, of whom, for how long, and
what turning them off does. The waiters run against botocore's Stubber (boto3's own test tool): every call they
make must be one the test expects, with the parameters it expects, or the test fails."""

from __future__ import annotations

import base64
import datetime
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber
from pulumi.dynamic import ConfigureRequest
from pulumi.dynamic.config import Config
from pulumi.dynamic.dynamic import serialize_provider

from components import awsconfig, waits
from harness.program import run_program, stack_config
from tests.conftest import program_run
from tests.program.test_changes import changed

ROOT = Path(__file__).resolve().parents[2]
ARN = "arn:aws:elasticloadbalancing:eu-central-1:123456789012:targetgroup/entrypoint-http/0123456789abcdef"
TLS_ARN = "arn:aws:elasticloadbalancing:eu-central-1:123456789012:targetgroup/entrypoint-https/0123456789abcdef"
INSTANCE = "i-0123456789abcdef0"
KEYS = {"aws_access_key_id": "AKIASTACKSTACKSTACK1", "aws_secret_access_key": "stack-secret"}


def props(kind: str, wait: bool = True, attempts: int = 3, targets=((ARN, 80),)) -> dict:
    return {"kind": kind, "node": "filtering-1", "instanceId": INSTANCE, "wait": wait, "delay": 1,
            "maxAttempts": attempts, "targets": [{"targetGroupArn": a, "port": p} for a, p in targets]}


def health(state: str, port: int = 80, reason: str = "") -> dict:
    h = {"State": state, **({"Reason": reason, "Description": reason} if reason else {})}
    return {"TargetHealthDescriptions": [{"Target": {"Id": INSTANCE, "Port": port}, "TargetHealth": h}]}


def asks(arn: str = ARN, port: int = 80) -> dict:
    return {"TargetGroupArn": arn, "Targets": [{"Id": INSTANCE, "Port": port}]}


@pytest.fixture
def elb(monkeypatch):
    """A real ELBv2 client whose every call is answered by the Stubber; the provider uses it; no real sleeps."""
    monkeypatch.setattr("time.sleep", lambda _s: None)
    client = boto3.Session(region_name="eu-central-1", **KEYS).client("elbv2")
    stub = Stubber(client)
    monkeypatch.setattr(waits.TargetWaits, "_client", lambda self, props=None: client)
    with stub:
        yield stub
    stub.assert_no_pending_responses()


def test_in_service_waits_until_every_target_group_reports_the_node_healthy(elb):
    """Guards against a rollout that moves on while the load balancer still sends no traffic to the new node."""
    elb.add_response("describe_target_health", health("initial"), asks())
    elb.add_response("describe_target_health", health("healthy"), asks())
    elb.add_response("describe_target_health", health("healthy", 8443), asks(TLS_ARN, 8443))
    result = waits.TargetWaits().create(props("in-service", targets=((ARN, 80), (TLS_ARN, 8443))))
    assert result.id == "filtering-1-in-service" and result.outs["wait"] is True


def test_a_node_never_healthy_fails_naming_the_node_and_the_target_group(elb):
    """Guards against a timeout that says nothing useful: the error names the node, its instance, the target group,
    the port and what the load balancer said."""
    for _ in range(3):
        elb.add_response("describe_target_health", health("unhealthy", reason="Target.ResponseCodeMismatch"), asks())
    with pytest.raises(RuntimeError) as error:
        waits.TargetWaits().create(props("in-service", attempts=3))
    text = str(error.value)
    for part in ("filtering-1", INSTANCE, ARN, "port 80", "Target.ResponseCodeMismatch", "3 s"):
        assert part in text, text


def test_the_drain_waits_until_the_target_is_deregistered(elb):
    """Guards against a node terminated while the load balancer still drains its connections."""
    elb.add_response("describe_target_health", health("draining"), asks())
    elb.add_response("describe_target_health", health("draining"), asks())
    elb.add_response("describe_target_health", health("unused", reason="Target.NotRegistered"), asks())
    waits.TargetWaits().delete("filtering-1-drain", props("drain"))


def test_a_drain_that_outlasts_its_bound_fails_naming_the_node(elb):
    """Guards against a drain that gives up in silence and lets the instance go with connections open."""
    elb.add_response("describe_target_health", health("draining"), asks())
    for _ in range(2):
        elb.add_response("describe_target_health", health("draining"), asks())
    with pytest.raises(RuntimeError, match=f"filtering-1 \\({INSTANCE}\\) is still draining from target group {ARN}"):
        waits.TargetWaits().delete("filtering-1-drain", props("drain", attempts=2))


def test_a_target_group_already_gone_has_nothing_to_drain(elb):
    """Guards against a destroy that fails because the target group went first."""
    elb.add_client_error("describe_target_health", "TargetGroupNotFound", expected_params=asks())
    waits.TargetWaits().delete("filtering-1-drain", props("drain"))


def test_a_target_that_stays_registered_is_not_waited_for(elb):
    """Guards against the stuck step: a drain step deleted while its node stays in the target group (never
    deregistered) returns instead of waiting 600 s and failing every later `pulumi up`."""
    elb.add_response("describe_target_health", health("healthy"), asks())
    elb.add_response("describe_target_health", health("healthy"), asks())
    waits.TargetWaits().delete("filtering-1-drain", props("drain"))


def test_waits_turned_off_ask_nothing(elb):
    """Guards against the stuck step after waitForTargetHealth true -> false: the step records "off" and neither
    its create, its update nor its delete calls the load balancer (the Stubber refuses any call)."""
    provider = waits.TargetWaits()
    provider.create(props("in-service", wait=False))
    outs = provider.update("filtering-1-drain", props("drain"), props("drain", wait=False)).outs
    provider.delete("filtering-1-drain", outs)


def test_turning_the_waits_off_updates_the_steps_and_removes_none():
    """Guards against waitForTargetHealth false removing the steps (a removed drain step runs its delete against
    targets that stay registered): the same steps stay, only their `wait` changes, and the provider's diff says
    update, not replace."""
    before = program_run(postanalyticsCount=2, filteringCount=3)
    after = program_run(postanalyticsCount=2, filteringCount=3, waitForTargetHealth=False)
    steps = {f"filtering-{i}-{kind}" for i in range(3) for kind in ("in-service", "drained")}
    assert changed(before, after) == steps
    assert {r.urn for r in before.mocks.resources} == {r.urn for r in after.mocks.resources}, "a step was removed"
    for i in range(3):
        old, new = (run.mocks.named(f"filtering-{i}-drained").inputs for run in (before, after))
        assert old["wait"] is True and new["wait"] is False
        diff = waits.TargetWaits().diff("id", old, new)
        assert diff.changes and not diff.replaces, diff.replaces


def test_a_new_instance_replaces_the_steps_and_a_new_delay_does_not():
    """Guards against a drain step that is not replaced with its node (its delete would never run), and against a
    new deregistrationDelay replacing it (the replaced step's delete would run for a node that stays)."""
    old = props("drain")
    assert waits.TargetWaits().diff("id", old, {**old, "instanceId": "i-0fedcba9876543210"}).replaces == ["instanceId"]
    assert waits.TargetWaits().diff("id", old, {**old, "maxAttempts": 300}).replaces == []
    assert not waits.TargetWaits().diff("id", {**old, "__provider": "a"}, {**old, "__provider": "b"}).changes


def test_the_state_holds_a_reference_to_the_provider_not_its_code():
    """Guards against a machine's path in the state (dill pickles code objects with their file names): every
    machine would see a change. The provider is pickled by reference to an importable module."""
    pickled = base64.b64decode(serialize_provider(waits.TargetWaits()))
    assert b"components.waits" in pickled and b"TargetWaits" in pickled and b"/" not in pickled, pickled
    assert len(pickled) < 100, len(pickled)


def test_the_provider_process_finds_the_provider_from_the_project_directory():
    """Guards against a reference the provider process cannot resolve: it runs `python -m pulumi.dynamic` in the
    project directory (sys.path[0]) from the project's venv, with no PYTHONPATH, and unpickles the reference there."""
    pickled = serialize_provider(waits.TargetWaits())
    code = ("import base64, dill, sys; p = dill.loads(base64.b64decode(sys.argv[1])); "
            "print(type(p).__module__, type(p).__name__, p.serialize_as_secret_always)")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", code, pickled], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.stdout.split() == ["components.waits", "TargetWaits", "False"], done.stderr


# ----------------------------------------------------------------------------------------- whose credentials


def configured(config: dict) -> waits.TargetWaits:
    """The provider as the engine configures it: the whole stack config, namespaces kept, secrets decrypted."""
    provider = waits.TargetWaits()
    provider.configure(ConfigureRequest(Config(config, "wallarm-postanalytics")))
    return provider


def credentials(client):
    return client._request_signer._credentials.get_frozen_credentials()  # noqa: SLF001 - what the calls are signed with


def test_the_waits_use_the_stacks_profile_and_shared_files(tmp_path, monkeypatch):
    """Guards against waits that ask the ambient account: aws:profile, aws:sharedConfigFiles and
    aws:sharedCredentialsFiles pick the credentials and region, whatever the environment says."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAAMBIENTAMBIENT01")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "ambient")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    (tmp_path / "config").write_text("[profile deploy]\nregion = eu-west-3\n")
    (tmp_path / "credentials").write_text("[deploy]\naws_access_key_id = AKIAPROFILEPROFILE01\n"
                                          "aws_secret_access_key = from-profile\n")
    client = configured({"aws:profile": "deploy", "aws:sharedConfigFiles": f'["{tmp_path}/config"]',
                         "aws:sharedCredentialsFiles": f'["{tmp_path}/credentials"]'})._client()
    assert client.meta.region_name == "eu-west-3"
    assert credentials(client).access_key == "AKIAPROFILEPROFILE01"


def test_the_waits_use_the_stacks_static_keys_and_region(monkeypatch):
    """Guards against static keys set in the stack (aws:accessKey, secret) ignored for the ambient ones; they come
    from the provider's configuration, so they are never an input, an argument or state of the steps."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAAMBIENTAMBIENT01")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "ambient")
    client = configured({"aws:region": "eu-central-1", "aws:accessKey": "AKIASTACKSTACKSTACK1",
                         "aws:secretKey": "stack-secret", "wallarm-postanalytics:wallarmToken": "x"})._client()
    assert client.meta.region_name == "eu-central-1"
    assert credentials(client).access_key == "AKIASTACKSTACKSTACK1"
    step = program_run(postanalyticsCount=2, filteringCount=3).mocks.named("filtering-0-drained")
    assert not [k for k in step.inputs if "key" in k.lower() or "token" in k.lower()], sorted(step.inputs)


def test_the_waits_assume_the_role_chain_in_order(monkeypatch):
    """Guards against waits that ask the account of the base credentials while the provider works in an assumed
    role: each role of aws:assumeRoles is assumed with the previous one's credentials, with its session name,
    external ID and duration, and the load balancer is asked with the last one."""
    expiry = datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)
    answers = [("AKIAROLEONEROLEONE01", "arn:aws:iam::111111111111:role/one",
                {"RoleSessionName": "ci", "ExternalId": "ext-1", "DurationSeconds": 900}),
               ("AKIAROLETWOROLETWO02", "arn:aws:iam::222222222222:role/two",
                {"RoleSessionName": awsconfig.SESSION_NAME})]
    signed_with = []
    real_client = boto3.session.Session.client

    def client(self, service, *args, **kwargs):
        made = real_client(self, service, *args, **kwargs)
        if service == "sts":
            key, arn, extra = answers[len(signed_with)]
            signed_with.append(credentials(made).access_key)
            stub = Stubber(made)
            stub.add_response("assume_role", {"Credentials": {
                "AccessKeyId": key, "SecretAccessKey": "s", "SessionToken": "t", "Expiration": expiry}},
                {"RoleArn": arn, **extra})
            stub.activate()
        return made

    monkeypatch.setattr(boto3.session.Session, "client", client)
    roles = ('[{"roleArn": "arn:aws:iam::111111111111:role/one", "sessionName": "ci", "externalId": "ext-1", '
             '"duration": "15m"}, {"roleArn": "arn:aws:iam::222222222222:role/two"}]')
    elb = configured({"aws:region": "eu-central-1", "aws:accessKey": "AKIASTACKSTACKSTACK1",
                      "aws:secretKey": "stack-secret", "aws:assumeRoles": roles})._client()
    assert signed_with == ["AKIASTACKSTACKSTACK1", "AKIAROLEONEROLEONE01"]
    assert credentials(elb).access_key == "AKIAROLETWOROLETWO02"


@pytest.mark.parametrize("key,value", [
    ("aws:endpoints", '[{"elbv2": "http://localhost:4566"}]'),
    ("aws:assumeRoleWithWebIdentity", '{"roleArn": "arn:aws:iam::1:role/x"}'),
    ("aws:sharedConfigFiles", '["/a", "/b"]'),
    ("aws:someFutureKey", "x"),
])
def test_an_aws_key_the_waits_cannot_honour_turns_them_off_with_a_warning(key, value):
    """Guards against a silent fall-back to other credentials: the program declares the waits off and warns,
    naming the key; the provider, configured with it (a destroy runs without the program), asks nothing."""
    run = run_program(stack_config("dev", postanalyticsCount=2, filteringCount=3, **{key: value}))
    assert run.error is None, run.error
    assert [w for w in run.warnings if key in w and "waitForTargetHealth is off" in w], run.warnings
    assert run.mocks.named("filtering-0-drained").inputs["wait"] is False
    assert configured({key: value})._client() is None


def test_keys_that_do_not_change_the_account_keep_the_waits_on():
    """Guards against waits turned off by a setting that only tags or restricts what the provider does."""
    aws = awsconfig.aws_settings({"aws:region": "eu-central-1", "aws:defaultTags": '{"tags": {"a": "b"}}',
                                  "aws:skipRequestingAccountId": "true", "aws:allowedAccountIds": '["1"]'})
    assert awsconfig.unhonoured(aws) == []
    assert awsconfig.unhonoured({"assumeRoles": [{"roleArn": "r", "duration": "soon"}]}) == \
        ["aws:assumeRoles[0].duration is 'soon', not a duration such as 1h or 15m"]
