"""Reproducible installs: requirements.txt is a complete lock (every package pinned with == and hashed, every
dependency of a pinned package pinned too) that matches the ranges of requirements.in; `.ci/run`, `pulumi install`
and every workflow install it with hashes; a stale lock stops `.ci/run` with a sentence; Dependabot proposes
updates as pull requests."""

from __future__ import annotations

import importlib.metadata
import itertools
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tools import lockcheck

ROOT = Path(__file__).resolve().parents[2]
LOCK = (ROOT / "requirements.txt").read_text()
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
HASHED_INSTALL = "pip install --quiet --require-hashes -r requirements.txt"


def test_the_lock_pins_and_hashes_every_package_inside_the_ranges():
    """Guards against a package installed at whatever version PyPI serves that day, or a lock that no longer
    matches requirements.in (a range raised, a package added without `bash .ci/lock`)."""
    assert lockcheck.problems(ROOT) == []
    pinned, _ = lockcheck.pins(LOCK)
    assert set(lockcheck.ranges((ROOT / "requirements.in").read_text())) <= set(pinned)
    assert {"pulumi", "pulumi-aws", "grpcio", "protobuf"} <= set(pinned), "transitive packages are pinned too"
    header = "\n".join(itertools.takewhile(lambda line: line.startswith("#"), LOCK.splitlines()))
    # pip-compile writes the command into its header (CUSTOM_COMPILE_COMMAND), and keeps it when Dependabot
    # regenerates the lock; .ci/lock adds a note above it.
    assert "#    bash .ci/lock" in header, "the lock's header names the command that regenerates it"


def test_every_dependency_of_a_pinned_package_is_pinned():
    """Guards against a lock that pip refuses in hash-checking mode (an unpinned transitive dependency), read
    from the metadata of the installed distributions."""
    pinned, _ = lockcheck.pins(LOCK)
    environment = {"extra": ""}
    missing = []
    for name in pinned:
        try:
            requires = importlib.metadata.distribution(name).requires or []
        except importlib.metadata.PackageNotFoundError:
            missing.append(f"{name} is pinned but not installed in this venv")
            continue
        for line in requires:
            requirement = Requirement(line)
            if requirement.marker and not requirement.marker.evaluate(environment):
                continue
            if canonicalize_name(requirement.name) not in pinned:
                missing.append(f"{name} needs {requirement}, which the lock does not pin")
    assert not missing, missing


def test_the_venv_runs_what_the_lock_pins():
    """Guards against tests that pass on versions the lock does not hold (a venv installed from the ranges)."""
    pinned, _ = lockcheck.pins(LOCK)
    # pip and setuptools come with `python -m venv` too; a venv made before the lock pinned them keeps its own.
    wrong = {name: (str(version), importlib.metadata.version(name)) for name, version in pinned.items()
             if importlib.metadata.version(name) != str(version) and name not in ("pip", "setuptools")}
    assert not wrong, f"installed versions differ from the lock (pinned, installed): {wrong}"


@pytest.mark.parametrize("ranges,lock,expected", [
    ("boto3>=1,<2\n", "pyyaml==6.0.4 --hash=sha256:" + "a" * 64 + "\n",
     "requirements.in asks for boto3<2,>=1, which requirements.txt does not pin"),
    ("pyyaml>=7,<8\n", "pyyaml==6.0.4 --hash=sha256:" + "a" * 64 + "\n",
     "requirements.txt pins pyyaml==6.0.4, outside requirements.in's range pyyaml<8,>=7"),
    ("pyyaml>=6,<7\n", "pyyaml==6.0.4\n", "requirements.txt pins pyyaml==6.0.4 without a sha256 hash"),
    ("pyyaml>=6,<7\n", "pyyaml>=6 \\\n    --hash=sha256:" + "a" * 64 + "\n",
     "requirements.txt holds 'pyyaml>=6', which is not pinned with =="),
    ("pyyaml>=6,<7\n", "--index-url https://example.org/simple\npyyaml==6.0.4 --hash=sha256:" + "a" * 64 + "\n",
     "requirements.txt holds the option line '--index-url': the lock holds only hashed pins"),
])
def test_a_stale_or_loose_lock_stops_ci_with_a_sentence(tmp_path, ranges, lock, expected):
    """Guards against `.ci/run` installing a lock that misses a package someone added to requirements.in (it would
    pass here, where the package is installed by hand, and fail on a fresh machine), or one without hashes."""
    (tmp_path / "tools").mkdir()
    shutil.copy(ROOT / "tools" / "lockcheck.py", tmp_path / "tools" / "lockcheck.py")
    (tmp_path / "requirements.in").write_text(ranges)
    (tmp_path / "requirements.txt").write_text(lock)
    proc = subprocess.run([sys.executable, "tools/lockcheck.py"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 1
    assert f"stale lock: {expected}." in proc.stderr.splitlines()
    assert "Regenerate it with `bash .ci/lock`" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_ci_checks_the_lock_then_installs_it_with_hashes():
    """Guards against `.ci/run` installing from the ranges, or installing a stale lock before saying so."""
    run = (ROOT / ".ci" / "run").read_text()
    check = run.index('"$VENV/bin/python" tools/lockcheck.py || die')
    install = run.index("-m pip install --quiet --disable-pip-version-check --require-hashes -r requirements.txt")
    assert check < install
    lock_script = (ROOT / ".ci" / "lock").read_text()
    assert "--generate-hashes" in lock_script and "--output-file requirements.txt" in lock_script
    assert "requirements.in" in lock_script


def test_pulumi_install_reads_the_lock():
    """Guards against `pulumi install` (which runs `pip install -r requirements.txt` in the project folder,
    pulumi/pulumi sdk/python/toolchain/pip.go) installing ranges, and a policy pack with a lock of its own."""
    runtime = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["runtime"]
    assert runtime["options"] == {"toolchain": "pip", "virtualenv": "venv"}
    pinned, problems = lockcheck.pins(LOCK)
    assert not problems and "pulumi-policy" in pinned
    policy = [line for line in (ROOT / "policy" / "requirements.txt").read_text().splitlines()
              if line and not line.startswith("#")]
    assert policy == ["-r ../requirements.txt"]


def test_every_workflow_installs_the_lock_with_hashes():
    """Guards against a pipeline (preview, deploy, drift) that installs whatever PyPI serves while it holds the
    passphrase and an AWS role: each job that runs Pulumi installs the lock with --require-hashes (or runs
    `.ci/run`, which does), and none runs `pulumi install`, which first upgrades pip, setuptools and wheel
    unpinned (pip.go: `pip install --upgrade pip setuptools wheel`)."""
    for path in WORKFLOWS:
        for job_name, job in yaml.safe_load(path.read_text())["jobs"].items():
            runs = [str(step.get("run", "")) for step in job.get("steps", [])]
            uses_pulumi = any(str(step.get("uses", "")).startswith("pulumi/actions@") for step in job.get("steps", []))
            assert not any(r.strip() == "pulumi install" for r in runs), f"{path.name}:{job_name}"
            for text in runs:
                assert "pip install" not in text or "--require-hashes -r requirements.txt" in text, \
                    f"{path.name}:{job_name}: {text}"
            if uses_pulumi:
                assert any(HASHED_INSTALL in r for r in runs), f"{path.name}:{job_name} installs no lock"


def test_dependabot_proposes_lock_updates_as_pull_requests():
    """Guards against a lock that nobody updates: Dependabot's pip updates read requirements.in and regenerate
    the pip-compile lock beside it, as a pull request that the tests and previews check."""
    updates = yaml.safe_load((ROOT / ".github" / "dependabot.yml").read_text())["updates"]
    pip = [u for u in updates if u["package-ecosystem"] == "pip"]
    assert pip and pip[0]["directory"] == "/"
