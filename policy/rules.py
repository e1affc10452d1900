"""Policy checks, importable by tests without starting a policy pack (policy/__main__.py does that).

The engine hands a policy read-only proxies (`_DictProxy`, `_ListProxy`), numbers as floats, and, during a
preview, sentinel strings for values not known yet. Every read goes through `_get` / `_items`, which turn
those into plain values or `UNKNOWN`; an unknown value is checked again by `pulumi up`, when it is known.

Policies (all mandatory):
- no-internet-ingress-beyond-http: no ingress from the internet but TCP 80 and 443. "The internet" is any
  source wider than /8 (IPv4) or /32 (IPv6): `0.0.0.0/1` is half of it, and two such rules are all of it.
- wstore-narrow-sources: the wstore ports (3313 and 6388, plus the stack's `wstorePort` / `wstoreTlsPort`
  and the policy's `wstorePorts` config) admit only security-group references or ranges no wider than /16
  (IPv6 /48): an exposed wstore discloses traffic and runs Lua and OS commands for whoever reaches it.
- private-nodes: only an instance tagged Role=jumphost may get a public IP; every other instance sets
  associatePublicIpAddress false (unset, the subnet decides, and default-VPC subnets say yes).
- no-elastic-ip-on-nodes: no Elastic IP attached to an instance other than the jump host.
- imdsv2-hop-limit-1: instances require IMDSv2 tokens with a PUT hop limit of 1 (or disable the endpoint).
- encrypted-volumes: root and extra EBS volumes of instances, and standalone volumes, are encrypted.
- strong-tls-keys: no ECDSA P224 (pulumi-tls's default curve), no RSA under 2048 bits.
- nlb-security-group: a network load balancer has a security group. AWS attaches one to an NLB only when it is
  created (adding it later replaces the load balancer and its DNS name; load-balancer-security-groups.md of the NLB
  guide); without one, client ranges can be enforced only on the targets, and the TLS listener's traffic reaches
  them from the load balancer's own addresses, so nothing can filter clients on 443.

Each rule form is covered: `aws:vpc/securityGroupIngressRule`, the legacy `aws:ec2/securityGroupRule`
(type ingress), and the inline `ingress` of `aws:ec2/securityGroup` and `aws:ec2/defaultSecurityGroup`.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
from typing import Any, Iterator, Mapping, Optional

from pulumi_policy import (EnforcementLevel, PolicyConfigSchema, ResourceValidationPolicy,
                           StackValidationPolicy)
from pulumi_policy.proxy import UnknownValueError

PROJECT = "wallarm-postanalytics"
DEFAULT_WSTORE_PORTS = (3313, 6388)
HTTP_PORTS = frozenset({80, 443})
# A source with a shorter prefix than this is the internet; a wstore source must be at least this narrow.
INTERNET_PREFIX = {4: 8, 6: 32}
WSTORE_PREFIX = {4: 16, 6: 48}
PROTOCOLS = {"-1": "all", "all": "all", "tcp": "tcp", "6": "tcp", "udp": "udp", "17": "udp",
             "icmp": "icmp", "1": "icmp", "icmpv6": "icmpv6", "58": "icmpv6"}

INSTANCE = "aws:ec2/instance:Instance"
INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
LEGACY_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
LOAD_BALANCERS = ("aws:lb/loadBalancer:LoadBalancer", "aws:alb/loadBalancer:LoadBalancer")
INLINE_GROUPS = ("aws:ec2/securityGroup:SecurityGroup", "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup")


class _Unknown:
    def __repr__(self) -> str:
        return "<unknown until the resource it comes from exists>"


UNKNOWN = _Unknown()


def _get(mapping: Any, key: str, default: Any = None) -> Any:
    """mapping[key] from a proxy or a dict: default when absent or null, UNKNOWN when not known yet."""
    if not isinstance(mapping, Mapping):
        return default
    try:
        value = mapping[key]
    except KeyError:
        return default
    except UnknownValueError:
        return UNKNOWN
    return default if value is None else value


def _items(sequence: Any) -> Iterator[Any]:
    """The elements of a list proxy (or UNKNOWN for an unknown list or element); nothing for None."""
    if sequence is UNKNOWN:
        yield UNKNOWN
        return
    if sequence is None or isinstance(sequence, (str, bytes, Mapping)):
        return
    for i in range(len(sequence)):
        try:
            yield sequence[i]
        except UnknownValueError:
            yield UNKNOWN


def _is_true(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


# ---- security group rules ---------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Ingress:
    """One ingress permission, whatever resource form declared it."""
    where: str
    protocol: str
    """tcp, udp, icmp, icmpv6, all, or the protocol as written."""
    ports: Optional[range]
    """The port range; None for every port (protocol all) or a protocol without ports (ICMP)."""
    cidrs: tuple
    prefix_lists: tuple
    references: bool
    """A source is a security group (or the group itself)."""

    def describe(self) -> str:
        if self.protocol == "all":
            return "every protocol and port"
        if self.ports is None:
            return self.protocol
        first, last = self.ports.start, self.ports.stop - 1
        return f"{self.protocol} port {first}" if first == last else f"{self.protocol} ports {first}-{last}"

    def covers(self, port: int) -> bool:
        if self.protocol == "all":
            return True
        return self.protocol in ("tcp", "udp") and self.ports is not None and port in self.ports


def _ingress(where: str, protocol: Any, from_port: Any, to_port: Any, cidrs: list, prefix_lists: list,
             references: bool) -> Ingress:
    proto = PROTOCOLS.get(str(protocol).lower(), str(protocol)) if protocol is not UNKNOWN else "unknown"
    ports = None
    if proto in ("tcp", "udp"):
        first = int(from_port) if isinstance(from_port, (int, float)) else 0
        last = int(to_port) if isinstance(to_port, (int, float)) else 65535
        ports = range(min(first, last), max(first, last) + 1)
    return Ingress(where, proto, ports, tuple(cidrs), tuple(prefix_lists), references)


def ingress_of(args) -> list[Ingress]:
    """Every ingress permission a resource declares, in one shape."""
    p, typ = args.props, args.resource_type
    if typ == INGRESS_RULE:
        return [_ingress("ingress rule", _get(p, "ipProtocol"), _get(p, "fromPort"), _get(p, "toPort"),
                         [c for c in (_get(p, "cidrIpv4"), _get(p, "cidrIpv6")) if c is not None],
                         [x for x in (_get(p, "prefixListId"),) if x is not None],
                         _get(p, "referencedSecurityGroupId") is not None)]
    if typ == LEGACY_RULE:
        if _get(p, "type") != "ingress":
            return []
        return [_ingress("security group rule", _get(p, "protocol"), _get(p, "fromPort"), _get(p, "toPort"),
                         [*_items(_get(p, "cidrBlocks")), *_items(_get(p, "ipv6CidrBlocks"))],
                         list(_items(_get(p, "prefixListIds"))),
                         _get(p, "sourceSecurityGroupId") is not None or _is_true(_get(p, "self")))]
    if typ in INLINE_GROUPS:
        rules = []
        for i, rule in enumerate(_items(_get(p, "ingress"))):
            if rule is UNKNOWN:
                continue
            rules.append(_ingress(f"inline ingress #{i}", _get(rule, "protocol"), _get(rule, "fromPort"),
                                  _get(rule, "toPort"),
                                  [*_items(_get(rule, "cidrBlocks")), *_items(_get(rule, "ipv6CidrBlocks"))],
                                  list(_items(_get(rule, "prefixListIds"))),
                                  bool(list(_items(_get(rule, "securityGroups")))) or _is_true(_get(rule, "self"))))
        return rules
    return []


def _network(cidr: Any):
    """The parsed network, UNKNOWN, or None when the text is no CIDR."""
    if cidr is UNKNOWN:
        return UNKNOWN
    try:
        return ipaddress.ip_network(str(cidr), strict=False)
    except ValueError:
        return None


def _span(net) -> str:
    share = net.num_addresses / (2 ** net.max_prefixlen)
    return f"1/{round(1 / share)} of the IPv{net.version} internet" if share < 1 else f"the whole IPv{net.version} internet"


def check_internet_ingress(args, report_violation) -> None:
    for rule in ingress_of(args):
        http_only = rule.protocol == "tcp" and rule.ports is not None and set(rule.ports) <= HTTP_PORTS
        for cidr in rule.cidrs:
            net = _network(cidr)
            if net is UNKNOWN:
                continue
            if net is None:
                report_violation(f"{rule.where}: source {cidr!r} is not a CIDR, so its reach cannot be checked")
            elif net.prefixlen < INTERNET_PREFIX[net.version] and not http_only:
                report_violation(f"{rule.where} opens {rule.describe()} to {cidr}, {_span(net)} (any source wider "
                                 f"than /{INTERNET_PREFIX[net.version]} counts as the internet); only TCP 80 "
                                 "and 443 may be open to it")


def wstore_ports(config: Optional[Mapping]) -> set[int]:
    """The defaults, the stack's own port settings (the engine passes the stack config in PULUMI_CONFIG), and
    the policy's `wstorePorts` config."""
    ports = set(DEFAULT_WSTORE_PORTS)
    stack = json.loads(os.environ.get("PULUMI_CONFIG") or "{}")
    for key in ("wstorePort", "wstoreTlsPort"):
        value = stack.get(f"{PROJECT}:{key}")
        if value not in (None, ""):
            ports.add(int(value))
    for value in _items(_get(config, "wstorePorts")):
        if value is not UNKNOWN:
            ports.add(int(value))
    return ports


def check_wstore_sources(args, report_violation) -> None:
    ports = sorted(wstore_ports(args.get_config()))
    for rule in ingress_of(args):
        hit = [port for port in ports if rule.covers(port)]
        if not hit:
            continue
        label = f"{rule.where} admits {rule.describe()} (wstore port {', '.join(map(str, hit))})"
        for cidr in rule.cidrs:
            net = _network(cidr)
            if net is None or (net is not UNKNOWN and net.prefixlen < WSTORE_PREFIX[net.version]):
                report_violation(f"{label} from {cidr}, wider than /{WSTORE_PREFIX[4]} (IPv6 /{WSTORE_PREFIX[6]}); "
                                 "reference the filtering nodes' security group or list narrow ranges")
        for prefix_list in rule.prefix_lists:
            report_violation(f"{label} from prefix list {prefix_list}, whose width the policy cannot check; "
                             "reference a security group or list narrow ranges")


# ---- instances and volumes -------------------------------------------------------------------------------

def _role(props) -> str:
    role = _get(_get(props, "tags", {}), "Role")
    return role if isinstance(role, str) else "untagged"


def check_private_nodes(args, report_violation) -> None:
    if args.resource_type != INSTANCE:
        return
    role = _role(args.props)
    if role == "jumphost":
        return
    public = _get(args.props, "associatePublicIpAddress")
    if public is True:
        report_violation(f"{role} instance gets a public IP address; only the jump host (tag Role=jumphost) may: "
                         "set associate_public_ip_address=False and reach it through the jump host")
    elif public is None:
        report_violation(f"{role} instance leaves associatePublicIpAddress unset, so the subnet decides (default-VPC "
                         "subnets give a public IP); set associate_public_ip_address=False")


def check_elastic_ips(args, report_violation) -> None:
    """Stack policy: an Elastic IP whose instance property comes from an instance that is not the jump host."""
    for resource in args.resources:
        if resource.resource_type not in ("aws:ec2/eip:Eip", "aws:ec2/eipAssociation:EipAssociation"):
            continue
        key = "instance" if resource.resource_type == "aws:ec2/eip:Eip" else "instanceId"
        for source in resource.property_dependencies.get(key, []):
            if source.resource_type == INSTANCE and _role(source.props) != "jumphost":
                report_violation(f"Elastic IP {resource.name} is attached to {_role(source.props)} instance "
                                 f"{source.name}; only the jump host may have a public address", resource.urn)


def check_metadata(args, report_violation) -> None:
    if args.resource_type != INSTANCE:
        return
    role = _role(args.props)
    metadata = _get(args.props, "metadataOptions", {})
    if metadata is UNKNOWN or _get(metadata, "httpEndpoint") == "disabled":
        return
    tokens = _get(metadata, "httpTokens")
    if tokens is not UNKNOWN and tokens != "required":
        report_violation(f"{role} instance allows IMDSv1 (httpTokens {tokens or 'unset'}); "
                         "set metadata_options http_tokens to required")
    hops = _get(metadata, "httpPutResponseHopLimit")
    if hops is not UNKNOWN and (not isinstance(hops, (int, float)) or int(hops) != 1):
        report_violation(f"{role} instance has a metadata hop limit of {int(hops) if hops else 'unset (the AMI decides)'}"
                         "; set http_put_response_hop_limit to 1 so that no container on it reaches the "
                         "instance's credentials")


def check_volumes(args, report_violation) -> None:
    p = args.props
    if args.resource_type == "aws:ec2/volume:Volume":
        if not _is_true(_get(p, "encrypted")) and _get(p, "encrypted") is not UNKNOWN:
            report_violation("EBS volume is not encrypted; set encrypted to true")
        return
    if args.resource_type != INSTANCE:
        return
    role = _role(p)
    root = _get(p, "rootBlockDevice", {})
    if root is not UNKNOWN and not _is_true(_get(root, "encrypted")) and _get(root, "encrypted") is not UNKNOWN:
        report_violation(f"{role} instance's root volume is not encrypted; set root_block_device encrypted to true")
    for device in _items(_get(p, "ebsBlockDevices")):
        encrypted = _get(device, "encrypted")
        if device is not UNKNOWN and encrypted is not UNKNOWN and not _is_true(encrypted):
            report_violation(f"{role} instance's EBS volume {_get(device, 'deviceName', '?')} is not encrypted; "
                             "set encrypted to true")


def check_keys(args, report_violation) -> None:
    if args.resource_type != "tls:index/privateKey:PrivateKey":
        return
    p = args.props
    algorithm = _get(p, "algorithm")
    if algorithm == "ECDSA" and _get(p, "ecdsaCurve", "P224") == "P224":
        report_violation("ECDSA key on P224 (pulumi-tls's default): use P256 or stronger")
    bits = _get(p, "rsaBits", 2048)
    if algorithm == "RSA" and isinstance(bits, (int, float)) and bits < 2048:
        report_violation(f"RSA key of {int(bits)} bits: use 2048 or more")


def check_nlb_security_group(args, report_violation) -> None:
    if args.resource_type not in LOAD_BALANCERS or _get(args.props, "loadBalancerType") != "network":
        return
    groups = _get(args.props, "securityGroups")
    if groups is UNKNOWN:
        return
    if not list(_items(groups)):
        how = "an empty securityGroups list" if groups is not None else "securityGroups unset"
        report_violation(f"network load balancer has no security group ({how}); AWS attaches one only when the load balancer "
                         "is created (adding it later replaces the load balancer and its DNS name), and without it "
                         "clients on 443 cannot be filtered: set security_groups and admit the clients there")


_MANDATORY = EnforcementLevel.MANDATORY
WSTORE_CONFIG = PolicyConfigSchema(properties={"wstorePorts": {
    "type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 65535},
    "default": list(DEFAULT_WSTORE_PORTS),
    "description": "wstore listener ports, when a stack moves them and the policy cannot read its config"}})

POLICIES = [
    ResourceValidationPolicy(name="no-internet-ingress-beyond-http", description="Only TCP 80 and 443 may be "
                             "open to the internet (any source wider than /8): wstore and SSH never.",
                             validate=check_internet_ingress, enforcement_level=_MANDATORY),
    ResourceValidationPolicy(name="wstore-narrow-sources", description="wstore ports admit only security-group "
                             "references or ranges no wider than /16.", validate=check_wstore_sources,
                             enforcement_level=_MANDATORY, config_schema=WSTORE_CONFIG),
    ResourceValidationPolicy(name="private-nodes", description="Only the jump host has a public IP address.",
                             validate=check_private_nodes, enforcement_level=_MANDATORY),
    StackValidationPolicy(name="no-elastic-ip-on-nodes", description="No Elastic IP on an instance other than "
                          "the jump host.", validate=check_elastic_ips, enforcement_level=_MANDATORY),
    ResourceValidationPolicy(name="imdsv2-hop-limit-1", description="Instances require IMDSv2 with a hop limit "
                             "of 1.", validate=check_metadata, enforcement_level=_MANDATORY),
    ResourceValidationPolicy(name="encrypted-volumes", description="Root and EBS volumes are encrypted.",
                             validate=check_volumes, enforcement_level=_MANDATORY),
    ResourceValidationPolicy(name="nlb-security-group", description="A network load balancer has a security group "
                             "from creation.", validate=check_nlb_security_group, enforcement_level=_MANDATORY),
    ResourceValidationPolicy(name="strong-tls-keys", description="No ECDSA P224 or short RSA keys.",
                             validate=check_keys, enforcement_level=_MANDATORY),
]
