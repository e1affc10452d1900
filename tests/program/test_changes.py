"""What a change does to an existing stack, read by comparing two runs of the program resource by resource (URN):
an edited script re-runs exactly the steps that run it; one more filtering node changes no existing resource;
a newly published image replaces nothing while a new version or amiId makes new machines that boot it;
nodes go only where their type is offered, and the VPC's other subnets move nothing."""

from __future__ import annotations

import pytest

from components import host
from harness.mocks import ProviderMocks
from harness.program import run_program, stack_config
from tests.conftest import program_run
from tests.helpers import instance_records
from tools.changes import by_urn, changed  # the change preview (tools.plan --changes) reads changes the same way

STEPS = ("command:remote:Command", "command:remote:CopyToRemote")


@pytest.fixture
def edited_script(monkeypatch):
    """The 2x3 stack's run as it is, then health-check.sh with one more line, as a pull request would edit it."""
    before = program_run(postanalyticsCount=2, filteringCount=3)
    original = host.script_text

    def text(name):
        return original(name) + ("# an edit\n" if name == "health-check.sh" else "")

    monkeypatch.setattr(host, "script_text", text)
    host.script_hash.cache_clear()
    yield before
    monkeypatch.undo()
    host.script_hash.cache_clear()


def test_an_edited_script_runs_again_where_it_runs_and_nowhere_else(edited_script):
    """Guards against a script fix that is uploaded but never run on existing hosts, or that re-runs everything."""
    before = edited_script
    after = run_program(stack_config("dev", postanalyticsCount=2, filteringCount=3))
    assert after.error is None, after.error
    expected = {f"filtering-{i}-{step}" for i in range(3) for step in ("health", "wait")}  # wait re-stages
    assert changed(before, after) == expected
    for i in range(3):
        old, new = (run.mocks.named(f"filtering-{i}-health").inputs["triggers"] for run in (before, after))
        assert old[0] == new[0] and old[1] != new[1], "the trigger that moved must be the script's hash"


def test_one_more_filtering_node_changes_no_existing_resource():
    """Guards against a scale-out that updates or replaces what already serves (and so touches every node)."""
    before = program_run(postanalyticsCount=2, filteringCount=3)
    after = program_run(postanalyticsCount=2, filteringCount=4)
    assert changed(before, after) == set()
    added = set(by_urn(after)) - set(by_urn(before))
    assert added and all("filtering-3" in urn for urn in added), sorted(added)
    rules = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
    assert len(before.mocks.of_type(rules)) == len(after.mocks.of_type(rules)), "the rule count grows with the fleet"


class NewerImage(ProviderMocks):
    """AWS after a newer official image was published."""

    def call(self, args):
        outputs, failures = super().call(args)
        if args.token == "aws:ec2/getAmi:getAmi":
            outputs = {**outputs, "id": "ami-0newer0000000000"}
        return outputs, failures


def _instances(run) -> dict[str, dict]:
    return {r.name: r.inputs for r in run.mocks.of_type("aws:ec2/instance:Instance")}


def test_a_newer_image_replaces_no_running_node():
    """Guards against every node being replaced because a newer image was published."""
    before = program_run()
    after = run_program(stack_config("dev"), mocks=NewerImage())
    assert set(_instances(after)) == set(_instances(before)), "an instance got a new identity"
    for r in after.mocks.of_type("aws:ec2/instance:Instance"):
        assert r.options["ignoreChanges"] == ["ami"], r.name
    assert {i["ami"] for i in _instances(after).values()} == {"ami-0newer0000000000"}


def test_a_new_version_makes_new_machines_that_boot_the_current_image():
    """Guards against a replaced instance booting the old (maybe deregistered) image: ignore_changes would copy
    it into a replacement, so an upgrade must be a new machine, not a replacement."""
    before = program_run()
    after = run_program(stack_config("dev", postanalyticsVersion="6.13.0"), mocks=NewerImage())
    old, new = _instances(before), _instances(after)
    fresh = set(new) - set(old)
    assert {new[n]["tags"]["Role"] for n in fresh} == {"postanalytics"}, sorted(fresh)
    assert all(new[n]["ami"] == "ami-0newer0000000000" for n in fresh)
    assert {n for n in new if new[n]["tags"]["Role"] == "filtering"} <= set(old), "filtering nodes moved too"
    assert "version=6.13.0" in next(new[n]["userData"] for n in fresh)
    # What else a postanalytics upgrade touches: its certificate (new address), and every filtering node's
    # upstream (reload) and check; nothing of the filtering nodes' machines or installs.
    touched = changed(before, after)
    assert {"filtering-0-configure", "filtering-1-configure", "filtering-0-health", "filtering-1-health",
            "postanalytics-0-server-csr"} <= touched, sorted(touched)
    assert not [n for n in touched if n.startswith("filtering-") and n.endswith(("-install", "-wait", "-target"))]


def test_an_explicit_ami_makes_new_machines_with_that_ami():
    """Guards against a later amiId being silently ignored (ignore_changes) on running nodes."""
    before = program_run()
    after = program_run(amiId="ami-0123456789abcdef0")
    nodes = {n: i for n, i in _instances(after).items() if i["tags"]["Role"] != "jumphost"}
    assert nodes and not set(nodes) & set(_instances(before))
    assert {i["ami"] for i in nodes.values()} == {"ami-0123456789abcdef0"}


def _zones(mocks, role) -> list[str]:
    vpc = mocks.of_type("awsx:ec2:Vpc")[0]
    zone_of = dict(zip(vpc.outputs["privateSubnetIds"], vpc.inputs["availabilityZoneNames"]))
    zone_of.update(zip(vpc.outputs["publicSubnetIds"], vpc.inputs["availabilityZoneNames"]))
    return [zone_of[r.inputs["subnetId"]] for r in instance_records(mocks, role)]


def test_nodes_go_only_where_their_type_is_offered_and_alternate_zones():
    """Guards against a node placed in a zone that does not offer its type (RunInstances fails there)."""
    run = program_run(availabilityZoneCount=3, filteringInstanceType="c7g.large", filteringCount=4,
                      postanalyticsCount=3)
    assert _zones(run.mocks, "filtering") == ["eu-central-1a", "eu-central-1b"] * 2
    assert _zones(run.mocks, "postanalytics") == ["eu-central-1a", "eu-central-1b", "eu-central-1c"]


def test_created_vpc_has_public_and_private_subnets_and_nat():
    """Guards against the default VPC (public subnets) being used, or nodes without egress."""
    run = program_run()
    [vpc] = run.mocks.of_type("awsx:ec2:Vpc")
    assert vpc.inputs["availabilityZoneNames"] == ["eu-central-1a", "eu-central-1b"]
    assert vpc.inputs["natGateways"] == {"strategy": "Single"} and vpc.inputs["cidrBlock"] == "10.0.0.0/16"
    assert program_run(natGateways="perAz").mocks.of_type("awsx:ec2:Vpc")[0].inputs["natGateways"] == {"strategy": "OnePerAz"}
    assert _zones(run.mocks, "jumphost") == ["eu-central-1a"]
    [jump] = instance_records(run.mocks, "jumphost")
    assert jump.inputs["subnetId"] in vpc.outputs["publicSubnetIds"]
    for role in ("postanalytics", "filtering"):
        assert all(r.inputs["subnetId"] in vpc.outputs["privateSubnetIds"] for r in instance_records(run.mocks, role))


EXISTING = {"vpcId": "vpc-0a1b2c3d4e5f60718",
            "publicSubnetIds": ["subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60002"],
            "privateSubnetIds": ["subnet-0a1b2c3d4e5f60011", "subnet-0a1b2c3d4e5f60013", "subnet-0a1b2c3d4e5f60012"]}


def test_an_existing_vpc_uses_the_listed_subnets_only():
    """Guards against nodes moving (being replaced) when someone adds a subnet to the VPC: the program never
    enumerates the VPC's subnets, it places nodes in the listed private ones, zones alternating."""
    run = program_run(**EXISTING, filteringCount=4)
    assert not run.mocks.of_type("awsx:ec2:Vpc")
    tokens = {token for token, _ in run.mocks.invokes}
    assert "aws:ec2/getSubnets:getSubnets" not in tokens and "aws:ec2/getSubnet:getSubnet" in tokens
    subnets = [r.inputs["subnetId"] for r in instance_records(run.mocks, "filtering")]
    # Zone c has no public subnet, so the load balancer would never send traffic there: no node goes to it.
    assert subnets == ["subnet-0a1b2c3d4e5f60011", "subnet-0a1b2c3d4e5f60012"] * 2
    [jump] = instance_records(run.mocks, "jumphost")
    assert jump.inputs["subnetId"] in EXISTING["publicSubnetIds"]
    health = [r for r in run.mocks.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
              if r.inputs["fromPort"] == 8081]
    # Health checks admitted from the load balancer's group, whatever CIDR (primary or secondary) its subnets are in.
    lb_group = run.mocks.named("firewall-loadbalancer").id
    assert [(r.inputs.get("cidrIpv4"), r.inputs["referencedSecurityGroupId"]) for r in health] == [(None, lb_group)]
    [lb] = run.mocks.of_type("aws:lb/loadBalancer:LoadBalancer")
    assert lb.inputs["subnets"] == EXISTING["publicSubnetIds"]
    # Internal: one private subnet per zone the load balancer serves (an NLB takes no two subnets of one zone).
    [internal] = program_run(**EXISTING, loadBalancerInternal=True).mocks.of_type("aws:lb/loadBalancer:LoadBalancer")
    assert internal.inputs["internal"] is True
    assert internal.inputs["subnets"] == ["subnet-0a1b2c3d4e5f60011", "subnet-0a1b2c3d4e5f60012"]


def test_a_mode_change_reloads_nginx_and_checks_again_only():
    """Guards against the README's "change the mode" recipe touching wstore or replacing nodes."""
    before = program_run(postanalyticsCount=2, filteringCount=3)
    after = program_run(postanalyticsCount=2, filteringCount=3, wallarmMode="block")
    assert changed(before, after) == {f"filtering-{i}-{step}" for i in range(3) for step in ("configure", "health")}


def test_a_token_rotation_touches_only_the_install_steps():
    """Guards against the README's "rotate the token" recipe replacing or reconfiguring running nodes (the install
    step runs again, finds the version installed, and does nothing)."""
    before = program_run()
    after = run_program(stack_config("dev", wallarmToken="RotatedWallarmToken0123456789abcdef=="))
    assert changed(before, after) == {"postanalytics-0-install", "filtering-0-install", "filtering-1-install"}
    for name in ("postanalytics-0-install", "filtering-0-install"):
        old, new = before.mocks.named(name), after.mocks.named(name)
        assert old.inputs["triggers"] == new.inputs["triggers"], f"{name} would be replaced"


def test_a_new_instance_type_makes_new_machines():
    """Guards against a type change applied in place (AWS stops every node of the fleet at once) or, across
    architectures, a replacement that keeps the old architecture's image."""
    before = program_run()
    after = program_run(filteringInstanceType="c7g.large")
    old, new = _instances(before), _instances(after)
    fresh = {n for n in set(new) - set(old)}
    assert {new[n]["tags"]["Role"] for n in fresh} == {"filtering"} and len(fresh) == 2
    assert all(new[n]["instanceType"] == "c7g.large" for n in fresh)
    assert len({new[n]["ami"] for n in fresh} | {old[n]["ami"] for n in old if old[n]["tags"]["Role"] == "filtering"}) == 2


def test_each_step_of_a_ca_rotation_changes_certificates_and_files_only():
    """Guards against a CA rotation step that makes new machines, re-issues a leaf out of turn, or whose last step
    (the old CA deleted) the preview calls "a new CA" instead of saying when it is safe."""
    from tools import changes

    steps = [{}, {"caRotation": "prepare"}, {"caRotation": "switch"}, {"caGeneration": 2, "caRotation": "none"}]
    runs = [program_run(**s).mocks.resources for s in steps]
    seen = []
    for before, after in zip(runs, runs[1:]):
        result = changes.compare(before, after)
        seen.append(sorted((c.op, c.record.typ.rsplit(":", 1)[-1]) for c in result
                           if c.record.typ.startswith("tls:")))
        assert not [c.record.name for c in result if c.record.typ == changes.INSTANCE], "a machine changes"
        configure = {c.host for c in result if c.record.name.endswith("-configure") and c.op == "update"}
        assert configure == {"postanalytics-0", "filtering-0", "filtering-1"}, configure
        harm = changes.hurts(result, before)
        assert not [h for h in harm if "a new CA" in h], harm
    assert seen == [
        [("create", "PrivateKey"), ("create", "SelfSignedCert")],  # prepare: the new CA, no leaf
        [("replace", "LocallySignedCert")] * 3,  # switch: every leaf, from the new CA
        [("delete", "PrivateKey"), ("delete", "SelfSignedCert")],  # the old CA goes
    ], seen
    last = changes.hurts(changes.compare(runs[2], runs[3]), runs[2])
    assert any(h.startswith("pki-ca: delete:") and "caRotation switch" in h for h in last), last
