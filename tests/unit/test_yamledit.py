"""scripts/yamledit.py on its own: dotted keys set by editing the text, everything else kept as written; and the
module reaches the hosts with apply_spec.py: uploaded beside it by every role that runs it, found from the staged
directory whatever the working directory, and part of the configure step's trigger."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings, strategies as st

from components import filtering, host, postanalytics
from harness.program import run_program, stack_config
from scripts import yamledit
from tests.conftest import program_run
from tests.helpers import WSTORE_HOSTILE
from tools.changes import changed

ROOT = Path(__file__).resolve().parents[2]

HOSTILE = WSTORE_HOSTILE


def test_an_edit_replaces_one_value_and_inserts_a_missing_key_in_place():
    """Guards against an editor that re-dumps the file (comments, anchors, YAML 1.1 values lost) or inserts a key at
    another indentation than the file's."""
    text = yamledit.edit(HOSTILE, {"service.TLS.enabled": True, "service.TLS.port": 6388, "metrics.flow.c": "z"},
                         "/etc/wstore.yaml")
    assert text is not None
    assert text.replace("enabled: true", "enabled: false").replace("        port: 6388\n", "").replace(
        ", c: z}", "}") == HOSTILE, text
    assert "        enabled: true         # TLS comes later\n        port: 6388\n" in text, text
    data = yaml.safe_load(text)
    assert data["service"]["TLS"] == {"enabled": True, "port": 6388}
    assert data["metrics"] == {"enabled": False, "mode": 0o640, "version": 1.1, "quoted": "yes",
                               "flow": {"a": 1, "b": ["x", "y"], "c": "z"}}
    assert data["logging"] == {"level": "info", "rotate": 90}


def test_an_edit_with_the_same_meaning_returns_none():
    """Guards against a rewrite (and a restart) when every key already has its value, even spelled otherwise."""
    assert yamledit.edit(HOSTILE, {"metrics.enabled": False, "metrics.mode": 416}, "/x.yaml") is None


@pytest.mark.parametrize("values, words", [
    ({"defaults.level": "debug"}, "would also change logging"),
    ({"service.address.port": 1}, "service.address is '0.0.0.0:3313', not a mapping"),
    ({"service.TLS": 1}, "service.TLS is a mapping, not one value"),
])
def test_an_edit_that_cannot_keep_the_rest_is_refused_in_one_line(values, words):
    """Guards against an edit that silently changes a key shared through an anchor, or replaces a mapping."""
    with pytest.raises(yamledit.EditError) as raised:
        yamledit.edit(HOSTILE, values, "/etc/wstore.yaml")
    message = str(raised.value)
    assert words in message and message.startswith("/etc/wstore.yaml") and "\n" not in message, message


def test_text_that_is_not_a_mapping_or_not_yaml_is_refused():
    """Guards against a list or broken text being replaced by a fresh mapping."""
    for text, words in (("- a\n- b\n", "is not a YAML mapping"), ("a: [1,\n", "is not valid YAML")):
        with pytest.raises(yamledit.EditError, match=words):
            yamledit.edit(text, {"a": 1}, "/x.yaml")


# ---------------------------------------------------------------- the property

KEYS = st.sampled_from(["a", "b", "c", "node", "TLS", "port", "log_level", "x1"])
TRICKY = st.sampled_from(["off", "yes", "1:30", "0640", "1.10", "~", "", "null", "#x", "a: b", "- x", "{y}", "'q'",
                          '"d"', "*ref", "&a", "!t", "%p", "@x", "`b`", "é ü", "tab\there", "  lead", "trail  "])
STRINGS = st.text(alphabet="abcXYZ09 :#-_.,'\"&*!%@`{}[]|>?~é", max_size=12)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                    st.floats(allow_nan=False, allow_infinity=False, width=32), TRICKY, STRINGS)
DOCUMENTS = st.recursive(SCALARS, lambda inner: st.dictionaries(KEYS, inner, min_size=1, max_size=4)
                         | st.lists(SCALARS, max_size=3), max_leaves=12).filter(lambda d: isinstance(d, dict))


def _paths(data: dict, prefix: tuple = ()) -> list[tuple[tuple, bool]]:
    """(key path, whether it exists) of every place a value may be set: each scalar leaf, and a new key under each
    mapping or null."""
    out = []
    for key, value in data.items():
        here = prefix + (key,)
        if isinstance(value, dict):
            out += _paths(value, here)
        elif not isinstance(value, list):
            out.append((here, True))
        if value is None or isinstance(value, dict):
            out.append((here + ("new_key",), False))
    return out + [(prefix + ("added", "deep"), False)]


def _commented(data: dict, indent: int) -> tuple[str, list[str]]:
    """`data` as block YAML with a comment line before and a comment after every line, and those comments."""
    lines, comments = [], []
    for i, line in enumerate(yaml.safe_dump(data, sort_keys=False, width=1 << 30, indent=indent,
                                            allow_unicode=True).splitlines()):
        comments += [f"# above {i}", f"# after {i}"]
        lines += [f"{' ' * (len(line) - len(line.lstrip()))}# above {i}", f"{line}  # after {i}"]
    return "\n".join(lines) + "\n", comments


def _get(data, path):
    for part in path:
        data = data[part]
    return data


@settings(max_examples=200, deadline=None)
@given(data=DOCUMENTS, choice=st.integers(0, 10**6), value=SCALARS, indent=st.sampled_from([2, 4]))
def test_a_key_set_reads_back_and_every_other_key_and_comment_survives(data, choice, value, indent):
    """Property: in any mapping written with comments everywhere, setting one key (a leaf, a new key under a
    mapping or a null, a new nested mapping) and reading the file back gives that value there, every other key its
    old value, and every comment; a second edit with the same value changes nothing."""
    text, comments = _commented(data, indent)
    assert yaml.safe_load(text) == data, text  # the comments are comments
    paths = _paths(data)
    path, _ = paths[choice % len(paths)]
    dotted = ".".join(path)
    new = yamledit.edit(text, {dotted: value}, "/x.yaml")
    if new is None:  # already that value
        assert yamledit._same(_get(data, path), value), (text, dotted, value)
        return
    after = yaml.safe_load(new)
    assert yamledit._same(_get(after, path), value), (new, dotted, value)
    expected = yamledit._copy(data)
    yamledit._set(expected, dotted, value, "/x.yaml")
    assert yamledit._same(after, expected), (text, new)
    for comment in comments:
        assert comment in new, (comment, new)
    assert yamledit.edit(new, {dotted: value}, "/x.yaml") is None


# ---------------------------------------------------------------- on the hosts

def test_every_role_that_runs_apply_spec_uploads_what_it_imports():
    """Guards against a host that gets apply_spec.py without yamledit.py: its configure step would fail to start."""
    for role in (filtering, postanalytics):
        assert "apply_spec.py" in role.SCRIPTS, role.__name__
        missing = set(host.SCRIPT_MODULES["apply_spec.py"]) - set(role.SCRIPTS)
        assert not missing, f"{role.__name__}.SCRIPTS lacks {sorted(missing)}"


@pytest.mark.parametrize("beside", [True, False], ids=["with-yamledit", "without"])
def test_the_staged_apply_spec_finds_the_editor_beside_it_from_any_directory(tmp_path, beside):
    """Guards against an import that works only from the repository or the script's own working directory: the
    staged copy runs from / with PYTHONSAFEPATH=1 (no script directory on sys.path), and sets a YAML key; without
    yamledit.py beside it, it cannot start."""
    stage = tmp_path / "home" / "wallarm-deploy"
    stage.mkdir(parents=True)
    for name in ("apply_spec.py", *(host.SCRIPT_MODULES["apply_spec.py"] if beside else ())):
        shutil.copyfile(ROOT / "scripts" / name, stage / name)
    target = tmp_path / "root" / "opt" / "wallarm" / "x.yaml"
    target.parent.mkdir(parents=True)
    target.write_text("# kept\na: 1\n")
    spec = {"name": "t", "yaml": [{"path": "/opt/wallarm/x.yaml", "set": {"b.c": "d"}}]}
    env = {**os.environ, "WALLARM_ROOT": str(tmp_path / "root"), "PYTHONSAFEPATH": "1"}
    proc = subprocess.run([sys.executable, str(stage / "apply_spec.py")], input=json.dumps(spec), text=True,
                          capture_output=True, cwd="/", env=env, timeout=60)
    if beside:
        assert proc.returncode == 0, proc.stderr
        assert target.read_text() == "# kept\na: 1\nb:\n  c: d\n"
    else:
        assert proc.returncode != 0 and "No module named 'yamledit'" in proc.stderr, proc.stderr


@pytest.fixture
def edited_editor(monkeypatch):
    """The 2x3 stack's run as it is, then yamledit.py with one more line, as a pull request would edit it."""
    before = program_run(postanalyticsCount=2, filteringCount=3)
    original = host.script_text
    monkeypatch.setattr(host, "script_text", lambda name: original(name) + ("# an edit\n" if name == "yamledit.py"
                                                                            else ""))
    host.script_hash.cache_clear()
    yield before
    monkeypatch.undo()
    host.script_hash.cache_clear()


def test_an_edited_editor_runs_configure_again_on_every_host(edited_editor):
    """Guards against a fix to yamledit.py that is uploaded but never run on existing hosts (the configure step's
    trigger holds the hash of apply_spec.py only), or that re-runs other steps."""
    after = run_program(stack_config("dev", postanalyticsCount=2, filteringCount=3))
    assert after.error is None, after.error
    nodes = [f"postanalytics-{i}" for i in range(2)] + [f"filtering-{i}" for i in range(3)]
    moved = changed(edited_editor, after)
    # The -wait step stages every script from its stdin (components/host.py stage_script): it carries the new file.
    staging = {f"{n}-wait" for n in nodes}
    assert moved - staging == {f"{n}-configure" for n in nodes}, sorted(moved)
    assert moved & staging == staging, "the new yamledit.py is staged on every host"
