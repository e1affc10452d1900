"""The recovery recipe: one command replaces a dead or terminated node, and everything of that node follows its new
machine (so nothing else is left pointing at the old one)."""

from __future__ import annotations

import pytest

from tests.conftest import program_run
from tools import recover


@pytest.mark.parametrize("node", ["filtering-1", "postanalytics-0"])
def test_the_command_names_the_nodes_current_machine(node):
    """Guards against a recipe that replaces the wrong resource, or a resource that no longer exists."""
    run = program_run()
    command = recover.recovery_command(run, "dev", node)
    [instance] = [r for r in run.mocks.of_type(recover.INSTANCE) if r.inputs["tags"]["Node"] == node]
    fleet = "FilteringNode" if node.startswith("filtering") else "Postanalytics"
    # The engine's URN: every parent's type, the stack's aside (pulumi/pulumi deployment.go generateURN).
    urn = (f"urn:pulumi:dev::wallarm-postanalytics::wallarm:index:WallarmDeployment$wallarm:index:{fleet}$"
           f"aws:ec2/instance:Instance::{instance.name}")
    assert command == f"pulumi up --stack dev --policy-pack policy --replace '{urn}'"


def test_an_unknown_node_is_refused_with_the_nodes_there_are():
    with pytest.raises(ValueError, match="its nodes are filtering-0, filtering-1, postanalytics-0"):
        recover.recovery_command(program_run(), "dev", "filtering-9")


@pytest.mark.parametrize("node", ["filtering-1", "postanalytics-0"])
def test_everything_of_the_node_follows_a_new_machine(node):
    """Guards against a step, a registration or an alarm that would keep the old machine after a replacement:
    each takes the instance's ID, so a new ID runs, registers or watches again."""
    run = program_run()
    [instance] = [r for r in run.mocks.of_type(recover.INSTANCE) if r.inputs["tags"]["Node"] == node]
    steps = [r for r in run.mocks.of_type("command:remote:Command") if r.name.startswith(f"{node}-")]
    assert {s.name.rsplit("-", 1)[1] for s in steps} >= {"wait", "install", "configure", "agent"}
    for step in steps:
        assert instance.id in step.inputs["triggers"], step.name
    for attachment in run.mocks.of_type("aws:lb/targetGroupAttachment:TargetGroupAttachment"):
        if attachment.name.startswith(f"{node}-"):
            assert attachment.inputs["targetId"] == instance.id
    [alarm] = [r for r in run.mocks.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
               if r.inputs["name"] == f"dev-{node}-status-check"]
    assert alarm.inputs["dimensions"] == {"InstanceId": instance.id}


def test_the_command_line(capsys):
    assert recover.main(["--stack", "dev", "--node", "filtering-0"]) == 0
    assert capsys.readouterr().out.startswith("pulumi up --stack dev --policy-pack policy --replace 'urn:pulumi:dev::")
    assert recover.main(["--stack", "dev", "--node", "nope"]) == 2
