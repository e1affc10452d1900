"""Shared fixtures: one run of the real program per stack variant, under the project's mocks."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from harness.program import Run, run_program, stack_config  # noqa: E402

_RUNS: dict[tuple, Run] = {}

# The variants the issue names: the dev stack as it is, 2 postanalytics x 3 filtering, TLS and mTLS on and off.
VARIANTS = {
    "dev": {},
    "2x3-mtls": {"postanalyticsCount": 2, "filteringCount": 3},
    "2x3-tls": {"postanalyticsCount": 2, "filteringCount": 3, "mutualTls": False},
    "2x3-plain": {"postanalyticsCount": 2, "filteringCount": 3, "tls": False, "mutualTls": False},
}


def program_run(**overrides) -> Run:
    """The program run for these overrides of the dev stack, computed once per session."""
    key = tuple(sorted((k, str(v)) for k, v in overrides.items()))
    if key not in _RUNS:
        run = run_program(stack_config("dev", **overrides))
        if run.error is not None:
            raise run.error
        _RUNS[key] = run
    return _RUNS[key]


@pytest.fixture(params=list(VARIANTS), ids=list(VARIANTS))
def variant(request) -> tuple[str, dict, Run]:
    overrides = VARIANTS[request.param]
    return request.param, overrides, program_run(**overrides)
