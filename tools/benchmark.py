"""Benchmark: how long the real program takes under the mocks, by stack size, and the dev rehearsal.

    python -m tools.benchmark [--runs 3] [--sizes 1x2,2x3,10x40,4x196] [--no-rehearsal]

Each size is POSTANALYTICSxFILTERING. Prints the resources declared and the median wall time of --runs runs
(each in a fresh mock engine; TLS keys are made once per name and then kept, as a stack's state keeps them).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time

from tools.program import run_program, stack_config


def measure(pa: int, f: int, runs: int) -> tuple[int, float, float]:
    times, count = [], 0
    first = None
    for _ in range(runs):
        started = time.perf_counter()
        run = run_program(stack_config("dev", postanalyticsCount=pa, filteringCount=f))
        elapsed = time.perf_counter() - started
        if run.error:
            raise SystemExit(f"{pa}x{f}: the program failed: {run.error}")
        first = elapsed if first is None else first
        times.append(elapsed)
        count = len(run.mocks.resources)
    return count, first, statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.benchmark", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", default="1x2,2x3,10x40,4x196")
    parser.add_argument("--no-rehearsal", action="store_true")
    args = parser.parse_args()
    logging.getLogger("pulumi").setLevel(logging.ERROR)
    print(f"{'stack':>8} {'nodes':>6} {'resources':>10} {'first run s':>12} {'median s':>9}")
    for size in args.sizes.split(","):
        pa, f = (int(x) for x in size.split("x"))
        count, first, median = measure(pa, f, args.runs)
        print(f"{size:>8} {pa + f:>6} {count:>10} {first:>12.2f} {median:>9.2f}")
    if not args.no_rehearsal:
        from tools.rehearse import rehearse
        started = time.perf_counter()
        report = rehearse("dev")
        print(f"rehearsal of dev: {'OK' if report.ok else 'FAILED'} in {time.perf_counter() - started:.2f}s")


if __name__ == "__main__":
    main()
