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
    port = check.get("port")
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
