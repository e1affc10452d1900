"""Run a host's remote steps for real, against a sandbox root instead of /.

A Sandbox is a directory standing in for one host: `root/` is its "/" (the scripts read WALLARM_ROOT, the only
difference from production), `root/home/<user>` its SSH user's home, and stub commands (bin/ beside this file:
sudo, systemctl, nginx, curl, apt-get, cloud-init, sleep, plus a stub all-in-one installer) record what they
were asked in calls.log. `replay` executes, in order, exactly the CopyToRemote files and the Command text and
stdin that the program declared for the host, as captured by the mocks.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path
from typing import Optional

from tools.mocks import ProviderMocks

HERE = Path(__file__).resolve().parent
STUB_BIN = HERE / "bin"
STUB_INSTALLER = HERE / "wallarm-installer.sh"
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
        for d in (self.root, self.home, self.state):
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

    def upload(self, remote_path: str, text: str) -> None:
        """What CopyToRemote does: the file at remote_path, parents created, as the SSH user."""
        target = self.path(remote_path)
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


def host_steps(mocks: ProviderMocks, host: str) -> tuple[list[tuple[str, str]], dict[str, dict]]:
    """The uploads (remote path, text) and the commands (step -> inputs) that the program declared for a host."""
    uploads = [(r.inputs["remotePath"], r.inputs["source"].text)
               for r in mocks.of_type("command:remote:CopyToRemote") if r.name.startswith(f"{host}-upload-")]
    commands = {r.name[len(host) + 1:]: r.inputs for r in mocks.of_type("command:remote:Command")
                if r.name.startswith(f"{host}-") and r.name[len(host) + 1:] in STEP_ORDER}
    return uploads, commands


def replay(mocks: ProviderMocks, host: str, sandbox: Sandbox, steps: tuple[str, ...] = STEP_ORDER,
           upload: bool = True, **env: str) -> list[StepResult]:
    """Applies a host's declared steps into the sandbox, in order; stops at the first that fails."""
    uploads, commands = host_steps(mocks, host)
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
