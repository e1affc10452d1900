"""The order of the remote steps, read from the dependency graph the Pulumi SDK itself declared: both fleets
install in parallel; wstore asks for client certificates only after every NGINX has one; each health check runs
after every node is configured."""

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
    run = program_run(postanalyticsCount=2, filteringCount=3)
    return run.namespace


def test_filtering_nodes_do_not_wait_for_postanalytics_installs(program):
    """Guards against a serial rollout: the critical path must stay one host's chain plus the check."""
    for node in program["filtering"]:
        deps = closure(node.configured)
        assert f"{node.name}-install" in deps
        waits = sorted(d for d in deps if d.startswith("postanalytics-") and d.endswith(("-wait", "-install")))
        assert waits == [], f"{node.name}-configure waits for {waits}"


def test_wstore_configured_after_every_nginx(program):
    """Guards against wstore demanding client certificates before the filtering nodes present them."""
    for server in program["postanalytics"]:
        deps = closure(server.configured)
        for node in program["filtering"]:
            assert f"{node.name}-configure" in deps, f"{server.name}-configure does not wait for {node.name}"


def test_health_checks_follow_every_configure_step(program):
    """Guards against a health check that runs while another node is still being configured."""
    every = {f"{n.name}-configure" for n in program["filtering"] + program["postanalytics"]}
    assert len(every) == 5
    for node in program["filtering"]:
        missing = every - closure(node.health)
        assert not missing, f"{node.name}-health runs before {sorted(missing)}"
