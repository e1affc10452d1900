"""The Pulumi SDK's own floor: the CPU time of registering N bare custom resources (one string input each) under
the SDK's plain mocks, in a program that does nothing else. A stack of N resources cannot evaluate faster than this,
whatever the program does; tools.benchmark prints it beside each size (`--floor`).

    venv/bin/python -m harness.floor N      prints the CPU seconds
"""

from __future__ import annotations

import sys
import time

import pulumi


class _Mocks(pulumi.runtime.Mocks):
    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        return f"{args.name}-id", args.inputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, None]:
        return {}, None


class _Bare(pulumi.CustomResource):
    def __init__(self, name: str) -> None:
        super().__init__("floor:index:Bare", name, {"value": "x"})


def cpu_seconds(count: int) -> float:
    """CPU seconds of this process to register `count` bare resources and wait for them."""
    pulumi.runtime.set_mocks(_Mocks(), project="floor", stack="floor", preview=False)
    started = time.process_time()

    @pulumi.runtime.test
    def program() -> pulumi.Output:
        return pulumi.Output.all(*[_Bare(f"r{i}").id for i in range(count)])

    program()
    return time.process_time() - started


if __name__ == "__main__":
    print(f"{cpu_seconds(int(sys.argv[1])):.2f}")
