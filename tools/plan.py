"""Plan: what a stack would create, who can reach what, and a picture of it, before any AWS account is involved.

    venv/bin/python -m tools.plan --stack dev [--set filteringCount=6 ...] [--expand] [--svg plan.svg]

Runs the real __main__.py under the project's mocks (harness/program.py) with the stack's settings, then prints:

1. Resources: a tree like `pulumi preview`'s, from the parent of every declared resource. Columns: Type (the
   resource's type token), Name (its logical name), Plan (always "create": the mocks hold no state, so this is
   the plan of a new stack), Info (what a collapsed line stands for). Siblings that differ only by a trailing
   number and have the same children are shown once, e.g. `filtering-0..499` (500 alike); in their children's
   names `*` stands for what differs from member to member. --expand shows every one. Then a table of Count
   (resources of that type, collapsed ones included) and Type, and "Resources: N to create" (N counts the stack
   itself, as Pulumi does; a remote component such as awsx:ec2:Vpc adds the children its provider makes).
2. Who can reach what: one line per security group rule (aws:vpc SecurityGroupIngressRule / EgressRule).
   Columns: Dir (in: the rule admits From into To; out: the rule lets From open connections to To), From and
   To (a CIDR, annotated when it is anywhere, the VPC or one instance; or a security group followed by the
   instances that carry it, in brackets, grouped by their Role tag: `firewall-filtering [filtering x2]`),
   Port (protocol/port or range; `all` for every protocol), Both sides (for a rule between two security groups,
   whether the other side's rules let the connection through too: a connection needs the source's egress and
   the target's ingress; "-" for a CIDR, which no rule of this stack controls), Description (the rule's own).
   After it: the number of rules, the security groups that no rule names, and a WARNING naming any rule this
   tool does not read (aws:ec2 SecurityGroupRule, a group's inline rules), so the table never looks complete
   when it is not.
   Then one line per load balancer listener. Columns: Load balancer (name, internet-facing or internal),
   Listener (PROTOCOL/port clients connect to), Target group (where it forwards), Attached (the instances
   registered in that target group, by Role tag), Health check (protocol, port and path the target group probes).
3. With --svg FILE: a picture of the topology drawn from the declared resources (load balancers, each fleet of
   instances with the same Role tag as one box with its count, the CIDRs rules name), an arrow from whoever opens
   a connection to whoever accepts it, labelled with the ports; dashed when only one side's rules allow it.

4. Assumed offline: what the mocks answered without AWS (the region's zones, the offers per zone, an existing VPC's
   CIDR and subnets; harness/assumed.py), one line each.
With --changes, instead: what the change does to the stack deployed from --base (tools/changes.py): each resource
created, updated, replaced or deleted with the inputs that differ, the steps that run again per host, the changes
that hurt.

Exit status: 0 on a plan; 2 when the settings are refused (the program's own sentences are printed) or the stack
file is missing; 1 when the program fails otherwise. No cloud, no Pulumi CLI, nothing leaves this machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any, Optional

import pulumi

from components.settings import SettingsError
from harness.mocks import ProviderMocks
from harness.program import PROJECT, Run, StackFileError, run_program, stack_config, stack_file
from tools.changes import shown_sets
from tools.plan_picture import render_svg, topology
from tools.plan_reach import Stack, reach_lines
from tools.plan_tree import build_tree, collapse, count_lines, render_tree


class PlanMocks(ProviderMocks):
    """The project's mocks, also noting which registrations are custom resources (not components), so that a
    component whose children its provider makes (a remote component such as awsx:ec2:Vpc) can be told apart."""

    def __init__(self) -> None:
        super().__init__()
        self.custom: dict[tuple[str, str], bool] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        self.custom[(args.typ, args.name)] = bool(args.custom)
        return super().new_resource(args)

# ---------------------------------------------------------------------------------------------------- the plan
@dataclasses.dataclass
class Plan:
    stack_name: str
    run: Run
    mocks: PlanMocks
    stack: Stack

    def tree(self, expand: bool = False) -> list[str]:
        root = build_tree(self.run.mocks.resources, f"{PROJECT}-{self.stack_name}", self.mocks.custom)
        lines = render_tree(root if expand else collapse(root))
        return lines + [""] + count_lines(self.run.mocks.resources, root)

    def svg(self) -> str:
        boxes, edges = topology(self.stack)
        return render_svg(boxes, edges, f"{PROJECT} {self.stack_name}: {len(self.run.mocks.resources) + 1} "
                                        f"resources; who reaches whom")


def make_plan(stack: str, overrides: Optional[dict[str, Any]] = None) -> Plan:
    """Runs the program for a stack; raises the program's error (SettingsError for refused settings)."""
    mocks = PlanMocks()
    run = run_program(stack_config(stack, **(overrides or {})), stack=stack, mocks=mocks)
    if run.error is not None:
        # Without the runtime's frames: they hold its event loop, which then fails noisily at exit.
        raise run.error.with_traceback(None)
    return Plan(stack, run, mocks, Stack(run.mocks.resources))


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _quiet_loop_teardown(unraisable) -> None:
    """After a failed run the SDK's per-thread event loops are collected after their sockets and complain at exit
    (BaseEventLoop.__del__: Invalid file descriptor). Nothing is lost; anything else is reported as usual."""
    obj = getattr(unraisable, "object", None)
    if isinstance(unraisable.exc_value, ValueError) and getattr(obj, "__qualname__", "") == "BaseEventLoop.__del__":
        return
    sys.__unraisablehook__(unraisable)


def print_assumed(notes: list[str]) -> None:
    """What the mocks answered without AWS (harness/assumed.py): the plan is only as true as these."""
    if notes:
        print("\nAssumed offline (AWS answers these at deploy):")
        print("\n".join(f"  {note}" for note in notes))


def changes_main(args: argparse.Namespace, overrides: dict[str, Any]) -> int:
    """--changes: the change preview of tools/changes.py, with this command's exit codes."""
    from tools import changes

    try:
        result = changes.preview(args.stack, overrides, args.base)
    except (FileNotFoundError, StackFileError, ValueError) as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except changes.ProgramFailed as exc:
        print(str(exc), file=sys.stderr)
        return 2
    print(changes.describe(args.stack, args.base, result.commit, args.set) + "\n")
    print("\n".join(result.lines()))
    for warning in dict.fromkeys(result.head.warnings):
        print(f"warning: {warning}")
    print_assumed(result.head.mocks.assumed)
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    summary, _, details = __doc__.partition("\n\n")
    parser = argparse.ArgumentParser(prog="venv/bin/python -m tools.plan", description=summary,
                                     epilog=details.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stack", default="dev",
                        help="stack whose Pulumi.<stack>.yaml to plan (default dev), or DIR/<stack> for a "
                             "stack file in another folder (examples/prod)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting for this plan, key without the project prefix or with another "
                             "namespace (aws:region); JSON values: 6, true, [\"10.0.0.0/8\"]")
    parser.add_argument("--expand", action="store_true", help="show every member of a fleet instead of one line each")
    parser.add_argument("--svg", type=Path, metavar="FILE", help="also write the topology picture to FILE")
    parser.add_argument("--changes", action="store_true",
                        help="instead of the plan of a new stack, what the change does to the stack deployed from "
                             "--base: created, updated, replaced, deleted, the steps that run again, what hurts "
                             "(tools/changes.py)")
    parser.add_argument("--base", default="HEAD", metavar="REF",
                        help="with --changes: the commit whose program and stack file are deployed (default HEAD)")
    args = parser.parse_args(argv)
    overrides = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key:
            parser.error(f"--set takes KEY=VALUE, got {item!r}")
        overrides[key] = _value(value)
    if args.changes:
        return changes_main(args, overrides)
    try:
        plan = make_plan(args.stack, overrides)
    except (SettingsError, FileNotFoundError, StackFileError) as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - any other failure of the program, said in one line
        print(f"the program fails under the mocks: {exc}", file=sys.stderr)
        return 1
    print(f"Plan of stack {args.stack} ({stack_file(args.stack).name}{shown_sets(args.set)}), "
          f"from the program under the mocks: a new stack, nothing in AWS.\n")
    print("\n".join(plan.tree(args.expand)))
    print("\nWho can reach what\n")
    print("\n".join(reach_lines(plan.stack)))
    for warning in dict.fromkeys(plan.run.warnings):
        print(f"warning: {warning}")
    print_assumed(plan.run.mocks.assumed)
    if args.svg:
        args.svg.write_text(plan.svg())
        print(f"\nTopology picture: {args.svg}")
    return 0


if __name__ == "__main__":
    sys.unraisablehook = _quiet_loop_teardown
    try:
        sys.exit(main())
    except BrokenPipeError:  # the reader stopped early (`| head`): as the Python docs advise, no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(141)
