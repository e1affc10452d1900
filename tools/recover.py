"""Prints the one command that replaces a dead or terminated node, with the URN of its current machine.

    venv/bin/python -m tools.recover --stack dev --node filtering-3

The node's instance is named by its generation (`filtering-3-1a2b3c4d`), so its URN is not something to type by
hand: this runs the program under the mocks with the stack's settings and reads it. The command it prints,
`pulumi up --replace <URN>`, makes the engine create a new instance first (same generation, same settings), run
every step of the node on it (each step's triggers hold the instance ID), register it and wait until it is in
service, and only then drain and delete the old one; nothing else in the stack changes. A terminated node is
replaced the same way (deleting an instance that is already gone succeeds). No cloud is reached here.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional

from harness.program import run_program, stack_config
from tools.aliases import engine_urns

INSTANCE = "aws:ec2/instance:Instance"


def recovery_command(run, stack: str, node: str) -> str:
    """The command for `node`, or ValueError naming the nodes there are."""
    instances = {r.inputs["tags"]["Node"]: r for r in run.mocks.of_type(INSTANCE)
                 if r.inputs["tags"]["Role"] in ("filtering", "postanalytics")}
    if node not in instances:
        raise ValueError(f"no node {node!r} in stack {stack}; its nodes are {', '.join(sorted(instances))}")
    # The engine's URN, qualified by every parent's type (WallarmDeployment$FilteringNode$...): the mocks' URN names
    # the nearest parent only, and `--replace` with it would name no resource of the stack.
    urn = engine_urns(run.mocks.resources)[instances[node].urn]
    return f"pulumi up --stack {stack} --policy-pack policy --replace '{urn}'"


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="venv/bin/python -m tools.recover", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", default="dev", help="the stack (default dev)")
    parser.add_argument("--node", required=True, help="the node to replace, such as filtering-3 or postanalytics-0")
    args = parser.parse_args(argv)
    run = run_program(stack_config(args.stack), stack=args.stack)
    if run.error is not None:
        print(f"the program stops: {run.error}", file=sys.stderr)
        return 1
    try:
        print(recovery_command(run, args.stack, args.node))
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
