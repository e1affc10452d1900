"""Plan: what a stack would create, who can reach what, and a picture of it, before any AWS account is involved.

    venv/bin/python -m tools.plan --stack dev [--set filteringCount=6 ...] [--expand] [--svg plan.svg]

Runs the real __main__.py under the project's mocks (tools/program.py) with the stack's settings, then prints:

1. Resources: a tree like `pulumi preview`'s, from the parent of every declared resource. Columns: Type (the
   resource's type token), Name (its logical name), Plan (always "create": the mocks hold no state, so this is
   the plan of a new stack), Info (what a collapsed line stands for). Siblings that differ only by a trailing
   number and have the same children are shown once, e.g. `filtering-0..499` (500 alike); in their children's
   names `*` stands for what differs from member to member. --expand shows every one. Then a table of Count
   (resources of that type, collapsed ones included) and Type, and "Resources: N to create" (N counts the stack
   itself, as Pulumi does; a remote component such as awsx:ec2:Vpc adds the children its provider makes).
2. Who can reach what: one line per security group rule (aws:vpc SecurityGroupIngressRule / EgressRule).
   Columns: Dir (in: the rule admits From into To; out: the rule lets From open connections to To), From and
   To (a CIDR, annotated when it is anywhere, the VPC or one instance; or a security group followed by the
   instances that carry it, in brackets, grouped by their Role tag: `firewall-filtering [filtering x2]`),
   Port (protocol/port or range; `all` for every protocol), Both sides (for a rule between two security groups,
   whether the other side's rules let the connection through too: a connection needs the source's egress and
   the target's ingress; "-" for a CIDR, which no rule of this stack controls), Description (the rule's own).
   After it: the number of rules, the security groups that no rule names, and a WARNING naming any rule this
   tool does not read (aws:ec2 SecurityGroupRule, a group's inline rules), so the table never looks complete
   when it is not.
   Then one line per load balancer listener. Columns: Load balancer (name, internet-facing or internal),
   Listener (PROTOCOL/port clients connect to), Target group (where it forwards), Attached (the instances
   registered in that target group, by Role tag), Health check (protocol, port and path the target group probes).
3. With --svg FILE: a picture of the topology drawn from the declared resources (load balancers, each fleet of
   instances with the same Role tag as one box with its count, the CIDRs rules name), an arrow from whoever opens
   a connection to whoever accepts it, labelled with the ports; dashed when only one side's rules allow it.

4. Assumed offline: what the mocks answered without AWS (the region's zones, the offers per zone, an existing VPC's
   CIDR and subnets; tools/assumed.py), one line each.
With --changes, instead: what the change does to the stack deployed from --base (tools/changes.py): each resource
created, updated, replaced or deleted with the inputs that differ, the steps that run again per host, the changes
that hurt.

Exit status: 0 on a plan; 2 when the settings are refused (the program's own sentences are printed) or the stack
file is missing; 1 when the program fails otherwise. No cloud, no Pulumi CLI, nothing leaves this machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import json
import os
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Optional
from xml.sax.saxutils import escape

import pulumi

from components.settings import SettingsError
from tools.changes import shown_sets
from tools.mocks import ProviderMocks, Recorded
from tools.program import PROJECT, Run, StackFileError, run_program, stack_config, stack_file

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
STACK_TYPE = "pulumi:pulumi:Stack"
PROTOCOLS = {"6": "tcp", "17": "udp", "1": "icmp", "-1": "all", "all": "all"}
ANYWHERE = "0.0.0.0/0"


class PlanMocks(ProviderMocks):
    """The project's mocks, also noting which registrations are custom resources (not components), so that a
    component whose children its provider makes (a remote component such as awsx:ec2:Vpc) can be told apart."""

    def __init__(self) -> None:
        super().__init__()
        self.custom: dict[tuple[str, str], bool] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        self.custom[(args.typ, args.name)] = bool(args.custom)
        return super().new_resource(args)


# ---------------------------------------------------------------------------------------------------- the tree
@dataclasses.dataclass
class Node:
    typ: str
    name: str
    urn: str
    children: list["Node"] = dataclasses.field(default_factory=list)
    custom: Optional[bool] = None
    alike: int = 1
    """How many siblings this line stands for (collapse())."""

    @property
    def info(self) -> str:
        return f"{self.alike} alike" if self.alike > 1 else ""

    def shape(self) -> tuple:
        """Types of the whole subtree, names aside: equal for siblings built by the same code."""
        return (self.typ, tuple(sorted(c.shape() for c in self.children)))

    def size(self) -> int:
        """Resources this line and its children stand for."""
        return self.alike * (1 + sum(c.size() for c in self.children))


def _natural(name: str) -> list:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def build_tree(resources: list[Recorded], stack_name: str, custom: Optional[dict] = None) -> Node:
    """The stack as the root, every recorded resource under its parent (by URN)."""
    custom = custom or {}
    root = Node(STACK_TYPE, stack_name, "", custom=False)
    nodes = {r.urn: Node(r.typ, r.name, r.urn, custom=custom.get((r.typ, r.name))) for r in resources}
    for r in resources:
        parent = nodes.get(r.parent)
        (parent or root).children.append(nodes[r.urn])
    for node in [root, *nodes.values()]:
        node.children.sort(key=lambda n: (_natural(n.name), n.typ))
    return root


def _ranges(indices: list[int]) -> str:
    spans, start = [], None
    for i, value in enumerate(indices):
        if start is None:
            start = value
        if i + 1 == len(indices) or indices[i + 1] != value + 1:
            spans.append(str(start) if start == value else f"{start}..{value}")
            start = None
    return ",".join(spans)


def _template(names: list[str]) -> str:
    """One name for names that differ in the middle: the common start and end around a `*`."""
    if len(set(names)) == 1:
        return names[0]
    start = 0
    while all(start < len(n) for n in names) and len({n[start] for n in names}) == 1:
        start += 1
    end = 0
    while all(end < len(n) - start for n in names) and len({n[len(n) - 1 - end] for n in names}) == 1:
        end += 1
    return names[0][:start] + "*" + (names[0][len(names[0]) - end:] if end else "")


def _merge(members: list[Node]) -> list[Node]:
    """The children of alike members as one list of template children (aligned by type, then name order)."""
    aligned = [sorted(m.children, key=lambda c: (c.shape(), _natural(c.name))) for m in members]
    merged = []
    for column in zip(*aligned):
        first = column[0]
        node = Node(first.typ, _template([c.name for c in column]), first.urn, custom=first.custom)
        node.children = _merge(list(column)) if first.children else []
        merged.append(node)
    return merged


def collapse(node: Node) -> Node:
    """Siblings named <base><number> with the same shape become one line; a copy, the tree is kept."""
    groups: dict[tuple, list[tuple[int, Node]]] = defaultdict(list)
    order: list[tuple] = []
    for child in node.children:
        match = re.fullmatch(r"(.*?)(\d+)", child.name)
        key = (child.typ, match.group(1), child.shape()) if match else (child.typ, child.name, child.urn)
        if key not in groups:
            order.append(key)
        groups[key].append((int(match.group(2)) if match else -1, child))
    out = Node(node.typ, node.name, node.urn, custom=node.custom, alike=node.alike)
    for key in order:
        members = sorted(groups[key], key=lambda m: m[0])
        if len(members) == 1:
            out.children.append(collapse(members[0][1]))
            continue
        first = members[0][1]
        merged = Node(first.typ, f"{key[1]}{_ranges([i for i, _ in members])}", first.urn, custom=first.custom,
                      alike=len(members))
        merged.children = [collapse(c) for c in _merge([m for _, m in members])]
        out.children.append(merged)
    return out


def render_tree(root: Node) -> list[str]:
    rows: list[tuple[str, str, str]] = []

    def walk(node: Node, prefix: str, last: bool, top: bool) -> None:
        branch = "" if top else prefix + ("└─ " if last else "├─ ")
        rows.append((branch + node.typ, node.name, node.info))
        inner = "" if top else prefix + ("   " if last else "│  ")
        for i, child in enumerate(node.children):
            walk(child, inner, i == len(node.children) - 1, False)

    walk(root, "", True, True)
    type_width = max(len(r[0]) for r in rows) + 2
    name_width = max(len(r[1]) for r in rows) + 2
    lines = [f"     {'Type':<{type_width}}{'Name':<{name_width}}Plan    Info"]
    lines += [f" +   {t:<{type_width}}{n:<{name_width}}create  {i}".rstrip() for t, n, i in rows]
    return lines


def remote_components(root: Node) -> list[Node]:
    """Components whose children the mocks do not see: their provider makes them (awsx:ec2:Vpc)."""
    found = []

    def walk(node: Node) -> None:
        if node.custom is False and not node.children and node.typ != STACK_TYPE:
            found.append(node)
        for child in node.children:
            walk(child)

    walk(root)
    return found


def count_lines(resources: list[Recorded], root: Node) -> list[str]:
    counts = Counter(r.typ for r in resources)
    counts[STACK_TYPE] += 1
    lines = ["Count  Type"] + [f"{n:>5}  {t}" for t, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    lines.append(f"Resources: {sum(counts.values())} to create")
    for node in remote_components(root):
        lines.append(f"  (+ what {node.typ} {node.name} creates itself: its provider declares its children "
                     f"when the engine runs it, the mocks do not)")
    return lines


# ---------------------------------------------------------------------------------------------------- reach
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


# ---------------------------------------------------------------------------------------------------- picture
@dataclasses.dataclass
class Box:
    key: str
    kind: str
    """cidr-in, cidr-out, lb, fleet, group."""
    title: str
    lines: list[str]
    count: int = 1


@dataclasses.dataclass
class Edge:
    source: str
    target: str
    ports: set[str] = dataclasses.field(default_factory=set)
    one_sided: bool = False
    notes: set[str] = dataclasses.field(default_factory=set)


def topology(stack: Stack) -> tuple[dict[str, Box], dict[tuple[str, str], Edge]]:
    """Boxes (fleets by Role tag, load balancers, CIDRs) and arrows (who opens connections to whom)."""
    boxes: dict[str, Box] = {}
    edges: dict[tuple[str, str], Edge] = {}
    fleets: dict[str, list[Instance]] = defaultdict(list)
    for instance in stack.instances:
        fleets[instance.role].append(instance)
    for role, members in fleets.items():
        names = sorted((i.name for i in members), key=_natural)
        groups = sorted({stack.group_name(g) for i in members for g in i.groups})
        boxes[f"fleet:{role}"] = Box(f"fleet:{role}", "fleet", f"{role} x{len(members)}",
                                     [_span(names), *groups], len(members))

    records = {r.name: r for r in stack.resources if r.typ == LOAD_BALANCER}

    def lb_box(lb: Recorded) -> str:
        key = f"lb:{lb.name}"
        internal = bool(lb.inputs.get("internal"))
        kind = lb.inputs.get("loadBalancerType", "application")
        boxes.setdefault(key, Box(key, "lb", lb.name, [f"{kind} load balancer",
                                                       "internal" if internal else "internet-facing"]))
        return key

    def ends(group_id: str) -> list[str]:
        members = stack.members(group_id)
        if members:
            return sorted({lb_box(records[i.name]) if i in stack.balancers else f"fleet:{i.role}" for i in members})
        key = f"group:{group_id}"
        boxes.setdefault(key, Box(key, "group", stack.group_name(group_id), ["no instance"]))
        return [key]

    def cidr(direction: str, value: str) -> list[str]:
        key = f"cidr-{direction}:{value}"
        note = stack.cidr_label(value)[len(value):].strip(" ()")
        boxes.setdefault(key, Box(key, f"cidr-{direction}", value, [note] if note else []))
        return [key]

    def link(sources: list[str], targets: list[str], port: str, ok: bool, note: str) -> None:
        for s in sources:
            for t in targets:
                edge = edges.setdefault((s, t), Edge(s, t))
                edge.ports.add(port)
                edge.one_sided |= not ok
                edge.notes.add(note)

    for rule in stack.rules:
        ok = stack.both_sides(rule) in ("-", "yes")
        own = ends(rule.group)
        if rule.direction == "in":
            peer = ends(rule.referenced) if rule.referenced else cidr("in", rule.cidr or "?")
            link(peer, own, rule.port, ok, rule.description)
        else:
            peer = ends(rule.referenced) if rule.referenced else cidr("out", rule.cidr or "?")
            link(own, peer, rule.port, ok, rule.description)
    for lb, listener, group, attached in stack.forwarding():
        key = lb_box(lb)
        internal = bool(lb.inputs.get("internal"))
        boxes[key].lines.append(f"listener {_endpoint(listener)}")
        if not internal and not lb.inputs.get("securityGroups"):
            link(cidr("in", ANYWHERE), [key], _endpoint(listener), True, f"listener {listener.name}")
        if group is not None and attached:
            link([key], sorted({f"fleet:{i.role}" for i in attached}), _endpoint(group), True,
                 f"target group {group.name}")
    return boxes, edges


def _span(names: list[str]) -> str:
    if len(names) <= 2:
        return ", ".join(names)
    return f"{names[0]} .. {names[-1]}"


def _layers(boxes: dict[str, Box], edges: dict[tuple[str, str], Edge]) -> dict[str, int]:
    """Columns: each box one right of its furthest predecessor; outgoing CIDRs in the last column."""
    preds: dict[str, set[str]] = defaultdict(set)
    for s, t in edges:
        if s != t:
            preds[t].add(s)
    layer: dict[str, int] = {}

    def depth(key: str, path: frozenset) -> int:
        if key in layer:
            return layer[key]
        found = [depth(p, path | {key}) + 1 for p in preds[key] if p not in path]  # a cycle is cut where met
        layer[key] = max(found, default=0)
        return layer[key]

    for key in boxes:
        depth(key, frozenset())
    inner = [layer[k] for k, b in boxes.items() if b.kind != "cidr-out"]
    last = max(inner, default=0) + 1
    for key, box in boxes.items():
        if box.kind == "cidr-out":
            layer[key] = last
    return layer


def _order(columns: dict[int, list[str]], edges: dict[tuple[str, str], Edge]) -> None:
    """Fewer crossings: each column sorted by the mean rank of its neighbours (two sweeps, right then left)."""
    rank = {k: i for keys in columns.values() for i, k in enumerate(keys)}
    neighbours: dict[str, list[str]] = defaultdict(list)
    for s, t in edges:
        neighbours[s].append(t)
        neighbours[t].append(s)
    ordered = sorted(columns)
    for sweep in (ordered[1:], list(reversed(ordered[:-1])), ordered[1:]):
        for c in sweep:
            def mean(key: str) -> float:
                others = [rank[n] for n in neighbours[key] if n in rank and n not in columns[c]]
                return sum(others) / len(others) if others else rank[key]
            columns[c].sort(key=lambda k: (mean(k), rank[k]))
            rank.update({k: i for i, k in enumerate(columns[c])})


COLORS = {"cidr-in": "#f1f3f4", "cidr-out": "#f1f3f4", "lb": "#d2e3fc", "group": "#ffffff"}
FLEET_COLORS = {"filtering": "#ceead6", "postanalytics": "#feefc3", "jumphost": "#e9d2fd"}
BOX_W, LINE_H, COL_GAP, ROW_GAP, MARGIN, LANE = 210, 15, 150, 40, 30, 6


def render_svg(boxes: dict[str, Box], edges: dict[tuple[str, str], Edge], title: str) -> str:
    layer = _layers(boxes, edges)
    columns: dict[int, list[str]] = defaultdict(list)
    for key in sorted(boxes, key=lambda k: (boxes[k].kind, _natural(boxes[k].title))):
        columns[layer[key]].append(key)
    _order(columns, edges)
    ends = Counter(e for s, t in edges for e in ((s, "out"), (t, "in")))
    # Tall enough for its text, and for its arrows to leave (enter) it 18 pixels apart, labels readable.
    height_of = {k: max(30 + LINE_H * len(b.lines), 18 * (max(ends[(k, "out")], ends[(k, "in")]) + 1))
                 for k, b in boxes.items()}
    col_height = {c: sum(height_of[k] for k in keys) + ROW_GAP * (len(keys) - 1) for c, keys in columns.items()}
    total_h = max(col_height.values(), default=0)
    top = MARGIN + 60
    pos: dict[str, tuple[float, float]] = {}
    for c, keys in columns.items():
        y = top + (total_h - col_height[c]) / 2
        for key in keys:
            pos[key] = (MARGIN + c * (BOX_W + COL_GAP), y)
            y += height_of[key] + ROW_GAP
    width = MARGIN * 2 + (max(columns, default=0) + 1) * (BOX_W + COL_GAP) - COL_GAP
    height = top + total_h + 40 + 50
    # Where each arrow leaves and enters a box: spread along the side, in the order of the other ends.
    outs: dict[str, list[tuple[str, str]]] = defaultdict(list)
    ins: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for s, t in edges:
        outs[s].append((s, t))
        ins[t].append((s, t))

    def anchor(key: str, edge: tuple[str, str], side: str) -> tuple[float, float]:
        group = sorted(outs[key] if side == "out" else ins[key],
                       key=lambda e: (pos[e[1] if side == "out" else e[0]][1], e))
        x, y = pos[key]
        return (x + BOX_W if side == "out" else x), y + height_of[key] * (group.index(edge) + 1) / (len(group) + 1)

    used: Counter = Counter()

    def lane(c: int, want: float) -> float:
        """A height at which an arrow crosses column c without crossing a box: the free gap nearest `want`."""
        spans = [(pos[k][1], pos[k][1] + height_of[k]) for k in columns[c]]
        if not any(a - 6 <= want <= b + 6 for a, b in spans):
            return want
        gaps = [spans[0][0] - ROW_GAP / 2] + [(b + a2) / 2 for (_, b), (a2, _) in zip(spans, spans[1:])] \
            + [spans[-1][1] + ROW_GAP / 2]
        best = min(gaps, key=lambda g: abs(g - want))
        used[(c, best)] += 1
        return best + LANE * (used[(c, best)] - 1) * (1 if best > want else -1)

    def route(s: str, t: str) -> list[tuple[float, float]]:
        (x1, y1), (x2, y2) = anchor(s, (s, t), "out"), anchor(t, (s, t), "in")
        points = [(x1, y1)]
        for c in range(layer[s] + 1, layer[t]):
            want = y1 + (y2 - y1) * (c - layer[s]) / (layer[t] - layer[s])
            y = lane(c, want)
            x = MARGIN + c * (BOX_W + COL_GAP)
            points += [(x - 12, y), (x + BOX_W + 12, y)]
        return points + [(x2, y2)]

    def path(points: list[tuple[float, float]]) -> str:
        d = [f"M{points[0][0]:.1f},{points[0][1]:.1f}"]
        for (xa, ya), (xb, yb) in zip(points, points[1:]):
            bend = max(20.0, (xb - xa) / 2) if xb > xa else 60.0
            d.append(f"C{xa + bend:.1f},{ya:.1f} {xb - bend:.1f},{yb:.1f} {xb:.1f},{yb:.1f}")
        return " ".join(d)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
           f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="Helvetica, Arial, sans-serif" font-size="12">',
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
           'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#5f6368"/></marker></defs>',
           '<rect width="100%" height="100%" fill="white"/>',
           f'<text x="{MARGIN}" y="{MARGIN + 8}" font-size="16" font-weight="bold">{escape(title)}</text>']
    labels = []
    for (s, t), edge in sorted(edges.items()):
        points = route(s, t)
        dash = ' stroke-dasharray="6 4"' if edge.one_sided else ""
        tip = escape(f"{boxes[s].title} -> {boxes[t].title}: " + "; ".join(sorted(edge.notes)))
        out.append(f'<path d="{path(points)}" fill="none" stroke="#5f6368" stroke-width="1.4"{dash} '
                   f'marker-end="url(#arrow)"><title>{tip}</title></path>')
        # The label sits where the arrow leaves its box: arrows from one box are apart there.
        x1, y1 = points[0]
        ports = escape(", ".join(sorted(edge.ports, key=_natural)))
        labels.append(f'<text x="{x1 + 8:.1f}" y="{y1 - 4:.1f}" font-size="11" fill="#202124" stroke="white" '
                      f'stroke-width="3" paint-order="stroke">{ports}</text>')
    for key, box in boxes.items():
        x, y = pos[key]
        h = height_of[key]
        fill = FLEET_COLORS.get(box.title.split(" x")[0], "#e8eaed") if box.kind == "fleet" else COLORS[box.kind]
        dash = ' stroke-dasharray="4 3"' if box.kind.startswith("cidr") or box.kind == "group" else ""
        for shadow in range(min(box.count - 1, 2), 0, -1):  # a fleet looks like a stack of cards
            out.append(f'<rect x="{x + 4 * shadow}" y="{y - 4 * shadow}" width="{BOX_W}" height="{h}" rx="6" '
                       f'fill="{fill}" stroke="#80868b"/>')
        out.append(f'<g><title>{escape(key)}</title><rect x="{x}" y="{y}" width="{BOX_W}" height="{h}" rx="6" '
                   f'fill="{fill}" stroke="#3c4043"{dash}/>')
        out.append(f'<text x="{x + 10}" y="{y + 19}" font-weight="bold">{escape(box.title)}</text>')
        for i, line in enumerate(box.lines):
            out.append(f'<text x="{x + 10}" y="{y + 19 + LINE_H * (i + 1)}" fill="#3c4043">{escape(line)}</text>')
        out.append("</g>")
    out += labels
    out.append(f'<text x="{MARGIN}" y="{height - MARGIN}" fill="#5f6368">Arrows: from who opens the connection to '
               f'who accepts it, with the ports. Dashed: only one side\'s rules allow it. Drawn from the declared '
               f'resources.</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------------- the plan
@dataclasses.dataclass
class Plan:
    stack_name: str
    run: Run
    mocks: PlanMocks
    stack: Stack

    def tree(self, expand: bool = False) -> list[str]:
        root = build_tree(self.run.mocks.resources, f"{PROJECT}-{self.stack_name}", self.mocks.custom)
        lines = render_tree(root if expand else collapse(root))
        return lines + [""] + count_lines(self.run.mocks.resources, root)

    def svg(self) -> str:
        boxes, edges = topology(self.stack)
        return render_svg(boxes, edges, f"{PROJECT} {self.stack_name}: {len(self.run.mocks.resources) + 1} "
                                        f"resources; who reaches whom")


def make_plan(stack: str, overrides: Optional[dict[str, Any]] = None) -> Plan:
    """Runs the program for a stack; raises the program's error (SettingsError for refused settings)."""
    mocks = PlanMocks()
    run = run_program(stack_config(stack, **(overrides or {})), stack=stack, mocks=mocks)
    if run.error is not None:
        # Without the runtime's frames: they hold its event loop, which then fails noisily at exit.
        raise run.error.with_traceback(None)
    return Plan(stack, run, mocks, Stack(run.mocks.resources))


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _quiet_loop_teardown(unraisable) -> None:
    """After a failed run the SDK's per-thread event loops are collected after their sockets and complain at exit
    (BaseEventLoop.__del__: Invalid file descriptor). Nothing is lost; anything else is reported as usual."""
    obj = getattr(unraisable, "object", None)
    if isinstance(unraisable.exc_value, ValueError) and getattr(obj, "__qualname__", "") == "BaseEventLoop.__del__":
        return
    sys.__unraisablehook__(unraisable)


def print_assumed(notes: list[str]) -> None:
    """What the mocks answered without AWS (tools/assumed.py): the plan is only as true as these."""
    if notes:
        print("\nAssumed offline (AWS answers these at deploy):")
        print("\n".join(f"  {note}" for note in notes))


def changes_main(args: argparse.Namespace, overrides: dict[str, Any]) -> int:
    """--changes: the change preview of tools/changes.py, with this command's exit codes."""
    from tools import changes

    try:
        result = changes.preview(args.stack, overrides, args.base)
    except (FileNotFoundError, StackFileError, ValueError) as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except changes.ProgramFailed as exc:
        print(str(exc), file=sys.stderr)
        return 2
    print(changes.describe(args.stack, args.base, result.commit, args.set) + "\n")
    print("\n".join(result.lines()))
    for warning in dict.fromkeys(result.head.warnings):
        print(f"warning: {warning}")
    print_assumed(result.head.mocks.assumed)
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    summary, _, details = __doc__.partition("\n\n")
    parser = argparse.ArgumentParser(prog="venv/bin/python -m tools.plan", description=summary,
                                     epilog=details.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stack", default="dev",
                        help="stack whose Pulumi.<stack>.yaml to plan (default dev), or DIR/<stack> for a "
                             "stack file in another folder (examples/prod)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting for this plan, key without the project prefix or with another "
                             "namespace (aws:region); JSON values: 6, true, [\"10.0.0.0/8\"]")
    parser.add_argument("--expand", action="store_true", help="show every member of a fleet instead of one line each")
    parser.add_argument("--svg", type=Path, metavar="FILE", help="also write the topology picture to FILE")
    parser.add_argument("--changes", action="store_true",
                        help="instead of the plan of a new stack, what the change does to the stack deployed from "
                             "--base: created, updated, replaced, deleted, the steps that run again, what hurts "
                             "(tools/changes.py)")
    parser.add_argument("--base", default="HEAD", metavar="REF",
                        help="with --changes: the commit whose program and stack file are deployed (default HEAD)")
    args = parser.parse_args(argv)
    overrides = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key:
            parser.error(f"--set takes KEY=VALUE, got {item!r}")
        overrides[key] = _value(value)
    if args.changes:
        return changes_main(args, overrides)
    try:
        plan = make_plan(args.stack, overrides)
    except (SettingsError, FileNotFoundError, StackFileError) as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - any other failure of the program, said in one line
        print(f"the program fails under the mocks: {exc}", file=sys.stderr)
        return 1
    print(f"Plan of stack {args.stack} ({stack_file(args.stack).name}{shown_sets(args.set)}), "
          f"from the program under the mocks: a new stack, nothing in AWS.\n")
    print("\n".join(plan.tree(args.expand)))
    print("\nWho can reach what\n")
    print("\n".join(reach_lines(plan.stack)))
    for warning in dict.fromkeys(plan.run.warnings):
        print(f"warning: {warning}")
    print_assumed(plan.run.mocks.assumed)
    if args.svg:
        args.svg.write_text(plan.svg())
        print(f"\nTopology picture: {args.svg}")
    return 0


if __name__ == "__main__":
    sys.unraisablehook = _quiet_loop_teardown
    try:
        sys.exit(main())
    except BrokenPipeError:  # the reader stopped early (`| head`): as the Python docs advise, no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(141)
