"""The GitHub workflows (schema-valid, preview per stack with a PR comment, OIDC, deploy on main). The policy pack
has its own tests in tests/test_policy.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
STACKS = sorted(p.name[len("Pulumi."):-len(".yaml")] for p in ROOT.glob("Pulumi.*.yaml"))


def _workflow(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def _pulumi_step(job: dict) -> dict:
    return next(s for s in job["steps"] if str(s.get("uses", "")).startswith("pulumi/actions@"))


def test_workflows_match_the_github_schema():
    """Guards against a workflow GitHub would reject only once it is merged."""
    files = sorted(str(p) for p in WORKFLOWS.glob("*.yml"))
    assert len(files) == 2
    proc = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
                           *files], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_schema_check_can_fail(tmp_path):
    """Guards against a schema check that accepts anything."""
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    stepz: []\n")
    proc = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
                           str(bad)], capture_output=True, text=True)
    assert proc.returncode != 0


@pytest.mark.parametrize("name,command,trigger", [("preview.yml", "preview", "pull_request"),
                                                  ("deploy.yml", "up", "push")])
def test_every_stack_is_covered_with_oidc(name, command, trigger):
    """Guards against a stack that no pipeline previews or deploys, or long-lived AWS keys in CI."""
    wf = _workflow(name)
    assert trigger in wf[True]  # YAML 1.1 reads the key `on` as True
    job = wf["jobs"]["preview" if command == "preview" else "up"]
    assert sorted(job["strategy"]["matrix"]["stack"]) == STACKS
    assert job["permissions"]["id-token"] == "write"
    step = _pulumi_step(job)
    assert step["with"]["command"] == command and step["with"]["stack-name"] == "${{ matrix.stack }}"
    assert step["with"]["policyPacks"] == "policy"
    assert "log-verbosity" not in step["with"], "verbose Pulumi logs can print secrets"
    assert step["env"]["PULUMI_CONFIG_PASSPHRASE"].startswith("${{ secrets.")
    aws = next(s for s in job["steps"] if str(s.get("uses", "")).startswith("aws-actions/configure-aws-credentials"))
    assert "role-to-assume" in aws["with"] and "aws-access-key-id" not in aws["with"]
    installs = [s for s in job["steps"] if "pip install -r requirements.txt" in str(s.get("run", ""))]
    assert installs, "pulumi/actions installs no dependencies"
    assert job["needs"] == "test"


def test_preview_comments_on_the_pull_request():
    """Guards against a preview nobody sees in review."""
    job = _workflow("preview.yml")["jobs"]["preview"]
    assert _pulumi_step(job)["with"]["comment-on-pr"] is True
    assert job["permissions"]["pull-requests"] == "write"
