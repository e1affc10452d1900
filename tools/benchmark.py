"""Benchmark: how long the real program takes under the mocks, by stack size, and whether it stays within AWS's
default quotas at that size.

    venv/bin/python -m tools.benchmark [--runs 3] [--sizes 1x2,2x3,4x196,10x500] [--no-rehearsal]

Each size is POSTANALYTICSxFILTERING (the jump host comes on top). Columns:
  stack        the size measured
  nodes        postanalytics + filtering nodes
  resources    resources the program declared (components included)
  per node     resources / nodes: must not grow with the fleet
  first s      wall time of the first run (TLS keys are made then; later runs keep them, as a stack's state does)
  median s     median wall time of --runs runs
  cpu s        median CPU time of this process over the same runs: less sensitive than wall time to a loaded machine
  ms/node      median / nodes
  max rules    the most inbound (or outbound) rules of any security group; AWS's default quota is 60
With --floor, each size also prints the SDK's floor: the CPU time of registering as many bare resources (one string
input, nothing else) under the SDK's plain mocks (harness/floor.py): no program of that many resources is faster.
Then the scale line: ms/node of the largest size over ms/node of the one before it (with the default sizes, 510
nodes over 200), by wall and by CPU time; flat scale keeps it at or under 1.15. A 10x500 stack should evaluate in
under 30 s on an idle 2-core machine.
The program exits 1 when a size fails or a security group passes the quota, so CI can run it as a check.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from harness.program import run_program, stack_config

SG_RULES_QUOTA = 60
RATIO_LIMIT = 1.15
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"


def max_rules(mocks) -> int:
    """The largest number of inbound or outbound rules on one security group."""
    counts = Counter((r.typ, r.inputs["securityGroupId"]) for r in mocks.resources if r.typ in (INGRESS, EGRESS))
    return max(counts.values(), default=0)


def measure(pa: int, f: int, runs: int) -> tuple[int, float, float, float, int]:
    """Resources, first wall time, median wall time, median CPU time, max rules."""
    times, cpu, count, rules = [], [], 0, 0
    for _ in range(runs):
        started, started_cpu = time.perf_counter(), time.process_time()
        run = run_program(stack_config("dev", postanalyticsCount=pa, filteringCount=f))
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
        if run.error:
            raise SystemExit(f"{pa}x{f}: the program failed: {run.error}")
        count, rules = len(run.mocks.resources), max_rules(run.mocks)
    return count, times[0], statistics.median(times), statistics.median(cpu), rules


def floor(count: int) -> float:
    """CPU seconds the SDK alone needs for `count` registrations (harness/floor.py, in its own process)."""
    out = subprocess.run([sys.executable, "-m", "harness.floor", str(count)], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parent.parent)
    return float(out.stdout.split()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="venv/bin/python -m tools.benchmark",
                                     description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 2)[2], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs per size (default 3); the median is reported")
    parser.add_argument("--sizes", default="1x2,2x3,4x196,10x500",
                        help="comma-separated POSTANALYTICSxFILTERING sizes (default 1x2,2x3,4x196,10x500)")
    parser.add_argument("--no-rehearsal", action="store_true", help="skip timing the loopback rehearsal of dev")
    parser.add_argument("--floor", action="store_true",
                        help="also print the SDK's floor per size: CPU seconds to register as many bare resources")
    args = parser.parse_args(argv)
    logging.getLogger("pulumi").setLevel(logging.ERROR)
    print(f"{'stack':>8} {'nodes':>6} {'resources':>10} {'per node':>9} {'first s':>8} {'median s':>9} "
          f"{'cpu s':>7} {'ms/node':>8} {'max rules':>10}")
    failed = False
    per_node = []
    for size in args.sizes.split(","):
        pa, f = (int(x) for x in size.split("x"))
        count, first, median, cpu, rules = measure(pa, f, args.runs)
        nodes = pa + f
        per_node.append((size, median / nodes, cpu / nodes))
        over = rules > SG_RULES_QUOTA
        failed |= over
        print(f"{size:>8} {nodes:>6} {count:>10} {count / nodes:>9.1f} {first:>8.2f} {median:>9.2f} {cpu:>7.2f} "
              f"{1000 * median / nodes:>8.0f} {rules:>10}{'  OVER THE QUOTA' if over else ''}", flush=True)
        if args.floor:
            print(f"{'':>8} SDK floor: {count} bare resources take {floor(count):.2f} CPU s (harness/floor.py)",
                  flush=True)
    if len(per_node) >= 2:
        (small, wall_s, cpu_s), (large, wall_l, cpu_l) = per_node[-2:]
        ratio, cpu_ratio = wall_l / wall_s, cpu_l / cpu_s
        print(f"scale: ms/node {large} / {small} = {ratio:.2f} wall, {cpu_ratio:.2f} CPU (median of {args.runs}; "
              f"flat is at or under {RATIO_LIMIT}){'  NOT FLAT' if min(ratio, cpu_ratio) > RATIO_LIMIT else ''}")
    if not args.no_rehearsal:
        from tools.rehearse import rehearse
        started = time.perf_counter()
        report = rehearse("dev")
        failed |= not report.ok
        print(f"rehearsal of dev: {'OK' if report.ok else 'FAILED'} in {time.perf_counter() - started:.2f}s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
