"""The GitHub workflows: valid against GitHub's schema; third-party actions pinned by commit; the Pulumi CLI pinned;
preview, drift and deploy per stack in the stack's environment, with the stack list read from the Pulumi.*.yaml
files; AWS sessions within an hour; a daily drift check; and the deploy job's deployer-group steps, run for real
against stub `pulumi`, `curl` and `aws` commands. The policy pack has its own tests (tests/test_policy.py)."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import program_run

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
FILES = sorted(WORKFLOWS.glob("*.yml"))
STACKS = sorted(p.name[len("Pulumi."):-len(".yaml")] for p in ROOT.glob("Pulumi.*.yaml"))
MATRIX_FROM_FILES = "${{ fromJSON(needs.stacks.outputs.stacks) }}"
# The workflow (file) -> the job that runs Pulumi per stack, and the command it runs.
STACK_JOBS = {"preview.yml": ("preview", "preview"), "deploy.yml": ("up", "up"), "drift.yml": ("drift", "preview")}


def _workflow(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def _steps(name: str, job: str) -> list[dict]:
    return _workflow(name)["jobs"][job]["steps"]


def _step(name: str, job: str, step_id: str) -> dict:
    return next(s for s in _steps(name, job) if s.get("id") == step_id)


def _uses(step: dict, action: str) -> bool:
    return str(step.get("uses", "")).startswith(action + "@")


def _pulumi_command_steps(name: str, job: str) -> list[dict]:
    return [s for s in _steps(name, job) if _uses(s, "pulumi/actions") and "command" in s.get("with", {})]


def _schema_check(*paths) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
                           *map(str, paths)], capture_output=True, text=True)


# ---- schema, pins ----------------------------------------------------------------------------------------

def test_workflows_match_the_github_schema():
    """Guards against a workflow GitHub would reject only once it is merged."""
    assert {p.name for p in FILES} == {"preview.yml", "deploy.yml", "drift.yml", "stacks.yml"}
    proc = _schema_check(*FILES)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_schema_check_can_fail(tmp_path):
    """Guards against a schema check that accepts anything."""
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    stepz: []\n")
    assert _schema_check(bad).returncode != 0


USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>\S+)(?:\s+#\s*(?P<comment>.*))?$")


def test_third_party_actions_are_pinned_by_commit_with_their_version():
    """Guards against a moved tag running code nobody reviewed: every action is pinned by a full commit SHA, the
    version it is in a comment, and one action is pinned to one commit in every workflow."""
    pins: dict[str, set[tuple[str, str]]] = {}
    for path in FILES:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            match = USES.match(line)
            if not match or match["ref"].startswith("./"):
                continue
            where = f"{path.name}:{number}"
            action, _, ref = match["ref"].partition("@")
            assert re.fullmatch(r"[0-9a-f]{40}", ref), f"{where}: {action} is pinned to {ref!r}, not a commit SHA"
            assert match["comment"] and re.fullmatch(r"v\d+\.\d+\.\d+", match["comment"].strip()), \
                f"{where}: {action}@{ref} has no '# vX.Y.Z' comment naming its version"
            pins.setdefault(action, set()).add((ref, match["comment"].strip()))
    assert {"actions/checkout", "actions/setup-python", "aws-actions/configure-aws-credentials",
            "pulumi/actions"} <= set(pins)
    for action, seen in pins.items():
        assert len(seen) == 1, f"{action} is pinned to several commits: {sorted(seen)}"


def test_the_pulumi_cli_version_is_pinned_once_per_workflow():
    """Guards against a CLI that changes under a pipeline (pulumi/actions installs the newest 3.x by default)."""
    versions = set()
    floor = re.search(r"^pulumi>=([\d.]+)", (ROOT / "requirements.txt").read_text(), re.M)
    for name in STACK_JOBS:
        version = str(_workflow(name)["env"]["PULUMI_VERSION"])
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), f"{name}: PULUMI_VERSION {version!r} is not X.Y.Z"
        versions.add(version)
        installs = [s for job in _workflow(name)["jobs"].values() for s in job.get("steps", [])
                    if _uses(s, "pulumi/actions")]
        assert installs, name
        for step in installs:
            assert step["with"]["pulumi-version"] == "${{ env.PULUMI_VERSION }}", f"{name}: {step}"
    assert len(versions) == 1, versions
    (version,) = versions
    if floor:
        as_tuple = lambda v: tuple(int(x) for x in v.split("."))  # noqa: E731
        assert as_tuple(version) >= as_tuple(floor[1]), f"CLI {version} is older than the SDK floor {floor[1]}"


# ---- per-stack jobs ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(STACK_JOBS))
def test_every_stack_runs_in_its_environment_with_oidc_and_the_policy_pack(name):
    """Guards against a stack that no pipeline covers, a stack list that needs a workflow edit, a preview outside
    the stack's environment (whose passphrase and AWS role it needs), long-lived AWS keys, sessions longer than an
    IAM role allows by default, or a Pulumi run without the policy pack."""
    wf = _workflow(name)
    job_name, command = STACK_JOBS[name]
    job = wf["jobs"][job_name]
    assert wf["jobs"]["stacks"]["uses"] == "./.github/workflows/stacks.yml"
    assert "stacks" in job["needs"]
    assert job["strategy"]["matrix"]["stack"] == MATRIX_FROM_FILES
    assert job["environment"]["name"] == "${{ matrix.stack }}"
    assert job["permissions"]["id-token"] == "write"
    assert job["env"]["PULUMI_CONFIG_PASSPHRASE"] == "${{ secrets.PULUMI_CONFIG_PASSPHRASE }}"
    creds = [s for s in job["steps"] if _uses(s, "aws-actions/configure-aws-credentials")]
    assert creds
    for step in creds:
        assert "role-to-assume" in step["with"] and "aws-access-key-id" not in step["with"]
        assert int(step["with"]["role-duration-seconds"]) <= 3600, f"{name}: {step['with']}"
    runs = _pulumi_command_steps(name, job_name)
    steps = job["steps"]
    install = next((i for i, s in enumerate(steps) if str(s.get("run", "")).strip() == "pulumi install"), None)
    cli = next(i for i, s in enumerate(steps) if _uses(s, "pulumi/actions") and "command" not in s.get("with", {}))
    assert install is not None and cli < install < steps.index(runs[0]), \
        "pulumi/actions installs no dependencies: `pulumi install` (after the CLI) makes the venv of Pulumi.yaml"
    assert [s["with"]["command"] for s in runs] == [command]
    for step in runs:
        assert step["with"]["stack-name"] == "${{ matrix.stack }}"
        assert step["with"]["policyPacks"] == "policy"
        assert step["with"].get("suppress-outputs") is True
        assert "log-verbosity" not in step["with"], "verbose Pulumi logs can print secrets"


def test_previews_comment_on_the_pull_request_and_run_after_the_tests():
    """Guards against a preview nobody sees in review, or one that runs a program whose tests failed."""
    job = _workflow("preview.yml")["jobs"]["preview"]
    assert _pulumi_command_steps("preview.yml", "preview")[0]["with"]["comment-on-pr"] is True
    assert job["permissions"]["pull-requests"] == "write"
    assert "test" in job["needs"] and "test" in _workflow("deploy.yml")["jobs"]["up"]["needs"]


def test_deploys_run_one_stack_at_a_time_and_never_cancel_a_running_up():
    """Guards against two stacks (or two pushes) deploying at once, or a push cancelling a half-done `pulumi up`."""
    wf = _workflow("deploy.yml")
    assert wf["jobs"]["up"]["strategy"]["max-parallel"] == 1
    assert wf["concurrency"]["cancel-in-progress"] is False


def test_the_deploy_ends_within_its_aws_session():
    """Guards against credentials that expire in the middle of `pulumi up` (an hour by default)."""
    steps = _steps("deploy.yml", "up")
    up = next(s for s in _pulumi_command_steps("deploy.yml", "up"))
    first_creds = next(s for s in steps if _uses(s, "aws-actions/configure-aws-credentials"))
    assert up["timeout-minutes"] * 60 < int(first_creds["with"]["role-duration-seconds"])


def test_the_drift_check_runs_daily_and_fails_on_any_change():
    """Guards against drift (or a certificate in its renewal window) that nobody sees until the next deploy."""
    wf = _workflow("drift.yml")
    crons = [entry["cron"] for entry in wf[True]["schedule"]]  # YAML 1.1 reads the key `on` as True
    assert len(crons) == 1
    minute, hour, day, month, weekday = crons[0].split()
    assert minute.isdigit() and hour.isdigit() and (day, month, weekday) == ("*", "*", "*"), crons[0]
    (step,) = _pulumi_command_steps("drift.yml", "drift")
    assert step["with"]["expect-no-changes"] is True and step["with"]["refresh"] is True


# ---- the stack list ---------------------------------------------------------------------------------------

def _run_step(script: str, cwd: Path, env: dict, tmp_path: Path) -> tuple[subprocess.CompletedProcess, str]:
    """Runs a workflow step's `run` text as GitHub does (bash -e -o pipefail), returning what it wrote to
    $GITHUB_OUTPUT."""
    output = tmp_path / "github_output"
    output.write_text("")
    proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script], cwd=cwd,
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "GITHUB_OUTPUT": str(output), "GITHUB_RUN_ID": "4242", **env})
    return proc, output.read_text()


def _stack_list(cwd: Path, tmp_path: Path, order: str = "") -> tuple[subprocess.CompletedProcess, list | None]:
    script = _step("stacks.yml", "list", "list")["run"]
    proc, out = _run_step(script, cwd, {"STACK_ORDER": order}, tmp_path)
    line = next((line for line in out.splitlines() if line.startswith("stacks=")), None)
    return proc, json.loads(line[len("stacks="):]) if line else None


def test_the_stack_list_comes_from_the_stack_files(tmp_path):
    """Guards against a stack file that no pipeline picks up (the matrix is read from the files, not typed)."""
    proc, stacks = _stack_list(ROOT, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert stacks == STACKS and stacks


def test_a_new_stack_file_joins_every_pipeline_in_promotion_order(tmp_path):
    """Guards against a new stack needing a workflow edit, or deploying before the stacks it is promoted after."""
    repo = tmp_path / "repo"
    repo.mkdir()
    for stack in ("production", "dev", "staging", "sandbox"):
        (repo / f"Pulumi.{stack}.yaml").write_text("config: {}\n")
    (repo / "Pulumi.yaml").write_text("name: x\n")
    proc, stacks = _stack_list(repo, tmp_path, order="dev staging production ghost dev")
    assert proc.returncode == 0, proc.stderr
    assert stacks == ["dev", "staging", "production", "sandbox"]
    assert "STACK_ORDER names ghost" in proc.stderr


def test_no_stack_file_stops_the_pipelines_with_a_sentence(tmp_path):
    """Guards against an empty matrix that GitHub rejects with an unrelated error."""
    empty = tmp_path / "empty"
    empty.mkdir()
    proc, stacks = _stack_list(empty, tmp_path)
    assert proc.returncode != 0 and stacks is None
    assert "No Pulumi.<stack>.yaml in the repository root" in proc.stderr


# ---- the deployer group ------------------------------------------------------------------------------------

STUB = """#!/usr/bin/env bash
# Records its arguments and answers from canned files, like the real command would.
printf '%s\\n' "$(basename "$0") $*" >> "$STUB_LOG"
case "$(basename "$0") $*" in
  "pulumi stack output"*) cat "$STUB_DIR/stack-output" ;;
  "pulumi up"*) cp "$STUB_DIR/stack-output-after-up" "$STUB_DIR/stack-output" ;;
  curl*) cat "$STUB_DIR/checkip" ;;
  "aws ec2 describe-security-group-rules"*) cat "$STUB_DIR/rules" ;;
  "aws ec2 authorize-security-group-ingress"*) exit "$(cat "$STUB_DIR/authorize-exit" 2>/dev/null || echo 0)" ;;
esac
"""


@pytest.fixture
def stubs(tmp_path):
    """A PATH with stub pulumi, curl and aws; returns (env, stub dir, a reader of the recorded calls)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("pulumi", "curl", "aws"):
        path = bin_dir / name
        path.write_text(STUB)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    (bin_dir / "rules").write_text("")
    (bin_dir / "checkip").write_text("198.51.100.7\n")
    log = tmp_path / "calls.log"
    log.write_text("")
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "STUB_DIR": str(bin_dir), "STUB_LOG": str(log),
           "STACK": "dev"}
    return env, bin_dir, lambda: log.read_text().splitlines()


def _deploy_step(step_id: str) -> str:
    return _step("deploy.yml", "up", step_id)["run"]


def test_a_deployed_stack_yields_its_deployer_group(stubs, tmp_path):
    """Guards against a deploy that cannot find the group it must open (or re-bootstraps a deployed stack)."""
    env, stub_dir, _ = stubs
    (stub_dir / "stack-output").write_text(json.dumps({"deployerSecurityGroupId": "sg-0abc", "url": "http://x"}))
    proc, out = _run_step(_deploy_step("state"), ROOT, env, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert out.splitlines() == ["deployed=true", "group-id=sg-0abc"]
    (stub_dir / "stack-output").write_text("{}")
    proc, out = _run_step(_deploy_step("state"), ROOT, env, tmp_path)
    assert out.splitlines() == ["deployed=false", "group-id="]


def test_the_bootstrap_creates_the_group_before_any_remote_step(stubs, tmp_path):
    """Guards against a first deploy that needs SSH through a group that does not exist yet."""
    env, stub_dir, calls = stubs
    (stub_dir / "stack-output").write_text("{}")
    (stub_dir / "stack-output-after-up").write_text(json.dumps({"deployerSecurityGroupId": "sg-0new"}))
    step = _step("deploy.yml", "up", "bootstrap")
    assert step["if"] == "steps.state.outputs.deployed == 'false'"
    proc, out = _run_step(step["run"], ROOT, env, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert out.splitlines() == ["group-id=sg-0new"]
    up = next(c for c in calls() if c.startswith("pulumi up"))
    assert "--policy-pack policy" in up and "--exclude-dependents" in up and "--yes" in up


def _pulumi_glob(pattern: str) -> re.Pattern:
    """The CLI's --target/--exclude glob (pkg/resource/deploy/deployment.go, UrnTargets.getMatcher): `**` is any
    text, `*` any text without a colon."""
    segments = ["[^:]*".join(re.escape(part) for part in segment.split("*")) for segment in pattern.split("**")]
    return re.compile("^" + ".*".join(segments) + "$")


def test_the_bootstrap_excludes_exactly_the_remote_steps_and_what_follows_them():
    """Guards against a bootstrap that dials SSH (a remote step not excluded), or that leaves out the jump host or
    the deployer group (excluded as dependents), so that the group still does not exist after it."""
    run = program_run()
    assert "deployerSecurityGroupId" in run.exports and "jumpHostPublicIp" in run.exports
    globs = [_pulumi_glob(p) for p in re.findall(r"--exclude '([^']+)'", _deploy_step("bootstrap"))]
    assert globs
    resources = run.mocks.resources
    excluded = {r.urn for r in resources if any(g.match(r.urn) for g in globs)}
    commands = {r.urn for r in resources if r.typ.startswith("command:")}
    assert commands and excluded == commands
    # --exclude-dependents: whatever depends on (or is parented to) an excluded resource is left out too.
    changed = True
    while changed:
        more = {r.urn for r in resources if r.urn not in excluded
                and (r.parent in excluded or excluded & set(r.options.get("dependencies", [])))}
        excluded |= more
        changed = bool(more)
    kept = {r.urn for r in resources} - excluded
    for typ, name in [("aws:ec2/securityGroup:SecurityGroup", "deployer"), ("aws:ec2/instance:Instance", "jumphost")]:
        assert any(typ in urn and name in urn.rsplit("::", 1)[1] for urn in kept), f"bootstrap leaves out {name}"
    assert all("command:" not in urn.rsplit("::", 2)[1] for urn in kept)


def test_the_deployer_group_opens_to_the_runner_only(stubs, tmp_path):
    """Guards against opening SSH wider than the runner's own address, or keeping a leftover rule of a dead run."""
    env, stub_dir, calls = stubs
    (stub_dir / "rules").write_text("sgr-0old\n")
    proc, out = _run_step(_deploy_step("open"), ROOT, {**env, "GROUP": "sg-0abc"}, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert out.splitlines() == ["group-id=sg-0abc"]
    aws = [c for c in calls() if c.startswith("aws ")]
    assert aws[1] == "aws ec2 revoke-security-group-ingress --group-id sg-0abc --security-group-rule-ids sgr-0old"
    assert aws[2].startswith("aws ec2 authorize-security-group-ingress --group-id sg-0abc --ip-permissions ")
    assert "IpProtocol=tcp,FromPort=22,ToPort=22,IpRanges=[{CidrIp=198.51.100.7/32," in aws[2]
    assert "Description=GitHub Actions run 4242}]" in aws[2]


def test_a_bad_address_keeps_the_group_closed_but_still_closes_it_after(stubs, tmp_path):
    """Guards against opening the group to whatever a web page answered, and against a failed open step that
    hides the group from the close step."""
    env, stub_dir, calls = stubs
    (stub_dir / "checkip").write_text("<html>rate limited</html>\n")
    proc, out = _run_step(_deploy_step("open"), ROOT, {**env, "GROUP": "sg-0abc"}, tmp_path)
    assert proc.returncode != 0
    assert "not an IPv4 address" in proc.stdout
    assert out.splitlines() == ["group-id=sg-0abc"]
    assert not [c for c in calls() if "authorize" in c]


@pytest.mark.parametrize("rules,revoked", [("sgr-01\tsgr-02\n", "sgr-01 sgr-02"), ("", None), ("None\n", None)])
def test_the_deployer_group_is_closed_whatever_it_holds(stubs, tmp_path, rules, revoked):
    """Guards against a close step that leaves a rule open, or fails on an already closed group."""
    env, stub_dir, calls = stubs
    (stub_dir / "rules").write_text(rules)
    proc, _ = _run_step(_deploy_step("close"), ROOT, {**env, "GROUP": "sg-0abc"}, tmp_path)
    assert proc.returncode == 0, proc.stderr
    revokes = [c for c in calls() if "revoke" in c]
    expected = [f"aws ec2 revoke-security-group-ingress --group-id sg-0abc --security-group-rule-ids {revoked}"]
    assert revokes == (expected if revoked else [])


def test_the_deployer_group_is_always_closed_with_fresh_credentials():
    """Guards against a rule left open after a failed or cancelled `pulumi up`, or a close step whose session
    expired during a long deploy."""
    steps = _steps("deploy.yml", "up")
    ids = [s.get("id") or s.get("name") for s in steps]
    up_index = steps.index(_pulumi_command_steps("deploy.yml", "up")[0])
    open_index, close_index = ids.index("open"), ids.index("close")
    assert open_index < up_index < close_index
    creds = steps[close_index - 1]
    assert _uses(creds, "aws-actions/configure-aws-credentials")
    for step in (creds, steps[close_index]):
        assert step["if"].startswith("always() &&") and "steps.open.outputs.group-id" in step["if"]
    assert steps[close_index]["env"]["GROUP"] == "${{ steps.open.outputs.group-id }}"
    first_line = _deploy_step("open").splitlines()[1]
    assert first_line.startswith('echo "group-id=$GROUP" >> "$GITHUB_OUTPUT"'), "the group id must be known first"


def _run_scripts() -> list[tuple[str, str]]:
    found = []
    for path in FILES:
        for job_name, job in yaml.safe_load(path.read_text())["jobs"].items():
            for i, step in enumerate(job.get("steps", [])):
                if "run" in step:
                    found.append((f"{path.name}:{job_name}:{step.get('id', i)}", step["run"]))
    return found


@pytest.mark.parametrize("where,script", _run_scripts(), ids=[w for w, _ in _run_scripts()])
def test_run_scripts_are_shellcheck_clean_and_take_values_from_env(where, script):
    """Guards against shell bugs in the pipeline, and against `${{ }}` expressions pasted into a script (an
    injection path): values reach scripts through `env:`."""
    assert "${{" not in script, f"{where}: pass the value through env:"
    proc = subprocess.run(["shellcheck", "-s", "bash", "-"], input="#!/usr/bin/env bash\n" + script,
                          capture_output=True, text=True)
    assert proc.returncode == 0, f"{where}:\n{proc.stdout}"


def test_dependabot_keeps_the_action_pins_current():
    """Guards against SHA pins that nobody updates (and a Dependabot file GitHub would reject)."""
    path = ROOT / ".github" / "dependabot.yml"
    proc = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.dependabot", str(path)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ecosystems = {u["package-ecosystem"] for u in yaml.safe_load(path.read_text())["updates"]}
    assert "github-actions" in ecosystems
