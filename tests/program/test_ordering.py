"""The order of the steps, read from the dependency graph the Pulumi SDK itself declared (components/rollout.py
says why): both fleets boot and install in parallel; a filtering node is configured only after every wstore it
lists is installed; wstore asks for client certificates only after every NGINX has one; each health check runs
after every node is configured; a node is registered in the load balancer only once it is checked, and its
in-service wait follows."""

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


def private_ip(program, name: str) -> str:
    return next(r for r in program.mocks.of_type("aws:ec2/instance:Instance")
                if r.inputs["tags"]["Node"] == name).outputs["privateIp"]


def test_a_filtering_node_installs_beside_the_postanalytics_installs(program):
    """Guards against the long first deploy: a filtering node's install waits for its own boot only, not for any
    wstore, nor another filtering node."""
    for node in program.namespace["filtering"]:
        deps = closure(node.installed)
        assert f"{node.name}-wait" in deps
        others = [d for d in deps if d.startswith(("postanalytics-", "filtering-")) and not d.startswith(node.name)]
        assert not others, f"{node.name}-install waits for {sorted(others)}"
    for server in program.namespace["postanalytics"]:
        assert not [d for d in closure(server.installed) if d.startswith("filtering-")], server.name


def test_no_nginx_points_at_a_wstore_before_it_is_installed(program):
    """Guards against a filtering node configured (its NGINX sending to wstore) before a wstore server it lists is
    installed: every server in its configure step's spec has its install behind that step, through the one
    barrier `postanalytics-installed` (a direct link per server would cost the SDK a graph walk each)."""
    servers = {p.name: private_ip(program, p.name) for p in program.namespace["postanalytics"]}
    barrier = program.mocks.named("postanalytics-installed")
    assert {program.mocks.named(f"{p}-install").urn for p in servers} == set(barrier.options["dependencies"])
    for node in program.namespace["filtering"]:
        spec = program.mocks.named(f"{node.name}-configure").inputs["stdin"]
        listed = [p for p, ip in servers.items() if ip in spec]
        assert listed == list(servers), f"{node.name} lists {listed}: the test cannot see its upstream"
        missing = {f"{p}-install" for p in listed} - closure(node.configured)
        assert not missing, f"{node.name}-configure runs before {sorted(missing)}"
        configure = program.mocks.named(f"{node.name}-configure")
        assert barrier.urn in configure.options["dependencies"]
        assert not [d for d in configure.options["dependencies"] if d.endswith("-install") and "postanalytics-" in d]


@pytest.mark.parametrize("versions", [{"wallarmVersion": "6.13.0"},
                                      {"postanalyticsVersion": "6.13.0", "filteringVersion": "6.12.1"}])
def test_wstore_is_never_older_than_the_nginx_it_serves(program, versions):
    """Guards against a filtering node served by an older wstore on an upgrade: a new version is a new machine
    (its name carries the generation), and the new filtering node's configure step waits for the install of every
    wstore server, each of a version not older than its own (the settings refuse the reverse)."""
    run = program_run(postanalyticsCount=2, filteringCount=3, **versions)
    before = {r.name for r in program.mocks.of_type("aws:ec2/instance:Instance")}
    installs = {}
    for r in run.mocks.of_type("command:remote:Command"):
        if r.name.endswith("-install"):
            words = r.inputs["create"].split()
            installs[r.name.removesuffix("-install")] = tuple(map(int, words[words.index("--version") + 1].split(".")))
    for server in run.namespace["postanalytics"]:
        assert server.instance._name not in before, f"{server.name} keeps its machine across a new version"
    for node in run.namespace["filtering"]:
        deps = closure(node.configured)
        for server in run.namespace["postanalytics"]:
            assert f"{server.name}-install" in deps
            assert installs[server.name] >= installs[node.name], (server.name, node.name)


def test_wstore_configured_after_every_nginx(program):
    """Guards against wstore demanding client certificates before the filtering nodes present them."""
    for server in program.namespace["postanalytics"]:
        deps = closure(server.configured)
        for node in program.namespace["filtering"]:
            assert f"{node.name}-configure" in deps, f"{server.name}-configure does not wait for {node.name}"
        # Through one barrier: N direct links per wstore would cost the SDK N x M graph walks.
        direct = program.mocks.named(f"{server.name}-configure").options["dependencies"]
        assert program.mocks.named("filtering-configured").urn in direct
        assert not [d for d in direct if d.endswith("-configure")], direct


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
        step = program.mocks.named(f"{node.name}-in-service")
        assert step.typ == "pulumi-python:dynamic:Resource" and step.inputs["kind"] == "in-service", step.urn
        assert target.urn in step.options["dependencies"], f"{node.name}-in-service does not follow its attachment"


def test_a_departing_node_is_drained_before_it_is_terminated(program):
    """Guards against a node terminated with connections open: deleting an attachment deregisters the target and
    returns at once, so a drain step must sit between the attachment and the instance in the deletion order
    (Pulumi deletes a resource before what it depends on), and must be replaced with its instance."""
    mocks = program.mocks
    for node in program.namespace["filtering"]:
        target, drained = mocks.named(f"{node.name}-target"), mocks.named(f"{node.name}-drained")
        instance = next(r for r in mocks.of_type("aws:ec2/instance:Instance") if r.inputs["tags"]["Node"] == node.name)
        assert drained.typ == "pulumi-python:dynamic:Resource", drained.urn
        assert drained.urn in target.options["dependencies"], f"{node.name}-target does not follow its drain step"
        assert instance.id == drained.inputs["instanceId"], "the drain step must follow (and be replaced with) its instance"
        assert drained.inputs["kind"] == "drain" and drained.inputs["wait"] is True, drained.inputs
        group = mocks.named("entrypoint-http")
        assert drained.inputs["targets"] == [{"targetGroupArn": group.outputs["arn"], "port": 80}], drained.inputs
    # Listeners are the exception (test below): they are replaced only with the load balancer, never with a node.
    assert not [r.name for r in mocks.resources if r.options.get("deleteBeforeReplace")
                and r.typ != "aws:lb/listener:Listener"], \
        "a delete-before-replace would remove the old node before its successor serves"


def test_the_drain_lasts_the_deregistration_delay(program):
    """Guards against a drain wait that gives up before the load balancer stops draining (the AWS CLI's waiter
    stops after 600 s, deregistrationDelay allows 3600): the waiter and the step's timeout cover the delay."""
    from components import waits
    for long_run in (program, program_run(postanalyticsCount=2, filteringCount=3, deregistrationDelay=3600)):
        delay = long_run.namespace["s"].deregistration_delay
        drained = long_run.mocks.named("filtering-0-drained")
        covered = drained.inputs["delay"] * drained.inputs["maxAttempts"]
        assert covered >= delay + waits.DRAIN_MARGIN_SECONDS, (delay, drained.inputs)
        timeout = drained.options["customTimeouts"]["delete"]
        assert int(timeout.rstrip("s")) > covered, (timeout, covered)
    assert delay == 3600


def test_the_cli_drain_step_of_older_stacks_loses_its_delete(program):
    """Guards against upgrading a stack whose state holds `<node>-drain` with `aws elbv2 wait target-deregistered`
    as its delete: dropped from the program, that text would run against a target that stays registered and fail
    every `pulumi up`. The program still declares it, with no command at all, so the update erases the text."""
    for node in program.namespace["filtering"]:
        legacy = next(r for r in program.mocks.of_type("command:local:Command") if r.name == f"{node.name}-drain")
        assert not {"create", "update", "delete"} & set(legacy.inputs), legacy.inputs
        assert "triggers" in legacy.options.get("ignoreChanges", []), "a replacement would run the old delete"


def test_a_replaced_load_balancer_gets_its_listeners_after_the_old_ones_go(program):
    """Guards against the cut-over of a stack created before the load balancer had its security group failing
    half-way: an NLB's target group serves one load balancer at a time (CreateListener answers
    TargetGroupAssociationLimit), so each listener is deleted before it is created again on the new load balancer."""
    listeners = program.mocks.of_type("aws:lb/listener:Listener")
    assert listeners and all(r.options["deleteBeforeReplace"] for r in listeners), [r.name for r in listeners]
