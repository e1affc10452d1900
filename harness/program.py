"""Runs the real __main__.py under the project's mocks, with a stack's settings, and returns what it declared.

Used by the unit tests, the loopback rehearsal (tools/rehearse.py) and the benchmark (tools/benchmark.py).
The settings come from Pulumi.<stack>.yaml exactly as the engine hands them to the program ("project:key" ->
string, arrays as JSON); the declared defaults of Pulumi.yaml are applied by the program itself. Encrypted
(`secure:`) values cannot be read here, so a stand-in token is used unless one is given.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import runpy
import sys
from pathlib import Path
from typing import AbstractSet, Any, Optional

import pulumi
import yaml

from components import settings
from harness.mocks import ProviderMocks, StrictMonitor

PROJECT_DIR = Path(__file__).resolve().parent.parent
PROJECT = yaml.safe_load((PROJECT_DIR / "Pulumi.yaml").read_text())["name"]
STAND_IN_TOKEN = "StandInWallarmToken0123456789abcdefXYZ=="
SECRET_KEYS = [f"{PROJECT}:{key}" for key in settings.SECRET_KEYS]


def encode(value: Any) -> str:
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class StackConfig(dict):
    """A stack's config as the engine hands it over, and which secret keys the file holds in plaintext."""

    plaintext: AbstractSet[str] = frozenset()


class StackFileError(ValueError):
    """A stack file that is not YAML: the message names the file and the line."""


def stack_file(stack: str) -> Path:
    """Pulumi.<stack>.yaml, a stack file's path (examples/Pulumi.prod.yaml), or a directory and a stack name
    (examples/prod, for examples/Pulumi.prod.yaml)."""
    if stack.endswith(".yaml"):
        return Path(stack)
    path = Path(stack)
    if path.parent == Path("."):
        return PROJECT_DIR / f"Pulumi.{stack}.yaml"
    return path.parent / f"Pulumi.{path.name}.yaml"


def stack_name(stack: str) -> str:
    """The stack's name (prod for examples/prod and examples/Pulumi.prod.yaml), as `pulumi stack` would call it."""
    name = Path(stack).name
    return name[len("Pulumi."):-len(".yaml")] if name.startswith("Pulumi.") and name.endswith(".yaml") else name


def _read_stack(path: Path) -> dict:
    try:
        return yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        what = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise StackFileError(f"{path}: {where}: not valid YAML ({what}); fix the stack file") from None


def stack_config(stack: str = "dev", token: Optional[str] = STAND_IN_TOKEN, **overrides: Any) -> dict[str, str]:
    """The stack file's values, plus overrides (key without project prefix; None removes a key)."""
    path = stack_file(stack)
    if not path.exists():
        raise FileNotFoundError(f"no stack file {path}: the stacks are the Pulumi.<stack>.yaml files")
    data = _read_stack(path).get("config", {}) or {}
    config = StackConfig({k: encode(v) for k, v in data.items() if not (isinstance(v, dict) and "secure" in v)})
    # A secret key written in clear in the file is not a secret: the program must see it as pulumi up would.
    config.plaintext = {k for k in SECRET_KEYS if k in config}
    if token is not None:
        config.setdefault(f"{PROJECT}:wallarmToken", token)
    for key, value in overrides.items():
        full = key if ":" in key else f"{PROJECT}:{key}"
        if value is None:
            config.pop(full, None)
        else:
            config[full] = encode(value)
    return config


@dataclasses.dataclass
class Run:
    mocks: ProviderMocks
    exports: dict[str, Any]
    """Stack outputs, resolved."""
    secret_exports: set[str]
    """Names of the stack outputs that are secret."""
    error: Optional[BaseException] = None
    namespace: dict = dataclasses.field(default_factory=dict)
    """The program's globals after it ran (its components), for tests of the dependency graph."""
    warnings: list[str] = dataclasses.field(default_factory=list)
    """What the program logged as warnings (pulumi.log.warn)."""


class _Warnings(logging.Handler):
    def __init__(self, sink: list[str]):
        super().__init__(logging.WARNING)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(record.getMessage())


def run_program(config: dict[str, str], stack: str = "dev", loopback: bool = False,
                secret_keys: Optional[list[str]] = None, mocks: Optional[ProviderMocks] = None,
                project_dir: Path = PROJECT_DIR) -> Run:
    """Runs __main__.py once under fresh mocks (or the given ones). A program error is returned in Run.error.
    project_dir: another checkout of the program (tools/changes.py runs the base's)."""
    if str(project_dir) not in sys.path:
        sys.path.insert(0, str(project_dir))
    mocks = mocks or ProviderMocks(loopback=loopback)
    mocks.learn(config)  # the region, its zones, an existing VPC: from the settings, or assumed and said
    warnings: list[str] = []
    logger = logging.getLogger(f"wallarm-mocks-{id(mocks)}")
    logger.propagate, logger.handlers = False, [_Warnings(warnings)]
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack_name(stack), preview=False, monitor=StrictMonitor(mocks),
                             logger=logger)
    if secret_keys is None:  # as `pulumi config set --secret` marks them; never what the file holds in clear
        secret_keys = [k for k in SECRET_KEYS if k in config and k not in getattr(config, "plaintext", ())]
    pulumi.runtime.set_all_config(config, secret_keys=secret_keys)
    run = Run(mocks, {}, set(), warnings=warnings)

    @pulumi.runtime.test
    def program():
        exported: dict[str, Any] = {}
        real_export = pulumi.export
        pulumi.export = lambda name, value: exported.__setitem__(name, value)
        try:
            run.namespace.update(runpy.run_path(str(project_dir / "__main__.py"), run_name="__main__"))
            for value in list(run.namespace.values()):
                # A WallarmDeployment: its components under the names the program's globals gave them before it.
                # (isinstance first: getattr on an Output lifts the attribute into a new Output, failing later)
                parts = getattr(value, "parts", None) if isinstance(value, pulumi.ComponentResource) else None
                if isinstance(parts, dict):
                    run.namespace.update(parts)
        finally:
            pulumi.export = real_export
        names = list(exported)
        outs = [pulumi.Output.from_input(exported[n]) for n in names]
        secrecy: list[pulumi.Output[bool]] = [pulumi.Output.from_input(o.is_secret()) for o in outs]

        def collect(values):
            run.exports.update(zip(names, values[: len(names)]))
            run.secret_exports.update(n for n, s in zip(names, values[len(names):]) if s)

        return pulumi.Output.all(*outs, *secrecy).apply(collect)

    try:
        program()
    except Exception as exc:  # noqa: BLE001 - the caller decides what a program error means
        run.error = exc
    return run
