"""The order of the steps, read from the dependency graph the Pulumi SDK itself declared (components/rollout.py
says why): both fleets boot in parallel; postanalytics installs before any filtering node does; wstore asks for
client certificates only after every NGINX has one; each health check runs after every node is configured; a node
is registered in the load balancer only once it is checked, and its in-service wait follows."""

from __future__ import annotations

import pytest
from pulumi.runtime.resource_cycle_breaker import _deps

from tests.conftest import program_run


def closure(resource) -> set[str]:
    """Names of everything a resource depends on, directly or not."""
    seen, stack = set(), [resource]
    while stack:
        for dep in _deps(stack.pop()):
            if dep not in seen:
                seen.add(dep)
                stack.append(dep)
    return {r._name for r in seen}


@pytest.fixture(scope="module")
def program():
    return program_run(postanalyticsCount=2, filteringCount=3)


def test_fleets_boot_in_parallel(program):
    """Guards against a serial rollout: no node's boot waits for another node."""
    for node in program.namespace["filtering"]:
        deps = closure(node.booted)
        assert not [d for d in deps if d.startswith(("postanalytics-", "filtering-")) and not d.startswith(node.name)], \
            f"{node.name}-wait waits for another node"


def test_postanalytics_installs_before_any_filtering_node(program):
    """Guards against filtering nodes of a new version installed before wstore (Wallarm upgrades postanalytics first)."""
    installs = {f"{p.name}-install" for p in program.namespace["postanalytics"]}
    for node in program.namespace["filtering"]:
        missing = installs - closure(node.configured)
        assert not missing, f"{node.name} installs before {sorted(missing)}"
    for server in program.namespace["postanalytics"]:
        assert not [d for d in closure(server.installed) if d.startswith("filtering-")], server.name


def test_wstore_configured_after_every_nginx(program):
    """Guards against wstore demanding client certificates before the filtering nodes present them."""
    for server in program.namespace["postanalytics"]:
        deps = closure(server.configured)
        for node in program.namespace["filtering"]:
            assert f"{node.name}-configure" in deps, f"{server.name}-configure does not wait for {node.name}"


def test_health_checks_follow_every_configure_step(program):
    """Guards against a health check that runs while another node is still being configured."""
    ns = program.namespace
    every = {f"{n.name}-configure" for n in ns["filtering"] + ns["postanalytics"]}
    assert len(every) == 5
    for node in ns["filtering"]:
        missing = every - closure(node.health)
        assert not missing, f"{node.name}-health runs before {sorted(missing)}"


def test_a_node_serves_only_once_checked(program):
    """Guards against the load balancer sending clients to a node before its health check passed, and against a
    rollout that moves on before the load balancer sees the node healthy."""
    for node in program.namespace["filtering"]:
        in_service = node.in_service
        assert in_service._name == f"{node.name}-in-service"
        deps = closure(in_service)
        assert {f"{node.name}-target", f"{node.name}-health"} <= deps
        target = program.mocks.named(f"{node.name}-target")
        assert program.mocks.named(f"{node.name}-health").urn in target.options["dependencies"]


def test_a_departing_node_is_drained_before_it_is_terminated(program):
    """Guards against a node terminated with connections open: deleting an attachment deregisters the target and
    returns at once, so a drain step must sit between the attachment and the instance in the deletion order
    (Pulumi deletes a resource before what it depends on), and must be replaced with its instance."""
    mocks = program.mocks
    for node in program.namespace["filtering"]:
        target, drain = mocks.named(f"{node.name}-target"), mocks.named(f"{node.name}-drain")
        instance = next(r for r in mocks.of_type("aws:ec2/instance:Instance") if r.inputs["tags"]["Node"] == node.name)
        assert drain.urn in target.options["dependencies"], f"{node.name}-target does not follow its drain step"
        assert drain.inputs["delete"].startswith("aws elbv2 wait target-deregistered --region eu-central-1")
        assert f"--targets Id={instance.id},Port=80" in drain.inputs["delete"] and "create" not in drain.inputs
        assert drain.inputs["triggers"] == [instance.id], "a new instance must replace the drain step (its delete runs)"
    # Listeners are the exception (test below): they are replaced only with the load balancer, never with a node.
    assert not [r.name for r in mocks.resources if r.options.get("deleteBeforeReplace")
                and r.typ != "aws:lb/listener:Listener"], \
        "a delete-before-replace would remove the old node before its successor serves"


def test_a_replaced_load_balancer_gets_its_listeners_after_the_old_ones_go(program):
    """Guards against the cut-over of a stack created before the load balancer had its security group failing
    half-way: an NLB's target group serves one load balancer at a time (CreateListener answers
    TargetGroupAssociationLimit), so each listener is deleted before it is created again on the new load balancer."""
    listeners = program.mocks.of_type("aws:lb/listener:Listener")
    assert listeners and all(r.options["deleteBeforeReplace"] for r in listeners), [r.name for r in listeners]
