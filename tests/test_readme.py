"""The README stays true: its title and paragraph, then the two commands, then a file map that names what exists;
CI runs the README's test command; the configuration table matches Pulumi.yaml."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from components.settings import declared_keys

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
CI = (ROOT / ".ci" / "run").read_text()


def test_title_paragraph_then_the_two_commands():
    """Guards against a README whose first commands no longer deploy or test."""
    lines = README.splitlines()
    assert lines[0].startswith("# ") and lines[1] == "" and lines[2]
    block = README.split("```bash\n", 1)[1].split("```", 1)[0].splitlines()
    commands = [line for line in block if not line.startswith("#")]
    assert commands == ["pulumi install && pulumi up --stack dev", "bash .ci/run"]
    assert README.index("```bash") < README.index("| path |") < README.index("## What it builds")


def test_file_map_names_what_exists():
    """Guards against a file map that points at folders or files that are gone."""
    table = README.split("| path |", 1)[1].split("\n\n", 1)[0]
    paths = re.findall(r"^\| `([^`]+)` \|", table, flags=re.M)
    assert len(paths) >= 8
    for path in paths:
        assert (ROOT / path).exists(), f"the file map names {path}, which does not exist"


def test_ci_runs_the_readme_test_command():
    """Guards against CI testing something other than what the README tells users to run."""
    command = re.search(r'readonly TEST_COMMAND="(.+)"', CI).group(1).replace("$VENV", "venv")
    assert f"`{command}`" in README
    assert 'bash -c "$TEST_COMMAND"' in CI and "-r requirements.txt" in CI


def test_pulumi_install_and_the_tests_share_one_virtual_environment():
    """Guards against `pulumi install` preparing one environment and the tests another (or none)."""
    runtime = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["runtime"]
    assert runtime["options"]["virtualenv"] == "venv"
    assert "readonly VENV=venv" in CI


def test_configuration_table_matches_pulumi_yaml():
    """Guards against a documented default, type or description that the program no longer has."""
    rows = {m.group(1): (m.group(2).strip(), m.group(3).strip(), m.group(4).strip())
            for m in re.finditer(r"^\| `(\w+)` \| ([^|]+) \| ([^|]+) \| (.+) \|$", README, re.M)}
    for key, decl in declared_keys().items():
        assert key in rows, f"{key} is not in the README table"
        kind, default, description = rows[key]
        assert kind == ("secret string" if decl.get("secret") else decl["type"]), key
        assert description == decl["description"], key
        if "default" not in decl:
            assert default == "**required**", key
        elif decl["default"] in ("", []):
            assert default == "unset", key
        else:
            shown = default.strip("`")
            assert yaml.safe_load(shown) == decl["default"] or shown == str(decl["default"]).lower(), key
