"""The plan's picture (--svg): the topology drawn from the declared resources, fleets and load balancers as boxes, an
arrow from whoever opens a connection to whoever accepts it, labelled with the ports (tools/plan.py writes it)."""

from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict
from xml.sax.saxutils import escape

from harness.mocks import Recorded
from tools.plan_reach import ANYWHERE, LOAD_BALANCER, Instance, Stack, _endpoint
from tools.plan_tree import _natural


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
