"""Policy checks, importable by tests without starting a policy pack (policy/__main__.py does that).

The engine hands a policy read-only proxies (`_DictProxy`, `_ListProxy`), numbers as floats, and, during a
preview, sentinel strings for values not known yet. Every read goes through `_get` / `_items`, which turn
those into plain values or `UNKNOWN`; an unknown value is checked again by `pulumi up`, when it is known.

Policies (all mandatory):
- no-internet-ingress-beyond-http: no ingress from the internet but TCP 80 and 443. "The internet" is any
  source wider than /8 (IPv4) or /32 (IPv6): `0.0.0.0/1` is half of it, and two such rules are all of it. A prefix
  list counts as the internet too (only its ID reaches the pack, and its entries change without a deployment).
- wstore-narrow-sources: the wstore ports (3313 and 6388, plus the stack's `wstorePort` / `wstoreTlsPort`
  and the policy's `wstorePorts` config) admit only security-group references or ranges no wider than /16
  (IPv6 /64): an exposed wstore discloses traffic and runs Lua and OS commands for whoever reaches it.
- wstore-public-sources-need-mutual-tls: a public source on wstore only on the TLS port with `tls` and
  `mutualTls` on in the stack config, as the settings require of externalFilteringCidrs.
- ssh-narrow-sources: SSH from no IPv6 source wider than /64.
- no-wide-union-of-sources (stack): per security group, protocol and port, the CIDRs of all rules folded and
  judged as one range (SSH one /8, wstore one /16, other ports but TCP 80/443 one /8).
- private-nodes: only the jump host (tag Role=jumphost and declared by the JumpHost component) may get a public
  IP; every other instance sets associatePublicIpAddress false (unset, the subnet decides, and default-VPC subnets
  say yes); a launch template's network interfaces say "false".
- jump-host-exemption (stack): one jump host, in the stack's jump-host security group, whose groups admit only SSH.
- no-elastic-ip-on-nodes (stack): no Elastic IP on an instance, or a network interface, other than the jump host's.
- imdsv2-hop-limit-1: instances and launch templates require IMDSv2 tokens with a PUT hop limit of 1 (or disable
  the endpoint).
- encrypted-volumes: root and extra EBS volumes of instances and launch templates, and standalone volumes, are
  encrypted.
- strong-tls-keys: no ECDSA P224 (pulumi-tls's default curve), no RSA under 2048 bits.
- nlb-security-group: a network load balancer has a security group. AWS attaches one to an NLB only when it is
  created (adding it later replaces the load balancer and its DNS name; load-balancer-security-groups.md of the NLB
  guide); without one, client ranges can be enforced only on the targets, and the TLS listener's traffic reaches
  them from the load balancer's own addresses, so nothing can filter clients on 443.
- no-load-balancer-path-to-ssh-or-wstore: no load-balancer listener or target group on SSH (22) or a wstore
  port: a load balancer would carry the internet's traffic past every security-group reference.
- no-all-protocol-egress: no egress rule for every protocol and port; each egress names its port (the program's
  table: SSH, HTTPS, HTTP for the package mirrors, wstore, the protected application).
- bounded-certificate-lifetimes: a CA certificate valid at most 30 years (three times the longest leaf the settings
  allow), a leaf at most 10 years: a certificate nobody can revoke must end.

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
WSTORE_PREFIX = {4: 16, 6: 64}
# SSH: IPv4 as wide as /8 (the settings' sshAllowedCidrs limit); IPv6 no wider than one /64, a single subnet: a
# /32 IPv6 is 2**96 addresses, a whole provider's allocation, though the internet check would not call it "the internet".
SSH_PREFIX = {4: 8, 6: 64}
PRIVATE_RANGES = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"))
PROTOCOLS = {"-1": "all", "all": "all", "tcp": "tcp", "6": "tcp", "udp": "udp", "17": "udp",
             "icmp": "icmp", "1": "icmp", "icmpv6": "icmpv6", "58": "icmpv6"}

INSTANCE = "aws:ec2/instance:Instance"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
NETWORK_INTERFACE = "aws:ec2/networkInterface:NetworkInterface"
ENI_ATTACHMENT = "aws:ec2/networkInterfaceAttachment:NetworkInterfaceAttachment"
EIP = "aws:ec2/eip:Eip"
EIP_ASSOCIATION = "aws:ec2/eipAssociation:EipAssociation"
# The program's jump host is declared by its JumpHost component: the component type is part of every child's URN
# (`...::wallarm:index:JumpHost$aws:ec2/instance:Instance::name`), unlike a tag, which any resource may carry.
JUMP_HOST_COMPONENT = "wallarm:index:JumpHost$"
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
        # A prefix list holds CIDRs the pack never sees (only its ID reaches the analyzer), and its entries change
        # without a Pulumi run: an AWS-managed list spans whole services, a customer list may hold 0.0.0.0/0. So it
        # is refused wherever a CIDR would be judged, i.e. on everything but TCP 80 and 443.
        if not http_only:
            for prefix_list in rule.prefix_lists:
                report_violation(f"{rule.where} opens {rule.describe()} to prefix list {prefix_list}, whose entries "
                                 "the policy cannot see and which can change without a deployment; only TCP 80 and "
                                 "443 may take a prefix list: list CIDRs or reference a security group")


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


def _stack_config() -> dict:
    """The stack's config as the engine passes it to the pack (PULUMI_CONFIG, values as text)."""
    return json.loads(os.environ.get("PULUMI_CONFIG") or "{}")


def _stack_flag(config: dict, key: str, default: bool) -> bool:
    value = config.get(f"{PROJECT}:{key}")
    return default if value in (None, "") else _is_true(value) or value == 1


def check_ssh_sources(args, report_violation) -> None:
    """SSH from IPv6 wider than /64 (IPv4 widths are the internet check's and the union check's)."""
    for rule in ingress_of(args):
        if not rule.covers(22):
            continue
        for cidr in rule.cidrs:
            net = _network(cidr)
            if net not in (None, UNKNOWN) and net.version == 6 and net.prefixlen < SSH_PREFIX[6]:
                report_violation(f"{rule.where} admits {rule.describe()} (SSH) from IPv6 {cidr}, "
                                 f"{net.num_addresses:.3g} addresses, wider than one /{SSH_PREFIX[6]}; "
                                 "list the admin networks' own /64s or narrower")


# The program's defaults (Pulumi.yaml): tls true, mutualTls defaults to tls; the plain port 3313, TLS 6388.
DEFAULT_TLS = True
DEFAULT_PLAIN_PORT, DEFAULT_TLS_PORT = DEFAULT_WSTORE_PORTS


def _public(net) -> bool:
    return not any(net.version == r.version and net.subnet_of(r) for r in PRIVATE_RANGES)


def check_wstore_public_sources(args, report_violation) -> None:
    """A public source on wstore only on the TLS port, and only with mutual TLS: the settings refuse public
    externalFilteringCidrs without mutualTls, and so does the pack, from the same stack config (PULUMI_CONFIG),
    since a rule added by hand or by another program never passes through the settings."""
    config = _stack_config()
    tls = _stack_flag(config, "tls", DEFAULT_TLS)
    mutual = _stack_flag(config, "mutualTls", tls)
    plain = int(config.get(f"{PROJECT}:wstorePort") or DEFAULT_PLAIN_PORT)
    tls_port = int(config.get(f"{PROJECT}:wstoreTlsPort") or DEFAULT_TLS_PORT)
    ports = sorted(wstore_ports(args.get_config()))
    for rule in ingress_of(args):
        hit = [port for port in ports if rule.covers(port)]
        for cidr in rule.cidrs:
            net = _network(cidr)
            if not hit or net in (None, UNKNOWN) or not _public(net):
                continue
            if not (tls and mutual):
                why = "mutual TLS is off (mutualTls false)" if tls else "TLS is off (tls false)"
                report_violation(f"{rule.where} admits wstore (port {', '.join(map(str, hit))}) from public "
                                 f"{cidr} while {why}: anyone in that range who reaches the port writes to wstore; "
                                 "turn mutualTls on or use private ranges")
            elif any(port != tls_port for port in hit):
                report_violation(f"{rule.where} admits public {cidr} on wstore port "
                                 f"{', '.join(str(p) for p in hit if p != tls_port)}, not the mutual-TLS port "
                                 f"{tls_port} (the plain listener {plain} takes no client certificate)")


def _group_key(resource) -> str:
    """The security group a rule resource belongs to: the group resource it depends on, else the literal ID."""
    deps = resource.property_dependencies.get("securityGroupId") or []
    if deps:
        return deps[0].urn
    value = _get(resource.props, "securityGroupId")
    return f"id {value}" if isinstance(value, str) else resource.urn


def _limit(protocol: str, port: Optional[int], wstore: set[int]) -> Optional[tuple[str, dict]]:
    if protocol == "tcp" and port in HTTP_PORTS:
        return None
    if protocol in ("tcp", "udp") and port in wstore:
        return "wstore", WSTORE_PREFIX
    if protocol in ("tcp", "udp") and port == 22:
        return "SSH", {4: SSH_PREFIX[4], 6: SSH_PREFIX[6]}
    return "the internet", INTERNET_PREFIX


def check_source_unions(args, report_violation) -> None:
    """Stack policy: per security group, protocol and port, every CIDR source folded (collapse_addresses) and
    judged as the single-rule checks judge one range: 256 rules of a /16 are a /8."""
    wstore = wstore_ports(args.get_config())
    groups: dict[str, list] = {}
    names: dict[str, str] = {}
    for resource in args.resources:
        rules = ingress_of(resource)
        if not rules:
            continue
        key = resource.urn if resource.resource_type in INLINE_GROUPS else _group_key(resource)
        groups.setdefault(key, []).extend(rules)
        names[key] = key.rsplit("::", 1)[-1]
    for key, rules in groups.items():
        # (protocol, port); None: every port of a protocol without port ranges (ICMP, a raw protocol number).
        points: set[tuple[str, Optional[int]]] = {(proto, p) for proto in ("tcp", "udp") for p in (22, *wstore)}
        for rule in rules:
            if rule.ports is not None:
                points.add((rule.protocol, rule.ports.start))
            elif rule.protocol == "all":
                points |= {("tcp", 0), ("udp", 0)}
            else:
                points.add((rule.protocol, None))
        seen = set()
        for protocol, port in sorted(points, key=lambda p: (p[0], -1 if p[1] is None else p[1])):
            limit = _limit(protocol, port, wstore)
            if limit is None:
                continue
            what, prefixes = limit
            covering = [r for r in rules if r.protocol == "all" or (r.protocol == protocol and (
                port is None or (r.ports is not None and port in r.ports)))]
            for version in (4, 6):
                nets = [n for r in covering for n in map(_network, r.cidrs)
                        if n not in (None, UNKNOWN) and n.version == version]
                most = 2 ** ((32 if version == 4 else 128) - prefixes[version])
                if len(nets) < 2 or any(n.num_addresses > most for n in nets):
                    continue  # one rule alone: the single-rule policies judge it
                folded = list(ipaddress.collapse_addresses(nets))
                total = sum(n.num_addresses for n in folded)
                mark = (frozenset(folded), what)
                if total <= most or mark in seen:
                    continue
                seen.add(mark)
                where = f"{protocol} port {port}" if port is not None else protocol
                report_violation(f"security group {names[key]}: {len(nets)} IPv{version} sources on {where} "
                                 f"({what}) together span {total:,} addresses "
                                 f"({100 * total / 2 ** (32 if version == 4 else 128):.3g}% of IPv{version}), more "
                                 f"than one /{prefixes[version]}; each passes alone, together they are as wide as "
                                 "that range: list fewer, narrower ranges")


def check_load_balancer_ports(args, report_violation) -> None:
    if args.resource_type not in ("aws:lb/listener:Listener", "aws:lb/targetGroup:TargetGroup"):
        return
    port = _get(args.props, "port")
    if not isinstance(port, (int, float)):
        return
    guarded = {22: "SSH"} | {p: "wstore" for p in wstore_ports(args.get_config())}
    if int(port) in guarded:
        kind = "listener" if args.resource_type.endswith("Listener") else "target group"
        report_violation(f"load-balancer {kind} on port {int(port)} ({guarded[int(port)]}) would carry the clients' "
                         "traffic to it past every security group; a load balancer serves only the filtering nodes' "
                         "HTTP ports")


def _egress_protocols(args) -> list[tuple[str, Any]]:
    p, typ = args.props, args.resource_type
    if typ == "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule":
        return [("egress rule", _get(p, "ipProtocol"))]
    if typ == LEGACY_RULE and _get(p, "type") == "egress":
        return [("security group rule (egress)", _get(p, "protocol"))]
    if typ in INLINE_GROUPS:
        return [(f"inline egress #{i}", _get(rule, "protocol")) for i, rule in enumerate(_items(_get(p, "egress")))
                if rule is not UNKNOWN]
    return []


def check_egress(args, report_violation) -> None:
    for where, protocol in _egress_protocols(args):
        if protocol is not UNKNOWN and PROTOCOLS.get(str(protocol).lower()) == "all":
            report_violation(f"{where} allows every protocol and port; name the protocol and port the hosts need "
                             "(a host that is taken over then reaches only those)")


MAX_LEAF_HOURS = 10 * 8760
MAX_CA_HOURS = 3 * MAX_LEAF_HOURS


def check_certificate_lifetimes(args, report_violation) -> None:
    if args.resource_type not in ("tls:index/selfSignedCert:SelfSignedCert",
                                  "tls:index/locallySignedCert:LocallySignedCert"):
        return
    hours = _get(args.props, "validityPeriodHours")
    if not isinstance(hours, (int, float)):
        return
    ca = _is_true(_get(args.props, "isCaCertificate"))
    most = MAX_CA_HOURS if ca else MAX_LEAF_HOURS
    if hours > most:
        report_violation(f"{'CA' if ca else 'leaf'} certificate valid {int(hours)} hours ({hours / 8760:.0f} years), "
                         f"longer than {most} ({most // 8760} years); nothing revokes it, so shorten it")


# ---- instances and volumes -------------------------------------------------------------------------------

def _role(props) -> str:
    role = _get(_get(props, "tags", {}), "Role")
    return role if isinstance(role, str) else "untagged"


def is_jump_host(resource) -> bool:
    """Tagged Role=jumphost AND declared by the program's JumpHost component. `jump-host-exemption` (a stack
    policy) holds that one to one instance, in the jump host's own security groups, which admit only SSH."""
    return _role(resource.props) == "jumphost" and JUMP_HOST_COMPONENT in str(resource.urn)


def _what(args) -> str:
    kind = "launch template" if args.resource_type == LAUNCH_TEMPLATE else "instance"
    return f"{_role(args.props)} {kind}"


def check_private_nodes(args, report_violation) -> None:
    if args.resource_type == LAUNCH_TEMPLATE:
        # A launch template's public IP is per network interface (a string "true"/"false" in pulumi-aws); without
        # one that says "false", the subnet decides at launch, as for an instance with the setting unset.
        interfaces = _get(args.props, "networkInterfaces")
        flags = [UNKNOWN if nic is UNKNOWN else _get(nic, "associatePublicIpAddress") for nic in _items(interfaces)]
        if any(_is_true(flag) for flag in flags):
            report_violation(f"{_what(args)} gives its instances a public IP address (network interface "
                             "associatePublicIpAddress true); only the jump host, an instance of its own, may have one")
        elif not any(flag is UNKNOWN or str(flag).lower() == "false" for flag in flags):
            report_violation(f"{_what(args)} leaves associatePublicIpAddress unset, so the subnet decides at launch; "
                             "declare network_interfaces with associate_public_ip_address \"false\"")
        return
    if args.resource_type != INSTANCE:
        return
    if is_jump_host(args):
        return
    role = _role(args.props)
    exempt_by_tag = " (a Role=jumphost tag alone does not exempt it: only the JumpHost component's instance)" \
        if role == "jumphost" else ""
    public = _get(args.props, "associatePublicIpAddress")
    if public is True:
        report_violation(f"{role} instance gets a public IP address{exempt_by_tag}; only the jump host may: "
                         "set associate_public_ip_address=False and reach it through the jump host")
    elif public is None:
        report_violation(f"{role} instance leaves associatePublicIpAddress unset, so the subnet decides (default-VPC "
                         "subnets give a public IP); set associate_public_ip_address=False")


def _ingress_to(group, resources) -> list[Ingress]:
    """Every ingress permission of a security group resource: inline, and the rules that depend on it."""
    found = list(ingress_of(group))
    for resource in resources:
        if resource.resource_type in (INGRESS_RULE, LEGACY_RULE) and any(
                d.urn == group.urn for d in resource.property_dependencies.get("securityGroupId", [])):
            found += ingress_of(resource)
    return found


def check_jump_host(args, report_violation) -> None:
    """Stack policy: the exemption from private-nodes is one instance, in security groups that admit only SSH."""
    hosts = [r for r in args.resources if r.resource_type == INSTANCE and _role(r.props) == "jumphost"]
    if len(hosts) > 1:
        for host in hosts[1:]:
            report_violation(f"instance {host.name} is a second jump host (Role=jumphost) beside {hosts[0].name}; one "
                             "jump host per stack is exempt from private-nodes", host.urn)
    for host in hosts[:1]:
        listed = [g for g in _items(_get(host.props, "vpcSecurityGroupIds")) if g is not UNKNOWN]
        groups = [g for g in host.property_dependencies.get("vpcSecurityGroupIds", [])
                  if g.resource_type == SECURITY_GROUP]
        if not any(_role(g.props) == "jumphost" for g in groups):
            report_violation(f"jump host {host.name} is not in the stack's jump-host security group (Role=jumphost); "
                             "its exemption from private-nodes holds only there", host.urn)
        if len(listed) > len(groups):
            report_violation(f"jump host {host.name} is in a security group declared outside this stack, whose rules "
                             "the policy cannot check; use the stack's jump-host groups only", host.urn)
        for group in groups:
            for rule in _ingress_to(group, args.resources):
                if not (rule.protocol == "tcp" and rule.ports == range(22, 23)):
                    report_violation(f"jump host {host.name}'s security group {group.name} admits {rule.describe()} "
                                     f"({rule.where}); a jump host's groups admit only TCP 22", host.urn)


def _urns(resource, key: str) -> set[str]:
    return {d.urn for d in resource.property_dependencies.get(key, [])}


def _instances_behind(eni, resources) -> list:
    """The instances a network interface resource is attached to, by any of the three ways pulumi-aws offers."""
    found = [d for d in eni.property_dependencies.get("attachments", []) if d.resource_type == INSTANCE]
    for r in resources:
        if r.resource_type == ENI_ATTACHMENT and eni.urn in _urns(r, "networkInterfaceId"):
            found += [d for d in r.property_dependencies.get("instanceId", []) if d.resource_type == INSTANCE]
        elif r.resource_type == INSTANCE and eni.urn in _urns(r, "networkInterfaces"):
            found.append(r)
    return found


def check_elastic_ips(args, report_violation) -> None:
    """Stack policy: an Elastic IP on an instance, or on a network interface, that is not the jump host."""
    for resource in args.resources:
        if resource.resource_type not in (EIP, EIP_ASSOCIATION):
            continue
        eip = resource.resource_type == EIP
        for source in resource.property_dependencies.get("instance" if eip else "instanceId", []):
            if source.resource_type == INSTANCE and not is_jump_host(source):
                report_violation(f"Elastic IP {resource.name} is attached to {_role(source.props)} instance "
                                 f"{source.name}; only the jump host may have a public address", resource.urn)
        key = "networkInterface" if eip else "networkInterfaceId"
        if _get(resource.props, key) is None:
            continue
        enis = [d for d in resource.property_dependencies.get(key, []) if d.resource_type == NETWORK_INTERFACE]
        behind = [i for eni in enis for i in _instances_behind(eni, args.resources)]
        others = [i for i in behind if not is_jump_host(i)]
        if others:
            report_violation(f"Elastic IP {resource.name} is attached through network interface {enis[0].name} to "
                             f"{_role(others[0].props)} instance {others[0].name}; only the jump host may have a "
                             "public address", resource.urn)
        elif not behind:
            report_violation(f"Elastic IP {resource.name} is attached to a network interface "
                             f"({enis[0].name if enis else _get(resource.props, key)}) that no jump host of this stack "
                             "uses, so anything it is attached to gets a public address", resource.urn)


def check_metadata(args, report_violation) -> None:
    if args.resource_type not in (INSTANCE, LAUNCH_TEMPLATE):
        return
    role = _what(args)
    metadata = _get(args.props, "metadataOptions", {})
    if metadata is UNKNOWN or _get(metadata, "httpEndpoint") == "disabled":
        return
    tokens = _get(metadata, "httpTokens")
    if tokens is not UNKNOWN and tokens != "required":
        report_violation(f"{role} allows IMDSv1 (httpTokens {tokens or 'unset'}); "
                         "set metadata_options http_tokens to required")
    hops = _get(metadata, "httpPutResponseHopLimit")
    if hops is not UNKNOWN and (not isinstance(hops, (int, float)) or int(hops) != 1):
        report_violation(f"{role} has a metadata hop limit of {int(hops) if hops else 'unset (the AMI decides)'}"
                         "; set http_put_response_hop_limit to 1 so that no container on it reaches the "
                         "instance's credentials")


def check_volumes(args, report_violation) -> None:
    p = args.props
    if args.resource_type == "aws:ec2/volume:Volume":
        if not _is_true(_get(p, "encrypted")) and _get(p, "encrypted") is not UNKNOWN:
            report_violation("EBS volume is not encrypted; set encrypted to true")
        return
    if args.resource_type == LAUNCH_TEMPLATE:
        mappings = [m for m in _items(_get(p, "blockDeviceMappings")) if m is not UNKNOWN]
        ebs = [(m, _get(m, "ebs")) for m in mappings if _get(m, "ebs") is not None]
        if not ebs and _get(p, "blockDeviceMappings") is not UNKNOWN:
            report_violation(f"{_what(args)} maps no EBS volume, so the image's snapshot decides whether its root "
                             "volume is encrypted; map the root device with ebs encrypted \"true\"")
        for mapping, device in ebs:
            encrypted = _get(device, "encrypted")
            if device is not UNKNOWN and encrypted is not UNKNOWN and not _is_true(encrypted):
                report_violation(f"{_what(args)}'s EBS volume {_get(mapping, 'deviceName', '?')} is not encrypted; "
                                 "set ebs encrypted to \"true\"")
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
    ResourceValidationPolicy(name="private-nodes", description="Only the jump host has a public IP address; "
                             "launch templates give none.",
                             validate=check_private_nodes, enforcement_level=_MANDATORY),
    StackValidationPolicy(name="no-elastic-ip-on-nodes", description="No Elastic IP on an instance or network "
                          "interface other than the jump host's.", validate=check_elastic_ips, enforcement_level=_MANDATORY),
    ResourceValidationPolicy(name="imdsv2-hop-limit-1", description="Instances require IMDSv2 with a hop limit "
                             "of 1.", validate=check_metadata, enforcement_level=_MANDATORY),
    ResourceValidationPolicy(name="encrypted-volumes", description="Root and EBS volumes are encrypted.",
                             validate=check_volumes, enforcement_level=_MANDATORY),
    ResourceValidationPolicy(name="nlb-security-group", description="A network load balancer has a security group "
                             "from creation.", validate=check_nlb_security_group, enforcement_level=_MANDATORY),
    ResourceValidationPolicy(name="strong-tls-keys", description="No ECDSA P224 or short RSA keys.",
                             validate=check_keys, enforcement_level=_MANDATORY),
    ResourceValidationPolicy(name="no-load-balancer-path-to-ssh-or-wstore", description="No load-balancer "
                             "listener or target group on SSH or a wstore port.", validate=check_load_balancer_ports,
                             enforcement_level=_MANDATORY, config_schema=WSTORE_CONFIG),
    ResourceValidationPolicy(name="no-all-protocol-egress", description="Every egress rule names its protocol "
                             "and port.", validate=check_egress, enforcement_level=_MANDATORY),
    ResourceValidationPolicy(name="bounded-certificate-lifetimes", description="CA certificates at most 30 years, "
                             "leaves at most 10.", validate=check_certificate_lifetimes, enforcement_level=_MANDATORY),
    ResourceValidationPolicy(name="ssh-narrow-sources", description="SSH admits no IPv6 source wider than /64.",
                             validate=check_ssh_sources, enforcement_level=_MANDATORY),
    ResourceValidationPolicy(name="wstore-public-sources-need-mutual-tls", description="A public source reaches "
                             "wstore only on its TLS port with mutual TLS on.", validate=check_wstore_public_sources,
                             enforcement_level=_MANDATORY, config_schema=WSTORE_CONFIG),
    StackValidationPolicy(name="no-wide-union-of-sources", description="The CIDR sources of a security group on "
                          "one port, folded, are judged as one range.", validate=check_source_unions,
                          enforcement_level=_MANDATORY, config_schema=WSTORE_CONFIG),
    StackValidationPolicy(name="jump-host-exemption", description="One jump host, from the JumpHost component, in "
                          "security groups that admit only SSH.", validate=check_jump_host,
                          enforcement_level=_MANDATORY),
]
