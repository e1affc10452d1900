"""Checks the Python lock against its ranges: requirements.txt (written by `bash .ci/lock`, pip-compile
--generate-hashes) pins every package with == and at least one sha256 hash, and pins every requirement of
requirements.in inside its range. A lock that fails is stale: `.ci/run` stops before the tests with one sentence
per problem and the command that regenerates it.

Runs with nothing but the standard library and `packaging`, which every virtual environment carries inside pip,
so `.ci/run` can check the lock before it installs it:
    venv/bin/python tools/lockcheck.py        # exit 1 and a sentence per problem when the lock is stale
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

try:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
    from packaging.version import Version
except ImportError:  # a fresh venv has only pip, which vendors packaging
    from pip._vendor.packaging.requirements import Requirement  # type: ignore[assignment]
    from pip._vendor.packaging.utils import canonicalize_name  # type: ignore[assignment]
    from pip._vendor.packaging.version import Version  # type: ignore[assignment]

ROOT = Path(__file__).resolve().parent.parent
RANGES = "requirements.in"
LOCK = "requirements.txt"
REGENERATE = "bash .ci/lock"
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;\\]+)")
HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}\b")


def _logical_lines(text: str) -> list[str]:
    """Requirement lines with their backslash continuations joined and comments dropped."""
    joined, lines = "", []
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if line.endswith("\\"):
            joined += line[:-1] + " "
            continue
        joined += line
        if joined.strip():
            lines.append(joined.strip())
        joined = ""
    return lines


def ranges(text: str) -> dict[str, Requirement]:
    """requirements.in: the direct requirements by canonical name."""
    found: dict[str, Requirement] = {}
    for line in _logical_lines(text):
        if line.startswith("-"):
            continue
        requirement = Requirement(line)
        found[canonicalize_name(requirement.name)] = requirement
    return found


def pins(text: str) -> tuple[dict[str, Version], list[str]]:
    """requirements.txt: the pinned versions by canonical name, and a sentence for each line that is no hashed
    exact pin."""
    found: dict[str, Version] = {}
    problems: list[str] = []
    for line in _logical_lines(text):
        if line.startswith("-"):
            problems.append(f"{LOCK} holds the option line {line.split()[0]!r}: the lock holds only hashed pins")
            continue
        match = PIN.match(line)
        if not match:
            problems.append(f"{LOCK} holds {line.split()[0]!r}, which is not pinned with ==")
            continue
        if not HASH.search(line):
            problems.append(f"{LOCK} pins {match['name']}=={match['version']} without a sha256 hash")
        found[canonicalize_name(match["name"])] = Version(match["version"])
    return found, problems


def problems(root: Path = ROOT) -> list[str]:
    """Every reason the lock does not match the ranges (empty when it does)."""
    lock_path, ranges_path = root / LOCK, root / RANGES
    if not ranges_path.exists():
        return [f"{RANGES} (the ranges of the direct requirements) is missing"]
    if not lock_path.exists():
        return [f"{LOCK} (the lock) is missing"]
    pinned, found = pins(lock_path.read_text())
    for name, requirement in ranges(ranges_path.read_text()).items():
        if name not in pinned:
            found.append(f"{RANGES} asks for {requirement}, which {LOCK} does not pin")
        elif requirement.specifier and pinned[name] not in requirement.specifier:
            found.append(f"{LOCK} pins {name}=={pinned[name]}, outside {RANGES}'s range {requirement}")
    return found


def main() -> int:
    found = problems()
    for problem in found:
        print(f"stale lock: {problem}.", file=sys.stderr)
    if found:
        print(f"Regenerate it with `{REGENERATE}` and commit {RANGES} and {LOCK} together.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
