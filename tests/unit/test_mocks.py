"""The mocks are as strict as AWS and the engine: each input AWS's API (or the provider's own validation, or the
engine) refuses is refused here too, with AWS's words, and the valid neighbour of each case is accepted."""

from __future__ import annotations

from typing import Callable, Optional

import re
import pulumi
import pulumi_aws as aws
import pulumi_awsx as awsx
import pytest
from pulumi import dynamic

from components import waits
from harness.mocks import ProviderMocks, StrictMonitor

LONG = "x" * 256


def declare(build: Callable[[], None]) -> Optional[str]:
    """Runs `build` as a Pulumi program under the project's strict mocks; returns the error, or None."""
    mocks = ProviderMocks()
    pulumi.runtime.set_mocks(mocks, project="strict", stack="test", preview=False, monitor=StrictMonitor(mocks))

    @pulumi.runtime.test
    def program():
        build()

    try:
        program()
    except Exception as exc:  # noqa: BLE001 - the refusal is what the test reads
        return str(exc)
    return None


def sg(name="web", description="Web servers", **kw):
    return lambda: aws.ec2.SecurityGroup(name, description=description, vpc_id="vpc-0123456789abcdef0", **kw)


def rule(description="HTTPS from clients", **kw):
    args = dict(security_group_id="sg-0123456789abcdef0", ip_protocol="tcp", from_port=443, to_port=443,
                cidr_ipv4="10.0.0.0/8", description=description)
    args.update(kw)
    return lambda: aws.vpc.SecurityGroupIngressRule("rule", **args)


def lb(name="front", **kw):
    return lambda: aws.lb.LoadBalancer(name, load_balancer_type="network", subnets=["subnet-0123456789abcdef0"], **kw)


def tg(name="nodes", **kw):
    return lambda: aws.lb.TargetGroup(name, port=80, protocol="TCP", vpc_id="vpc-0123456789abcdef0", **kw)


def instance(user_data="#cloud-config\n"):
    return lambda: aws.ec2.Instance("vm", ami="ami-0123456789abcdef0", instance_type="t3.micro", user_data=user_data)


def twice(build_a, build_b):
    def both():
        build_a()
        build_b()
    return both


class RawStep(dynamic.Resource):
    """A wait step with whatever inputs a test gives it."""


def wait_step(instance_id="i-0123456789abcdef0", port=80,
              arn="arn:aws:elasticloadbalancing:eu-central-1:1:targetgroup/entrypoint-http/1"):
    return lambda: waits.TargetWait("w", "drain", "n", instance_id, [waits.Target(arn, port)], True, 60)


REFUSED = [
    ("group-description-apostrophe", sg(description="the distribution's mirrors"), "for parameter GroupDescription is invalid"),
    ("group-description-256", sg(description=LONG), "for parameter GroupDescription is invalid"),
    ("group-name-sg-prefix", sg(name="sg-web"), "Group names may not be in the format sg-*"),
    ("group-name-256", lambda: aws.ec2.SecurityGroup("g", name=LONG, description="d"), "for parameter GroupName is invalid"),
    ("inline-rule-description", sg(ingress=[{"protocol": "tcp", "from_port": 1, "to_port": 1, "cidr_blocks": ["10.0.0.0/8"],
                                             "description": "it's"}]), "Invalid rule description"),
    ("rule-description-apostrophe", rule(description="HTTP to the distribution's package mirrors"), "Invalid rule description"),
    ("rule-description-256", rule(description="a" * 256), "Invalid rule description"),
    ("rule-description-non-ascii", rule(description="wstore — TLS"), "Invalid rule description"),
    ("rule-two-peers", rule(referenced_security_group_id="sg-0aaaaaaaaaaaaaaaa"), "exactly one of cidrIpv4"),
    ("tag-key-aws-prefix", sg(tags={"aws:owner": "me"}), "Tag keys starting with 'aws:' are reserved"),
    ("tag-key-129", sg(tags={"k" * 129: "v"}), "Tag key exceeds the maximum length of 128"),
    ("tag-value-257", sg(tags={"Name": "v" * 257}), "Tag value exceeds the maximum length of 256"),
    ("lb-autoname-over-32", lb(name="wallarm-production-frontend-nlb"), "cannot be longer than 32 characters"),
    ("lb-name-33", lambda: aws.lb.LoadBalancer("front", name="a" * 33), "cannot be longer than 32 characters"),
    ("lb-name-underscore", lambda: aws.lb.LoadBalancer("front", name="prod_eu"), "only alphanumeric characters and hyphens"),
    ("lb-name-leading-hyphen", lambda: aws.lb.LoadBalancer("front", name="-front"), "cannot begin or end with a hyphen"),
    ("lb-name-trailing-hyphen", lambda: aws.lb.LoadBalancer("front", name="front-"), "cannot begin or end with a hyphen"),
    ("lb-name-internal", lambda: aws.lb.LoadBalancer("front", name="internal-front"), 'cannot begin with "internal-"'),
    ("lb-name-prefix-7", lambda: aws.lb.LoadBalancer("front", name_prefix="wallarm"), "cannot be longer than 6 characters"),
    ("tg-autoname-over-32", tg(name="filtering-nodes-http-traffic"), "cannot be longer than 32 characters"),
    ("tg-name-dot", lambda: aws.lb.TargetGroup("nodes", name="nodes.http"), "only alphanumeric characters and hyphens"),
    ("tls-listener-without-certificate", lambda: aws.lb.Listener("tls", load_balancer_arn="arn:lb", port=443, protocol="TLS",
                                                                  default_actions=[{"type": "forward", "target_group_arn": "arn:tg"}]),
     "A certificate must be specified for HTTPS and TLS listeners"),
    ("tg-deregistration-delay-3601", tg(deregistration_delay="3601"), "expected deregistration_delay to be in the range (0 - 3600)"),
    ("lb-six-security-groups", lb(security_groups=[f"sg-0123456789abcdef{k}" for k in range(6)]),
     "at most 5 security groups, got 6"),
    ("lb-security-group-not-an-id", lb(security_groups=["firewall-loadbalancer"]), "is not a security group ID"),
    ("lb-security-group-twice", lb(security_groups=["sg-0123456789abcdef0", "sg-0123456789abcdef0"]), "listed twice"),
    ("gateway-lb-with-security-groups", lambda: aws.lb.LoadBalancer("gw", load_balancer_type="gateway",
                                                                    security_groups=["sg-0123456789abcdef0"]),
     "not supported for load balancers with type 'gateway'"),
    ("tg-health-check-tls", tg(health_check={"protocol": "TLS"}), 'to be one of ["HTTP" "HTTPS" "TCP"], got TLS'),
    ("tg-health-check-path-without-slash", tg(health_check={"protocol": "HTTP", "path": "healthz"}),
     "must begin with a '/' character"),
    ("tg-health-check-interval-4", tg(health_check={"protocol": "HTTP", "interval": 4}), "range (5 - 300), got 4"),
    ("tg-proxy-protocol-on-http", lambda: aws.lb.TargetGroup("alb", port=80, protocol="HTTP", proxy_protocol_v2=True,
                                                             vpc_id="vpc-0123456789abcdef0"),
     "proxy protocol v2 is supported only for Network Load Balancer target groups"),
    ("tg-health-check-port-0", tg(health_check={"port": "0", "protocol": "HTTP"}), "health check port 0 must be from 1 to 65535"),
    ("attachment-port-0", lambda: aws.lb.TargetGroupAttachment("t", target_group_arn="arn:tg", target_id="i-0123456789abcdef0",
                                                                 port=0), "port 0 must be from 1 to 65535"),
    ("attachment-target-not-an-instance", lambda: aws.lb.TargetGroupAttachment("t", target_group_arn="arn:tg",
                                                                                target_id="10.0.1.10", port=80),
     "an instance target group takes instance IDs"),
    ("eip-domain", lambda: aws.ec2.Eip("e", domain="classic"), 'expected domain to be one of ["vpc" "standard"]'),
    ("vpc-cidr-wider-than-16", lambda: awsx.ec2.Vpc("v", cidr_block="10.0.0.0/15"), "The block size must be between /16 and /28"),
    ("vpc-cidr-malformed", lambda: awsx.ec2.Vpc("v", cidr_block="10.0.0.300/16"), "This is not a valid CIDR block"),
    ("user-data-over-16k", instance(user_data="#" * 16385), "User data is limited to 16384 bytes"),
    ("key-pair-name-256", lambda: aws.ec2.KeyPair("k", key_name="k" * 256, public_key="ssh-ed25519 AAAA"),
     "for parameter KeyName is invalid"),
    ("wait-target-not-an-instance", wait_step(instance_id="10.0.1.10"), "an instance target group takes instance IDs"),
    ("wait-target-group-not-an-arn", wait_step(arn="arn:aws:elasticloadbalancing:eu-central-1:1:loadbalancer/net/x/1"),
     "'targetGroupArn' must be a target group ARN"),
    ("wait-port-0", wait_step(port=0), "port 0 must be from 1 to 65535"),
    ("wait-credential-input", lambda: RawStep(waits.TargetWaits(), "w", {
        "kind": "drain", "node": "n", "instanceId": "i-0123456789abcdef0", "targets": [], "wait": True, "delay": 15,
        "maxAttempts": 1, "secretKey": "s"}), "a credential is never an input of a wait step"),
    ("duplicate-urn", twice(sg(), sg()), "Duplicate resource URN 'urn:pulumi:test::strict::pulumi:pulumi:Stack$aws:ec2/securityGroup:SecurityGroup::web'; try giving it a unique name"),
]

ACCEPTED = [
    ("group-description-every-allowed-character", sg(description="a-zA-Z0-9. _-:/()#,@[]+=&;{}!$*")),
    ("rule-description-255", rule(description="a" * 255)),
    ("tag-value-256", sg(tags={"Name": "v" * 256})),
    ("lb-autoname-at-32", lb(name="wallarm-production-front")),
    ("lb-name-32", lambda: aws.lb.LoadBalancer("front", name="a" * 32)),
    ("lb-name-prefix-6", lambda: aws.lb.LoadBalancer("front", name_prefix="wallar")),
    ("user-data-16k", instance(user_data="#" * 16384)),
    ("tls-listener-with-certificate", lambda: aws.lb.Listener("tls", load_balancer_arn="arn:lb", port=443, protocol="TLS",
                                                               certificate_arn="arn:aws:acm:eu-central-1:1:certificate/x",
                                                               default_actions=[{"type": "forward", "target_group_arn": "arn:tg"}])),
    ("attachment-port-65535", lambda: aws.lb.TargetGroupAttachment("t", target_group_arn="arn:tg",
                                                                     target_id="i-0123456789abcdef0", port=65535)),
    ("eip-vpc", lambda: aws.ec2.Eip("e", domain="vpc")),
    ("vpc-cidr-28", lambda: awsx.ec2.Vpc("v", cidr_block="10.0.0.0/28")),
    ("tg-deregistration-delay-3600", tg(deregistration_delay="3600", health_check={"port": "traffic-port"})),
    ("wait-step", wait_step()),
    ("lb-five-security-groups", lb(security_groups=[f"sg-0123456789abcdef{k}" for k in range(5)])),
    ("tg-proxy-protocol-http-check", tg(proxy_protocol_v2=True, health_check={"protocol": "HTTP", "port": "8082",
                                                                              "path": "/healthz", "interval": 5})),
    ("same-name-other-type", twice(sg(), lambda: aws.ec2.KeyPair("web", public_key="ssh-ed25519 AAAA"))),
]



# Monitoring (components/monitoring.py): CloudWatch PutMetricAlarm / PutDashboard / CreateLogGroup, IAM CreateRole /
# CreateInstanceProfile, SNS CreateTopic.
def alarm(name="a", **kw):
    args = dict(name=name, comparison_operator="GreaterThanThreshold", evaluation_periods=1, threshold=0,
                metric_name="CPUUtilization", namespace="AWS/EC2", statistic="Maximum", period=60)
    args.update(kw)
    return lambda: aws.cloudwatch.MetricAlarm("alarm", **args)


def math_alarm(expression="DIFF(m0)", ids=("m0",), period=300):
    queries = [aws.cloudwatch.MetricAlarmMetricQueryArgs(id=i, metric=aws.cloudwatch.MetricAlarmMetricQueryMetricArgs(
        namespace="Wallarm", metric_name="wallarm_tnt_errors", stat="Maximum", period=period)) for i in ids]
    queries.append(aws.cloudwatch.MetricAlarmMetricQueryArgs(id="growth", expression=expression, return_data=True))
    return alarm(metric_name=None, namespace=None, statistic=None, period=None, metric_queries=queries)


def dashboard(name="wallarm-dev", widgets=1, pad=0):
    body = {"widgets": [{"type": "text", "x": 0, "y": 0, "width": 6, "height": 1,
                         "properties": {"markdown": "x" * pad}} for _ in range(widgets)]}
    import json
    return lambda: aws.cloudwatch.Dashboard("dash", dashboard_name=name, dashboard_body=json.dumps(body))


TRUST = '{"Version": "2012-10-17", "Statement": []}'
REFUSED += [
    ("alarm-name-256", alarm(name="a" * 256), "Member must have length less than or equal to 255"),
    ("alarm-math-unknown-function", math_alarm("DIF(m0)"), "unknown function DIF"),
    ("alarm-math-unbalanced", math_alarm("MAX([DIFF(m0), DIFF(m1)]"), "unbalanced brackets"),
    ("alarm-math-unknown-id", math_alarm("DIFF(m1)"), "unknown metric id m1"),
    ("alarm-math-uppercase-id", math_alarm("DIFF(M0)", ids=("M0",)), "must start with a lowercase letter"),
    ("alarm-math-search", math_alarm("SEARCH('{Wallarm,Node} x', 'Maximum', 300)"), "SEARCH is not supported"),
    ("alarm-period-90", math_alarm(period=90), "period must be 10, 30 or a multiple of 60"),
    ("alarm-bad-action", alarm(alarm_actions=["arn:aws:automate:eu-central-1:ec2:explode"]), "Invalid arn syntax"),
    ("alarm-range-over-a-day-under-an-hour", alarm(period=3000, evaluation_periods=29),
     "must be less than or equal to 86400"),
    ("alarm-range-over-a-week", alarm(period=3600, evaluation_periods=169), "must be less than or equal to 604800"),
    ("alarm-datapoints-over-periods", alarm(evaluation_periods=2, datapoints_to_alarm=3), "DatapointsToAlarm"),
    ("alarm-dimension-empty-value", alarm(dimensions={"Node": ""}), "dimension Node must have length 1 to 1024"),
    ("alarm-dimension-value-1025", alarm(dimensions={"Node": "n" * 1025}), "must have length 1 to 1024, got 1025"),
    ("alarm-31-dimensions", alarm(dimensions={f"d{n}": "x" for n in range(31)}), "a metric has at most 30"),
    ("dashboard-name-dot", dashboard(name="wallarm.dev"), "DashboardName contains invalid characters"),
    ("dashboard-name-256", dashboard(name="d" * 256), "DashboardName contains invalid characters"),
    ("dashboard-501-widgets", dashboard(widgets=501), "at most 500 are allowed"),
    ("dashboard-body-over-1mb", dashboard(pad=1024 * 1024), "larger than 1 MB"),
    ("log-group-retention-31", lambda: aws.cloudwatch.LogGroup("g", name="/wallarm/dev", retention_in_days=31),
     "expected retention_in_days to be one of"),
    ("role-name-65", lambda: aws.iam.Role("r", name="r" * 65, assume_role_policy=TRUST), "at most 64 characters"),
    ("role-autoname-over-64", lambda: aws.iam.Role("r" * 60, assume_role_policy=TRUST), "at most 64 characters"),
    ("profile-name-129", lambda: aws.iam.InstanceProfile("p", name="p" * 129), "at most 128 characters"),
    ("role-path-without-trailing-slash", lambda: aws.iam.Role("r", path="/wallarm", assume_role_policy=TRUST),
     'must begin and end with "/"'),
    ("profile-path-relative", lambda: aws.iam.InstanceProfile("p", path="wallarm/"), 'must begin and end with "/"'),
    ("role-boundary-not-a-policy", lambda: aws.iam.Role(
        "r", permissions_boundary="arn:aws:iam::aws:role/CloudWatchAgentServerPolicy", assume_role_policy=TRUST),
     "is not a managed policy ARN"),
    ("sns-topic-dot", lambda: aws.sns.Topic("t", name="wallarm.alarms"), "Topic Name"),
    ("sns-topic-257", lambda: aws.sns.Topic("t", name="t" * 257), "Topic Name"),
]
ACCEPTED += [
    ("alarm-name-255", alarm(name="a" * 255)),
    ("alarm-math-growth-of-two", math_alarm("MAX([DIFF(m0), DIFF(m1)])", ids=("m0", "m1"))),
    ("alarm-recover-action", alarm(alarm_actions=["arn:aws:automate:eu-central-1:ec2:recover"])),
    ("alarm-range-three-hours-of-hours", alarm(period=3600, evaluation_periods=3, datapoints_to_alarm=3)),
    ("alarm-range-a-week", alarm(period=3600, evaluation_periods=168)),
    ("alarm-30-dimensions", alarm(dimensions={f"d{n}": "x" * 1024 for n in range(30)})),
    ("dashboard-500-widgets", dashboard(name="wallarm_dev-1", widgets=500)),
    ("log-group-retention-30", lambda: aws.cloudwatch.LogGroup("g", name="/wallarm/dev/filtering", retention_in_days=30)),
    ("role-name-64", lambda: aws.iam.Role("r", name="r" * 64, assume_role_policy=TRUST)),
    ("profile-name-128", lambda: aws.iam.InstanceProfile("p", name="p" * 128)),
    ("role-under-a-path-with-a-boundary", lambda: aws.iam.Role(
        "r", path="/wallarm/", permissions_boundary="arn:aws:iam::aws:policy/CloudWatchAgentServerPolicy",
        assume_role_policy=TRUST)),
    ("sns-topic-256", lambda: aws.sns.Topic("t", name="t_-" * 85 + "t")),
]

@pytest.mark.parametrize("build,words", [(b, w) for _, b, w in REFUSED], ids=[c for c, _, _ in REFUSED])
def test_mocks_refuse_what_aws_refuses(build, words):
    """Guards against a mock that accepts what the first `pulumi up` would fail on."""
    error = declare(build)
    assert error is not None, "accepted"
    assert words in error, error


@pytest.mark.parametrize("build", [b for _, b in ACCEPTED], ids=[c for c, _ in ACCEPTED])
def test_mocks_accept_the_valid_neighbour(build):
    """Guards against rules so strict that valid inputs fail (a check that always refuses proves nothing)."""
    assert declare(build) is None


def test_the_sdk_floor_grows_with_the_count_and_the_benchmark_prints_it(capsys):
    """Guards against a floor figure that measures nothing (the note's "the SDK alone needs" claim rests on it):
    four times the bare resources cost clearly more CPU than one time, and `tools.benchmark --floor` prints it."""
    from tools import benchmark

    small, large = benchmark.floor(100), benchmark.floor(400)
    assert 0 < small < large, (small, large)
    assert benchmark.main(["--sizes", "1x2", "--runs", "1", "--no-rehearsal", "--floor"]) == 0
    assert re.search(r"SDK floor: \d+ bare resources take \d+\.\d\d CPU s", capsys.readouterr().out)
