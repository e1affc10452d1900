#!/usr/bin/env python3
"""Applies a host spec, read as JSON from standard input, idempotently, atomically and crash-consistently.

A spec says what a host must look like: files with content, mode and owner; files that must be absent; KEY=VALUE
variables of env files; dotted keys of YAML files (every other key is kept); a directive that must stay live in
one file only; host names that must not resolve to this host or the metadata service; checks to run on the new
files; commands to run once when anything changed; and checks after.

- Nothing changes unless something differs: a second run with the same spec writes nothing, restarts nothing,
  and says so.
- One run at a time: an exclusive lock (flock on /var/lib/wallarm-deploy/apply.lock). A second run waits up to
  WALLARM_APPLY_LOCK_TIMEOUT seconds (default 300), then gives up with exit 3, having changed nothing.
- A journal (/var/lib/wallarm-deploy/apply-journal.json, root only) records how every path it will touch was
  (bytes, mode, owner, symlink target, or absent, and the directories it creates) before the first change, and is
  removed only after the checks, the restart and the verification passed. A run killed at any point leaves it
  behind; the next run then checks, restarts and verifies even when the files already match, and a failure rolls
  back to the state recorded before the interrupted run. Leftover temporary files are removed first.
- Every file is replaced atomically (temporary file, fsync, rename, fsync of the directory). On any failure (a
  check, a restart, an OSError, a signal, a bug) every path comes back exactly as it was: a file with its bytes,
  mode and owner, a symlink as a symlink, a path that did not exist removed, created directories removed; and the
  restart runs again on the old files when the service may have seen the new ones.
- Files merged into (env files, YAML files, files where a directive is commented out) keep owner, group and mode.
- YAML: the text is edited in place by yamledit.py, uploaded beside this script. PyYAML's composer gives every
  node's start and end marks; a managed scalar's span is replaced, a missing key is inserted after the last entry
  of its mapping at that mapping's indentation. Comments, anchors, key order, quoting and every unmanaged value stay
  as written (`off`, `1:30`, `0640`, `1.10` keep their YAML 1.1 meaning because their text is not touched). Both
  texts are then loaded with safe_load and the edit is kept only if exactly the managed keys changed meaning;
  otherwise nothing is written (exit 2). Only python3 and PyYAML are needed (both ship with the Debian 12 and
  Ubuntu 24.04 cloud images).
- env files: `NAME=value` and `export NAME=value` lines; a value that is already right (also quoted, also on a
  last line without a newline) rewrites nothing.
- Only paths under the roots the program manages are written or removed: /opt/wallarm, /etc/nginx,
  /var/lib/wallarm-deploy and the staging directory this script was copied to (~/wallarm-deploy).
- Secrets (keys in `files`) come only on stdin and are never printed; the journal holds the previous versions of
  files (keys included) in a root-only file while a run is pending.

Runs as root on Debian 12 and Ubuntu 24.04 cloud images. The environment variable WALLARM_ROOT, empty in
production, puts the whole tree under another directory (tests). Test hooks (never set in production; sudo drops
them): WALLARM_APPLY_CRASH_AT=N exits at once (status 99) at the Nth step boundary; WALLARM_APPLY_TRACE=FILE
appends each boundary's label to FILE.
Exit codes: 0 applied or nothing to do, 1 apply failed (previous configuration restored), 2 bad spec or input
(nothing changed), 3 another run holds the lock (nothing changed).
"""

from __future__ import annotations

import base64
import dataclasses
import fcntl
import ipaddress
import json
import math
import os
import pwd
import re
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from typing import Any, Optional

# The YAML editor is a module beside this script (both are uploaded to the staging directory): found from there
# whatever the working directory, and when a test loads this file by its path. Python puts a script's own directory
# first on sys.path, but not for a module loaded by path, nor under -P / PYTHONSAFEPATH.
_HERE = os.path.dirname(os.path.realpath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
import yamledit  # noqa: E402

ROOT = os.environ.get("WALLARM_ROOT", "").rstrip("/")
STATE_DIR = "/var/lib/wallarm-deploy"
LOCK_FILE = f"{STATE_DIR}/apply.lock"
JOURNAL = f"{STATE_DIR}/apply-journal.json"
TMP_PREFIX = ".wallarm-deploy-"
MANAGED_ROOTS = ("/opt/wallarm", "/etc/nginx", STATE_DIR)
SPEC_KEYS = {"name", "files", "absent", "env", "yaml", "unique_directive", "upstream_names", "check", "on_change",
             "verify"}
COMMAND_TIMEOUT = 300
DEFAULT_LOCK_TIMEOUT = 300.0
EXIT_FAILED, EXIT_SPEC, EXIT_BUSY = 1, 2, 3


class SpecError(Exception):
    """The spec or a file it names is not usable; nothing was changed."""


class ApplyError(Exception):
    """Applying failed; the previous files were restored."""


class LockBusy(Exception):
    """Another run holds the lock; nothing was changed."""


class Interrupted(BaseException):
    """A signal asked this run to stop (a dropped SSH session, a cancelled `pulumi up`)."""


def log(message: str) -> None:
    try:
        print(f"apply-spec: {message}", file=sys.stderr, flush=True)
    except (OSError, ValueError):  # the SSH session is gone: carry on, the work matters more than the message
        pass


def host(path: str) -> str:
    return ROOT + path


def _crash_hook():
    """Counts step boundaries for the fault-injection tests (WALLARM_APPLY_CRASH_AT / WALLARM_APPLY_TRACE)."""
    at, trace, count = os.environ.get("WALLARM_APPLY_CRASH_AT", ""), os.environ.get("WALLARM_APPLY_TRACE"), [0]
    crash_at = int(at) if at.isdigit() else 0

    def boundary(label: str) -> None:
        count[0] += 1
        if trace:
            with open(trace, "a", encoding="utf-8") as fh:
                fh.write(f"{count[0]} {label}\n")
        if count[0] == crash_at:
            os._exit(99)
    return boundary


boundary = _crash_hook()


# ---------------------------------------------------------------- validation

def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def _fail(where: str, value: Any, allowed: str, show: bool = True) -> None:
    shown = _short(value) if show else _type_name(value)
    raise SpecError(f"malformed spec: {where} is {shown}: {allowed}")


def _object(value: Any, where: str, allowed: set[str], required: set[str]) -> dict:
    if not isinstance(value, dict):
        _fail(where, value, f"it must be an object{' with ' if required else ''}{', '.join(sorted(required))}",
              show=False)
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise SpecError(f"malformed spec: unknown keys {', '.join(_short(k) for k in unknown)} in {where}; "
                        f"allowed are {', '.join(sorted(allowed))}")
    missing = sorted(required - set(value))
    if missing:
        raise SpecError(f"malformed spec: {where} lacks {', '.join(missing)}")
    return value


def _list(value: Any, where: str, what: str) -> list:
    if not isinstance(value, list):
        _fail(where, value, f"it must be a list of {what}", show=False)
    return value


def _string(value: Any, where: str, allowed: str = "it must be a string", secret: bool = False) -> str:
    if not isinstance(value, str):
        _fail(where, value, allowed, show=not secret)
    if "\x00" in value:
        raise SpecError(f"malformed spec: {where} contains a NUL character")
    return value


def staging_dir() -> Optional[str]:
    """The directory this script was copied to (~/wallarm-deploy), as a host path."""
    here = os.path.dirname(os.path.realpath(__file__))
    if os.path.basename(here) != "wallarm-deploy":
        return None
    if ROOT:
        real_root = os.path.realpath(ROOT)
        if not here.startswith(real_root + "/"):
            return None
        here = here[len(real_root):]
    return here


def managed_roots() -> tuple[str, ...]:
    stage = staging_dir()
    return MANAGED_ROOTS + ((stage,) if stage else ())


def _under(path: str, root: str) -> bool:
    return path.startswith(root.rstrip("/") + "/")


def _path(value: Any, where: str, directory: bool = False) -> str:
    _string(value, where, "it must be an absolute path such as /etc/nginx/conf.d/x.conf")
    parts = value.split("/")
    if not value.startswith("/") or any(p in ("", ".", "..") for p in parts[1:]):
        _fail(where, value, "it must be an absolute path without '..', '.', '//' or a trailing '/'")
    if any(ord(c) < 32 for c in value):
        _fail(where, value, "a path cannot hold control characters")
    roots = managed_roots()
    if not any(_under(value, r) or (directory and value == r) for r in roots):
        _fail(where, value, f"apply_spec.py writes and removes only under {', '.join(roots)}")
    if value in (LOCK_FILE, JOURNAL):
        _fail(where, value, "that is apply_spec.py's own lock or journal")
    return value


def _commands(spec: dict, key: str) -> list[list[str]]:
    value = _list(spec.get(key, []), key, "commands (lists of strings)")
    for i, command in enumerate(value):
        where = f"{key}[{i}]"
        if not isinstance(command, list) or not command:
            _fail(where, command, "a command must be a non-empty list of strings", show=False)
        for j, word in enumerate(command):
            _string(word, f"{where}[{j}]")
        if not command[0]:
            _fail(f"{where}[0]", command[0], "a command needs a program name")
    return value


ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
DOTTED = re.compile(r"[^.\s]+(\.[^.\s]+)*")
MODE = re.compile(r"0?[0-7]{3}")
USER = re.compile(r"[a-z_][a-z0-9_-]*\$?")
DIRECTIVE = re.compile(r"[a-z_]+")
HOST_NAME = re.compile(r"[A-Za-z0-9.:-]{1,253}")


def _merge_entry(entry: Any, where: str, section: str) -> None:
    _object(entry, where, {"path", "set"}, {"path", "set"})
    _path(entry["path"], f"{where}.path")
    values = entry["set"]
    if not isinstance(values, dict) or not values:
        _fail(f"{where}.set", values, "it must be a non-empty object of keys and values", show=False)
    for k, v in values.items():
        if section == "env":
            if not ENV_NAME.fullmatch(k):
                _fail(f"{where}.set", k, "a bad variable name: use letters, digits and _, not starting with a digit")
            if not isinstance(v, str) or any(c in v for c in "\n\r\x00"):
                _fail(f"{where}.set.{k}", v, "a bad variable value: it must be a string on one line")
        else:
            if not DOTTED.fullmatch(k):
                _fail(f"{where}.set", k, "a YAML key must be dotted words such as service.TLS.enabled")
            if isinstance(v, float) and not math.isfinite(v):
                _fail(f"{where}.set.{k}", v, "a YAML value must be a finite number")
            if not isinstance(v, (str, bool, int, float, type(None))):
                _fail(f"{where}.set.{k}", v, "a YAML value must be a string, number, boolean or null", show=False)
            if isinstance(v, str) and any(ord(c) < 32 for c in v):
                _fail(f"{where}.set.{k}", v, "a YAML value must be a string on one line without control characters")


def validate(spec: Any) -> dict:
    """Checks every field's type and value; refuses unknown fields. Raises SpecError naming the field."""
    _object(spec, "the spec", SPEC_KEYS, set())
    if "name" in spec:
        _string(spec["name"], "name")
    seen: dict[str, str] = {}

    def claim(path: str, where: str) -> None:
        if path in seen:
            raise SpecError(f"malformed spec: {where} names {path}, which {seen[path]} names already")
        seen[path] = where

    for i, f in enumerate(_list(spec.get("files", []), "files", "files")):
        where = f"files[{i}]"
        _object(f, where, {"path", "content", "mode", "owner"}, {"path", "content", "mode"})
        claim(_path(f["path"], f"{where}.path"), where)
        _string(f["content"], f"{where}.content", "it must be a string", secret=True)
        if not isinstance(f["mode"], str) or not MODE.fullmatch(f["mode"]):
            _fail(f"{where}.mode", f["mode"], "it must be an octal mode such as 0644")
        if "owner" in f and (not isinstance(f["owner"], str) or not USER.fullmatch(f["owner"])):
            _fail(f"{where}.owner", f["owner"], "it must be a user name such as root")
    for i, p in enumerate(_list(spec.get("absent", []), "absent", "paths")):
        claim(_path(p, f"absent[{i}]"), f"absent[{i}]")
    for section in ("env", "yaml"):
        for i, entry in enumerate(_list(spec.get(section, []), section, "objects with path and set")):
            _merge_entry(entry, f"{section}[{i}]", section)
            claim(entry["path"], f"{section}[{i}]")
    ud = spec.get("unique_directive")
    if ud is not None:
        _object(ud, "unique_directive", {"directive", "under", "owner"}, {"directive", "under", "owner"})
        if not isinstance(ud["directive"], str) or not DIRECTIVE.fullmatch(ud["directive"]):
            _fail("unique_directive.directive", ud["directive"], "it must be an NGINX directive name")
        _path(ud["under"], "unique_directive.under", directory=True)
        _path(ud["owner"], "unique_directive.owner")
    for i, name in enumerate(_list(spec.get("upstream_names", []), "upstream_names", "host names")):
        if not isinstance(name, str) or not HOST_NAME.fullmatch(name):
            _fail(f"upstream_names[{i}]", name, "it must be a host name or address (letters, digits, dots, hyphens, "
                                                 "colons)")
    for key in ("check", "on_change", "verify"):
        _commands(spec, key)
    return spec


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    keys = [k for k, _ in pairs]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise SpecError(f"malformed spec: the key {_short(twice[0])} appears twice in one object")
    return dict(pairs)


def _no_constant(name: str) -> None:
    raise SpecError(f"malformed spec: standard input holds {name}, which is not JSON")


def read_spec(raw: bytes) -> Any:
    if not raw.strip():
        raise SpecError("malformed spec: standard input is empty; it must be the JSON spec")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"malformed spec: standard input is not UTF-8 text (byte 0x{raw[exc.start]:02x} at "
                        f"offset {exc.start})") from None
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise SpecError(f"malformed spec: standard input is not JSON ({exc.msg} at line {exc.lineno} "
                        f"column {exc.colno})") from None
    except (ValueError, RecursionError) as exc:
        raise SpecError(f"malformed spec: standard input is not usable JSON ({_short(str(exc))})") from None


# ---------------------------------------------------------------- what a path is

@dataclasses.dataclass
class State:
    """A path as it is or must be: a file (bytes, mode, owner), a symlink, absent, or something else."""

    kind: str  # "file", "link", "absent", "dir", "other"
    content: Optional[bytes] = None
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    target: Optional[str] = None

    def to_json(self) -> dict:
        out = dataclasses.asdict(self)
        out["content"] = base64.b64encode(self.content).decode() if self.content is not None else None
        return out

    @classmethod
    def from_json(cls, data: dict) -> "State":
        data = dict(data)
        if data.get("content") is not None:
            data["content"] = base64.b64decode(data["content"])
        return cls(**data)


def snapshot(path: str) -> State:
    target = host(path)
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        return State("absent")
    except NotADirectoryError:
        raise SpecError(f"{path}: one of its parents is not a directory") from None
    owner: dict[str, Any] = dict(mode=stat.S_IMODE(st.st_mode), uid=st.st_uid, gid=st.st_gid)
    if stat.S_ISLNK(st.st_mode):
        return State("link", target=os.readlink(target), **owner)
    if stat.S_ISDIR(st.st_mode):
        return State("dir", **owner)
    if not stat.S_ISREG(st.st_mode):
        return State("other", **owner)
    with open(target, "rb") as fh:
        return State("file", content=fh.read(), **owner)


def _uses_ownership() -> bool:
    return os.geteuid() == 0


def differs(have: State, want: State) -> bool:
    if have.kind != want.kind:
        return True
    if want.kind == "absent":
        return False
    if want.kind == "link":
        return have.target != want.target or (_uses_ownership() and (have.uid, have.gid) != (want.uid, want.gid))
    return (have.content, have.mode) != (want.content, want.mode) or (
        _uses_ownership() and (have.uid, have.gid) != (want.uid, want.gid))


def owner_ids(owner: Optional[str]) -> tuple[int, int]:
    """uid/gid of `owner`, or root when the user does not exist (wstore's user is not documented)."""
    try:
        entry = pwd.getpwnam(owner or "root")
        return entry.pw_uid, entry.pw_gid
    except KeyError:
        return 0, 0


# ---------------------------------------------------------------- env files

ENV_LINE = re.compile(r"^(?P<lead>\s*(?:export\s+)?)(?P<name>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>[^\r\n]*)"
                      r"(?P<end>\r?\n?)$")
SAFE_ENV_VALUE = re.compile(r"[A-Za-z0-9._:/@%+,=-]*")


def _env_meaning(raw: str) -> str:
    value = raw.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        inner = value[1:-1]
        return re.sub(r'\\(["\\$`])', r"\1", inner) if value[0] == '"' else inner
    return value


def _env_text(value: str) -> str:
    if SAFE_ENV_VALUE.fullmatch(value):
        return value
    return '"' + re.sub(r'(["\\$`])', r"\\\1", value) + '"'


def read_existing(path: str, what: str) -> tuple[bytes, State]:
    have = snapshot(path)
    if have.kind == "absent":
        raise SpecError(f"missing file {path} ({what}): did the Wallarm installer run on this host?")
    if have.kind != "file":
        kind = {"link": "a symbolic link", "dir": "a directory"}.get(have.kind, "not a regular file")
        raise SpecError(f"{path} ({what}) is {kind}; apply_spec.py merges into regular files only")
    return have.content or b"", have


def merged_env(path: str, values: dict[str, str]) -> tuple[Optional[bytes], State]:
    """The env file with `values` set, or None when every value is already right."""
    raw, have = read_existing(path, "env file")
    text = raw.decode("utf-8", "surrogateescape")  # unmanaged bytes are kept as they are
    newline = "\r\n" if "\r\n" in text else "\n"
    lines = text.splitlines(keepends=True)
    where: dict[str, list[int]] = {}
    matched: dict[int, re.Match[str]] = {}
    for i, line in enumerate(lines):
        m = ENV_LINE.match(line)
        if m and m["name"] in values:
            where.setdefault(m["name"], []).append(i)
            matched[i] = m
    changed = False
    for name, value in values.items():
        found = where.get(name, [])
        if found and _env_meaning(matched[found[-1]]["value"]) == value:
            continue  # the last assignment is the one that counts, and it is right
        changed = True
        for i in found:
            m = matched[i]
            lines[i] = f"{m['lead']}{name}={_env_text(value)}{m['end']}"
        if not found:
            if lines and not lines[-1].endswith("\n"):
                lines[-1] += newline
            lines.append(f"{name}={_env_text(value)}{newline}")
    if not changed:
        return None, have
    return "".join(lines).encode("utf-8", "surrogateescape"), have


# ---------------------------------------------------------------- YAML files, edited as text

def merged_yaml(path: str, values: dict[str, Any]) -> tuple[Optional[bytes], State]:
    """The YAML file with `values` set by editing its text (yamledit.py), or None when every value already has its
    meaning."""
    raw, have = read_existing(path, "YAML file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}), "
                        "so it cannot be edited as YAML") from None
    try:
        new = yamledit.edit(text, values, path)
    except yamledit.EditError as exc:
        raise SpecError(str(exc)) from None
    return (None if new is None else new.encode("utf-8")), have


# ---------------------------------------------------------------- the directive that must be live once

def uncommented_elsewhere(directive: str, under: str, owner: str) -> list[tuple[str, bytes, State]]:
    """Comments out live `directive` lines in regular files under `under`, except in `owner`."""
    pattern = re.compile(rf"^(\s*)({re.escape(directive)}\b[^\r\n]*)(\r?\n?)$")
    found = []
    for dirpath, dirs, names in os.walk(host(under)):
        dirs.sort()
        for name in sorted(names):
            full = os.path.join(dirpath, name)
            rel = full[len(ROOT):] if ROOT else full
            if rel == owner or name.startswith(TMP_PREFIX):
                continue
            have = snapshot(rel)
            if have.kind != "file":
                continue  # symlinks point at files that the walk reaches themselves
            lines = (have.content or b"").decode("utf-8", "surrogateescape").splitlines(keepends=True)
            note = f"  # disabled by wallarm-deploy: the live one is in {owner}"
            new = [pattern.sub(lambda m: f"{m[1]}# {m[2]}{note}{m[3]}", line) for line in lines]
            if new != lines:
                found.append((rel, "".join(new).encode("utf-8", "surrogateescape"), have))
    return found


# ---------------------------------------------------------------- the plan

@dataclasses.dataclass
class Want:
    path: str
    state: State


def desired_state(spec: dict) -> tuple[list[Want], list[str]]:
    """What every named path must be, computed from the files as they are now. Reads everything first."""
    wanted, notes = [], []

    def keep(content: Optional[bytes], have: State) -> State:
        return State("file", content=content, mode=have.mode, uid=have.uid, gid=have.gid)

    for f in spec.get("files", []):
        uid, gid = owner_ids(f.get("owner"))
        wanted.append(Want(f["path"], State("file", content=f["content"].encode(), mode=int(f["mode"], 8),
                                            uid=uid, gid=gid)))
    for p in spec.get("absent", []):
        wanted.append(Want(p, State("absent")))
    for entry in spec.get("env", []):
        content, have = merged_env(entry["path"], entry["set"])
        if content is not None:
            wanted.append(Want(entry["path"], keep(content, have)))
    for entry in spec.get("yaml", []):
        content, have = merged_yaml(entry["path"], entry["set"])
        if content is not None:
            wanted.append(Want(entry["path"], keep(content, have)))
    ud = spec.get("unique_directive")
    if ud:
        for rel, content, have in uncommented_elsewhere(ud["directive"], ud["under"], ud["owner"]):
            if rel not in {w.path for w in wanted}:
                notes.append(f"commented out a second live {ud['directive']} in {rel}")
                wanted.append(Want(rel, keep(content, have)))
    return wanted, notes


def check_parents(path: str) -> list[str]:
    """The directories that writing `path` creates (outermost first); refuses a parent that leaves the roots."""
    missing: list[str] = []
    parent = os.path.dirname(path)
    while parent != "/" and not os.path.lexists(host(parent)):
        missing.insert(0, parent)
        parent = os.path.dirname(parent)
    if parent != "/" and not os.path.isdir(host(parent)):
        raise SpecError(f"{path}: its parent {parent} is not a directory")
    for root in managed_roots():
        if parent == root or _under(parent, root):  # the root exists: no symbolic link below it may lead out
            real, real_root = os.path.realpath(host(parent)), os.path.realpath(host(root))
            if real != real_root and not _under(real, real_root):
                raise SpecError(f"{path}: its parent {parent} leads outside {root} (a symbolic link?)")
    return missing


# ---------------------------------------------------------------- writing

def _fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: str, content: bytes, mode: int, uid: int, gid: int) -> None:
    target = host(path)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target), prefix=TMP_PREFIX)
    try:
        os.fchmod(fd, mode)  # before any byte is written: a key is never readable by others
        if _uses_ownership():
            os.fchown(fd, uid, gid)
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        boundary(f"temporary file for {path}")
        os.replace(tmp, target)
        _fsync_dir(os.path.dirname(target))
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise


def make_link(path: str, link_target: str, uid: int, gid: int) -> None:
    target = host(path)
    tmp = os.path.join(os.path.dirname(target), f"{TMP_PREFIX}{os.getpid()}-link")
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(link_target, tmp)
    try:
        if _uses_ownership():
            os.lchown(tmp, uid, gid)
        os.replace(tmp, target)
        _fsync_dir(os.path.dirname(target))
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise


def put(path: str, state: State) -> None:
    target = host(path)
    if state.kind == "absent":
        if os.path.lexists(target):
            os.unlink(target)
            _fsync_dir(os.path.dirname(target))
    elif state.kind == "link":
        make_link(path, state.target or "", state.uid, state.gid)
    elif state.kind == "file":
        write_atomically(path, state.content or b"", state.mode, state.uid, state.gid)
    else:
        raise OSError(f"cannot restore {path} as a {state.kind}")


# ---------------------------------------------------------------- the journal

@dataclasses.dataclass
class Journal:
    """How every path touched by a pending run was before it, and the directories it created."""

    name: Optional[str]
    originals: dict[str, State]
    created_dirs: list[str]

    @classmethod
    def load(cls) -> Optional["Journal"]:
        try:
            with open(host(JOURNAL), "rb") as fh:
                data = json.loads(fh.read().decode("utf-8"))
            return cls(data.get("name"), {p: State.from_json(s) for p, s in data["originals"].items()},
                       list(data.get("created_dirs", [])))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as exc:
            log(f"WARNING: the journal {JOURNAL} of an interrupted run is unreadable ({type(exc).__name__}); "
                "this run checks and restarts, but cannot roll back beyond the files as they are now")
            return cls(None, {}, [])

    def save(self) -> None:
        data = {"name": self.name, "originals": {p: s.to_json() for p, s in self.originals.items()},
                "created_dirs": self.created_dirs}
        write_atomically(JOURNAL, json.dumps(data).encode(), 0o600, 0, 0)

    @staticmethod
    def remove() -> None:
        if os.path.lexists(host(JOURNAL)):
            os.unlink(host(JOURNAL))
            _fsync_dir(host(STATE_DIR))


def ensure_state_dir() -> None:
    state = host(STATE_DIR)
    try:
        os.makedirs(state, mode=0o700, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ApplyError(f"{STATE_DIR} exists and is not a directory; nothing was changed") from None
    if os.path.islink(state) or not os.path.isdir(state):
        raise ApplyError(f"{STATE_DIR} is not a plain directory; nothing was changed")


class Lock:
    """An exclusive flock on LOCK_FILE, waited for at most `timeout` seconds."""

    def __init__(self, timeout: float):
        self.timeout, self.fd = timeout, -1

    def __enter__(self) -> "Lock":
        ensure_state_dir()
        try:
            self.fd = os.open(host(LOCK_FILE), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise ApplyError(f"cannot open the lock {LOCK_FILE}: {exc.strerror}; nothing was changed") from None
        deadline, said = time.monotonic() + self.timeout, False
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = os.pread(self.fd, 32, 0).decode(errors="replace").strip() or "?"
                if time.monotonic() >= deadline:
                    os.close(self.fd)
                    raise LockBusy(f"another apply_spec.py run (pid {holder}) still holds {LOCK_FILE} after "
                                   f"{self.timeout:g}s; nothing was changed: run again once it has finished")
                if not said:
                    log(f"waiting up to {self.timeout:g}s for another apply_spec.py run (pid {holder}) to finish")
                    said = True
                time.sleep(0.05)
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)
        boundary("lock taken")
        return self

    def __exit__(self, *exc: Any) -> None:
        os.close(self.fd)  # closing releases the flock


def remove_temporary_files(paths: list[str], trees: list[str]) -> None:
    """Temporary files a killed run left next to the paths it was writing, or anywhere under `trees`."""
    directories = {os.path.dirname(host(p)) for p in paths} | {host(STATE_DIR)}
    for tree in trees:
        directories |= {d for d, _, _ in os.walk(host(tree))}
    for directory in sorted(directories):
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        for name in names:
            if name.startswith(TMP_PREFIX):
                full = os.path.join(directory, name)
                if not os.path.isdir(full) or os.path.islink(full):
                    os.unlink(full)
                    log(f"removed a temporary file left by an interrupted run: {full[len(ROOT):]}")


# ---------------------------------------------------------------- running commands

def _printable(data: bytes) -> str:
    text = data.decode("utf-8", "backslashreplace")
    return re.sub(r"[\x00-\x08\x0b-\x1f\x7f]", "?", text)


def run(command: list[str]) -> tuple[bool, str]:
    try:
        proc = subprocess.run(command, capture_output=True, timeout=COMMAND_TIMEOUT, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return False, f"no answer within {COMMAND_TIMEOUT}s"
    except (OSError, ValueError) as exc:
        return False, str(exc)
    return proc.returncode == 0, _printable(proc.stdout + proc.stderr).strip()


def run_all(commands: list[list[str]], what: str) -> None:
    for i, command in enumerate(commands):
        ok, output = run(command)
        boundary(f"{what} {i + 1}")
        if not ok:
            raise ApplyError(f"{what} `{' '.join(command)}` failed: {output[-2000:] or 'no output'}")
        log(f"{what} ok: {' '.join(command)}")


# ---------------------------------------------------------------- the application's addresses

# AWS's instance metadata service on IPv6 (Nitro): a unique-local address, which is not link-local.
METADATA_V6 = ipaddress.IPv6Address("fd00:ec2::254")


def _internal(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> Optional[str]:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address in (ipaddress.IPv4Address("169.254.169.254"), METADATA_V6):
        return "the instance metadata service"
    for attribute, what in (("is_loopback", "a loopback address"), ("is_link_local", "a link-local address"),
                            ("is_unspecified", "the unspecified address (this host)")):
        if getattr(address, attribute):
            return what
    return None


def resolve(name: str) -> list[str]:
    """The addresses NGINX will get for `name`: getaddrinfo(), as NGINX calls it when it loads its configuration.
    Test hook (never set in production; sudo drops it): WALLARM_APPLY_HOSTS=FILE answers from a hosts-format file."""
    hosts = os.environ.get("WALLARM_APPLY_HOSTS")
    if hosts:
        with open(hosts, encoding="utf-8") as fh:
            found = [line.split()[0] for line in fh if name.lower() in line.split("#")[0].lower().split()[1:]]
        if not found:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return found
    infos = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
    return [str(info[4][0]).split("%")[0] for info in infos]


def check_upstream_names(names: list[str]) -> None:
    """Refuses (ApplyError) an application name that resolves, here and now, to this host, the link-local range or
    the metadata service: the settings judged literal addresses, only the node's resolver knows what a name means.
    A name that does not resolve is left to `nginx -t`, which refuses it with NGINX's own message."""
    for name in names:
        try:
            addresses = list(dict.fromkeys(resolve(name)))
        except (socket.gaierror, UnicodeError) as exc:
            log(f"upstream check: {name} does not resolve here ({getattr(exc, 'strerror', exc)}); nginx -t judges it")
            continue
        for address in addresses:
            reason = _internal(ipaddress.ip_address(address))
            if reason is not None:
                raise ApplyError(f"upstream check: {name} resolves to {address}, {reason}; protectedUpstream must "
                                 "reach the application, never this host or the metadata service")
        log(f"upstream check ok: {name} resolves to {', '.join(addresses)}")


# ---------------------------------------------------------------- applying

def rollback(journal: Journal, on_change: list[list[str]], restart: bool) -> tuple[bool, str]:
    """Puts every recorded path back, removes created directories, restarts when needed. True when all done."""
    problems = []
    for path, state in journal.originals.items():
        try:
            if differs(snapshot(path), state):
                put(path, state)
            boundary(f"restored {path}")
        except (OSError, SpecError) as exc:
            problems.append(f"restoring {path} failed: {exc}")
    for directory in reversed(journal.created_dirs):
        try:
            os.rmdir(host(directory))
        except FileNotFoundError:
            pass
        except OSError as exc:
            problems.append(f"removing the directory {directory} failed: {exc.strerror}")
    if problems:
        return False, "; ".join(problems) + "; the journal is kept, so the next run tries again"
    if not restart or not on_change:
        return True, "the service was not restarted"
    ok = all(run(c)[0] for c in on_change)
    boundary("restarted on the previous files")
    if ok:
        return True, "the service was restarted on it"
    return False, "restarting the service on it failed too; the next run restarts it again"


def _ignore_signals() -> None:
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)


def apply(spec: dict) -> dict:
    pending = Journal.load()
    ud = spec.get("unique_directive")
    remove_temporary_files([*_named_paths(spec), *(pending.originals if pending else [])], [ud["under"]] if ud else [])
    try:
        wanted, notes = desired_state(spec)  # reads everything first: a missing file changes nothing
    except SpecError as exc:
        if pending is not None:
            raise SpecError(f"{exc} (an interrupted run is pending: the next run with a usable spec completes it "
                            "or rolls it back)") from None
        raise
    current = {w.path: snapshot(w.path) for w in wanted}
    for path, have in current.items():
        if have.kind in ("dir", "other"):
            raise SpecError(f"{path} is {'a directory' if have.kind == 'dir' else 'not a regular file'}, where the "
                            "spec wants a file or nothing; move it away first")
    changed = [w for w in wanted if differs(current[w.path], w.state)]
    new_dirs = []
    for w in changed:
        if w.state.kind != "absent":
            new_dirs += [d for d in check_parents(w.path) if d not in new_dirs]
    for note in notes:
        log(note)
    on_change = _commands(spec, "on_change")
    if not changed and pending is None:
        log("no change: every file is as specified; nothing restarted")
        run_all(_commands(spec, "verify"), "verify")
        return {"name": spec.get("name"), "changed": [], "restarted": False, "resumed": False}
    if pending is not None:
        log("an earlier run was interrupted: completing it (check, restart and verify run even if no file changes)")
    journal = Journal(spec.get("name"), dict(pending.originals) if pending else {},
                      list(pending.created_dirs) if pending else [])
    for w in changed:
        journal.originals.setdefault(w.path, current[w.path])
    journal.created_dirs += [d for d in new_dirs if d not in journal.created_dirs]
    journal.save()
    boundary("journal written")
    restarting = pending is not None  # the interrupted run may have restarted on its files
    try:
        for directory in new_dirs:
            os.makedirs(host(directory), mode=0o755, exist_ok=True)
        for w in changed:
            put(w.path, w.state)
            boundary(f"{'removed' if w.state.kind == 'absent' else 'wrote'} {w.path}")
            log(f"{'removed' if w.state.kind == 'absent' else 'wrote'} {w.path}")
        check_upstream_names(spec.get("upstream_names", []))
        run_all(_commands(spec, "check"), "check")
        restarting = True
        run_all(on_change, "restart")
        run_all(_commands(spec, "verify"), "verify")
        Journal.remove()
        boundary("journal removed")
    except BaseException as exc:  # noqa: BLE001 - every failure, a signal included, puts the files back
        _ignore_signals()
        done, state = rollback(journal, on_change, restarting)
        if done:
            Journal.remove()
        cause = str(exc) if isinstance(exc, (ApplyError, Interrupted)) else \
            f"{type(exc).__name__}: {_printable(str(exc).encode())}"
        raise ApplyError(f"{cause}; the previous configuration was restored and {state}") from None
    return {"name": spec.get("name"), "changed": [w.path for w in changed], "restarted": bool(on_change),
            "resumed": pending is not None}


def _named_paths(spec: dict) -> list[str]:
    paths = [f["path"] for f in spec.get("files", [])] + list(spec.get("absent", []))
    return paths + [e["path"] for e in spec.get("env", []) + spec.get("yaml", [])]


def _on_signal(signum: int, _frame: Any) -> None:
    raise Interrupted(f"interrupted by signal {signal.Signals(signum).name}")


def lock_timeout() -> float:
    raw = os.environ.get("WALLARM_APPLY_LOCK_TIMEOUT", "")
    try:
        value = float(raw) if raw else DEFAULT_LOCK_TIMEOUT
    except ValueError:
        value = -1
    if not math.isfinite(value) or value < 0:
        raise SpecError(f"WALLARM_APPLY_LOCK_TIMEOUT is {raw!r}: it must be a number of seconds, 0 or more")
    return value


def main(argv: Optional[list[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args:
        log(f"ERROR: unknown arguments {args}: the spec comes on standard input; nothing was changed")
        return EXIT_SPEC
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, _on_signal)
    try:
        spec = validate(read_spec(sys.stdin.buffer.read()))
        with Lock(lock_timeout()):
            summary = apply(spec)
    except SpecError as exc:
        log(f"ERROR: {exc}; nothing was changed")
        return EXIT_SPEC
    except LockBusy as exc:
        log(f"ERROR: {exc}")
        return EXIT_BUSY
    except ApplyError as exc:
        log(f"ERROR: {exc}")
        return EXIT_FAILED
    except Interrupted as exc:
        log(f"ERROR: {exc} before any change; nothing was changed")
        return EXIT_FAILED
    except Exception as exc:  # noqa: BLE001 - a bug must not print a traceback (or a secret in one)
        log(f"ERROR: unexpected {type(exc).__name__}: {_printable(str(exc).encode())[:300]}")
        return EXIT_FAILED
    try:
        print(json.dumps(summary, sort_keys=True), flush=True)
    except OSError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
