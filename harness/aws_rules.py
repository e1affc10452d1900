"""What AWS's API and the Pulumi engine refuse, as the mocks enforce it.

Each rule takes a resource's type, logical name and inputs (secrets unwrapped, engine camelCase) and returns the
error AWS (or the provider's schema validation, which fails `pulumi preview` the same way) would answer, or None.
The wording follows AWS's own messages, so a test failure reads like the `pulumi up` that would have failed.

Sources: EC2 API reference (CreateSecurityGroup GroupName/GroupDescription, IpPermission Description, CreateTags,
RunInstances UserData, ImportKeyPair), ELBv2 API reference (CreateLoadBalancer / CreateTargetGroup Name), and the
engine's "Duplicate resource URN" check.
"""

from __future__ import annotations

import base64
import ipaddress
import re
from typing import Any, Callable, Optional

# Security group and rule descriptions: "Constraints: Up to 255 characters in length. Constraints for EC2-VPC:
# a-z, A-Z, 0-9, spaces, and ._-:/()#,@[]+=&;{}!$*"
DESCRIPTION_CHARS = re.compile(r"[a-zA-Z0-9. _\-:/()#,@\[\]+=&;{}!$*]*")
ELB_NAME = re.compile(r"[A-Za-z0-9-]+")
USER_DATA_MAX = 16384
# pulumi-aws autonames these from the logical name: name + "-" + 7 random hex characters.
AUTONAME_SUFFIX = "-0000000"

SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
LEGACY_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
INSTANCE = "aws:ec2/instance:Instance"
KEY_PAIR = "aws:ec2/keyPair:KeyPair"
LOAD_BALANCER = "aws:lb/loadBalancer:LoadBalancer"
TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"
LISTENER = "aws:lb/listener:Listener"
ATTACHMENT = "aws:lb/targetGroupAttachment:TargetGroupAttachment"
EIP = "aws:ec2/eip:Eip"
AWSX_VPC = "awsx:ec2:Vpc"
DYNAMIC = "pulumi-python:dynamic:Resource"
METRIC_ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
DASHBOARD = "aws:cloudwatch/dashboard:Dashboard"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
IAM_ROLE = "aws:iam/role:Role"
INSTANCE_PROFILE = "aws:iam/instanceProfile:InstanceProfile"
SNS_TOPIC = "aws:sns/topic:Topic"
# CloudWatch PutMetricAlarm, PutDashboard, CreateLogGroup; IAM CreateRole, CreateInstanceProfile; SNS CreateTopic.
DASHBOARD_NAME = re.compile(r"[A-Za-z0-9_-]{1,255}")
DASHBOARD_BODY_MAX = 1024 * 1024
DASHBOARD_WIDGETS_MAX = 500
SNS_NAME = re.compile(r"[A-Za-z0-9_-]{1,256}")
LOG_RETENTIONS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
                  3288, 3653)
ALARM_OPERATORS = ("GreaterThanOrEqualToThreshold", "GreaterThanThreshold", "LessThanThreshold",
                   "LessThanOrEqualToThreshold", "LessThanLowerOrGreaterThanUpperThreshold",
                   "LessThanLowerThreshold", "GreaterThanUpperThreshold")
# Metric math (CloudWatch user guide, "Metric math syntax and functions"): ids start with a lowercase letter; the
# functions the program may use. An expression naming an unknown function or id is refused by PutMetricAlarm.
MATH_ID = re.compile(r"[a-z][A-Za-z0-9_]*")
MATH_FUNCTIONS = {"ABS", "AVG", "CEIL", "DATAPOINT_COUNT", "DIFF", "DIFF_TIME", "FILL", "FIRST", "FLOOR", "IF",
                  "LAST", "LOG", "LOG10", "MAX", "MIN", "METRICS", "PERIOD", "RATE", "REMOVE_EMPTY", "RUNNING_SUM",
                  "SEARCH", "SORT", "STDDEV", "SUM", "TIME_SERIES"}


class Refused(Exception):
    """An input the real provider or AWS would refuse; the message is theirs."""


def _description(value: Any, parameter: str) -> Optional[str]:
    if value is None:
        return None
    if len(value) > 255 or not DESCRIPTION_CHARS.fullmatch(value):
        if parameter == "GroupDescription":
            return (f"InvalidParameterValue: Value ({value}) for parameter GroupDescription is invalid. "
                    "Character sets beyond ASCII are not supported.")
        return ("InvalidParameterValue: Invalid rule description. Valid descriptions are strings less than 256 "
                "characters from the following set:  a-zA-Z0-9. _-:/()#,@[]+=&;{}!$*")
    return None


def _security_group(name: str, i: dict) -> Optional[str]:
    group_name = i.get("name") or (i["namePrefix"] + "0" * 26 if i.get("namePrefix") else name + AUTONAME_SUFFIX)
    if group_name.lower().startswith("sg-"):
        return (f"InvalidParameterValue: Value ({group_name}) for parameter GroupName is invalid. "
                "Group names may not be in the format sg-*.")
    if len(group_name) > 255:
        return f"InvalidParameterValue: Value ({group_name}) for parameter GroupName is invalid. Too long."
    if "description" in i and not i["description"]:
        return "InvalidParameterValue: The request must contain the parameter GroupDescription"
    errors = [_description(i.get("description"), "GroupDescription")]
    for rule in (i.get("ingress") or []) + (i.get("egress") or []):
        errors.append(_description(rule.get("description"), "Description"))
    return next((e for e in errors if e), None)


def _rule(name: str, i: dict) -> Optional[str]:
    peers = [k for k in ("cidrIpv4", "cidrIpv6", "prefixListId", "referencedSecurityGroupId") if i.get(k)]
    if len(peers) != 1:
        return f"InvalidParameterCombination: exactly one of cidrIpv4, cidrIpv6, prefixListId or referencedSecurityGroupId is required, got {peers}"
    if i.get("ipProtocol") not in ("-1", "icmp", "icmpv6") and i.get("fromPort") is None:
        return "InvalidParameterValue: fromPort and toPort are required for tcp and udp"
    return _description(i.get("description"), "Description")


def _user_data(name: str, i: dict) -> Optional[str]:
    data = i.get("userData")
    if data is None and i.get("userDataBase64"):
        data = base64.b64decode(i["userDataBase64"]).decode("latin-1")
    if data is not None and len(data.encode()) > USER_DATA_MAX:
        return f"InvalidParameterValue: User data is limited to {USER_DATA_MAX} bytes"
    return None


def _key_pair(name: str, i: dict) -> Optional[str]:
    key_name = i.get("keyName") or name + AUTONAME_SUFFIX
    if len(key_name) > 255 or not key_name.isascii():
        return f"InvalidParameterValue: Value ({key_name}) for parameter KeyName is invalid. Up to 255 ASCII characters."
    return None


def _elb_name(kind: str, name: str, i: dict) -> Optional[str]:
    """Load balancer and target group names: the provider's own schema validation."""
    if i.get("namePrefix") is not None:
        prefix = i["namePrefix"]
        if len(prefix) > 6:
            return f'invalid value for name_prefix (cannot be longer than 6 characters): "{prefix}"'
        value = prefix
    else:
        value = i.get("name") or name + AUTONAME_SUFFIX
        if len(value) > 32:
            return f'invalid value for name (cannot be longer than 32 characters): "{value}"'
    if not ELB_NAME.fullmatch(value):
        return f'invalid value for name (only alphanumeric characters and hyphens allowed in "name"): "{value}"'
    if value.startswith("-") or (i.get("namePrefix") is None and value.endswith("-")):
        return f'invalid value for name (cannot begin or end with a hyphen): "{value}"'
    if kind == "lb" and value.lower().startswith("internal-"):
        return f'invalid value for name (cannot begin with "internal-"): "{value}"'
    return None


# Elastic Load Balancing quotas: "Security groups per load balancer: 5" (elb quotas, network/load-balancer-limits.md).
LB_SECURITY_GROUPS_MAX = 5


def _load_balancer(name: str, i: dict) -> Optional[str]:
    """Security groups on a load balancer (CreateLoadBalancer SecurityGroups): none on a gateway load balancer, at
    most 5, each a group ID. An NLB takes them only when it is created (load-balancer-security-groups.md)."""
    error = _elb_name("lb", name, i)
    if error:
        return error
    groups = i.get("securityGroups") or []
    if groups and i.get("loadBalancerType") == "gateway":
        return "ValidationError: Security groups are not supported for load balancers with type 'gateway'"
    if len(groups) > LB_SECURITY_GROUPS_MAX:
        return (f"TooManySecurityGroups: a load balancer can have at most {LB_SECURITY_GROUPS_MAX} security groups, "
                f"got {len(groups)}")
    bad = [g for g in groups if not re.fullmatch(r"sg-[0-9a-f]{8,17}", str(g))]
    if bad:
        return f"InvalidSecurityGroup: {bad[0]!r} is not a security group ID (sg-...)"
    if len(set(groups)) != len(groups):
        return "ValidationError: a security group is listed twice"
    return None


def _listener(name: str, i: dict) -> Optional[str]:
    if i.get("protocol") in ("TLS", "HTTPS") and not i.get("certificateArn"):
        return "CertificateNotFound: A certificate must be specified for HTTPS and TLS listeners"
    if not 1 <= int(i.get("port", 0)) <= 65535:
        return "ValidationError: port must be from 1 to 65535"
    return None


def _target_group(name: str, i: dict) -> Optional[str]:
    error = _elb_name("tg", name, i)
    if error:
        return error
    delay = i.get("deregistrationDelay")
    if delay is not None and not 0 <= int(delay) <= 3600:
        return f'expected deregistration_delay to be in the range (0 - 3600), got {delay}'
    check = i.get("healthCheck") or {}
    port: Any = check.get("port")
    if port not in (None, "traffic-port") and not 1 <= int(port) <= 65535:
        return f'ValidationError: health check port {port} must be from 1 to 65535 or traffic-port'
    # CreateTargetGroup: HealthCheckProtocol HTTP, HTTPS or TCP (TLS, UDP, TCP_UDP, GENEVE are not supported for
    # health checks); HealthCheckPath "must begin with a '/' character"; HealthCheckIntervalSeconds 5-300.
    protocol = check.get("protocol")
    if protocol is not None and protocol not in ("HTTP", "HTTPS", "TCP"):
        return f'expected health_check.0.protocol to be one of ["HTTP" "HTTPS" "TCP"], got {protocol}'
    path = check.get("path")
    if path is not None and protocol in ("HTTP", "HTTPS") and not str(path).startswith("/"):
        return f"ValidationError: Health check path must begin with a '/' character, got {path!r}"
    interval = check.get("interval")
    if interval is not None and not 5 <= int(interval) <= 300:
        return f"expected health_check.0.interval to be in the range (5 - 300), got {int(interval)}"
    # Proxy protocol v2 is a Network Load Balancer target group attribute (TCP, TLS, UDP, TCP_UDP).
    if i.get("proxyProtocolV2") and i.get("protocol") not in ("TCP", "TLS", "UDP", "TCP_UDP"):
        return (f"ValidationError: proxy protocol v2 is supported only for Network Load Balancer target groups "
                f"(TCP, TLS, UDP, TCP_UDP), not {i.get('protocol')}")
    return None


def _attachment(name: str, i: dict) -> Optional[str]:
    port = i.get("port")
    if port is not None and not 1 <= int(port) <= 65535:
        return f"ValidationError: port {int(port)} must be from 1 to 65535"
    if not str(i.get("targetId", "")).startswith("i-"):
        return f"ValidationError: an instance target group takes instance IDs (i-...), got {i.get('targetId')!r}"
    return None


def _target_wait(name: str, i: dict) -> Optional[str]:
    """components/waits.py's steps: what DescribeTargetHealth refuses, and no credential among the inputs (inputs
    are stored in the state in plaintext; the provider gets credentials from the stack config, never from here)."""
    credential = [k for k in i if re.search(r"(?i)access.?key|secret|token|password|credential", k)]
    if credential:
        return f"a credential is never an input of a wait step (state is plaintext): {credential}"
    if i.get("kind") not in ("in-service", "drain"):
        return f"kind must be in-service or drain, got {i.get('kind')!r}"
    if not str(i.get("instanceId", "")).startswith("i-"):
        return f"ValidationError: an instance target group takes instance IDs (i-...), got {i.get('instanceId')!r}"
    for t in i.get("targets") or [None]:
        if not t or ":targetgroup/" not in str(t.get("targetGroupArn", "")):
            return f"ValidationError: 'targetGroupArn' must be a target group ARN, got {t}"
        if not 1 <= int(t.get("port", 0)) <= 65535:
            return f"ValidationError: port {int(t.get('port', 0))} must be from 1 to 65535"
    if not 1 <= int(i.get("delay", 0)) or not 1 <= int(i.get("maxAttempts", 0)):
        return "a waiter needs a Delay and MaxAttempts of at least 1"
    return None


def _eip(name: str, i: dict) -> Optional[str]:
    if i.get("domain") not in (None, "vpc", "standard"):
        return f'expected domain to be one of ["vpc" "standard"], got {i.get("domain")}'
    return None


def _vpc_cidr(name: str, i: dict) -> Optional[str]:
    cidr = i.get("cidrBlock")
    if cidr is not None:
        try:
            prefix = ipaddress.IPv4Network(cidr).prefixlen
        except ValueError:
            return f"InvalidParameterValue: Value ({cidr}) for parameter cidrBlock is invalid. This is not a valid CIDR block."
        if not 16 <= prefix <= 28:
            return f"InvalidVpc.Range: The CIDR '{cidr}' is invalid. The block size must be between /16 and /28."
    return None


def _tags(name: str, i: dict) -> Optional[str]:
    for key, value in (i.get("tags") or {}).items():
        if len(key) > 128:
            return f"InvalidParameterValue: Tag key exceeds the maximum length of 128 characters: {key}"
        if key.lower().startswith("aws:"):
            return "InvalidParameterValue: Tag keys starting with 'aws:' are reserved for internal use"
        if value is not None and len(str(value)) > 256:
            return f"InvalidParameterValue: Tag value exceeds the maximum length of 256 characters (key {key})"
    return None


def _math(expression: str, ids: set[str]) -> Optional[str]:
    """The syntax basics PutMetricAlarm checks: balanced brackets, known functions, ids that exist."""
    depth = 0
    for char in re.sub(r"'[^']*'|\"[^\"]*\"", "", expression):
        depth += {"(": 1, "[": 1, ")": -1, "]": -1}.get(char, 0)
        if depth < 0:
            break
    if depth != 0:
        return f"ValidationError: Invalid metrics math expression: unbalanced brackets in '{expression}'"
    bare = re.sub(r"'[^']*'|\"[^\"]*\"", "''", expression)
    for word in re.findall(r"\b[A-Za-z_][A-Za-z0-9_]*\b(?=\s*\()", bare):
        if word not in MATH_FUNCTIONS:
            return f"ValidationError: Invalid metrics math expression: unknown function {word}"
    for word in re.findall(r"\b[a-z][A-Za-z0-9_]*\b(?!\s*\()", bare):
        if word not in ids:
            return f"ValidationError: Invalid metrics math expression: unknown metric id {word}"
    return None


def _metric_alarm(name: str, i: dict) -> Optional[str]:
    alarm_name = i.get("name") or name + AUTONAME_SUFFIX
    if not 1 <= len(alarm_name) <= 255:
        return f"ValidationError: 1 validation error detected: Value '{alarm_name}' at 'alarmName' failed to satisfy constraint: Member must have length less than or equal to 255"
    if i.get("comparisonOperator") not in ALARM_OPERATORS:
        return f'expected comparison_operator to be one of {list(ALARM_OPERATORS)}, got {i.get("comparisonOperator")}'
    if int(i.get("evaluationPeriods") or 0) < 1:
        return "ValidationError: evaluationPeriods must be at least 1"
    if len(i.get("alarmDescription") or "") > 1024:
        return "ValidationError: alarmDescription must have length less than or equal to 1024"
    queries = i.get("metricQueries") or []
    if queries and i.get("metricName"):
        return "ValidationError: Exactly one element of the metrics list should return data, and metricName must not be set with metrics"
    if not queries and not i.get("metricName"):
        return "ValidationError: Either metricName or metrics must be set"
    if queries:
        ids = [q.get("id", "") for q in queries]
        for qid in ids:
            if not MATH_ID.fullmatch(qid):
                return f"ValidationError: Invalid id {qid!r}: it must start with a lowercase letter and hold letters, digits and underscores"
        if len(set(ids)) != len(ids):
            return "ValidationError: The ids of the metrics must be unique"
        if sum(1 for q in queries if q.get("returnData")) != 1:
            return "ValidationError: Exactly one element of the metrics list should return data"
        for q in queries:
            if bool(q.get("expression")) == bool(q.get("metric")):
                return f"ValidationError: metric {q.get('id')} must have exactly one of expression or metric"
            if q.get("expression"):
                error = _math(q["expression"], set(ids) - {q["id"]})
                if error:
                    return error
                if "SEARCH(" in q["expression"]:
                    return "ValidationError: SEARCH is not supported on metric alarms"
            elif int(q["metric"].get("period") or 0) % 60 and int(q["metric"].get("period") or 0) not in (10, 30):
                return "ValidationError: period must be 10, 30 or a multiple of 60"
    elif int(i.get("period") or 0) % 60 and int(i.get("period") or 0) not in (10, 30):
        return "ValidationError: period must be 10, 30 or a multiple of 60"
    error = _alarm_range(i, queries) or _alarm_dimensions(i, queries)
    if error:
        return error
    for action in (i.get("alarmActions") or []) + (i.get("okActions") or []):
        if not re.fullmatch(r"arn:aws[a-z-]*:(sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]+|automate:[a-z0-9-]+:ec2:(recover|stop|terminate|reboot))", action):
            return f"ValidationError: Invalid arn syntax: {action}"
    return None


def _alarm_range(i: dict, queries: list) -> Optional[str]:
    """PutMetricAlarm (API reference, Period): Period x EvaluationPeriods is at most 7 days, and at most 1 day when
    the period is under an hour; DatapointsToAlarm is at most EvaluationPeriods."""
    periods = [int(q["metric"].get("period") or 0) for q in queries if q.get("metric")] or [int(i.get("period") or 0)]
    evaluations, period = int(i.get("evaluationPeriods") or 0), max(periods)
    limit = 86400 if period < 3600 else 604800
    if period * evaluations > limit:
        return (f"ValidationError: Period ({period}) multiplied by EvaluationPeriods ({evaluations}) must be less "
                f"than or equal to {limit}")
    if int(i.get("datapointsToAlarm") or 0) > evaluations:
        return "ValidationError: DatapointsToAlarm must be less than or equal to EvaluationPeriods"
    return None


def _alarm_dimensions(i: dict, queries: list) -> Optional[str]:
    """PutMetricAlarm's Dimension: at most 30 per metric, a name of 1 to 255 characters, a value of 1 to 1024."""
    for dims in [i.get("dimensions") or {}] + [q["metric"].get("dimensions") or {} for q in queries if q.get("metric")]:
        if len(dims) > 30:
            return f"ValidationError: {len(dims)} dimensions: a metric has at most 30"
        for key, value in dims.items():
            if not 1 <= len(key) <= 255:
                return f"ValidationError: dimension name {key!r} must have length 1 to 255"
            if not 1 <= len(str(value)) <= 1024:
                return (f"ValidationError: the value of dimension {key} must have length 1 to 1024, "
                        f"got {len(str(value))}")
    return None


def _dashboard(name: str, i: dict) -> Optional[str]:
    dashboard = i.get("dashboardName") or ""
    if not DASHBOARD_NAME.fullmatch(dashboard):
        return ("InvalidParameterInput: The value for field DashboardName contains invalid characters. It can only "
                f"contain alphanumerics, dash (-) and underscore (_), up to 255: {dashboard!r}")
    body = i.get("dashboardBody") or ""
    if len(body.encode()) > DASHBOARD_BODY_MAX:
        return "InvalidParameterInput: The dashboard body is larger than 1 MB"
    try:
        import json

        widgets = json.loads(body).get("widgets", [])
    except (ValueError, AttributeError):
        return "InvalidParameterInput: The field DashboardBody must be a valid JSON object"
    if len(widgets) > DASHBOARD_WIDGETS_MAX:
        return f"InvalidParameterInput: The dashboard has {len(widgets)} widgets; at most {DASHBOARD_WIDGETS_MAX} are allowed"
    return None


def _log_group(name: str, i: dict) -> Optional[str]:
    group = i.get("name") or name + AUTONAME_SUFFIX
    if not re.fullmatch(r"[\w\-/.#]{1,512}", group) or group.startswith("aws/"):
        return f"InvalidParameterException: 1 validation error detected: Value '{group}' at 'logGroupName' failed to satisfy constraint"
    retention: Any = i.get("retentionInDays")
    if retention not in (None, 0) and int(retention) not in LOG_RETENTIONS:
        return f"expected retention_in_days to be one of {list(LOG_RETENTIONS)}, got {retention}"
    return None


def _iam_name(kind: str, limit: int, name: str, i: dict) -> Optional[str]:
    """CreateRole RoleName (64) and CreateInstanceProfile InstanceProfileName (128): [\w+=,.@-]."""
    value = i.get("name") or (i["namePrefix"] + "0" * 26 if i.get("namePrefix") else name + AUTONAME_SUFFIX)
    if len(value) > limit or not re.fullmatch(r"[\w+=,.@-]+", value):
        return f'invalid value for name (must be at most {limit} characters of [\\w+=,.@-]): "{value}"'
    # Path: "/" or /.../ of printable ASCII, at most 512 (IAM API CreateRole, Path).
    path = i.get("path")
    if path is not None and (len(path) > 512 or not re.fullmatch(r"/|/[\x21-\x7e]+/", path)):
        return f'ValidationError: path must begin and end with "/" (printable ASCII, at most 512): "{path}"'
    # PermissionsBoundary: a managed policy's ARN (IAM API CreateRole).
    boundary = i.get("permissionsBoundary")
    if kind == "role" and boundary and not re.fullmatch(r"arn:aws:iam::(aws|\d{12}):policy/[\x21-\x7e]+", boundary):
        return f'InvalidInput: ARN {boundary} is not a managed policy ARN'
    if kind == "role" and i.get("assumeRolePolicy") is not None:
        import json

        try:
            json.loads(i["assumeRolePolicy"])
        except ValueError:
            return "MalformedPolicyDocument: the assume role policy is not JSON"
    return None


def _sns_topic(name: str, i: dict) -> Optional[str]:
    topic = i.get("name") or name + AUTONAME_SUFFIX
    if not SNS_NAME.fullmatch(topic):
        return ("InvalidParameter: Invalid parameter: Topic Name (up to 256 alphanumerics, hyphens and underscores): "
                f"{topic!r}")
    return None


RULES: dict[str, list[Callable[[str, dict], Optional[str]]]] = {
    SECURITY_GROUP: [_security_group],
    INGRESS: [_rule],
    EGRESS: [_rule],
    LEGACY_RULE: [lambda n, i: _description(i.get("description"), "Description")],
    INSTANCE: [_user_data],
    KEY_PAIR: [_key_pair],
    LOAD_BALANCER: [_load_balancer],
    TARGET_GROUP: [_target_group],
    LISTENER: [_listener],
    ATTACHMENT: [_attachment],
    EIP: [_eip],
    AWSX_VPC: [_vpc_cidr],
    DYNAMIC: [_target_wait],
    METRIC_ALARM: [_metric_alarm],
    DASHBOARD: [_dashboard],
    LOG_GROUP: [_log_group],
    IAM_ROLE: [lambda n, i: _iam_name("role", 64, n, i)],
    INSTANCE_PROFILE: [lambda n, i: _iam_name("profile", 128, n, i)],
    SNS_TOPIC: [_sns_topic],
}


def check(typ: str, name: str, inputs: dict) -> None:
    """Raises Refused with AWS's answer when the inputs would be refused."""
    checks = RULES.get(typ, [])
    if typ.startswith("aws:"):
        checks = [*checks, _tags]
    for rule in checks:
        error = rule(name, inputs)
        if error:
            raise Refused(f"{typ} {name}: {error}")


def duplicate_urn(urn: str) -> str:
    """The engine's words for two resources with one URN."""
    return f"Duplicate resource URN '{urn}'; try giving it a unique name"
