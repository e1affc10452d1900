"""Fault injection: the host scripts under an operator's bad day, with figures.

- Crash points: an apply killed at every step boundary (WALLARM_APPLY_CRASH_AT=N makes apply_spec.py exit at
  once at its Nth boundary), then run again: the files, what the service loaded, the exit status are right, and
  no journal or temporary file is left. Plus a bounded randomised run (fixed seed): sequences of applies, kills,
  abandoned runs and failing configurations, checked against a model of the last committed state.
- Concurrent applies: a second run waits for the lock or fails clearly, and never undoes the first.
- Hostile files, hostile specs (a table, and a seeded fuzz of the validator), hostile downloads, hostile status
  pages: each is refused or handled with one clear line, never a traceback, never a half-applied host.

The many apply runs of the crash and random sections fork this process and call apply_spec.main() (the same code
as `python3 apply_spec.py`, without an interpreter start-up each time); everything else runs the scripts as real
processes. Each section records (tried, handled); the figures are printed at the end of the module.
"""

from __future__ import annotations

import base64
import copy
import importlib.util
import io
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

import pytest
import yaml

from components import render
from harness.sandbox import SCRIPTS, Sandbox

FIGURES: dict[str, list[int]] = {}
"""section -> [cases tried, cases handled]"""


def _record(section: str, tried: int, handled: int) -> None:
    totals = FIGURES.setdefault(section, [0, 0])
    totals[0] += tried
    totals[1] += handled


@pytest.fixture(scope="module", autouse=True)
def figures(request):
    yield
    if not FIGURES:
        return
    lines = ["", "fault injection figures (cases tried / handled):"]
    lines += [f"  {section:<46} {tried:>5} {handled:>5}" for section, (tried, handled) in FIGURES.items()]
    total = [sum(v[i] for v in FIGURES.values()) for i in (0, 1)]
    lines.append(f"  {'total':<46} {total[0]:>5} {total[1]:>5}")
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print("\n".join(lines))


# ---------------------------------------------------------------- specs and sandboxes

def _cert(tag: str) -> str:
    return f"-----BEGIN CERTIFICATE-----\n{tag}\n-----END CERTIFICATE-----\n"


def pa_spec(ip: str = "10.0.1.5", arena: str = "1.0", tls: bool = True, version: str = "v1") -> dict:
    return render.postanalytics_spec(
        name="postanalytics-0", private_ip=ip, arena=arena, port=3313, tls_port=6388, tls=tls, mutual_tls=tls,
        server_cert=_cert(f"server {version}"), server_key=f"-----BEGIN PRIVATE KEY-----\n{version}\n",
        ca_cert=_cert(f"ca {version}"))


def f_spec(body: str = "# v1", version: str = "v1") -> dict:
    conf = (f"{body}\nupstream wallarm_wstore {{\n    server 10.0.1.5:6388;\n}}\n"
            "wallarm_wstore_upstream wallarm_wstore ssl=on;\n")
    return render.filtering_spec(
        name="filtering-0", nginx_conf=conf, tls=True, mutual_tls=True, ca_cert=_cert(f"ca {version}"),
        client_cert=_cert(f"client {version}"), client_key=f"-----BEGIN PRIVATE KEY-----\n{version}\n")


PA_A, PA_B, PA_OFF = pa_spec(), pa_spec(ip="10.0.1.9", arena="2.5", version="v2"), pa_spec(tls=False)
PA_BAD = pa_spec(ip="10.0.1.9", arena="STUB_INVALID", version="v3")  # wstore cannot start with it
F_A, F_B = f_spec(), f_spec("# v2", "v2")
F_BAD = f_spec("STUB_INVALID;", "v3")  # nginx -t rejects it


@pytest.fixture(scope="module")
def bases(tmp_path_factory) -> dict[str, Sandbox]:
    """Start states: installed hosts, and hosts where the A specs were applied (cloned for each case)."""
    root = tmp_path_factory.mktemp("bases")
    out = {}
    for role in ("postanalytics", "filtering"):
        out[f"{role}-installed"] = sb = Sandbox(root / f"{role}-installed")
        sb.install(role)
    pa = out["postanalytics-installed"].clone(root / "postanalytics-A")
    assert _forked(pa, PA_A)[0] == 0
    fl = out["filtering-installed"].clone(root / "filtering-A")
    assert _forked(fl, F_A)[0] == 0
    # An installer that left its directive live: B must comment it out (a file the spec does not name).
    conf = fl.path("/etc/nginx/nginx.conf")
    conf.write_text(conf.read_text().replace("# wallarm_wstore_upstream wallarm_wstore;",
                                             "wallarm_wstore_upstream wallarm_wstore;"))
    fl.run("reload", "systemctl reload-or-restart nginx")  # NGINX runs what is on disk, as on a real host
    out["postanalytics-A"], out["filtering-A"] = pa, fl
    return out


_counter = [0]


def _clone(base: Sandbox, tmp_path: Path) -> Sandbox:
    _counter[0] += 1
    return base.clone(tmp_path / f"case-{_counter[0]}")


# ---------------------------------------------------------------- running apply_spec.py in a fork

_SPEC = importlib.util.spec_from_file_location("apply_spec_under_test", SCRIPTS / "apply_spec.py")
APPLY = importlib.util.module_from_spec(_SPEC)
sys.modules["apply_spec_under_test"] = APPLY
_SPEC.loader.exec_module(APPLY)


def _forked(sb: Sandbox, spec, **env: str) -> tuple[int, str, str]:
    """apply_spec.main() in a forked child with the sandbox's environment, `spec` (a dict, or raw bytes) on its
    stdin; (exit status, stdout, stderr)."""
    environment = sb.env(**env)
    with tempfile.TemporaryDirectory() as tmp:
        paths = [os.path.join(tmp, name) for name in ("stdin", "stdout", "stderr")]
        Path(paths[0]).write_bytes(spec if isinstance(spec, bytes) else json.dumps(spec).encode())
        pid = os.fork()
        if pid == 0:  # the child: never returns into pytest
            rc = 98
            try:
                os.environ.clear()
                os.environ.update(environment)
                os.chdir(sb.home)
                for fd, (path, flags) in enumerate(zip(paths, (os.O_RDONLY, os.O_WRONLY | os.O_CREAT,
                                                               os.O_WRONLY | os.O_CREAT))):
                    os.dup2(os.open(path, flags, 0o600), fd)
                sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False))
                sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False))
                sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False))
                APPLY.ROOT = environment["WALLARM_ROOT"].rstrip("/")
                APPLY.boundary = APPLY._crash_hook()
                rc = APPLY.main([])
            except BaseException:  # noqa: BLE001 - shows as "Traceback" in stderr, which the tests refuse
                import traceback
                traceback.print_exc()
            finally:
                try:
                    sys.stdout.flush()
                    sys.stderr.flush()
                finally:
                    os._exit(rc)
        _, status = os.waitpid(pid, 0)
        return (os.waitstatus_to_exitcode(status), Path(paths[1]).read_text(errors="replace"),
                Path(paths[2]).read_text(errors="replace"))


def _unit(spec: dict) -> str:
    return "nginx" if "nginx" in json.dumps(spec.get("on_change")) else "wallarm.service"


def _consistent(sb: Sandbox, unit: str) -> list[str]:
    """What is wrong with a host after a run that should have finished: journal, temporary files, a service
    running on something else than the files."""
    problems = []
    if sb.journal() is not None:
        problems.append("the journal was left")
    if sb.temporary_files():
        problems.append(f"temporary files were left: {sb.temporary_files()}")
    if sb.loaded(unit) != sb.manifest(unit):
        problems.append(f"{unit} does not run on the files on disk")
    return problems


def _semantic(tree: dict) -> dict:
    """A tree with YAML files compared by meaning (insertion order may differ with the history)."""
    out = {}
    for path, (kind, data, mode, uid, gid) in tree.items():
        if kind == "file" and path.endswith(".yaml"):
            data = json.dumps(yaml.safe_load(data), sort_keys=True, default=str)
        out[path] = (kind, data, mode, uid, gid)
    return out


# ---------------------------------------------------------------- crash at every step boundary

SCENARIOS = {
    # name: (start, spec, the rerun's exit status)
    "postanalytics: new certificates, IP, arena": ("postanalytics-A", PA_B, 0),
    "postanalytics: TLS turned off": ("postanalytics-A", PA_OFF, 0),
    "postanalytics: wstore cannot start (rollback)": ("postanalytics-A", PA_BAD, 1),
    "filtering: first apply (dirs, symlink, directive)": ("filtering-installed", F_A, 0),
    "filtering: nginx -t rejects it (rollback)": ("filtering-A", F_BAD, 1),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_a_kill_at_every_step_boundary_is_completed_by_the_next_run(scenario, bases, tmp_path):
    """Guards against an interrupted apply (dropped SSH session, cancelled `pulumi up`) that a re-run does not
    complete or undo: files half-applied, a service on the old (or a rejected) configuration, a journal or
    temporary file left behind, a wrong exit status."""
    start, spec, expected_rc = SCENARIOS[scenario]
    unit = _unit(spec)
    witness = _clone(bases[start], tmp_path)
    trace = tmp_path / "trace"
    rc, _, err = _forked(witness, spec, WALLARM_APPLY_TRACE=str(trace))
    assert rc == expected_rc, err
    expected = witness.tree()
    boundaries = len(trace.read_text().splitlines())
    assert boundaries >= 6, trace.read_text()
    failures = []
    for k in range(1, boundaries + 1):
        sb = _clone(bases[start], tmp_path)
        crashed = _forked(sb, spec, WALLARM_APPLY_CRASH_AT=str(k))
        if crashed[0] != 99:
            failures.append(f"kill at {k}: the run did not reach boundary {k} (exit {crashed[0]}: {crashed[2]})")
            continue
        pending = sb.journal() is not None
        rc, out, err = _forked(sb, spec)
        problems = _consistent(sb, unit)
        if rc != expected_rc:
            problems.append(f"the re-run exited {rc}, not {expected_rc}: {err.strip()[-300:]}")
        if "Traceback" in err:
            problems.append("a traceback")
        if sb.tree() != expected:
            diff = sorted(p for p in set(expected) | set(sb.tree()) if expected.get(p) != sb.tree().get(p))
            problems.append(f"files differ from a clean run: {diff}")
        if expected_rc == 0 and json.loads(out).get("resumed") is not pending:
            problems.append(f"the re-run says resumed={json.loads(out).get('resumed')}, the journal was "
                            f"{'there' if pending else 'not there'}")
        failures += [f"kill at {k}: {p}" for p in problems]
    _record("crash points (kill at boundary N, re-run)", boundaries, boundaries - len({f.split(":")[0]
                                                                                      for f in failures}))
    assert not failures, "\n".join(failures)


def _managed_keys(specs: list[dict]) -> set[tuple[str, str]]:
    return {(e["path"], k) for spec in specs for e in spec.get("yaml", []) for k in e["set"]}


def _strip(data, dotted: str) -> None:
    parts = dotted.split(".")
    for part in parts[:-1]:
        data = data.get(part) if isinstance(data, dict) else None
    if isinstance(data, dict):
        data.pop(parts[-1], None)


def _pruned(data):
    """The mapping without empty sections (left where managed keys were stripped)."""
    if isinstance(data, dict):
        out = {k: _pruned(v) for k, v in data.items()}
        return {k: v for k, v in out.items() if v != {}}
    return data


def _conforms(sb: Sandbox, spec: dict, committed: dict, base: dict, managed: set) -> list[str]:
    """How the host differs from `spec` applied on the committed state: its files and absent paths, its env and
    YAML values (type included), every key no spec manages as the installer left it, every other path as before."""
    tree, problems = sb.tree(), []
    named = {f["path"].lstrip("/"): f for f in spec.get("files", [])}
    for path, f in named.items():
        if tree.get(path, (None,))[:3] != ("file", f["content"].encode(), int(f["mode"], 8)):
            problems.append(f"{path} is not the spec's file")
    problems += [f"{p} still exists" for p in spec.get("absent", []) if p.lstrip("/") in tree]
    for entry in spec.get("env", []):
        text = sb.path(entry["path"]).read_text(errors="surrogateescape")
        for name, value in entry["set"].items():
            last = [line.split("=", 1)[1] for line in text.splitlines() if line.startswith(f"{name}=")][-1:]
            if last != [value]:
                problems.append(f"{entry['path']}: {name} is {last}, not {value}")
    for entry in spec.get("yaml", []):
        data = yaml.safe_load(sb.path(entry["path"]).read_text())
        for dotted, value in entry["set"].items():
            node = data
            for part in dotted.split("."):
                node = node.get(part) if isinstance(node, dict) else None
            if node != value or type(node) is not type(value):
                problems.append(f"{entry['path']}: {dotted} is {node!r}, not {value!r}")
        before = yaml.safe_load(base[entry["path"].lstrip("/")][1])
        for path, dotted in managed:
            if path == entry["path"]:
                _strip(data, dotted)
                _strip(before, dotted)
        if json.dumps(_pruned(data), sort_keys=True, default=str) != \
                json.dumps(_pruned(before), sort_keys=True, default=str):
            problems.append(f"{entry['path']}: keys no spec manages changed")
    merged = {e["path"].lstrip("/") for e in spec.get("env", []) + spec.get("yaml", [])}
    for path in set(tree) | set(committed):
        if path not in named and path not in merged and path.lstrip("/") not in spec.get("absent", []) and \
                f"/{path}" not in spec.get("absent", []) and tree.get(path) != committed.get(path):
            problems.append(f"{path} changed, and the spec does not name it")
    return problems


def test_random_kills_and_changes_keep_the_host_consistent(bases, tmp_path):
    """Guards against a combination of kills, abandoned runs and failing configurations (a sequence no single
    test foresees) leaving a host that is neither the last good configuration nor the new one. Seeded: every run
    of the suite tries the same sequences."""
    rng = random.Random(20240611)
    targets = {"A": (PA_A, True), "B": (PA_B, True), "off": (PA_OFF, True), "bad": (PA_BAD, False)}
    managed = _managed_keys([spec for spec, _ in targets.values()])
    base = bases["postanalytics-installed"].tree()
    tried = handled = 0
    failures = []
    for sequence in range(6):
        sb = _clone(bases["postanalytics-A"], tmp_path)
        committed = sb.tree()
        for episode in range(5):
            name = rng.choice(list(targets))
            spec, good = targets[name]
            kills = rng.choice([0, 1, 1, 2])
            for _ in range(kills):
                _forked(sb, spec, WALLARM_APPLY_CRASH_AT=str(rng.randint(1, 24)))
            if rng.random() < 0.2:
                continue  # abandoned: the next episode finds its journal
            tried += 1
            rc, _, err = _forked(sb, spec)
            problems = _consistent(sb, "wallarm.service")
            if rc != (0 if good else 1) or "Traceback" in err:
                problems.append(f"exit {rc}: {err.strip()[-200:]}")
            if good:
                problems += _conforms(sb, spec, committed, base, managed)
                committed = sb.tree()
            elif sb.tree() != committed:
                diff = sorted(p for p in set(committed) | set(sb.tree()) if committed.get(p) != sb.tree().get(p))
                problems.append(f"the failed run did not restore the last good files: {diff}")
            if problems:
                failures.append(f"sequence {sequence} episode {episode} ({name}, {kills} kills): {problems}")
            else:
                handled += 1
    _record("random kills and changes (seeded)", tried, handled)
    assert not failures, "\n".join(failures)


# ---------------------------------------------------------------- concurrent applies

def _holding(marker_dir: Path) -> list[list[str]]:
    """An on_change command that says it started, then waits until it is released."""
    code = ("import os, sys, time; d = sys.argv[1]; open(os.path.join(d, 'started'), 'w').close()\n"
            "while not os.path.exists(os.path.join(d, 'release')): time.sleep(0.02)")
    return [["python3", "-c", code, str(marker_dir)], ["systemctl", "restart", "wallarm.service"]]


def _spawn(sb: Sandbox, spec: dict, **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(sb.staged_apply())], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=sb.env(**env), cwd=sb.home)


def _wait_for(path: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def test_a_second_run_fails_clearly_while_the_first_holds_the_lock(bases, tmp_path):
    """Guards against two runs at once interleaving their writes, or the second undoing the first."""
    sb = _clone(bases["postanalytics-A"], tmp_path)
    first = copy.deepcopy(PA_B)
    first["on_change"] = _holding(tmp_path)
    a = _spawn(sb, first)
    a.stdin.write(json.dumps(first).encode())
    a.stdin.close()
    _wait_for(tmp_path / "started")
    during = sb.tree()
    b = sb.apply(pa_spec(arena="7.0"), WALLARM_APPLY_LOCK_TIMEOUT="0.3")
    err = b.stderr.decode()
    assert b.returncode == 3, err
    assert f"another apply_spec.py run (pid {a.pid}) still holds" in err and "nothing was changed" in err
    assert sb.tree() == during, "the refused run changed files"
    (tmp_path / "release").touch()
    assert a.wait(timeout=30) == 0, a.stderr.read().decode()
    assert "SLAB_ALLOC_ARENA=2.5" in sb.path(render.ENV_LIST).read_text()
    assert _consistent(sb, "wallarm.service") == []
    _record("concurrent applies", 1, 1)


def test_a_waiting_run_applies_after_the_first_and_keeps_its_result(bases, tmp_path):
    """Guards against a waiting run that snapshots the files before the first finished (and then restores or
    merges stale content)."""
    sb = _clone(bases["postanalytics-A"], tmp_path)
    first = copy.deepcopy(PA_B)
    first["on_change"] = _holding(tmp_path)
    a = _spawn(sb, first)
    a.stdin.write(json.dumps(first).encode())
    a.stdin.close()
    _wait_for(tmp_path / "started")
    second = copy.deepcopy(PA_B)
    second["env"][0]["set"]["SLAB_ALLOC_ARENA"] = "4.0"
    b = _spawn(sb, second)
    b.stdin.write(json.dumps(second).encode())
    b.stdin.close()
    # Wait until the second run says it waits (a fixed sleep raced a slow start on a loaded machine), then check it
    # is still waiting, and only then let the first one finish.
    os.set_blocking(b.stderr.fileno(), False)
    said, deadline = b"", time.monotonic() + 30
    while b"waiting up to 300s for another apply_spec.py run" not in said and time.monotonic() < deadline:
        said += b.stderr.read() or b""
        time.sleep(0.05)
    assert b.poll() is None, "the second run did not wait for the lock"
    (tmp_path / "release").touch()
    assert a.wait(timeout=30) == 0
    os.set_blocking(b.stderr.fileno(), True)
    assert b.wait(timeout=30) == 0, (said + b.stderr.read()).decode()
    out, err = b.stdout.read(), said + b.stderr.read()
    assert "waiting up to 300s for another apply_spec.py run" in err.decode()
    # The second run found the first one's files: only the arena was left to change.
    assert json.loads(out)["changed"] == [render.ENV_LIST]
    assert "SLAB_ALLOC_ARENA=4.0" in sb.path(render.ENV_LIST).read_text()
    assert yaml.safe_load(sb.path(render.WSTORE_YAML).read_text())["service"]["TLS"]["address"] == "10.0.1.9:6388"
    assert _consistent(sb, "wallarm.service") == []
    _record("concurrent applies", 1, 1)


def test_a_storm_of_runs_ends_in_one_whole_configuration(bases, tmp_path):
    """Guards against several runs at once leaving a mix of their files."""
    sb = _clone(bases["postanalytics-A"], tmp_path)
    specs = [pa_spec(ip=f"10.0.1.{20 + i}", arena=f"{i + 2}.0", version=f"s{i}") for i in range(4)]
    procs = [_spawn(sb, s) for s in specs]
    for p, s in zip(procs, specs):
        p.stdin.write(json.dumps(s).encode())
        p.stdin.close()
    codes = [p.wait(timeout=60) for p in procs]
    assert codes == [0, 0, 0, 0], [p.stderr.read().decode() for p in procs]
    arena = next(line for line in sb.path(render.ENV_LIST).read_text().splitlines() if "SLAB_ALLOC_ARENA" in line)
    winner = specs[int(float(arena.split("=")[1])) - 2]
    witness = _clone(bases["postanalytics-A"], tmp_path)
    assert _forked(witness, winner)[0] == 0
    assert _semantic(sb.tree()) == _semantic(witness.tree()), "the files mix several runs' specs"
    assert _consistent(sb, "wallarm.service") == []
    _record("concurrent applies", 4, 4)


# ---------------------------------------------------------------- hostile files

def _symlink_out(sb: Sandbox) -> None:
    outside = sb.base / "outside"
    outside.mkdir()
    conf_d = sb.path("/etc/nginx/conf.d")
    for p in conf_d.iterdir():
        p.unlink()
    conf_d.rmdir()
    conf_d.symlink_to(outside)


def _fifo(sb: Sandbox) -> None:
    os.mkfifo(sb.path(render.NGINX_CONF))


def _write(path: str, data: bytes) -> Callable[[Sandbox], None]:
    return lambda sb: sb.path(path).write_bytes(data)


def _directory(path: str) -> Callable[[Sandbox], None]:
    def make(sb: Sandbox) -> None:
        target = sb.path(path)
        if target.is_file() or target.is_symlink():
            target.unlink()
        target.mkdir(parents=True, exist_ok=True)
    return make


def _remove(path: str) -> Callable[[Sandbox], None]:
    return lambda sb: sb.path(path).unlink()


def _parent_is_a_file(sb: Sandbox) -> None:
    sb.path("/etc/nginx/wallarm").write_text("not a directory\n")


def _garbage_journal(sb: Sandbox) -> None:
    state = sb.path("/var/lib/wallarm-deploy")
    state.mkdir(parents=True, exist_ok=True)
    (state / "apply-journal.json").write_bytes(b"\x00\xffnot json")


def _leftovers(sb: Sandbox) -> None:
    for d in ("/etc/nginx/conf.d", "/etc/nginx"):
        (sb.path(d) / ".wallarm-deploy-abc123").write_text("half a file")


def _state_is_a_file(sb: Sandbox) -> None:
    sb.path("/var/lib/wallarm-deploy").write_text("oops\n")


def _deep_yaml(sb: Sandbox) -> None:
    sb.path(render.WSTORE_YAML).write_text("a: " + "[" * 1500 + "]" * 1500 + "\n")


def _live_directive_not_utf8(sb: Sandbox) -> None:
    conf = sb.path("/etc/nginx/nginx.conf")
    conf.write_bytes(conf.read_bytes().replace(b"# wallarm_wstore_upstream wallarm_wstore;",
                                               b"wallarm_wstore_upstream wallarm_wstore; # caf\xe9"))


# (case, role, tamper, expected exit, words in the message, check after)
HOSTILE_FILES = [
    ("wstore.yaml is a directory", "postanalytics", _directory(render.WSTORE_YAML), 2, "is a directory"),
    ("wstore.yaml is not YAML", "postanalytics", _write(render.WSTORE_YAML, b"service: [\n"), 2,
     "it is not valid YAML"),
    ("wstore.yaml is not UTF-8", "postanalytics", _write(render.WSTORE_YAML, b"service:\n  a: \xff\xfe\n"), 2,
     "is not UTF-8 text"),
    ("wstore.yaml is a symlink", "postanalytics", lambda sb: (sb.path(render.WSTORE_YAML).unlink(),
                                                              sb.path(render.WSTORE_YAML).symlink_to("/etc/hosts")),
     2, "is a symbolic link"),
    ("wstore.yaml nested 1500 deep", "postanalytics", _deep_yaml, 2, "nested too deeply"),
    ("wstore.yaml is empty", "postanalytics", _write(render.WSTORE_YAML, b""), 0, ""),
    ("wstore.yaml says TLS: false", "postanalytics", _write(render.WSTORE_YAML, b"service:\n  TLS: false\n"), 2,
     "because service.TLS is False, not a mapping"),
    ("env.list is missing", "postanalytics", _remove(render.ENV_LIST), 2, "missing file /opt/wallarm/env.list"),
    ("env.list is a directory", "postanalytics", _directory(render.ENV_LIST), 2, "is a directory"),
    ("env.list is not UTF-8", "postanalytics", _write(render.ENV_LIST, b"# \xff\nSLAB_ALLOC_ARENA=9\n"), 0, ""),
    ("our NGINX file is a directory", "filtering", _directory(render.NGINX_CONF), 2, "is a directory"),
    ("conf.d is a symlink out of /etc/nginx", "filtering", _symlink_out, 2, "leads outside /etc/nginx"),
    ("a FIFO where our NGINX file goes", "filtering", _fifo, 2, "not a regular file"),
    ("/etc/nginx/wallarm is a file", "filtering", _parent_is_a_file, 2, "not a directory"),
    ("the default site is a directory", "filtering", _directory(render.NGINX_DEFAULT_SITE), 2, "is a directory"),
    ("nginx.conf is not UTF-8, directive live", "filtering", _live_directive_not_utf8, 0, ""),
    ("temporary files left by a crash", "filtering", _leftovers, 0, "removed a temporary file"),
    ("the journal is garbage", "filtering", _garbage_journal, 0, "is unreadable"),
    ("the state directory is a file", "filtering", _state_is_a_file, 1, "is not a directory"),
]


@pytest.mark.parametrize("case,role,tamper,expected,words", HOSTILE_FILES, ids=[c[0] for c in HOSTILE_FILES])
def test_hostile_files_are_refused_or_handled(case, role, tamper, expected, words, bases, tmp_path):
    """Guards against a broken, misplaced or malicious file on the host giving a traceback, a half-applied host,
    or a write outside the managed roots."""
    sb = _clone(bases[f"{role}-installed"], tmp_path)
    tamper(sb)
    before = sb.tree()
    outside = sb.base / "outside"
    spec = pa_spec() if role == "postanalytics" else f_spec()
    rc, _, err = _forked(sb, spec)
    assert "Traceback" not in err, err
    assert rc == expected and words in err, err
    if expected != 0:
        assert sb.tree() == before, "a refused run changed files"
        assert sb.journal() is None and sb.temporary_files() == []
        assert len(err.strip().splitlines()) == 1, f"not one line: {err}"
    else:
        assert _consistent(sb, _unit(spec)) == []
    if outside.exists():
        assert list(outside.iterdir()) == [], "a file was written outside the managed roots"
    if case == "nginx.conf is not UTF-8, directive live":
        data = sb.path("/etc/nginx/nginx.conf").read_bytes()
        assert b"# wallarm_wstore_upstream wallarm_wstore; # caf\xe9" in data, "unmanaged bytes were changed"
    if case == "env.list is not UTF-8":
        assert sb.path(render.ENV_LIST).read_bytes() == b"# \xff\nSLAB_ALLOC_ARENA=1.0\n"
    _record("hostile files", 1, 1)


# ---------------------------------------------------------------- hostile specs

def _valid() -> dict:
    return copy.deepcopy(F_A)


def _with(mutate: Callable[[dict], None]) -> bytes:
    spec = _valid()
    mutate(spec)
    return json.dumps(spec).encode()


def _set(path: list, value) -> Callable[[dict], None]:
    def mutate(spec: dict) -> None:
        node = spec
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return mutate


HOSTILE_SPECS = [
    ("empty", b"", "standard input is empty"),
    ("not UTF-8", b'{"name": "\xff"}', "standard input is not UTF-8"),
    ("not JSON", b"files: []", "standard input is not JSON"),
    ("a list", b"[]", "the spec is a list"),
    ("null", b"null", "the spec is null"),
    ("NaN", b'{"yaml": [{"path": "/opt/wallarm/x.yaml", "set": {"a": NaN}}]}', "holds NaN"),
    ("duplicate key", b'{"name": "a", "name": "b"}', "appears twice"),
    ("deep nesting", b"[" * 100000 + b"]" * 100000, "not usable JSON"),
    ("huge integer", b'{"name": ' + b"9" * 5000 + b"}", "not usable JSON"),
    ("unknown top key", _with(_set(["surprise"], 1)), "unknown keys 'surprise' in the spec"),
    ("name a number", _with(_set(["name"], 3)), "name is 3"),
    ("files an object", _with(_set(["files"], {})), "files is an object"),
    ("file a number", _with(_set(["files", 0], 1)), "files[0] is a number"),
    ("file unknown key", _with(_set(["files", 0, "group"], "x")), "unknown keys 'group' in files[0]"),
    ("file lacks mode", _with(lambda s: s["files"][0].pop("mode")), "files[0] lacks mode"),
    ("path a number", _with(_set(["files", 0, "path"], 7)), "files[0].path is 7"),
    ("path relative", _with(_set(["files", 0, "path"], "etc/nginx/x")), "must be an absolute path"),
    ("path with ..", _with(_set(["files", 0, "path"], "/etc/nginx/../passwd")), "without '..'"),
    ("path outside", _with(_set(["files", 0, "path"], "/etc/cron.d/x")), "writes and removes only under"),
    ("path with NUL", _with(_set(["files", 0, "path"], "/etc/nginx/a\u0000b")), "contains a NUL"),
    ("path is a root", _with(_set(["files", 0, "path"], "/etc/nginx")), "writes and removes only under"),
    ("path is the journal", _with(_set(["files", 0, "path"], "/var/lib/wallarm-deploy/apply-journal.json")),
     "apply_spec.py's own lock or journal"),
    ("content a number", _with(_set(["files", 0, "content"], 5)), "files[0].content is a number"),
    ("mode a number", _with(_set(["files", 0, "mode"], 420)), "files[0].mode is 420"),
    ("mode 999", _with(_set(["files", 0, "mode"], "0999")), "octal mode"),
    ("owner with a space", _with(_set(["files", 0, "owner"], "root admin")), "files[0].owner"),
    ("absent a string", _with(_set(["absent"], "/etc/nginx/x")), "absent is a string"),
    ("same path twice", _with(lambda s: s["absent"].append(s["files"][0]["path"])), "names already"),
    ("env set empty", _with(_set(["env"], [{"path": "/opt/wallarm/env.list", "set": {}}])), "env[0].set"),
    ("env value a number", _with(_set(["env"], [{"path": "/opt/wallarm/env.list", "set": {"A": 1}}])),
     "env[0].set.A is 1"),
    ("env value two lines", _with(_set(["env"], [{"path": "/opt/wallarm/env.list", "set": {"A": "1\nB=2"}}])),
     "bad variable value"),
    ("yaml key a..b", _with(_set(["yaml"], [{"path": "/opt/wallarm/x.yaml", "set": {"a..b": 1}}])),
     "dotted words"),
    ("yaml value a list", _with(_set(["yaml"], [{"path": "/opt/wallarm/x.yaml", "set": {"a": [1]}}])),
     "yaml[0].set.a is a list"),
    ("yaml value infinite", b'{"yaml": [{"path": "/opt/wallarm/x.yaml", "set": {"a": 1e400}}]}', "finite"),
    ("check a string", _with(_set(["check"], "nginx -t")), "check is a string"),
    ("check empty command", _with(_set(["check"], [[]])), "check[0] is a list"),
    ("check word a number", _with(_set(["check"], [["nginx", 1]])), "check[0][1] is 1"),
    ("unique_directive lacks owner", _with(lambda s: s["unique_directive"].pop("owner")),
     "unique_directive lacks owner"),
    ("unique_directive outside", _with(_set(["unique_directive", "under"], "/etc")), "unique_directive.under"),
    ("directive with a space", _with(_set(["unique_directive", "directive"], "a b")),
     "unique_directive.directive"),
]


@pytest.mark.parametrize("case,stdin,words", HOSTILE_SPECS, ids=[c[0] for c in HOSTILE_SPECS])
def test_hostile_specs_are_refused_with_the_field_named(case, stdin, words, bases, tmp_path):
    """Guards against a malformed spec giving a Python traceback, or changing anything, instead of one sentence
    naming the field."""
    sb = _clone(bases["filtering-installed"], tmp_path)
    before = sb.tree(include_state=True)
    rc, _, err = _forked(sb, stdin)
    assert rc == 2 and words in err and "nothing was changed" in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert sb.tree(include_state=True) == before
    _record("hostile specs (table)", 1, 1)


def _mutations(rng: random.Random, value):
    """One random mutation of a JSON value: a wrong type, a strange string, a deleted or added key."""
    strange = [None, True, 0, -1, 1.5, "", "\u0000", "../..", "/", "/etc/shadow", "x" * 300, [], {}, [[]],
               {"": ""}, "é", "0644", "/opt/wallarm/", "/etc/nginx/./x"]
    if isinstance(value, dict) and value:
        key = rng.choice(list(value))
        roll = rng.random()
        if roll < 0.25:
            del value[key]
        elif roll < 0.4:
            value[rng.choice(["extra", "PATH", "Name", key + "_"])] = rng.choice(strange)
        elif roll < 0.75 and isinstance(value[key], (dict, list)) and value[key]:
            _mutations(rng, value[key])
        else:
            value[key] = rng.choice(strange)
    elif isinstance(value, list) and value:
        i = rng.randrange(len(value))
        if isinstance(value[i], (dict, list)) and value[i] and rng.random() < 0.6:
            _mutations(rng, value[i])
        else:
            value[i] = rng.choice(strange)


def test_fuzzed_specs_never_pass_unchecked_or_crash_the_validator():
    """Guards against a combination of wrong fields that the table does not list slipping through validation with
    a wrong type (a crash later, mid-apply) or crashing the validator. Seeded: the same 3000 specs every run."""
    rng = random.Random(8)
    tried = handled = 0
    failures = []
    for base in (F_A, PA_A):
        for _ in range(1500):
            spec = copy.deepcopy(base)
            for _ in range(rng.randint(1, 3)):
                _mutations(rng, spec)
            tried += 1
            try:
                APPLY.validate(json.loads(json.dumps(spec)))
                _well_typed(spec)
            except APPLY.SpecError:
                pass
            except Exception as exc:  # noqa: BLE001 - the point of the test
                failures.append(f"{type(exc).__name__}: {exc} for {json.dumps(spec)[:300]}")
                continue
            handled += 1
    _record("hostile specs (seeded fuzz of the validator)", tried, handled)
    assert not failures, "\n".join(failures[:10])


def _well_typed(spec: dict) -> None:
    """What apply() relies on once validate() accepted a spec; raises AssertionError otherwise."""
    for f in spec.get("files", []):
        assert isinstance(f["path"], str) and isinstance(f["content"], str) and isinstance(f["mode"], str)
        assert isinstance(f.get("owner", ""), str)
    assert all(isinstance(p, str) for p in spec.get("absent", []))
    for e in spec.get("env", []) + spec.get("yaml", []):
        assert isinstance(e["path"], str) and isinstance(e["set"], dict) and e["set"]
    for key in ("check", "on_change", "verify"):
        assert all(isinstance(c, list) and c and all(isinstance(w, str) for w in c) for c in spec.get(key, []))


# ---------------------------------------------------------------- hostile downloads

INSTALL = SCRIPTS / "install-wallarm.sh"
URL = "https://meganode.wallarm.com/6.12/wallarm-6.12.1.x86_64-glibc.sh"

# (case, stub knobs, installs?, words in the message, download attempts)
HOSTILE_DOWNLOADS = [
    ("empty answer", {"STUB_DOWNLOAD_BODY": "empty"}, False, "is empty; refusing to run it", 1),
    ("a tiny script", {"STUB_DOWNLOAD_BODY": "small"}, False, "is only 34 bytes", 1),
    ("a big HTML error page", {"STUB_DOWNLOAD_BODY": "html"}, False, "does not start with #!/bin/sh", 1),
    ("1 MiB of zero bytes", {"STUB_DOWNLOAD_BODY": "garbage"}, False, "does not start with #!/bin/sh", 1),
    ("cut short of its payload", {"STUB_DOWNLOAD_BODY": "truncated"}, False,
     "is cut short: 1200000 bytes, but its header declares a payload of 1572864 bytes", 1),
    ("payload corrupt (makeself --check)", {"STUB_INSTALLER_CORRUPT": "1"}, False,
     "failed makeself's integrity check (--check); refusing to run it", 1),
    ("HTTP 404", {"STUB_DOWNLOAD_STATUS": "404"}, False, "failed: HTTP 404, which a retry will not change", 1),
    ("HTTP 403", {"STUB_DOWNLOAD_STATUS": "403"}, False, "failed: HTTP 403, which a retry will not change", 1),
    ("HTTP 500 every time", {"STUB_DOWNLOAD_STATUS": "500"}, False, "failed after 3 attempts: HTTP 500", 3),
    ("HTTP 429 then 200", {"STUB_DOWNLOAD_STATUS": "429,200"}, True, "downloaded", 2),
    ("HTTP 503 then 200", {"STUB_DOWNLOAD_STATUS": "503,503,200"}, True, "downloaded", 3),
    ("no DNS every time", {"STUB_DOWNLOAD_FAILS": "always"}, False,
     "failed after 3 attempts: no HTTP answer (curl exit 6: curl: (6) Could not resolve host", 3),
]


@pytest.mark.parametrize("case,knobs,installs,words,attempts", HOSTILE_DOWNLOADS, ids=[c[0] for c in HOSTILE_DOWNLOADS])
def test_hostile_downloads_never_run_and_never_mark_the_host_installed(case, knobs, installs, words, attempts,
                                                                       tmp_path):
    """Guards against an empty, cut, foreign or corrupt download running as root or marking the host "installed"
    for good, and against a failed download whose message hides its HTTP status."""
    sb = Sandbox(tmp_path / "dl")
    command = (f"bash {INSTALL} --version 6.12.1 --arch x86_64 --url {URL} --mode postanalytics --cloud EU "
               f"--attempts 3 --retry-delay 0")
    result = sb.run("install", command, "SomeToken0123456789abcdef\n", **knobs)
    assert (result.returncode == 0) is installs, result.stderr
    assert words in result.stderr, result.stderr
    assert sum(c.startswith("curl https://meganode") for c in sb.calls()) == attempts
    ran = any(c.startswith("installer ") for c in sb.calls())
    assert ran is installs, "a refused download ran" if ran else "the installer did not run"
    assert sb.path("/var/lib/wallarm-deploy/installed").exists() is installs
    assert not list(sb.path("/var/lib/wallarm-deploy").glob("wallarm-*")), "the download was kept"
    if not installs:
        assert result.stderr.strip().splitlines()[-1].count("ERROR") == 1
    _record("hostile downloads", 1, 1)


# ---------------------------------------------------------------- hostile status pages

HEALTH = SCRIPTS / "health-check.sh"

# (case, stub knobs, healthy?, words)
HOSTILE_STATUS = [
    ("a working link", {}, True, "healthy: the test attack was counted"),
    ("old errors from before", {"STUB_TNT_ERRORS_BEFORE": "41"}, True, "tnt_errors stayed at 41"),
    ("status slow to come up", {"STUB_STATUS_DOWN": "2"}, True, "healthy"),
    ("counters reset mid-check", {"STUB_STATUS_RESET_AFTER_ATTACK": "1"}, True, "the counters went back"),
    ("errors growing", {"STUB_TNT_ERRORS_PER_ATTACK": "1"}, False, "tnt_errors grew from 0 to 1 during the check"),
    ("errors growing on old ones", {"STUB_TNT_ERRORS_BEFORE": "5", "STUB_TNT_ERRORS_PER_ATTACK": "3"}, False,
     "tnt_errors grew from 5 to 8"),
    ("attack never seen", {"STUB_ATTACK_UNSEEN": "1"}, False, "the status never counted the test attack"),
    ("request seen, attack not detected", {"STUB_ATTACK_NOT_DETECTED": "1"}, False,
     "never counted the test attack (requests 10 -> 11, attacks 10 -> 10)"),
    ("status endpoint down", {"STUB_STATUS_DOWN": "always"}, False,
     "the status endpoint http://127.0.0.8/wallarm-status is down (curl exit 7"),
    ("an HTML page", {"STUB_STATUS_BODY": "<html><h1>502 Bad Gateway</h1></html>"}, False,
     "answered something that is not JSON: '<html><h1>502 Bad Gateway</h1></html>"),
    ("an empty answer", {"STUB_STATUS_BODY": ""}, False, "answered nothing"),
    ("JSON without tnt_errors", {"STUB_STATUS_BODY": '{"requests": 1, "attacks": 1}'}, False,
     "answered JSON without the tnt_errors field (it has: attacks, requests)"),
    ("JSON without requests", {"STUB_STATUS_BODY": '{"attacks": 1, "tnt_errors": 0}'}, False,
     "without the requests field"),
    ("a counter that is text", {"STUB_STATUS_BODY": '{"requests": "many", "attacks": 1, "tnt_errors": 0}'}, False,
     "answered requests 'many', which is not a counter"),
    ("a JSON list", {"STUB_STATUS_BODY": "[1, 2, 3]"}, False, "answered JSON that is not an object"),
    ("control characters", {"STUB_STATUS_BODY": "\x1b[31mred\x07"}, False, "not JSON: '?[31mred?'"),
]


@pytest.mark.parametrize("case,knobs,healthy,words", HOSTILE_STATUS, ids=[c[0] for c in HOSTILE_STATUS])
def test_hostile_status_pages_get_one_clear_line(case, knobs, healthy, words, tmp_path):
    """Guards against a health check that passes without seeing the test attack (or with wstore writes failing),
    fails for errors older than this configuration, or fails with a message that does not say what is wrong."""
    sb = Sandbox(tmp_path / "status")
    result = sb.run("health", f"bash {HEALTH} --node filtering-7 --attempts 3 --interval 0", **knobs)
    assert (result.returncode == 0) is healthy, result.stderr
    assert words in result.stderr, result.stderr
    if not healthy:
        last = result.stderr.strip().splitlines()[-1]
        assert "ERROR: filtering node filtering-7 is unhealthy: " in last and words in last, last
        assert "\x1b" not in result.stderr
    else:
        assert json.loads(result.stdout)["attack_counted"] is True
    _record("hostile status pages", 1, 1)
