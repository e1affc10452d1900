"""The README stays true: its first lines are the two commands, CI runs the same test command, and the
configuration table matches Pulumi.yaml."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from components.settings import declared_keys

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
TEST_COMMAND = "python3 -m pytest && python3 -m tools.rehearse --stack dev"


def test_first_lines_are_deploy_and_test():
    """Guards against a README whose first commands no longer deploy or test."""
    lines = [line for line in README.splitlines()[:6] if line and not line.startswith(("#", "```"))]
    assert lines[0] == "pip install -r requirements.txt && pulumi up --stack dev"
    assert lines[1].endswith("pip install -r requirements.txt && " + TEST_COMMAND)


def test_ci_runs_the_readme_test_command():
    """Guards against CI testing something other than what the README tells users to run."""
    ci = (ROOT / ".ci" / "run").read_text()
    assert "-r requirements.txt" in ci
    assert "python3 -m pytest" in ci and "python3 -m tools.rehearse --stack dev" in ci


def test_configuration_table_matches_pulumi_yaml():
    """Guards against a documented default or type that the program no longer has."""
    rows = dict(re.findall(r"^\| `(\w+)` \| ([^|]+)\|", README, flags=re.M))
    table = {m.group(1): m.group(3).strip() for m in re.finditer(r"^\| `(\w+)` \| ([^|]+) \| ([^|]+) \|", README, re.M)}
    for key, decl in declared_keys().items():
        assert key in rows, f"{key} is not in the README table"
        if "default" not in decl:
            assert table[key] == "**required**", key
        elif decl["default"] in ("", []):
            assert table[key] == "unset", key
        else:
            shown = table[key].strip("`")
            expected = decl["default"]
            assert yaml.safe_load(shown) == expected or shown == str(expected).lower(), f"{key}: {shown} != {expected}"
