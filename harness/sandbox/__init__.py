"""Run a host's remote steps for real, against a sandbox root instead of /.

A Sandbox is a directory standing in for one host: `root/` is its "/" (the scripts read WALLARM_ROOT, the only
difference from production), `root/home/<user>` its SSH user's home, and stub commands (bin/ beside this file:
sudo, systemctl, nginx, curl, apt-get, cloud-init, hostnamectl, sleep, plus a stub all-in-one installer) record what they
were asked in calls.log. `replay` executes, in order, exactly the staged files and the Command text and
stdin that the program declared for the host, as captured by the mocks.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Optional, Union

from components.host import SCRIPT_MODULES, STAGE_DIR
from harness.mocks import ProviderMocks

HERE = Path(__file__).resolve().parent
STUB_BIN = HERE / "bin"
STUB_INSTALLER = HERE / "wallarm-installer.sh"
SCRIPTS = HERE.parent.parent / "scripts"
# What the configure step runs, as every role uploads it: apply_spec.py and the modules it imports from beside it.
APPLY_FILES = ("apply_spec.py", *SCRIPT_MODULES["apply_spec.py"])
STATE_DIR = "var/lib/wallarm-deploy"
TEMP_PREFIX = ".wallarm-deploy-"
UNIT_CONFIG = {"wallarm.service": "opt/wallarm", "nginx": "etc/nginx"}
STEP_ORDER = ("wait", "install", "configure", "health")


@dataclasses.dataclass
class StepResult:
    step: str
    returncode: int
    stdout: str
    stderr: str


class Sandbox:
    def __init__(self, base: Path, user: str = "admin", env: Optional[dict[str, str]] = None):
        self.base = Path(base)
        self.root = self.base / "root"
        self.home = self.root / "home" / user
        self.state = self.base / "state"
        self.log = self.base / "calls.log"
        for d in (self.root, self.home, self.state, self.root / "var" / "lib"):  # /var/lib is on every host
            d.mkdir(parents=True, exist_ok=True)
        self.log.touch()
        self.extra_env = dict(env or {})

    def path(self, host_path: str) -> Path:
        """Where a host path (/opt/...) lives in the sandbox."""
        return self.root / host_path.lstrip("/")

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("STUB_")}
        env.update(PATH=f"{STUB_BIN}:{env.get('PATH', '/usr/bin:/bin')}", WALLARM_ROOT=str(self.root),
                   HOME=str(self.home), STUB_LOG=str(self.log), STUB_STATE=str(self.state),
                   STUB_INSTALLER=str(STUB_INSTALLER))
        env.update(self.extra_env)
        env.update(extra)
        return env

    def path_without(self, *names: str) -> str:
        """A PATH of links to the stubs and to every other command, except `names` (a host without cloud-init)."""
        farm = self.base / ("bin-without-" + "-".join(names))
        if not farm.exists():
            farm.mkdir()
            for directory in [str(STUB_BIN), *os.environ.get("PATH", "/usr/bin:/bin").split(":")]:
                if not os.path.isdir(directory):
                    continue
                for entry in os.scandir(directory):
                    link = farm / entry.name
                    if entry.name not in names and not os.path.lexists(link):
                        link.symlink_to(entry.path)
        return str(farm)

    def upload(self, remote_path: str, text: str) -> None:
        """A staged file at remote_path (~ is the SSH user's home), parents created, as the SSH user."""
        target = self.home / remote_path[2:] if remote_path.startswith("~/") else self.path(remote_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)

    def run(self, step: str, create: str, stdin: Optional[str] = None, **env: str) -> StepResult:
        """Runs a Command's text as the remote shell would (bash -c, in the user's home), stdin attached."""
        proc = subprocess.run(["bash", "-c", create], input=stdin or "", capture_output=True, text=True,
                              env=self.env(**env), cwd=self.home, timeout=120)
        return StepResult(step, proc.returncode, proc.stdout, proc.stderr)

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines()

    def clear_calls(self) -> None:
        self.log.write_text("")

    # ------------------------------------------------------------ direct runs and inspection

    def staged_apply(self) -> Path:
        """apply_spec.py staged with what it imports (APPLY_FILES) in a directory of their own, as a host gets them;
        outside the root, so that the staging directory is no managed root here."""
        stage = self.base / "staged"
        if not stage.exists():
            stage.mkdir()
            for name in APPLY_FILES:
                shutil.copyfile(SCRIPTS / name, stage / name)
        return stage / "apply_spec.py"

    def apply(self, spec: Union[dict, str, bytes], timeout: float = 60, **env: str) -> subprocess.CompletedProcess:
        """apply_spec.py (staged) with `spec` on stdin (a dict is dumped as JSON), as root, in this sandbox."""
        data = json.dumps(spec).encode() if isinstance(spec, dict) else (
            spec.encode() if isinstance(spec, str) else spec)
        return subprocess.run([sys.executable, str(self.staged_apply())], input=data, capture_output=True,
                              env=self.env(**env), cwd=self.home, timeout=timeout)

    def install(self, mode: str) -> None:
        """Lays down what the install step leaves (the distribution's NGINX first for filtering), with the stubs."""
        steps = (["apt-get install -y nginx"] if mode == "filtering" else []) + [
            f"sh {STUB_INSTALLER} -- --batch -t SandboxToken0123456789 {mode}"]
        for step in steps:
            result = self.run("install", step)
            if result.returncode != 0:
                raise RuntimeError(f"{step}: {result.stderr}")

    def clone(self, base: Path) -> "Sandbox":
        """A copy of this sandbox (files, modes, symlinks, stub state) at `base`."""
        shutil.copytree(self.base, base, symlinks=True)
        copy = Sandbox(base, user=self.home.name, env=self.extra_env)
        return copy

    def tree(self, include_state: bool = False) -> dict[str, tuple]:
        """Every path under the root but the state directory: (kind, bytes or link target, mode, uid, gid)."""
        out: dict[str, tuple[str, Union[str, bytes], int, int, int]] = {}
        for p in sorted(self.root.rglob("*")):
            rel = str(p.relative_to(self.root))
            if not include_state and (rel + "/").startswith(STATE_DIR + "/"):
                continue
            st = p.lstat()
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(p), 0, st.st_uid, st.st_gid)
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", b"", stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
            elif stat.S_ISREG(st.st_mode):
                out[rel] = ("file", p.read_bytes(), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
            else:  # a FIFO or a device: never opened (a FIFO would block)
                out[rel] = ("other", b"", stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
        return out

    def temporary_files(self) -> list[str]:
        """Temporary files of apply_spec.py anywhere under the root."""
        return sorted(str(p.relative_to(self.root)) for p in self.root.rglob(f"{TEMP_PREFIX}*"))

    def journal(self) -> Optional[Path]:
        """apply_spec.py's journal of a pending run, if one is there."""
        path = self.root / STATE_DIR / "apply-journal.json"
        return path if path.exists() else None

    def manifest(self, unit: str) -> str:
        """The unit's configuration files as they are now, in the stub systemctl's manifest format."""
        lines = []
        top = self.root / UNIT_CONFIG[unit]
        for p in sorted(top.rglob("*"), key=lambda q: str(q.relative_to(self.root)).encode()):
            if p.is_file() and not p.is_symlink() and not p.name.startswith(TEMP_PREFIX):
                lines.append(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(self.root)}")
        return "".join(line + "\n" for line in lines)

    def reset_counters(self) -> None:
        """Forgets the stub status counters (the next read starts them from the STUB_* knobs again)."""
        for name in ("wallarm-status", "status-reads"):
            (self.state / name).unlink(missing_ok=True)

    def loaded(self, unit: str) -> Optional[str]:
        """What the unit loaded at its last successful (re)start, or None when it is down."""
        active = self.state / f"{unit}.active"
        running = self.state / f"{unit}.running"
        if unit != "nginx" and (not active.exists() or active.read_text().strip() != "active"):
            return None
        return running.read_text() if running.exists() else None


def installer_archive() -> bytes:
    """What the stub curl serves as the installer: the stub's makeself-like header and its declared payload."""
    return STUB_INSTALLER.read_bytes() + b"x" * (1572864 - 17) + b"STUB_PAYLOAD_END\n"


def host_arch(mocks: ProviderMocks, host: str) -> str:
    """The architecture of the machine the program declared for a host (its user data names it)."""
    for r in mocks.of_type("aws:ec2/instance:Instance"):
        if (r.inputs.get("tags") or {}).get("Node", r.name) == host:
            for word in (r.inputs.get("userData") or "").split():
                if word.startswith("arch="):
                    return word[len("arch="):]
    return "x86_64"


def host_steps(mocks: ProviderMocks, host: str) -> tuple[list[tuple[str, str]], dict[str, dict]]:
    """The uploads (remote path, text) and the commands (step -> inputs) that the program declared for a host."""
    commands = {r.name[len(host) + 1:]: r.inputs for r in mocks.of_type("command:remote:Command")
                if r.name.startswith(f"{host}-") and r.name[len(host) + 1:] in STEP_ORDER}
    return staged(commands.get("wait", {}).get("stdin") or ""), commands


def staged(stage_script: str) -> list[tuple[str, str]]:
    """The files (~/path, text) that the wait step's script stages (components/host.py, stage_script)."""
    files, lines = [], iter(stage_script.splitlines())
    for line in lines:
        if line.startswith("put ") and line.endswith(" <<'EOF'"):
            body = "".join(iter(lines.__next__, "EOF"))
            files.append((f"~/{STAGE_DIR}/{line.split()[1]}", base64.b64decode(body).decode()))
    return files


def replay(mocks: ProviderMocks, host: str, sandbox: Sandbox, steps: tuple[str, ...] = STEP_ORDER,
           upload: bool = True, **env: str) -> list[StepResult]:
    """Applies a host's declared steps into the sandbox, in order; stops at the first that fails."""
    uploads, commands = host_steps(mocks, host)
    env.setdefault("STUB_UNAME_M", host_arch(mocks, host))  # the sandbox host's `uname -m`
    if upload:
        for remote_path, text in uploads:
            sandbox.upload(remote_path, text)
    results = []
    for step in STEP_ORDER:
        if step in steps and step in commands:
            c = commands[step]
            results.append(sandbox.run(step, c["create"], c.get("stdin"), **env))
            if results[-1].returncode != 0:
                break
    return results
