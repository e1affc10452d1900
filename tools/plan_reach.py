"""The plan's reach table: who can reach what, one line per security group rule, whether the other side's rules let
the connection through too, and what each load balancer listener forwards to (tools/plan.py prints them; the
picture of tools/plan_picture.py reads the same Stack)."""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections import Counter
from typing import Any, Optional

from harness.mocks import Recorded
from tools.plan_tree import _natural

INSTANCE = "aws:ec2/instance:Instance"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
RULE_TYPES = {"aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": "in",
              "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": "out"}
UNREAD_RULE_TYPES = ("aws:ec2/securityGroupRule:SecurityGroupRule",)
LOAD_BALANCER = "aws:lb/loadBalancer:LoadBalancer"
TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"
LISTENER = "aws:lb/listener:Listener"
ATTACHMENT = "aws:lb/targetGroupAttachment:TargetGroupAttachment"
VPC_TYPES = ("awsx:ec2:Vpc", "aws:ec2/vpc:Vpc")
PROTOCOLS = {"6": "tcp", "17": "udp", "1": "icmp", "-1": "all", "all": "all"}
ANYWHERE = "0.0.0.0/0"


@dataclasses.dataclass
class Instance:
    name: str
    role: str
    id: str
    ip: str
    groups: list[str]


@dataclasses.dataclass
class Rule:
    record: Recorded
    direction: str
    """in or out."""
    group: str
    """The security group ID the rule belongs to."""
    protocol: str
    from_port: Optional[int]
    to_port: Optional[int]
    cidr: Optional[str]
    referenced: Optional[str]
    """The peer security group's ID."""
    description: str

    @property
    def port(self) -> str:
        if self.protocol == "all":
            return "all"
        if self.from_port is None or (self.protocol == "icmp" and self.from_port == -1):
            return self.protocol
        if self.from_port == self.to_port:
            return f"{self.protocol}/{self.from_port}"
        return f"{self.protocol}/{self.from_port}-{self.to_port}"

    def covers(self, other: "Rule") -> bool:
        """True when this rule allows at least the protocol and ports of the other."""
        if self.protocol == "all":
            return True
        if self.protocol != other.protocol:
            return False
        if self.from_port is None or other.from_port is None or self.to_port is None or other.to_port is None:
            return self.from_port is None
        return self.from_port <= other.from_port and other.to_port <= self.to_port


@dataclasses.dataclass
class Reach:
    rule: Rule
    source: str
    port: str
    target: str
    both_sides: str
    description: str


def _int(value: Any) -> Optional[int]:
    return None if value is None else int(value)


class Stack:
    """What the reach table and the picture read from the recorded resources."""

    def __init__(self, resources: list[Recorded]):
        self.resources = resources
        self.groups = {r.id: r for r in resources if r.typ == SECURITY_GROUP}
        self.instances = [Instance(r.inputs.get("tags", {}).get("Node") or r.name,
                                   r.inputs.get("tags", {}).get("Role") or _role_of_name(r.name), r.id,
                                   r.outputs.get("privateIp", ""), list(r.inputs.get("vpcSecurityGroupIds") or []))
                          for r in resources if r.typ == INSTANCE]
        # A load balancer with security groups is a member of them like an instance: rules that reference its group
        # resolve to it, and its egress is the other side of the nodes' ingress from it.
        self.balancers = [Instance(r.name, "loadbalancer", r.id, "", list(r.inputs.get("securityGroups") or []))
                          for r in resources if r.typ == LOAD_BALANCER]
        self.rules = [Rule(r, RULE_TYPES[r.typ], r.inputs.get("securityGroupId", ""),
                           PROTOCOLS.get(str(r.inputs.get("ipProtocol", "")), str(r.inputs.get("ipProtocol", ""))),
                           _int(r.inputs.get("fromPort")), _int(r.inputs.get("toPort")),
                           r.inputs.get("cidrIpv4") or r.inputs.get("cidrIpv6") or r.inputs.get("prefixListId"),
                           r.inputs.get("referencedSecurityGroupId"), r.inputs.get("description", ""))
                      for r in resources if r.typ in RULE_TYPES]
        self.vpc_cidrs = {r.inputs["cidrBlock"]: r.name for r in resources
                          if r.typ in VPC_TYPES and r.inputs.get("cidrBlock")}

    # ---- names
    def group_name(self, group_id: str) -> str:
        record = self.groups.get(group_id)
        if record is None:
            return f"{group_id} (not in this stack)"
        return (record.inputs.get("tags") or {}).get("Name") or record.name

    def members(self, group_id: str) -> list[Instance]:
        """Instances and load balancers that carry the group."""
        return [i for i in [*self.instances, *self.balancers] if group_id in i.groups]

    def fleet_label(self, instances: list[Instance]) -> str:
        roles = Counter(i.role for i in instances)
        return ", ".join(f"{role} x{n}" for role, n in sorted(roles.items())) or "no instance"

    def group_label(self, group_id: str) -> str:
        return f"{self.group_name(group_id)} [{self.fleet_label(self.members(group_id))}]"

    def cidr_label(self, cidr: str) -> str:
        if cidr in (ANYWHERE, "::/0"):
            return f"{cidr} (anywhere)"
        if cidr in self.vpc_cidrs:
            return f"{cidr} (VPC {self.vpc_cidrs[cidr]})"
        hosts = [i.name for i in self.instances if i.ip and f"{i.ip}/32" == cidr]
        return f"{cidr} ({', '.join(hosts)})" if hosts else cidr

    def peer_label(self, rule: Rule) -> str:
        return self.group_label(rule.referenced) if rule.referenced else self.cidr_label(rule.cidr or "?")

    # ---- both sides
    def _allows(self, rule: Rule, direction: str, group_ids: list[str], peer: Instance) -> bool:
        """Some rule of these groups, in this direction, lets `rule`'s traffic to or from `peer`."""
        for other in self.rules:
            if other.direction != direction or other.group not in group_ids or not other.covers(rule):
                continue
            if other.referenced and other.referenced in peer.groups:
                return True
            if other.cidr and peer.ip and "/" in other.cidr and ":" not in other.cidr:
                if ipaddress.ip_address(peer.ip) in ipaddress.ip_network(other.cidr, strict=False):
                    return True
        return False

    def both_sides(self, rule: Rule) -> str:
        if not rule.referenced:
            return "-"
        sources, targets = ((self.members(rule.referenced), self.members(rule.group)) if rule.direction == "in"
                            else (self.members(rule.group), self.members(rule.referenced)))
        if not sources or not targets:
            return f"no instance in {self.group_name(rule.referenced)}"
        # The other side: the sources' egress when this is an ingress rule, the targets' ingress otherwise.
        if rule.direction == "in":
            missing = [s for s in sources if not all(self._allows(rule, "out", s.groups, t) for t in targets)]
            side, what = missing, "no egress"
        else:
            missing = [t for t in targets if not all(self._allows(rule, "in", t.groups, s) for s in sources)]
            side, what = missing, "no ingress"
        if not side:
            return "yes"
        return f"NO: {self.fleet_label(side)} {what} for {rule.port}"

    def reach(self) -> list[Reach]:
        rows = []
        for rule in self.rules:
            own, peer = self.group_label(rule.group), self.peer_label(rule)
            source, target = (peer, own) if rule.direction == "in" else (own, peer)
            rows.append(Reach(rule, source, rule.port, target, self.both_sides(rule), rule.description))
        # Ingress grouped by the group that admits, egress by the group that connects.
        rows.sort(key=lambda r: (r.rule.direction, *((r.target, r.source) if r.rule.direction == "in"
                                                     else (r.source, r.target)), _natural(r.port)))
        return rows

    # ---- load balancers
    def forwarding(self) -> list[tuple[Recorded, Recorded, Optional[Recorded], list[Instance]]]:
        """(load balancer, listener, target group, attached instances) for every listener."""
        by_arn = {r.outputs.get("arn"): r for r in self.resources if r.typ in (LOAD_BALANCER, TARGET_GROUP)}
        by_id = {i.id: i for i in self.instances}
        out = []
        for listener in (r for r in self.resources if r.typ == LISTENER):
            lb = by_arn.get(listener.inputs.get("loadBalancerArn"))
            actions = listener.inputs.get("defaultActions") or [{}]
            group = by_arn.get(actions[0].get("targetGroupArn"))
            arn = group.outputs.get("arn") if group is not None else None
            attached = [by_id[a.inputs["targetId"]] for a in self.resources if a.typ == ATTACHMENT and arn
                        and a.inputs.get("targetGroupArn") == arn and a.inputs.get("targetId") in by_id]
            if lb is not None:
                out.append((lb, listener, group, attached))
        return out

    def unread(self) -> list[str]:
        """Rules this tool does not read, so that the table never looks complete when it is not."""
        notes = [f"{r.typ} {r.name}" for r in self.resources if r.typ in UNREAD_RULE_TYPES]
        notes += [f"inline rules of {r.typ} {r.name}" for r in self.resources
                  if r.typ == SECURITY_GROUP and (r.inputs.get("ingress") or r.inputs.get("egress"))]
        return notes


def _endpoint(record: Recorded) -> str:
    """PROTOCOL/port of a listener or target group."""
    return f"{record.inputs.get('protocol')}/{_int(record.inputs.get('port'))}"


def _role_of_name(name: str) -> str:
    return re.sub(r"-\d+(-[0-9a-f]{8})?$", "", name)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    return ["  ".join(f"{c:<{w}}" for c, w in zip(row, widths)).rstrip() for row in [header, *rows]]


def reach_lines(stack: Stack) -> list[str]:
    rows = [[("in" if r.rule.direction == "in" else "out"), r.source, r.port, r.target, r.both_sides, r.description]
            for r in stack.reach()]
    lines = _table(["Dir", "From", "Port", "To", "Both sides", "Description"], rows)
    lines.append(f"Rules: {len(rows)} ({sum(r[0] == 'in' for r in rows)} in, {sum(r[0] == 'out' for r in rows)} out)")
    ruled = {r.group for r in stack.rules} | {r.referenced for r in stack.rules}
    idle = [stack.group_label(g) for g in stack.groups if g not in ruled]
    if idle:
        lines.append("Groups named by no rule (they admit nothing, and no rule admits them): "
                     + ", ".join(sorted(idle)))
    for note in stack.unread():
        lines.append(f"WARNING: not read by this tool, so not in the table: {note}")
    forwarding = stack.forwarding()
    if forwarding:
        lines.append("")
        rows = []
        for lb, listener, group, attached in forwarding:
            scheme = "internal" if lb.inputs.get("internal") else "internet-facing"
            check = (group.inputs.get("healthCheck") or {}) if group else {}
            health = " ".join(str(check.get(k, "")) for k in ("protocol", "port", "path")).strip() if check else "-"
            if group is not None and group.inputs.get("proxyProtocolV2"):
                health += " (PROXY v2 on: the check carries the header too)"
            rows.append([f"{lb.name} ({scheme})", _endpoint(listener), group.name if group else "-",
                         stack.fleet_label(attached) if group else "-", health])
        lines += _table(["Load balancer", "Listener", "Target group", "Attached", "Health check"], rows)
    return lines
