"""The docs stay true: the README's title and paragraph, then the two commands, then a file map that names what
exists; CI runs the documented test command; docs/configuration.md matches Pulumi.yaml and the program's outputs;
every page has a table of contents that matches its headings, every link resolves, every command of the offline
tools is written one way and parses, and every `pulumi preview` / `pulumi up` runs the policy pack."""

from __future__ import annotations

import argparse
import importlib
import re
import shlex
from pathlib import Path

import pytest
import yaml

from components.settings import declared_keys
from harness.program import PROJECT_DIR, stack_config, stack_file
from tests.conftest import program_run
from tools import rehearse

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
CI = (ROOT / ".ci" / "run").read_text()
DOCS = {path: path.read_text() for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]}
PAGES = {path: text for path, text in DOCS.items() if path.parent == ROOT / "docs"}
CONFIGURATION = (ROOT / "docs" / "configuration.md").read_text()
TESTING = (ROOT / "docs" / "testing.md").read_text()
TOOLS = ("plan", "rehearse", "benchmark", "certs", "rehearse_rotation", "recover")


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _prose(text: str) -> str:
    """The text without its fenced blocks, where `#` starts a comment and not a heading."""
    return re.sub(r"(?ms)^```.*?^```", "", text)


def _headings(text: str) -> list[tuple[int, str]]:
    return [(len(m.group(1)), m.group(2).strip()) for m in re.finditer(r"(?m)^(#{2,6}) (.+)$", _prose(text))]


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation but hyphens and underscores dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def _commands(text: str) -> list[str]:
    """Every command line of a page: the lines of its bash blocks (comments dropped) and its inline code spans."""
    lines = []
    for block in re.findall(r"(?ms)^```bash\n(.*?)^```", text):
        lines += [line.split("  #", 1)[0].strip() for line in block.splitlines() if not line.startswith("#")]
    lines += re.findall(r"`([^`\n]+)`", _prose(text))
    return [line for line in lines if line]


def test_title_paragraph_then_the_two_commands():
    """Guards against a README whose first commands no longer deploy (with the policy pack) or test."""
    lines = README.splitlines()
    assert lines[0].startswith("# ") and lines[1] == "" and lines[2]
    block = README.split("```bash\n", 1)[1].split("```", 1)[0].splitlines()
    commands = [line for line in block if not line.startswith("#")]
    assert commands == ["pulumi install && pulumi up --stack dev --policy-pack policy", "bash .ci/run"]
    assert README.index("```bash") < README.index("| path |") < README.index("## What it builds")


def test_the_quick_start_sets_what_a_deploy_needs_and_runs_the_policy_pack():
    """Guards against a quick start that deploys with the stack file's documentation address in sshAllowedCidrs
    (a deploy then dials the jump host for minutes per step), its example protectedUpstream (the final curl
    reaches nothing), or without the policy pack that every pipeline runs."""
    quick = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = quick.split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [line for line in block.splitlines() if not line.startswith("#")]
    up = next(i for i, line in enumerate(commands) if line.startswith("pulumi up "))
    for key in ("sshAllowedCidrs", "protectedUpstream", "wallarmToken"):
        assert any(key in line and line.startswith("pulumi config set") for line in commands[:up]), key
    assert any(line.startswith("pulumi preview ") for line in commands[:up])
    assert commands[-1].startswith("curl ")


def test_file_map_names_what_exists():
    """Guards against a file map that points at folders or files that are gone."""
    table = README.split("| path |", 1)[1].split("\n\n", 1)[0]
    paths = re.findall(r"^\| `([^`]+)` \|", table, flags=re.M)
    assert len(paths) >= 8
    for path in paths:
        assert (ROOT / path).exists(), f"the file map names {path}, which does not exist"


def test_the_readme_maps_every_page_of_the_docs():
    """Guards against a page in docs/ that the README's map does not lead to, or a map entry without a page."""
    mapped = set(re.findall(r"^\| \[[^]]+\]\(docs/([\w-]+\.md)\) \|", README, flags=re.M))
    assert mapped == {path.name for path in PAGES}


def test_ci_runs_the_documented_test_command():
    """Guards against CI testing something other than what the docs tell users to run."""
    command = re.search(r'readonly TEST_COMMAND="(.+)"', CI).group(1).replace("$VENV", "venv")
    assert f"`{command}`" in TESTING
    assert "`bash .ci/run`" in TESTING
    assert 'bash -c "$TEST_COMMAND"' in CI and "-r requirements.txt" in CI


def test_pulumi_install_and_the_tests_share_one_virtual_environment():
    """Guards against `pulumi install` preparing one environment and the tests another (or none)."""
    runtime = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["runtime"]
    assert runtime["options"]["virtualenv"] == "venv"
    assert "readonly VENV=venv" in CI


def test_configuration_table_matches_pulumi_yaml():
    """Guards against a documented default, type or description that the program no longer has."""
    rows = {m.group(1): (m.group(2).strip(), m.group(3).strip(), m.group(4).strip())
            for m in re.finditer(r"^\| `(\w+)` \| ([^|]+) \| ([^|]+) \| (.+) \|$", CONFIGURATION, re.M)}
    for key, decl in declared_keys().items():
        assert key in rows, f"{key} is not in the table of docs/configuration.md"
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
    assert set(rows) == set(declared_keys()), "docs/configuration.md documents a key Pulumi.yaml does not declare"


def test_every_output_is_documented_and_nothing_else():
    """Guards against an output the program exports that the docs do not explain, or a documented one that is gone."""
    outputs = CONFIGURATION.split("## Outputs", 1)[1]
    documented = set(re.findall(r"^\| `(\w+)` \|", outputs, flags=re.M))
    exported = set(re.findall(r'pulumi\.export\("(\w+)"', (ROOT / "__main__.py").read_text()))
    exported |= set(program_run().exports)
    assert exported and documented == exported


@pytest.mark.parametrize("path", list(PAGES), ids=_name)
def test_each_page_opens_with_a_table_of_contents_of_its_headings(path):
    """Guards against a page whose table of contents misses a section, names it differently, or points at an
    anchor that does not exist."""
    text = PAGES[path]
    assert text.startswith("# "), f"{_name(path)} has no title"
    toc = re.search(r"(?m)((?:^ *- \[[^]]+\]\(#[^)]+\)\n)+)", text)
    assert toc, f"{_name(path)} has no table of contents"
    assert text.index(toc.group(1)) < text.index("\n## "), f"{_name(path)}: the table of contents is not at the top"
    entries = re.findall(r"^( *)- \[([^]]+)\]\(#([^)]+)\)$", toc.group(1), flags=re.M)
    headings = _headings(text)
    assert [(len(indent) // 2 + 2, title) for indent, title, _ in entries] == headings, _name(path)
    assert [anchor for _, _, anchor in entries] == [_anchor(title) for _, title in headings], _name(path)


@pytest.mark.parametrize("path", list(DOCS), ids=_name)
def test_every_link_resolves(path):
    """Guards against a link to a moved page, a missing file or a renamed section."""
    for target in re.findall(r"\]\(([^)\s]+)\)", _prose(DOCS[path])):
        if re.match(r"[a-z]+:", target):
            continue
        file, _, anchor = target.partition("#")
        linked = (path.parent / file).resolve() if file else path
        assert linked.exists(), f"{_name(path)} links to {target}: no such file"
        if anchor:
            assert linked.suffix == ".md", f"{_name(path)} links to {target}"
            anchors = {_anchor(title) for _, title in _headings(linked.read_text())}
            assert anchor in anchors, f"{_name(path)} links to {target}: no such section"


def test_the_offline_tools_are_written_one_way():
    """Guards against `python -m tools.x` (fails outside the venv) or other spellings next to the working one, in
    the docs and in the tools' own --help texts."""
    texts = dict(DOCS)
    texts.update({path: path.read_text() for folder in ("tools", "harness") for path in (ROOT / folder).rglob("*.py")})
    for path, text in texts.items():
        for match in re.finditer(r"([\w./$~-]*)python3? -m tools\.", text):
            assert match.group(1) == "venv/bin/", f"{_name(path)}: {match.group(0)!r}, not venv/bin/python -m tools."


class _Parsed(Exception):
    pass


@pytest.mark.parametrize("path", list(DOCS), ids=_name)
def test_every_tools_command_in_the_docs_parses(path, monkeypatch):
    """Guards against a documented tools command whose options the tool no longer takes."""
    parse = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):
        parse(self, args, namespace)
        raise _Parsed

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    for line in _commands(DOCS[path]):
        for match in re.finditer(r"venv/bin/python -m tools\.(\w+)((?: [^&|;>`]*)?)", line):
            assert match.group(1) in TOOLS, f"{_name(path)}: {match.group(0)}"
            tool = importlib.import_module(f"tools.{match.group(1)}")
            with pytest.raises(_Parsed):
                tool.main(shlex.split(match.group(2)))


def test_every_pulumi_preview_and_up_runs_the_policy_pack():
    """Guards against a recipe or a quick start that deploys without the guard rails the pipelines enforce."""
    found = 0
    for path, text in DOCS.items():
        for line in _commands(text):
            if line in ("pulumi up", "pulumi preview"):  # the command named in a sentence, not a command to run
                continue
            for match in re.finditer(r"pulumi (?:up|preview)\b[^&|;]*", line):
                found += 1
                assert "--policy-pack policy" in match.group(0), f"{_name(path)}: {match.group(0)}"
    assert found >= 10


def test_the_rehearsal_addresses_are_the_ones_it_uses():
    """Guards against docs that promise rehearsal addresses (127.0.x.y) the rehearsal no longer uses."""
    claims = {claim for text in DOCS.values() for claim in re.findall(r"127\.\w+\.x\.y", text)}
    assert claims and all(claim in rehearse.__doc__ for claim in claims), claims


def test_a_stack_file_in_another_folder_is_named_as_the_docs_name_it(monkeypatch):
    """Guards against `--stack examples/prod` (the docs' form) failing where `examples/Pulumi.prod.yaml` works."""
    monkeypatch.chdir(ROOT)  # the tools run from the repository's root, as the docs say
    assert stack_file("dev") == PROJECT_DIR / "Pulumi.dev.yaml"
    assert stack_file("examples/prod") == Path("examples/Pulumi.prod.yaml") == stack_file("examples/Pulumi.prod.yaml")
    assert stack_file(f"{ROOT}/examples/prod") == ROOT / "examples" / "Pulumi.prod.yaml"
    assert stack_config("examples/prod") == stack_config("examples/Pulumi.prod.yaml")
    assert stack_config("examples/prod")["wallarm-postanalytics:wallarmNodeGroup"] == "prod"
    with pytest.raises(FileNotFoundError):
        stack_config("examples/nonesuch")


def test_the_quick_starts_dialing_time_is_the_programs():
    """Guards against a quick start whose warning (how long a deploy waits for a jump host it cannot reach) no
    longer matches the program: the jump host's `-sshd` step waits BOOT_WAIT_SECONDS, before anything dials it."""
    from components import host
    minutes = re.search(r"wait for the jump host for (\d+) minutes \(jumphost-sshd\)", README)
    assert minutes, "the quick start no longer says how long a deploy waits for an unreachable jump host"
    assert int(minutes.group(1)) == host.BOOT_WAIT_SECONDS // 60, host.BOOT_WAIT_SECONDS


def test_the_policy_table_lists_every_policy_of_the_pack():
    """Guards against a policy the docs do not list (or a listed one the pack dropped)."""
    import sys
    sys.path.insert(0, str(ROOT / "policy"))
    import rules
    text = (ROOT / "docs" / "security.md").read_text()
    table = re.findall(r"^\| `([a-z0-9-]+)` \|", text.split("## Policy pack", 1)[1], re.M)
    assert sorted(table) == sorted(p.name for p in rules.POLICIES)
    assert len(table) == len(set(table))
