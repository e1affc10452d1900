"""The move under WallarmDeployment replaces nothing: the dev stack as it was at 549b0eb (tests/fixtures, made by
tools/aliases.py from that commit) maps onto today's tree through the aliases, resource by resource, with equal
inputs; and every resource of the stack is a descendant of exactly one WallarmDeployment."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

from tests.conftest import program_run
from tools import aliases

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "dev-stack-549b0eb.json"
DEPLOYMENT = "wallarm:index:WallarmDeployment"


def old_stack() -> dict[str, dict]:
    return {r["urn"]: r for r in json.loads(FIXTURE.read_text())["resources"]}


# What this release changes on purpose besides the move, so that the mapping test below tells those apart from a
# resource the move would lose: (type, a word of the resource's name) -> why. Each is an upload, a step or an alarm,
# never a machine, a key, the CA or the load balancer (STATEFUL), which must keep their inputs exactly.
CHANGED = {
    ("aws:cloudwatch/metricAlarm:MetricAlarm", "monitoring-"): "the per-node alarms watch the Node the agent sends "
                                                             "(the host name), an in-place update",
    ("command:remote:Command", "-wait"): "it stages the host's scripts from its stdin and names the host (the "
                                         "uploads and the host-name step folded in): it runs again, restarts nothing",
    ("command:remote:Command", "-configure"): "apply_spec.py changed (its YAML editor split out): configure runs again "
                                              "and restarts a service only if a file it writes changed",
    ("command:remote:Command", "-agent"): "cloudwatch_agent.py changed (the certificate check): the agent step runs "
                                          "again",
}
ADDED = {
    ("wallarm:index:WallarmDeployment", "wallarm"): "the component itself",
    ("aws:cloudwatch/metricAlarm:MetricAlarm", "-certificate-days"): "the nodes' own certificate alarm (issue 15)",
}
REMOVED = {
    ("command:remote:CopyToRemote", "-upload-"): "the scripts ride on the -wait step's stdin; a CopyToRemote has no "
                                                 "delete, so removing it changes nothing on the host",
    ("command:remote:Command", "-hostname"): "folded into -wait; the step has no delete command, so nothing runs",
}
STATEFUL = ("aws:ec2/instance:Instance", "aws:lb/loadBalancer:LoadBalancer", "aws:lb/targetGroup:TargetGroup",
            "aws:lb/listener:Listener", "tls:index/privateKey:PrivateKey", "tls:index/selfSignedCert:SelfSignedCert",
            "aws:ec2/securityGroup:SecurityGroup", "aws:ec2/eip:Eip", "aws:ec2/keyPair:KeyPair")


def _why(table: dict[tuple[str, str], str], typ: str, urn: str) -> str | None:
    name = urn.rsplit("::", 1)[-1]
    return next((why for (t, word), why in table.items() if t == typ and word in name), None)


def test_the_dev_stack_of_549b0eb_maps_onto_the_new_tree_without_replacement():
    """Guards against a `pulumi up` that deletes and re-creates the tier (the load balancer's DNS name and the CA
    included) because the resources moved under a component: every old URN is claimed by exactly one new resource
    of the same type and the same inputs, and every new resource has an old counterpart; the only exceptions are
    the release's own changes above, none of them stateful."""
    old, new = old_stack(), program_run().mocks.resources
    claimed = aliases.claims(set(old), new)
    by_old: dict[str, list[str]] = {}
    for new_urn, old_urn in claimed.items():
        by_old.setdefault(old_urn, []).append(new_urn)
    missing = sorted(u for u in set(old) - set(by_old) if not _why(REMOVED, old[u]["type"], u))
    assert not missing, f"{len(missing)} resources of the dev stack would be deleted and re-created: {missing[:5]}"
    assert not [u for u, news in by_old.items() if len(news) > 1], "an old URN is claimed twice (the engine refuses)"
    records = {r.urn: r for r in new}
    for new_urn, old_urn in claimed.items():
        r = records[new_urn]
        assert r.typ == old[old_urn]["type"], f"{new_urn} takes over {old_urn} of another type"
        if aliases.digest(r.raw_inputs) != old[old_urn]["digest"]:
            assert r.typ not in STATEFUL and _why(CHANGED, r.typ, old_urn), f"{new_urn}: its inputs differ from {old_urn}'s"
    orphans = [r.urn for r in new if r.urn not in claimed and not _why(ADDED, r.typ, r.urn)]
    assert not orphans, f"new resources without an old counterpart: {orphans[:5]}"
    assert [r.typ for r in new if r.urn not in claimed].count(DEPLOYMENT) == 1


def test_the_release_changes_no_stateful_resource():
    """Guards against the exception tables above growing to cover what the move must never touch."""
    for table in (CHANGED, ADDED, REMOVED):
        assert not [key for key in table if key[0] in STATEFUL]


def test_without_the_aliases_everything_would_be_replaced():
    """Guards against a test that passes whatever the aliases say: the same tree without its alias specs takes
    over none of the old resources (every URN changed with the new parent)."""
    new = [dataclasses.replace(r, options={**r.options, "aliases": []}) for r in program_run().mocks.resources]
    assert aliases.claims(set(old_stack()), new) == {}


def test_inherited_aliases_follow_the_engine():
    """The engine's rule (step_generator.go, inheritedChildAlias): a child of a parent found through an alias is
    looked up under that old parent URN, its name's parent prefix renamed with the parent (network-vpc -> net-vpc);
    URNs qualified by the whole chain of parent types, never the stack's (deployment.go, generateURN)."""
    stack, net = "urn:pulumi:dev::p::pulumi:pulumi:Stack::p-dev", "urn:pulumi:dev::p::wallarm:index:Network::net"
    top = aliases.Recorded("a:b:C", "top", {}, {}, {}, urn="urn:pulumi:dev::p::pulumi:pulumi:Stack$a:b:C::top",
                           parent=stack)
    base = aliases.Recorded("wallarm:index:Network", "network", {}, {}, {},
                            urn="urn:pulumi:dev::p::a:b:C$wallarm:index:Network::network", parent=top.urn,
                            options={"aliases": [{"name": "net", "noParent": True}]})
    child = aliases.Recorded("awsx:ec2:Vpc", "network-vpc", {}, {}, {},
                             urn="urn:pulumi:dev::p::wallarm:index:Network$awsx:ec2:Vpc::network-vpc",
                             parent=base.urn)
    assert aliases.engine_urns([top, base, child])[child.urn] == \
        "urn:pulumi:dev::p::a:b:C$wallarm:index:Network$awsx:ec2:Vpc::network-vpc"
    old_vpc = "urn:pulumi:dev::p::wallarm:index:Network$awsx:ec2:Vpc::net-vpc"
    assert aliases.claims({net, old_vpc}, [top, base, child]) == {base.urn: net, child.urn: old_vpc}


def test_every_resource_is_a_descendant_of_one_deployment():
    """Guards against a resource left at the stack's top level (or under another tree), out of the component a
    consumer program creates."""
    resources = program_run().mocks.resources
    by_urn = {r.urn: r for r in resources}
    deployments = [r for r in resources if r.typ == DEPLOYMENT]
    assert len(deployments) == 1 and deployments[0].parent.endswith("pulumi:pulumi:Stack::wallarm-postanalytics-dev")
    for r in resources:
        if r.typ == DEPLOYMENT:
            continue
        chain, parent = [], r.parent
        while parent in by_urn:
            chain.append(by_urn[parent].typ)
            parent = by_urn[parent].parent
        assert chain.count(DEPLOYMENT) == 1 and chain[-1] == DEPLOYMENT, f"{r.urn} is not under the WallarmDeployment"


def test_the_change_preview_from_549b0eb_shows_only_the_release_changes():
    """Guards against tools.plan --changes comparing bare URNs: a user previewing the upgrade from 549b0eb must see
    the component created and the release's own changes (the tables above), nothing else deleted and nothing
    stateful touched,
    as `pulumi preview` would with the aliases."""
    from tools.changes import preview

    result = preview("dev", ref="549b0eb")
    table = {"create": ADDED, "delete": REMOVED}
    unexplained = [(c.op, c.record.urn) for c in result.changes
                   if c.record.typ in STATEFUL or not _why(table.get(c.op, CHANGED), c.record.typ, c.record.urn)]
    assert not unexplained, unexplained[:5]
    assert ("create", DEPLOYMENT) in [(c.op, c.record.typ) for c in result.changes]
    assert re.search(r"; [0-9]{2,3} unchanged", "\n".join(result.lines()))
