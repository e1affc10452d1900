"""tools.plan: the resource tree, the reach table and the topology picture, checked against what the program
declares under the mocks. Generic by resource type and Role tag: what the program does not declare (yet) is not
assumed, what it declares is checked."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter

import pytest

from tests.conftest import ROOT, program_run
from tools import plan as planmod
from tools.plan_picture import topology
from tools.plan_reach import ATTACHMENT, INSTANCE, LISTENER, LOAD_BALANCER, RULE_TYPES, SECURITY_GROUP, Stack, reach_lines
from tools.plan_tree import STACK_TYPE, build_tree, collapse, count_lines, render_tree

SVG = "{http://www.w3.org/2000/svg}"


def _roles(resources, group_id: str) -> Counter:
    """Role tag -> number of instances that carry this security group (and "loadbalancer" -> load balancers that
    carry it), read straight from the records."""
    roles = Counter(r.inputs["tags"]["Role"] for r in resources
                    if r.typ == INSTANCE and group_id in r.inputs.get("vpcSecurityGroupIds", []))
    roles.update("loadbalancer" for r in resources
                 if r.typ == LOAD_BALANCER and group_id in (r.inputs.get("securityGroups") or []))
    return roles


def _fleet_text(roles: Counter) -> str:
    return ", ".join(f"{role} x{n}" for role, n in sorted(roles.items())) or "no instance"


def _box_title(resources, group_id: str) -> str:
    """The picture's box for a group's members: the load balancer's own box (its name) when a load balancer
    carries the group, else the fleet."""
    lbs = [r.name for r in resources if r.typ == LOAD_BALANCER and group_id in (r.inputs.get("securityGroups") or [])]
    return lbs[0] if lbs else _fleet_text(_roles(resources, group_id))


@pytest.fixture(scope="module")
def dev():
    return program_run()


@pytest.fixture(scope="module")
def fleets():
    """More than one of each: 2 postanalytics servers, 3 filtering nodes."""
    return program_run(postanalyticsCount=2, filteringCount=3)


@pytest.mark.parametrize("which", ["dev", "fleets"])
def test_every_rule_appears_once_resolved_to_its_groups_and_fleets(which, request):
    """Guards against a rule missing from the table or shown twice, a rule shown the wrong way round (ingress
    source and egress target swapped), a group resolved to the wrong instances, or a wrong port."""
    resources = request.getfixturevalue(which).mocks.resources
    rules = [r for r in resources if r.typ in RULE_TYPES]
    assert rules, "the program declares no security group rule"
    rows = Stack(resources).reach()
    assert Counter(row.rule.record.urn for row in rows) == Counter(r.urn for r in rules)
    names = {r.id: r.inputs["tags"]["Name"] for r in resources if r.typ == SECURITY_GROUP}
    for row in rows:
        rule = row.rule.record.inputs
        own, peer = (row.target, row.source) if row.rule.direction == "in" else (row.source, row.target)
        assert row.rule.direction == ("in" if "Ingress" in row.rule.record.typ else "out"), row.rule.record.name
        assert own == f"{names[rule['securityGroupId']]} [{_fleet_text(_roles(resources, rule['securityGroupId']))}]"
        if rule.get("referencedSecurityGroupId"):
            ref = rule["referencedSecurityGroupId"]
            assert peer == f"{names[ref]} [{_fleet_text(_roles(resources, ref))}]", row.rule.record.name
        else:
            assert peer.split(" ")[0] == rule["cidrIpv4"], row.rule.record.name
        low, high = int(rule["fromPort"]), int(rule["toPort"])
        assert row.port == f"{rule['ipProtocol']}/{low}" + (f"-{high}" if high != low else ""), row.rule.record.name
        assert row.description == rule["description"]
    assert f"Rules: {len(rules)} " in "\n".join(reach_lines(Stack(resources)))


def test_a_referenced_group_resolves_to_the_fleet_that_carries_it(fleets):
    """Guards against a rule between security groups shown as a bare ID: wstore's ingress from the filtering
    group must name the filtering fleet and its size, and the other side's rule must be found."""
    resources = fleets.mocks.resources
    filtering = sum(1 for r in resources if r.typ == INSTANCE and r.inputs["tags"]["Role"] == "filtering")
    referenced = [row for row in Stack(resources).reach() if row.rule.referenced]
    if not referenced:
        pytest.skip("the program declares no rule between security groups")
    wstore = [row for row in referenced if row.rule.direction == "in" and "[postanalytics x2]" in row.target
              and "filtering" in row.source]
    assert wstore, "no ingress rule on the postanalytics group from the filtering group"
    for row in wstore:
        assert f"[filtering x{filtering}]" in row.source, row.source
        assert row.both_sides == "yes", f"{row.rule.record.name}: {row.both_sides}"


TLS_ARN = "arn:aws:acm:eu-central-1:123456789012:certificate/12345678-1234-1234-1234-123456789012"


def test_the_load_balancer_group_is_the_nodes_only_way_in_and_both_sides_agree():
    """Guards against a plan that shows the load balancer's group as an empty group (its rules flagged one-sided),
    or a node port open to a CIDR again: clients reach the load balancer's group, the nodes admit their traffic and
    health ports from that group only, and the picture draws clients -> load balancer -> filtering nodes."""
    run = program_run(tlsCertificateArn=TLS_ARN)
    stack = Stack(run.mocks.resources)
    rows = stack.reach()
    lb_rows = [r for r in rows if r.rule.referenced and "firewall-loadbalancer [loadbalancer x1]" in
               (r.source if r.rule.direction == "in" else r.target)]
    assert {r.port for r in lb_rows if r.rule.direction == "in"} == {"tcp/80", "tcp/8443", "tcp/8081", "tcp/8082"}
    assert all(r.both_sides == "yes" for r in lb_rows), [(r.rule.record.name, r.both_sides) for r in lb_rows]
    node_cidr_ingress = [r.rule.record.name for r in rows if r.rule.direction == "in" and r.rule.cidr
                         and "[filtering x" in r.target and r.port != "tcp/22"]
    assert node_cidr_ingress == [], node_cidr_ingress
    boxes, edges = topology(stack)
    lb = next(k for k, b in boxes.items() if b.kind == "lb")
    assert ("cidr-in:0.0.0.0/0", lb) in edges and {"tcp/80", "tcp/443"} <= edges[("cidr-in:0.0.0.0/0", lb)].ports
    assert not edges[("cidr-in:0.0.0.0/0", lb)].one_sided
    assert ("cidr-in:0.0.0.0/0", "fleet:filtering") not in edges, "clients still reach the nodes directly"
    assert not edges[(lb, "fleet:filtering")].one_sided
    text = "\n".join(reach_lines(stack))
    assert "HTTP 8082 /healthz (PROXY v2 on" in text, text


def test_a_planted_rule_shows_up_with_its_peer_and_a_missing_other_side(dev):
    """Guards against a table that lists what it expects instead of what is declared: an extra rule (as a
    careless change would add) appears, its /32 source is named after the instance it is, and a rule between
    groups that the other side's egress does not allow is flagged."""
    resources = list(dev.mocks.resources)
    template = next(r for r in resources if r.typ.endswith("SecurityGroupIngressRule"))
    groups = {r.inputs["tags"]["Name"]: r.id for r in resources if r.typ == SECURITY_GROUP}
    node = next(r for r in resources if r.typ == INSTANCE and r.inputs["tags"]["Role"] == "filtering")
    planted = {
        "planted-mysql": {"securityGroupId": groups["firewall-postanalytics"], "ipProtocol": "tcp", "fromPort": 3306,
                          "toPort": 3306, "cidrIpv4": f"{node.outputs['privateIp']}/32", "description": "planted"},
        "planted-debug": {"securityGroupId": groups["firewall-postanalytics"], "ipProtocol": "tcp", "fromPort": 9999,
                          "toPort": 9999, "referencedSecurityGroupId": groups["firewall-filtering"],
                          "description": "planted by reference"},
    }
    for name, inputs in planted.items():
        resources.append(dataclasses.replace(template, name=name, inputs=inputs, raw_inputs=inputs,
                                             urn=template.urn.rsplit("::", 1)[0] + "::" + name))
    rows = {row.rule.record.name: row for row in Stack(resources).reach()}
    mysql, debug = rows["planted-mysql"], rows["planted-debug"]
    assert mysql.port == "tcp/3306" and "[postanalytics x1]" in mysql.target
    assert mysql.source == f"{node.outputs['privateIp']}/32 ({node.inputs['tags']['Node']})"
    assert debug.source.startswith("firewall-filtering [filtering x") and debug.both_sides.startswith("NO:"), debug
    text = "\n".join(reach_lines(Stack(resources)))
    declared = sum(1 for r in dev.mocks.resources if r.typ in RULE_TYPES)
    assert "planted by reference" in text and f"Rules: {declared + 2} " in text


def test_counts_match_the_declared_resources(fleets):
    """Guards against a tree or a count that drops or double-counts resources, in particular when alike
    siblings (a fleet's nodes) are collapsed into one line."""
    resources = fleets.mocks.resources
    root = build_tree(resources, "stack")
    assert root.size() == len(resources) + 1
    collapsed = collapse(root)
    assert collapsed.size() == len(resources) + 1, "collapsing lost or added resources"
    lines = count_lines(resources, root)
    counts = Counter(r.typ for r in resources)
    counts[STACK_TYPE] += 1
    for typ, n in counts.items():
        assert f"{n:>5}  {typ}" in lines, typ
    assert f"Resources: {len(resources) + 1} to create" in lines
    assert len(render_tree(root)) == len(resources) + 2, "--expand shows one line per resource, plus the header"


def test_a_fleet_is_one_line_with_its_count(fleets):
    """Guards against a large fleet flooding the tree: each component type with numbered siblings is one line
    saying how many it stands for, and no member's own name is printed."""
    lines = render_tree(collapse(build_tree(fleets.mocks.resources, "stack")))
    for typ, role in (("wallarm:index:FilteringNode", "filtering"), ("wallarm:index:Postanalytics", "postanalytics")):
        n = len(fleets.mocks.of_type(typ))
        shown = [line for line in lines if typ in line]
        assert len(shown) == 1 and f"{role}-0..{n - 1}" in shown[0] and f"{n} alike" in shown[0], shown
        assert not any(re.search(rf"\b{role}-1\b", line) for line in lines), f"{role}-1 printed: not collapsed"


def test_load_balancer_listeners_lead_to_the_attached_nodes(dev):
    """Guards against a listener left out of the plan or pointing at the wrong nodes. Checks whatever load
    balancers the program declares (none is no error)."""
    stack = Stack(dev.mocks.resources)
    rows = stack.forwarding()
    assert len(rows) == len(dev.mocks.of_type(LISTENER))
    for lb, listener, group, attached in rows:
        expected = {r.inputs["targetId"] for r in dev.mocks.of_type(ATTACHMENT)
                    if group is not None and r.inputs["targetGroupArn"] == group.outputs["arn"]}
        assert {i.id for i in attached} == expected, listener.name
        assert listener.inputs["loadBalancerArn"] == lb.outputs["arn"]


def test_the_picture_is_svg_naming_every_fleet_and_linking_referenced_groups(fleets):
    """Guards against a static or broken picture: it parses as XML, has a box for every fleet (Role tag) with
    its size and every load balancer, and an arrow for every rule between two security groups."""
    resources = fleets.mocks.resources
    stack = Stack(resources)
    boxes, edges = topology(stack)
    svg = planmod.render_svg(boxes, edges, "test")
    root = ET.fromstring(svg)
    texts = {t.text for t in root.iter(f"{SVG}text")}
    titles = [t.text or "" for t in root.iter(f"{SVG}title")]
    for role, n in Counter(r.inputs["tags"]["Role"] for r in resources if r.typ == INSTANCE).items():
        assert f"{role} x{n}" in texts, role
    for lb in (r for r in resources if r.typ == "aws:lb/loadBalancer:LoadBalancer"):
        assert lb.name in texts
    for row in stack.reach():
        if row.rule.referenced:
            ends = (row.rule.referenced, row.rule.group) if row.rule.direction == "in" else \
                (row.rule.group, row.rule.referenced)
            src, dst = (_box_title(resources, g) for g in ends)
            assert any(t.startswith(f"{src} -> {dst}:") for t in titles), f"no arrow {src} -> {dst}"


def test_the_command_prints_every_part_and_writes_the_picture(dev, tmp_path):
    """Guards against a command line that runs but prints a different plan than the program declares, or
    columns that --help does not explain."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert planmod.main(["--stack", "dev", "--svg", str(tmp_path / "plan.svg")]) == 0
    text = out.getvalue()
    assert f"Resources: {len(dev.mocks.resources) + 1} to create" in text
    ET.parse(tmp_path / "plan.svg")
    help_text = io.StringIO()
    with contextlib.redirect_stdout(help_text), pytest.raises(SystemExit) as done:
        planmod.main(["--help"])
    assert done.value.code == 0
    headers = [line for line in text.splitlines() if re.match(r"\s*(Type|Dir|Load balancer|Count)\s{2}", line)]
    columns = {c for line in headers for c in re.split(r"\s{2,}", line.strip())}
    assert {"Type", "Dir", "Both sides"} <= columns
    for column in columns:
        assert column in help_text.getvalue(), f"--help does not explain the column {column!r}"


def test_a_bad_setting_exits_non_zero_with_the_programs_sentence():
    """Guards against a plan printed from refused settings, a traceback instead of the sentence, or noise
    after it: exit 2, stdout empty, stderr exactly the settings error naming the key and the value."""
    done = subprocess.run([sys.executable, "-m", "tools.plan", "--stack", "dev", "--set", "wallarmMode=loud"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "wallarmMode" in lines[0] and "'loud'" in lines[0], done.stderr


def _plan_text(*sets: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert planmod.main(["--stack", "dev"] + [a for s in sets for a in ("--set", s)]) == 0
    return out.getvalue()


def test_a_region_with_four_zones_plans_on_invented_zones_and_says_so():
    """Guards against eu-central-1's zones answered for every region (us-east-1 with 4 zones was refused)."""
    text = _plan_text("aws:region=us-east-1", "availabilityZoneCount=4")
    assumed = text.split("Assumed offline")[1].splitlines()[1:]
    assert "  zones of us-east-1: us-east-1a, us-east-1b, us-east-1c, us-east-1d (invented: only AWS knows the " \
           "region's zones)" in assumed, assumed
    run = planmod.make_plan("dev", {"aws:region": "us-east-1", "availabilityZoneCount": 4}).run
    [vpc] = run.mocks.of_type("awsx:ec2:Vpc")
    assert vpc.inputs["availabilityZoneNames"] == [f"us-east-1{z}" for z in "abcd"]
    assert all(".us-east-1." in r.outputs["privateDns"] for r in run.mocks.of_type(INSTANCE))


def test_an_existing_vpc_with_any_ids_plans_with_the_ids_it_lists_and_says_what_it_assumed():
    """Guards against `no matching EC2 VPC found`: the mocks knew only the example's IDs."""
    vpc, public, private = "vpc-0123456789abcdef0", ["subnet-0aaaaaaaaaaaaaaa1", "subnet-0aaaaaaaaaaaaaaa2"], \
        ["subnet-0bbbbbbbbbbbbbbb1", "subnet-0bbbbbbbbbbbbbbb2"]
    overrides = {"vpcId": vpc, "publicSubnetIds": public, "privateSubnetIds": private}
    run = planmod.make_plan("dev", overrides).run
    [lb] = run.mocks.of_type("aws:lb/loadBalancer:LoadBalancer")
    assert lb.inputs["subnets"] == public
    nodes = [r for r in run.mocks.of_type(INSTANCE) if r.inputs["tags"]["Role"] != "jumphost"]
    assert {r.inputs["subnetId"] for r in nodes} == set(private)
    assert all(r.inputs.get("vpcId") == vpc for r in run.mocks.of_type(SECURITY_GROUP))
    assert f"{vpc} has the CIDR 10.0.0.0/16 (vpcCidr" in "\n".join(run.mocks.assumed)
    assert sum(f"subnet {s} is in" in "\n".join(run.mocks.assumed) for s in public + private) == 4
