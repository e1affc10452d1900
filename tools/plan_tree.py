"""The plan's resource tree: every declared resource under its parent, like `pulumi preview`'s, with alike siblings
collapsed to one line (`filtering-0..499`), and the count of resources by type (tools/plan.py prints them)."""

from __future__ import annotations

import dataclasses
import re
from collections import Counter, defaultdict
from typing import Optional

from harness.mocks import Recorded

STACK_TYPE = "pulumi:pulumi:Stack"


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
