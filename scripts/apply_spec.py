#!/usr/bin/env python3
"""Applies a host spec, read as JSON from standard input, idempotently.

A spec says what a host must look like: files with content, mode and owner; files that must be absent; KEY=VALUE
variables of env files; dotted keys of YAML files (every other key is kept); a directive that must stay live in
one file only; checks to run on the new files; commands to run once when anything changed; and checks after.

- Nothing changes unless something differs: a second run with the same spec writes nothing, restarts nothing,
  and says so.
- Every file is replaced atomically (temporary file, fsync, rename). If a check or a restart fails, every file
  is put back as it was and the restart runs again, so the previous configuration stays in place.
- Secrets (keys in `files`) come only on stdin and are never printed.

Runs as root on Debian 12 and Ubuntu 24.04 cloud images (python3 and PyYAML ship with cloud-init). The
environment variable WALLARM_ROOT, empty in production, puts the whole tree under another directory (tests).
Exit codes: 0 applied or nothing to do, 1 apply failed (previous configuration restored), 2 bad spec or input.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import subprocess
import sys
import tempfile
from typing import Any, Optional

import yaml

ROOT = os.environ.get("WALLARM_ROOT", "").rstrip("/")
SPEC_KEYS = {"name", "files", "absent", "env", "yaml", "unique_directive", "check", "on_change", "verify"}


class SpecError(Exception):
    """The spec or a file it names is not usable; nothing was changed."""


class ApplyError(Exception):
    """Applying failed; the previous files were restored."""


def log(message: str) -> None:
    print(f"apply-spec: {message}", file=sys.stderr, flush=True)


def host(path: str) -> str:
    return ROOT + path


# ---------------------------------------------------------------- validation

def _require(cond: bool, message: str) -> None:
    if not cond:
        raise SpecError(f"malformed spec: {message}")


def _abs_path(value: Any, where: str) -> str:
    _require(isinstance(value, str) and value.startswith("/") and ".." not in value.split("/"),
             f"{where} must be an absolute path without '..', got {value!r}")
    return value


def _commands(spec: dict, key: str) -> list[list[str]]:
    value = spec.get(key, [])
    _require(isinstance(value, list) and all(isinstance(c, list) and c and all(isinstance(w, str) for w in c)
                                             for c in value), f"{key} must be a list of commands (lists of strings)")
    return value


def validate(spec: Any) -> dict:
    _require(isinstance(spec, dict), "the spec must be a JSON object")
    unknown = set(spec) - SPEC_KEYS
    _require(not unknown, f"unknown keys {sorted(unknown)}; allowed are {sorted(SPEC_KEYS)}")
    for i, f in enumerate(spec.get("files", [])):
        where = f"files[{i}]"
        _require(isinstance(f, dict) and {"path", "content", "mode"} <= set(f), f"{where} needs path, content and mode")
        _abs_path(f["path"], f"{where}.path")
        _require(isinstance(f["content"], str), f"{where}.content must be a string")
        _require(isinstance(f["mode"], str) and re.fullmatch(r"0?[0-7]{3}", f["mode"]) is not None,
                 f"{where}.mode must be an octal mode such as 0644, got {f['mode']!r}")
    for i, p in enumerate(spec.get("absent", [])):
        _abs_path(p, f"absent[{i}]")
    for section in ("env", "yaml"):
        for i, entry in enumerate(spec.get(section, [])):
            where = f"{section}[{i}]"
            _require(isinstance(entry, dict) and isinstance(entry.get("set"), dict) and entry["set"],
                     f"{where} needs path and a non-empty set")
            _abs_path(entry.get("path"), f"{where}.path")
            if section == "env":
                for k, v in entry["set"].items():
                    _require(re.fullmatch(r"[A-Z_][A-Z0-9_]*", k) is not None and isinstance(v, str) and "\n" not in v,
                             f"{where}.set has a bad variable {k}={v!r}")
    ud = spec.get("unique_directive")
    if ud is not None:
        _require(isinstance(ud, dict) and re.fullmatch(r"[a-z_]+", str(ud.get("directive", ""))) is not None,
                 "unique_directive needs a directive name")
        _abs_path(ud.get("under"), "unique_directive.under")
        _abs_path(ud.get("owner"), "unique_directive.owner")
    for key in ("check", "on_change", "verify"):
        _commands(spec, key)
    return spec


# ---------------------------------------------------------------- desired state

class Desired:
    """The content, mode and owner a path must have; content None means absent."""

    def __init__(self, path: str, content: Optional[bytes], mode: int = 0o644, owner: Optional[str] = None):
        self.path, self.content, self.mode, self.owner = path, content, mode, owner


def read_existing(path: str, what: str) -> str:
    try:
        with open(host(path), encoding="utf-8") as fh:
            return fh.read()
    except FileNotFoundError:
        raise SpecError(f"missing file {path} ({what}): did the Wallarm installer run on this host?") from None


def merged_env(path: str, values: dict[str, str]) -> tuple[bytes, int]:
    text = read_existing(path, "env file")
    lines, seen = text.splitlines(), set()
    for i, line in enumerate(lines):
        key = line.split("=", 1)[0].strip()
        if "=" in line and not line.lstrip().startswith("#") and key in values:
            lines[i] = f"{key}={values[key]}"
            seen.add(key)
    lines += [f"{k}={v}" for k, v in values.items() if k not in seen]
    return ("\n".join(lines) + "\n").encode(), _mode_of(path)


def set_dotted(data: dict, dotted: str, value: Any, path: str) -> None:
    node = data
    parts = dotted.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise SpecError(f"{path}: cannot set {dotted}, because {part} is {child!r} and not a mapping")
        node = child
    node[parts[-1]] = value


def merged_yaml(path: str, values: dict[str, Any]) -> tuple[Optional[bytes], int]:
    text = read_existing(path, "YAML file")
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise SpecError(f"{path} is not valid YAML, so its other keys cannot be kept: {exc}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path} is not a YAML mapping")
    before = json.dumps(data, sort_keys=True, default=str)
    for dotted, value in values.items():
        set_dotted(data, dotted, value, path)
    if json.dumps(data, sort_keys=True, default=str) == before:
        return None, 0  # same meaning: leave the file, comments and all, untouched
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False).encode(), _mode_of(path)


def uncommented_elsewhere(directive: str, under: str, owner: str) -> list[Desired]:
    """Comments out live `directive` lines in files under `under`, except in `owner`."""
    pattern = re.compile(rf"^(\s*)({re.escape(directive)}\b.*)$")
    found = []
    for dirpath, _dirs, names in os.walk(host(under)):
        for name in sorted(names):
            full = os.path.join(dirpath, name)
            rel = full[len(ROOT):] if ROOT else full
            if rel == owner or not os.path.isfile(full) or os.path.islink(full):
                continue
            try:
                with open(full, encoding="utf-8") as fh:
                    text = fh.read()
            except (UnicodeDecodeError, PermissionError):
                continue
            new = [pattern.sub(r"\1# \2  # disabled by wallarm-deploy: the live one is in " + owner, line)
                   for line in text.splitlines()]
            if new != text.splitlines():
                found.append(Desired(rel, ("\n".join(new) + "\n").encode(), _mode_of(rel)))
    return found


def _mode_of(path: str) -> int:
    try:
        return os.stat(host(path)).st_mode & 0o7777
    except FileNotFoundError:
        return 0o644


def desired_state(spec: dict) -> tuple[list[Desired], list[str]]:
    wanted, notes = [], []
    for f in spec.get("files", []):
        wanted.append(Desired(f["path"], f["content"].encode(), int(f["mode"], 8), f.get("owner")))
    for p in spec.get("absent", []):
        wanted.append(Desired(p, None))
    for entry in spec.get("env", []):
        content, mode = merged_env(entry["path"], entry["set"])
        wanted.append(Desired(entry["path"], content, mode))
    for entry in spec.get("yaml", []):
        content, mode = merged_yaml(entry["path"], entry["set"])
        if content is not None:
            wanted.append(Desired(entry["path"], content, mode))
    ud = spec.get("unique_directive")
    if ud:
        for d in uncommented_elsewhere(ud["directive"], ud["under"], ud["owner"]):
            notes.append(f"commented out a second live {ud['directive']} in {d.path}")
            wanted.append(d)
    return wanted, notes


# ---------------------------------------------------------------- applying

def owner_ids(owner: Optional[str]) -> tuple[int, int]:
    """uid/gid of `owner`, or root when the user does not exist (wstore's user is not documented)."""
    try:
        entry = pwd.getpwnam(owner or "root")
        return entry.pw_uid, entry.pw_gid
    except KeyError:
        return 0, 0


class Snapshot:
    """A file as it was: its bytes, mode and owner, or absent."""

    def __init__(self, path: str):
        self.path = path
        try:
            st = os.stat(host(path))
            with open(host(path), "rb") as fh:
                self.content: Optional[bytes] = fh.read()
            self.mode, self.uid, self.gid = st.st_mode & 0o7777, st.st_uid, st.st_gid
        except FileNotFoundError:
            self.content, self.mode, self.uid, self.gid = None, 0, 0, 0

    def differs(self, want: Desired) -> bool:
        if want.content is None or self.content is None:
            return want.content != self.content
        uid, gid = owner_ids(want.owner)
        return (self.content, self.mode) != (want.content, want.mode) or (
            os.geteuid() == 0 and (self.uid, self.gid) != (uid, gid))


def write_atomically(path: str, content: bytes, mode: int, uid: int, gid: int) -> None:
    target = host(path)
    os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target), prefix=".wallarm-deploy-")
    try:
        os.fchmod(fd, mode)  # before any byte is written: a key is never readable by others
        if os.geteuid() == 0:
            os.fchown(fd, uid, gid)
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def put(want: Desired) -> None:
    if want.content is None:
        if os.path.lexists(host(want.path)):
            os.unlink(host(want.path))
        return
    write_atomically(want.path, want.content, want.mode, *owner_ids(want.owner))


def restore(snapshots: list[Snapshot]) -> None:
    for snap in snapshots:
        if snap.content is None:
            if os.path.lexists(host(snap.path)):
                os.unlink(host(snap.path))
        else:
            write_atomically(snap.path, snap.content, snap.mode, snap.uid, snap.gid)


def run(command: list[str]) -> tuple[bool, str]:
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, str(exc)
    return proc.returncode == 0, (proc.stdout + proc.stderr).strip()


def run_all(commands: list[list[str]], what: str) -> None:
    for command in commands:
        ok, output = run(command)
        if not ok:
            raise ApplyError(f"{what} `{' '.join(command)}` failed: {output[-2000:] or 'no output'}")
        log(f"{what} ok: {' '.join(command)}")


def apply(spec: dict) -> dict:
    wanted, notes = desired_state(spec)  # reads everything first: a missing file changes nothing
    snapshots = {w.path: Snapshot(w.path) for w in wanted}
    changed = [w for w in wanted if snapshots[w.path].differs(w)]
    for note in notes:
        log(note)
    if not changed:
        log("no change: every file is as specified; nothing restarted")
        run_all(_commands(spec, "verify"), "verify")
        return {"name": spec.get("name"), "changed": [], "restarted": False}
    taken = [snapshots[w.path] for w in changed]
    restarting = False
    try:
        for want in changed:
            put(want)
            log(f"{'removed' if want.content is None else 'wrote'} {want.path}")
        run_all(_commands(spec, "check"), "check")
        restarting = True
        run_all(_commands(spec, "on_change"), "restart")
        run_all(_commands(spec, "verify"), "verify")
    except (ApplyError, OSError) as exc:
        restore(taken)
        state = "the service was not restarted"
        if restarting:  # the service may have stopped on the new files: bring it back on the old ones
            ok = all(run(c)[0] for c in _commands(spec, "on_change"))
            state = "the service was restarted on it" if ok else "restarting the service on it failed too"
        raise ApplyError(f"{exc}; the previous configuration was restored and {state}") from None
    return {"name": spec.get("name"), "changed": [w.path for w in changed], "restarted": bool(spec.get("on_change"))}


def main() -> int:
    try:
        raw = sys.stdin.read()
        try:
            spec = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise SpecError(f"malformed spec: standard input is not JSON ({exc.msg} at line {exc.lineno})") from None
        summary = apply(validate(spec))
    except SpecError as exc:
        log(f"ERROR: {exc}; nothing was changed")
        return 2
    except ApplyError as exc:
        log(f"ERROR: {exc}")
        return 1
    print(json.dumps(summary, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
