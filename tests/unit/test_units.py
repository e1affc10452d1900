"""Unit tests of the pure functions, called directly with plain values: no mocks, no Pulumi engine, no resources.

The layer under the component tests (pulumi-awsx tests its pure functions the same way): placement and zone
interleaving (components/network.py), the firewall's rule table and CIDR folding (components/firewall.py), the
renderers (components/render.py) and host names (components/host.py). Where an invariant holds for every input it
is a Hypothesis property; the examples per property are kept modest so that the file runs in a few seconds. The
Hypothesis pytest plugin is off (pytest.ini says why); `@given` runs the same without it.
"""

from __future__ import annotations

import collections
import ipaddress
import re

from hypothesis import given, settings, strategies as st

from components import render
from components.firewall import WORLD, FirewallArgs, fold, rules, wstore_listeners
from components.host import generation, host_name
from components.network import Subnet, interleave, place

EXAMPLES = settings(max_examples=60, deadline=None)
ZONE_NAMES = [f"eu-central-1{c}" for c in "abcdef"]
# RFC 1123 section 2.1 (and RFC 952): a label is letters, digits and hyphens, neither first nor last a hyphen, at
# most 63 characters.
LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")


# ---- placement and zone interleaving (components/network.py) ----

@st.composite
def subnets(draw, equal: bool = False) -> list[Subnet]:
    """Private subnets as the settings list them: 1 to 6 zones, 1 to 4 subnets each (the same number with
    `equal`), in any order; keys are distinct subnet IDs."""
    zones = draw(st.lists(st.sampled_from(ZONE_NAMES), min_size=1, max_size=6, unique=True))
    per_zone = draw(st.integers(1, 4))
    counts = {z: per_zone if equal else draw(st.integers(1, 4)) for z in zones}
    listed = [z for z in zones for _ in range(counts[z])]
    order = draw(st.permutations(listed))
    return [Subnet(i, zone, f"subnet-{i:04x}") for i, zone in enumerate(order)]


def zones_of(placed: list[Subnet]) -> collections.Counter:
    return collections.Counter(s.zone for s in placed)


@EXAMPLES
@given(subnets(), st.integers(0, 40), st.data())
def test_every_node_is_placed_in_exactly_one_offered_subnet(subs, count, data):
    """Guards against a node without a subnet, two subnets for one node, or a subnet in a zone that does not offer
    the node's instance type."""
    offered = set(data.draw(st.lists(st.sampled_from(sorted({s.zone for s in subs})), min_size=1, unique=True)))
    placed = place(subs, offered, count)
    assert len(placed) == count, f"{count} nodes, {len(placed)} placements"
    assert all(s in subs and s.zone in offered for s in placed), placed


@EXAMPLES
@given(subnets(), st.integers(1, 40))
def test_any_first_k_nodes_span_min_k_zones(subs, count):
    """Guards against consecutive nodes landing in one zone: the first k nodes use min(k, zones) zones, so a
    small fleet is spread over as many zones as it can be, whatever the order the subnets are listed in."""
    zones = {s.zone for s in subs}
    placed = place(subs, zones, count)
    for k in range(1, count + 1):
        assert len(zones_of(placed[:k])) == min(k, len(zones)), f"first {k} nodes: {zones_of(placed[:k])}"


@EXAMPLES
@given(subnets(equal=True), st.integers(1, 40))
def test_zones_differ_by_at_most_one_node(subs, count):
    """Guards against an unbalanced fleet: with as many subnets in every zone (a created VPC has one per zone),
    any first k nodes put a number per zone that differs by at most one between zones."""
    zones = {s.zone for s in subs}
    placed = place(subs, zones, count)
    for k in range(1, count + 1):
        per_zone = [zones_of(placed[:k]).get(z, 0) for z in zones]
        assert max(per_zone) - min(per_zone) <= 1, f"first {k} nodes per zone: {zones_of(placed[:k])}"


@EXAMPLES
@given(subnets())
def test_interleave_uses_every_subnet_once_and_starts_with_every_zone(subs):
    """Guards against an interleaving that drops or repeats a subnet (some would take no node, others two), or
    whose first round misses a zone."""
    order = interleave(subs)
    assert sorted(order, key=lambda s: s.index) == sorted(subs, key=lambda s: s.index)
    zones = {s.zone for s in subs}
    assert {s.zone for s in order[:len(zones)]} == zones, order


@EXAMPLES
@given(subnets(), st.integers(0, 40))
def test_adding_a_node_moves_no_existing_node(subs, count):
    """Guards against a placement that depends on the fleet's size: adding one filtering node must change no
    existing resource (docs/architecture.md), so node i keeps its subnet, and with it its machine's generation."""
    zones = {s.zone for s in subs}
    before, after = place(subs, zones, count), place(subs, zones, count + 1)
    assert after[:count] == before, f"node placements changed: {before} -> {after[:count]}"
    gens = [generation("filtering", "6.6.0", "c5.large", None, s.key, None, "debian12") for s in before]
    assert gens == [generation("filtering", "6.6.0", "c5.large", None, s.key, None, "debian12")
                    for s in after[:count]]


def test_placement_of_an_unoffered_fleet_is_empty():
    """Guards against a node placed in a zone that does not offer its type (network._place then refuses it)."""
    subs = [Subnet(0, "eu-central-1a", "subnet-a"), Subnet(1, "eu-central-1b", "subnet-b")]
    assert place(subs, {"eu-central-1c"}, 3) == []
    assert [s.key for s in place(subs, {"eu-central-1b"}, 3)] == ["subnet-b"] * 3


# ---- CIDR folding and the rule table (components/firewall.py) ----

UNIVERSE_PREFIX = 22  # CIDRs inside one /22: 1,024 addresses, few enough to compare as sets of addresses


@st.composite
def cidr_lists(draw, max_size: int = 12) -> tuple[ipaddress.IPv4Network, list[str]]:
    """A /22 anywhere in IPv4 and CIDRs inside it (prefixes /22 to /32): a few sizes per list, each CIDR one of the
    first blocks of its size, so that neighbours of one size (which fold only when they are the two halves of one
    block), overlaps and repeats are common."""
    base = ipaddress.IPv4Network((draw(st.integers(0, 2**32 - 1)) >> (32 - UNIVERSE_PREFIX) << (32 - UNIVERSE_PREFIX),
                                  UNIVERSE_PREFIX))
    sizes = draw(st.lists(st.integers(UNIVERSE_PREFIX, 32), min_size=1, max_size=3))
    cidrs = []
    for _ in range(draw(st.integers(1, max_size))):
        prefix = draw(st.sampled_from(sizes))
        block = draw(st.integers(0, 7)) % 2 ** (prefix - UNIVERSE_PREFIX)
        cidrs.append(str(ipaddress.IPv4Network((int(base.network_address) + (block << (32 - prefix)), prefix))))
    return base, cidrs


def addresses(cidrs: list[str]) -> set[int]:
    """Every address the CIDRs hold, as integers."""
    found: set[int] = set()
    for net in map(ipaddress.IPv4Network, cidrs):
        found.update(range(int(net.network_address), int(net.broadcast_address) + 1))
    return found


@EXAMPLES
@given(cidr_lists())
def test_folding_covers_exactly_the_addresses_it_was_given(given_cidrs):
    """Guards against a fold that widens a range (opens addresses nobody listed) or drops one (locks a listed
    network out): the folded CIDRs admit exactly the addresses of the listed ones."""
    _, cidrs = given_cidrs
    folded = fold(cidrs)
    assert addresses(folded) == addresses(cidrs), f"{cidrs} folded to {folded}"


@EXAMPLES
@given(cidr_lists())
def test_folding_never_adds_a_rule_and_leaves_no_two_ranges_to_merge(given_cidrs):
    """Guards against a fold that yields more rules than the CIDRs listed (the quota check counts folded rules),
    overlapping ranges (two rules for one address) or ranges that one CIDR could hold, out of address order."""
    _, cidrs = given_cidrs
    folded = [ipaddress.IPv4Network(c) for c in fold(cidrs)]
    assert len(folded) <= len(set(cidrs))
    assert folded == sorted(folded)
    assert sum(n.num_addresses for n in folded) == len(addresses(cidrs)), "overlapping folded ranges"
    for a, b in zip(folded, folded[1:]):
        merged = list(ipaddress.collapse_addresses([a, b]))
        assert merged == [a, b], f"{a} and {b} should have been one range"


def firewall_args(client: list[str], ssh: list[str], external: list[str], tls: bool, jump_host: bool,
                  upstream: str = "http://10.20.0.5:8080") -> FirewallArgs:
    return FirewallArgs(
        vpc_id="vpc-0", ssh_allowed_cidrs=ssh, client_cidrs=client, external_filtering_cidrs=external,
        wstore=wstore_listeners(3313, 6388, tls), protected_upstream=upstream,
        traffic_ports=[80, 8443] if tls else [80], health_ports=[8081, 8082] if tls else [8081],
        listener_ports=[80, 443] if tls else [80], jump_host=jump_host)


@EXAMPLES
@given(cidr_lists(), cidr_lists(max_size=4), cidr_lists(max_size=4), st.booleans(), st.booleans())
def test_rule_table_one_rule_per_folded_range_and_port_and_no_name_twice(client, ssh, external, tls, jump_host):
    """Guards against rules beyond the budget the quota check counts (one per listener port and folded client
    range), and two rules of one name (one Pulumi URN: the second would be refused)."""
    table = rules(firewall_args(client[1], ssh[1], external[1], tls, jump_host))
    listener_ports = [80, 443] if tls else [80]
    lb_in = [r for r in table if r.group == "loadbalancer" and r.direction == "ingress"]
    assert len(lb_in) == len(listener_ports) * len(fold(client[1])) <= len(listener_ports) * len(set(client[1]))
    names = [(r.group, r.direction, r.protocol, r.port, getattr(r.peer, "role", r.peer)) for r in table]
    assert len(names) == len(set(names)), [n for n, c in collections.Counter(names).items() if c > 1]
    assert all(r.description for r in table)


@EXAMPLES
@given(cidr_lists(max_size=4), st.booleans(), st.booleans())
def test_wstore_is_never_open_to_the_world_and_ssh_only_from_the_jump_host(external, tls, jump_host):
    """Guards against the wstore port reachable from 0.0.0.0/0, and node SSH from a CIDR when a jump host
    exists."""
    table = rules(firewall_args(["0.0.0.0/0"], ["203.0.113.0/24"], external[1], tls, jump_host))
    wstore = {port for port, _ in wstore_listeners(3313, 6388, tls)}
    assert not [r for r in table if r.group == "postanalytics" and r.direction == "ingress" and r.port in wstore
                and r.peer == WORLD]
    node_ssh = [r for r in table if r.group in ("filtering", "postanalytics") and r.port == 22
                and r.direction == "ingress"]
    if jump_host:
        assert all(getattr(r.peer, "role", None) == "jumphost" for r in node_ssh), node_ssh


# ---- renderers (components/render.py) ----

ipv4 = st.integers(0x0A000000, 0x0AFFFFFF).map(lambda n: str(ipaddress.IPv4Address(n)))
ports = st.integers(1, 65535)


@EXAMPLES
@given(st.lists(ipv4, min_size=1, max_size=30, unique=True), ports, ports, st.booleans(), st.booleans())
def test_upstream_lists_every_server_once_on_the_port_of_its_tls_mode(ips, port, tls_port, tls, mutual):
    """Guards against an upstream that misses a postanalytics server or lists one twice, points at the plain
    port with TLS on (or the TLS port without), or keeps fewer connections than servers."""
    mutual = tls and mutual  # the settings refuse mutual TLS without TLS
    text = render.render_upstream(render.upstream_servers(ips, port, tls_port, tls), tls, mutual)
    servers = re.findall(r"^    server (\S+) ", text, flags=re.M)
    expected = tls_port if tls else port
    assert sorted(servers) == sorted(f"{ip}:{expected}" for ip in ips), text
    assert re.search(rf"^    keepalive {len(ips)};$", text, flags=re.M), text
    assert ("ssl=on;" in text) == tls and ("wallarm_wstore_ssl_cert_file" in text) == mutual, text


def test_upstream_refuses_no_server():
    """Guards against an upstream block with no server, which NGINX refuses at reload on every node."""
    try:
        render.render_upstream([], False, False)
    except ValueError as exc:
        assert "at least one postanalytics server" in str(exc)
    else:
        raise AssertionError("an empty upstream was rendered")


hostnames = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?(\.[a-z0-9]{1,10}){0,2}", fullmatch=True)
paths = st.from_regex(r"(/[A-Za-z0-9._~-]{0,8}){0,3}/?", fullmatch=True)


@EXAMPLES
@given(st.sampled_from(["http", "https"]), hostnames, st.one_of(st.none(), ports), paths)
def test_proxy_pass_keeps_the_path_with_one_trailing_slash(scheme, host, port, path):
    """Guards against proxy_pass joining the path and the request URI without a slash (/base + x -> /basex) or
    with two, or losing the application's host and port."""
    netloc = host if port is None else f"{host}:{port}"
    result = render.proxy_pass(f"{scheme}://{netloc}{path}")
    stripped = path.rstrip("/")
    assert result == f"{scheme}://{netloc}" + (f"{stripped}/" if stripped else ""), result
    assert not result.endswith("//")


@EXAMPLES
@given(st.sampled_from(["off", "monitoring", "safe_blocking", "block"]), st.booleans())
def test_nginx_conf_has_the_upstream_once_and_a_health_server_per_target_group(mode, tls):
    """Guards against a rendered NGINX file without the wstore upstream, with it twice, or without the health
    server a target group checks (the load balancer would mark every node unhealthy)."""
    upstream = render.render_upstream(["10.0.1.5:6388"], tls, tls)
    conf = render.render_nginx_conf(upstream, "http://10.20.0.5:8080", mode, 8081, 8443 if tls else None,
                                    "10.0.0.0/16", 8082 if tls else None)
    assert conf.count("upstream wallarm_wstore {") == 1
    assert conf.count(f"location = {render.HEALTH_PATH}") == (2 if tls else 1)
    proxies = [block for block in conf.split("server {")[1:] if "proxy_pass" in block]
    assert len(proxies) == (2 if tls else 1)
    assert all(f"wallarm_mode {mode};" in block for block in proxies), conf


# ---- host names (components/host.py) ----

# Pulumi stack names: letters, digits, hyphens, underscores and periods (pulumi/pulumi sdk/go/common/tokens,
# IsName), up to 100 characters; any text too, since the function must not rely on that.
# Words and separators too, so that the cut (long stacks) often lands next to a separator.
stack_names = st.one_of(
    st.from_regex(r"[A-Za-z0-9_.-]{1,100}", fullmatch=True),
    st.lists(st.from_regex(r"[A-Za-z0-9]{1,12}", fullmatch=True), min_size=1, max_size=12).flatmap(
        lambda words: st.lists(st.sampled_from("-_."), min_size=len(words), max_size=len(words)).map(
            lambda seps: "".join(w + s for w, s in zip(words, seps))[:100])),
    st.text(max_size=80))
node_names = st.builds(lambda role, i: f"{role}-{i}", st.sampled_from(["filtering", "postanalytics", "jumphost"]),
                       st.integers(0, 9999))


@EXAMPLES
@given(stack_names, node_names)
def test_host_name_is_an_rfc_1123_label(stack, node):
    """Guards against a host name that hostnamectl or a resolver refuses: too long, an upper-case letter, an
    underscore or dot from the stack name, a leading or trailing hyphen."""
    name = host_name(stack, node)
    assert len(name) <= 63 and LABEL.fullmatch(name), f"{stack!r}, {node!r} -> {name!r}"
    assert name.endswith(node), f"the node's own name is cut: {name!r}"


@EXAMPLES
@given(stack_names, st.sets(node_names, min_size=2, max_size=20))
def test_host_names_of_one_stack_are_distinct(stack, nodes):
    """Guards against two nodes of one stack with one host name (their logs and metrics would mix)."""
    names = [host_name(stack, node) for node in nodes]
    assert len(set(names)) == len(names), sorted(names)
