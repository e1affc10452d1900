"""The house sorted by who uses each part: the commands users run (tools/) stand on the offline harness (harness/),
never the reverse, and the program itself (components/, __main__.py) knows neither."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _imported(path: Path) -> set[str]:
    """The top-level packages a module imports, wherever the import statement is."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_the_harness_imports_no_command_and_the_program_neither():
    """Guards against a harness module that needs a user command (the layers would be circular) and a program that
    needs the harness or a command to run under the engine."""
    layers = {"harness": {"tools", "tests"}, "components": {"tools", "harness", "tests"}}
    paths = [(layer, p) for layer in layers for p in sorted((ROOT / layer).rglob("*.py"))]
    paths.append(("components", ROOT / "__main__.py"))
    assert len(paths) > 10
    for layer, path in paths:
        wrong = _imported(path) & layers[layer]
        assert not wrong, f"{path.relative_to(ROOT)} imports {sorted(wrong)}"


def test_no_component_file_is_over_300_lines():
    """Guards against a room that grows until nobody can read it (issue 16: no file in components/ over 300 lines):
    split it by concern, as settings/ and alarms.py were."""
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / "components").rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 300}
    assert not long, long


def _names_settings(path: Path) -> bool:
    """Whether a module imports `Settings` (from any module) or reads it off one (`settings.Settings`)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.Import, ast.ImportFrom)) and any(
                alias.name.split(".")[-1] == "Settings" for alias in node.names):
            return True
        if isinstance(node, ast.Attribute) and node.attr == "Settings":
            return True
    return False


def test_only_the_deployment_reads_the_whole_settings():
    """Guards against a component that takes the whole validated Settings again (issue 16: every component takes
    its own typed Args): only the WallarmDeployment turns Settings into them, and settings/ itself defines it."""
    allowed = {"deployment.py", "deploymentargs.py", "lookups.py"}
    modules = [p for p in sorted((ROOT / "components").rglob("*.py"))
               if p.name not in allowed and "settings" not in p.relative_to(ROOT / "components").parts[:-1]]
    assert any(p.name == "host.py" for p in modules) and (ROOT / "components" / "settings").is_dir()
    readers = [str(p.relative_to(ROOT)) for p in modules if _names_settings(p)]
    assert not readers, f"{readers} take Settings: give the component its own Args, built in deployment.py"
    assert _names_settings(ROOT / "components" / "deployment.py")  # the check sees an import where there is one
