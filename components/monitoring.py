"""What the fleet reports after deploy: the CloudWatch agent's permissions and log groups, the alarms, the dashboard.

AgentAccess creates: the log groups the agent writes to (one per fleet for NGINX's and Wallarm's logs, one for
the metric events of its Prometheus scrapes), each with the logRetentionDays setting; an IAM role that only EC2
may assume, with one inline policy and nothing else; its instance profile, which every node carries.
The policy is narrower than AWS's managed CloudWatchAgentServerPolicy, which also grants ssm:GetParameter on
AmazonCloudWatch-* parameters, ec2:DescribeVolumes/DescribeTags, logs:CreateLogGroup and PutRetentionPolicy on
every group, and xray:*: here the configuration comes by SSH (no SSM), no tag dimension is used, and the groups
exist before any agent starts. What remains: writing streams of our three groups, and PutMetricData into the
Wallarm namespace only (the cloudwatch:namespace condition key).
That managed policy is the role's permissions boundary instead (AGENT_BOUNDARY), and the role and its profile live
under the path /wallarm/: the deploy role may create a role only with that boundary and only under that path
(iam/deploy-policy.json, condition key iam:PermissionsBoundary), so it can never make a role that holds more than
the agent's permissions, whatever inline policy it writes.

Monitoring creates: with alarmEmails, an SNS topic and one email subscription per address; the alarms of
components/telemetry.py's alarm_specs() (one aws.cloudwatch.MetricAlarm each; per node, its Node dimension is its
host name, as its agent sends it); the stack's dashboard.
`install_agents()` declares, on every node, the agent step (scripts/cloudwatch_agent.py) after its configure step:
it never delays a health check or a registration, and a failing agent install leaves the node serving. The same
step puts the node's certificate check in place (scripts/cert_expiry.py and its systemd timer), with tls.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Optional, Sequence

import pulumi
import pulumi_aws as aws

from . import telemetry
from .alarms import alarm_specs, dashboard_body
from .host import host_name, script_text
from .settings import MonitoringSettings

ROLES = ("filtering", "postanalytics")
# AWS-managed, in every account of the aws partition (the settings refuse other partitions).
AGENT_BOUNDARY = "arn:aws:iam::aws:policy/CloudWatchAgentServerPolicy"
# The path of the role and the profile: what the deploy role's IAM statements are scoped to.
IAM_PATH = "/wallarm/"


class AgentAccess(pulumi.ComponentResource):
    instance_profile: pulumi.Output[str]
    """The instance profile's name, for every node's instance."""
    log_groups: list[aws.cloudwatch.LogGroup]
    """The groups the agent writes to (its steps wait for them)."""

    def __init__(self, name: str, stack: str, retention_days: int, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("wallarm:index:AgentAccess", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        groups = [telemetry.log_group(stack, r) for r in ROLES] + [telemetry.metrics_log_group(stack)]
        self.log_groups = [
            aws.cloudwatch.LogGroup(f"{name}-{group.rsplit('/', 1)[1]}", name=group, retention_in_days=retention_days,
                                    tags={"Name": group}, opts=child)
            for group in groups]
        role = aws.iam.Role(
            f"{name}-role", description=f"CloudWatch agent of the Wallarm nodes of stack {stack}",
            assume_role_policy=json.dumps({"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}),
            permissions_boundary=AGENT_BOUNDARY, path=IAM_PATH, tags={"Name": f"{name}-role"}, opts=child)
        self.policy = aws.iam.RolePolicy(
            f"{name}-policy", role=role.id,
            policy=pulumi.Output.all(*[g.arn for g in self.log_groups]).apply(lambda arns: agent_policy(arns)),
            opts=child)
        profile = aws.iam.InstanceProfile(f"{name}-profile", role=role.name, path=IAM_PATH, tags={"Name": f"{name}-profile"},
                                          opts=pulumi.ResourceOptions(parent=self, depends_on=[self.policy]))
        self.role, self.instance_profile = role, profile.name
        self.register_outputs({"instanceProfile": self.instance_profile})


def agent_policy(log_group_arns: Sequence[str]) -> str:
    """The agent's only permissions: streams of our log groups, metrics into the Wallarm namespace."""
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "WriteOurLogGroups", "Effect": "Allow",
         "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
         "Resource": [a for arn in log_group_arns for a in (arn, f"{arn}:log-stream:*")]},
        {"Sid": "PutWallarmMetrics", "Effect": "Allow", "Action": "cloudwatch:PutMetricData", "Resource": "*",
         "Condition": {"StringEquals": {"cloudwatch:namespace": telemetry.NAMESPACE}}},
    ]}, sort_keys=True)


def install_agents(stack: str, region: str, nodes: Sequence[Any], access: AgentAccess) -> None:
    """The agent step on every node (Postanalytics or FilteringNode, once configured)."""
    for node in nodes:
        role = "filtering" if node.name.startswith("filtering") else "postanalytics"
        a = node.args  # FilteringNodeArgs or PostanalyticsArgs: the role's own shape and version
        bundle = telemetry.agent_bundle(stack, role, host_name(stack, node.name), region,
                                        telemetry.agent_package_url(region, a.shape.arch), a.version,
                                        telemetry.node_certificates(role, a.wallarm.tls, a.wallarm.mutual_tls),
                                        script_text("cert_expiry.py"))
        node.agent = node.steps.agent(bundle, [node.configured, *access.log_groups])


@dataclasses.dataclass(frozen=True)
class MonitoringArgs:
    stack: str
    """The stack's name: alarm and dashboard names, the Stack dimension."""
    region: str
    """The stack's region (the recover action's ARN, the dashboard's widgets and URL)."""
    settings: MonitoringSettings
    """Retention, emails and thresholds."""
    filtering: Sequence[tuple[str, pulumi.Input[str]]]
    """(node, instance ID) of every filtering node."""
    postanalytics: Sequence[tuple[str, pulumi.Input[str]]]
    """(node, instance ID) of every postanalytics server."""
    target_groups: Sequence[tuple[str, pulumi.Input[str]]]
    """(label, ARN suffix) of every target group."""
    load_balancer: Optional[pulumi.Input[str]] = None
    """The load balancer's ARN suffix."""
    certificate_arn: Optional[str] = None
    """The ACM certificate of the TLS listener, when there is one."""
    node_certificates: bool = False
    """The nodes hold certificates of the stack's CA (tls): each gets a certificate-days alarm."""


class Monitoring(pulumi.ComponentResource):
    dashboard_url: pulumi.Output[str]
    """The console address of the stack's dashboard."""
    alarms: list[aws.cloudwatch.MetricAlarm]

    def __init__(self, name: str, args: MonitoringArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("wallarm:index:Monitoring", name, None, opts)
        self.args, self._name = args, name
        child = pulumi.ResourceOptions(parent=self)
        self.topic = None
        if args.settings.alarm_emails:
            self.topic = aws.sns.Topic(f"{name}-alarms", tags={"Name": f"{name}-alarms"}, opts=child)
            for i, email in enumerate(args.settings.alarm_emails):
                aws.sns.TopicSubscription(f"{name}-email-{i}", topic=self.topic.arn, protocol="email",
                                          endpoint=email, opts=child)
        self.alarms = self._create_alarms(child)
        dashboard_name = f"wallarm-{args.stack}"
        suffixes = pulumi.Output.all(args.load_balancer, *[tg for _, tg in args.target_groups])
        labels = [label for label, _ in args.target_groups]
        self.dashboard = aws.cloudwatch.Dashboard(
            f"{name}-dashboard", dashboard_name=dashboard_name,
            dashboard_body=suffixes.apply(lambda v: dashboard_body(
                args.stack, args.region, list(zip(labels, v[1:])), v[0], int(args.settings.thresholds["period"]))),
            opts=child)
        self.dashboard_url = self.dashboard.dashboard_name.apply(
            lambda n: f"https://{args.region}.console.aws.amazon.com/cloudwatch/home?region={args.region}"
                      f"#dashboards/dashboard/{n}")
        self.register_outputs({"dashboardUrl": self.dashboard_url})

    def _create_alarms(self, child: pulumi.ResourceOptions) -> list[aws.cloudwatch.MetricAlarm]:
        a = self.args
        # The renderer is pure: IDs that are Outputs go in as placeholders and come back here.
        outputs: dict[str, pulumi.Input[str]] = {}

        def hold(key: str, value: pulumi.Input[str]) -> str:
            outputs[f"@{key}"] = value
            return f"@{key}"

        specs = alarm_specs(
            a.stack, a.region, a.settings.thresholds, [n for n, _ in a.filtering], [n for n, _ in a.postanalytics],
            {n: hold(f"instance:{n}", i) for n, i in [*a.filtering, *a.postanalytics]},
            [(label, hold(f"tg:{label}", tg)) for label, tg in a.target_groups],
            hold("lb", a.load_balancer) if a.load_balancer is not None else None, a.certificate_arn,
            hosts={n: host_name(a.stack, n) for n, _ in [*a.filtering, *a.postanalytics]},
            certificate_nodes=[n for n, _ in [*a.filtering, *a.postanalytics]] if a.node_certificates else ())
        real = lambda dims: {k: outputs.get(v, v) for k, v in dims.items()}  # noqa: E731
        notify = [self.topic.arn] if self.topic else []
        nodes = [n for n, _ in [*a.filtering, *a.postanalytics]]

        def logical(alarm_name: str) -> str:
            """A node's alarm is named after its kind, then the node (`monitoring-tnt-errors-filtering-3`): siblings
            that end in their number, as the nodes, so the plan shows a fleet's alarms as one line."""
            for n in nodes:
                if alarm_name.startswith(f"{a.stack}-{n}-"):
                    return f"{self._name}-{alarm_name[len(a.stack) + len(n) + 2:]}-{n}"
            return f"{self._name}-{alarm_name[len(a.stack) + 1:]}"

        alarms = []
        for spec in specs:
            metric = spec.get("metric")
            queries = [aws.cloudwatch.MetricAlarmMetricQueryArgs(
                id=q["id"], expression=q.get("expression"), label=q.get("label"), return_data=q["return_data"],
                metric=aws.cloudwatch.MetricAlarmMetricQueryMetricArgs(
                    namespace=q["metric"]["namespace"], metric_name=q["metric"]["metric_name"],
                    dimensions=real(q["metric"]["dimensions"]), stat=q["metric"]["stat"],
                    period=q["metric"]["period"]) if "metric" in q else None)
                for q in spec.get("queries", [])]
            actions = [*notify, *([spec["recover"]] if spec.get("recover") else [])]
            alarms.append(aws.cloudwatch.MetricAlarm(
                logical(spec["name"]), name=spec["name"], alarm_description=spec["description"],
                comparison_operator=spec["operator"], threshold=spec["threshold"],
                evaluation_periods=spec["evaluation_periods"], datapoints_to_alarm=spec["evaluation_periods"],
                treat_missing_data=spec["treat_missing_data"],
                namespace=metric["namespace"] if metric else None, metric_name=metric["name"] if metric else None,
                statistic=metric["stat"] if metric else None, period=spec["period"] if metric else None,
                dimensions=real(metric["dims"]) if metric else None, metric_queries=queries or None,
                alarm_actions=actions, ok_actions=notify, tags={"Name": spec["name"], "Kind": spec["kind"]},
                opts=child))
        return alarms
