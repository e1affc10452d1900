"""The GitHub workflows: valid against GitHub's schema; third-party actions pinned by commit; the Pulumi CLI pinned;
preview, drift and deploy per stack in the stack's environment, with the stack list read from the Pulumi.*.yaml
files and skipped with a notice until the stacks are bootstrapped; secrets only in jobs bound to an environment,
never for forks; every AWS session outlasting the steps that use it; a daily drift check that also finds deployer
group rules left open; the recovery of a killed `pulumi up`; and the deploy job's deployer-group steps, run for
real against stub `pulumi`, `curl`, `aws` and `gh` commands. The policy pack has its own tests
(tests/program/test_policy.py), the lock its own (tests/repo/test_lock.py)."""

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

ROOT = Path(__file__).resolve().parents[2]
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
    floor = re.search(r"^pulumi>=([\d.]+)", (ROOT / "requirements.in").read_text(), re.M)
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
    assert "needs.stacks.outputs.ready == 'true'" in job["if"], "an unbootstrapped repository must skip, not fail"
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
    install = next((i for i, s in enumerate(steps) if "--require-hashes -r requirements.txt" in str(s.get("run"))),
                   None)
    assert install is not None and install < steps.index(runs[0]), \
        "pulumi/actions installs no dependencies: the lock must be installed into the venv of Pulumi.yaml first"
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


def _uses_aws(step: dict) -> bool:
    text = str(step.get("run", ""))
    return _uses(step, "pulumi/actions") and "command" in step.get("with", {}) or \
        bool(re.search(r"\b(pulumi|aws)\b|recover-stack", text))


@pytest.mark.parametrize("name,job", [(n, j) for n, (j, _) in STACK_JOBS.items()])
def test_every_aws_session_outlasts_the_steps_that_use_it(name, job):
    """Guards against credentials that expire in the middle of a step (a first deploy's bootstrap followed by a long
    `pulumi up` outlived one 3600 s session): every step after a credentials step has a timeout, the timeouts of
    the steps that share one session add up to less than its role-duration-seconds, and the job's own timeout
    leaves room for all of them (so the closing steps run)."""
    steps = _steps(name, job)
    budget, session, used = None, None, 0
    for index, step in enumerate(steps):
        if _uses(step, "aws-actions/configure-aws-credentials"):
            budget, session, used = int(step["with"]["role-duration-seconds"]), step.get("name", index), 0
            continue
        if budget is None:
            continue
        assert "timeout-minutes" in step, f"{name}: step {step.get('name') or step.get('id')} has no timeout"
        used += int(step["timeout-minutes"]) * 60
        if _uses_aws(step):
            assert used < budget, (f"{name}: the session of {session!r} ({budget} s) ends before step "
                                   f"{step.get('name') or step.get('id')!r} may end ({used} s)")
    assert budget is not None
    if name == "deploy.yml":
        assert all("timeout-minutes" in s for s in steps), "every deploy step has a timeout"
        total = sum(int(s["timeout-minutes"]) for s in steps)
        assert total <= int(_workflow(name)["jobs"][job]["timeout-minutes"]), \
            f"{name}: the steps may take {total} min, longer than the job's timeout, which would skip the close step"


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


BACKEND = "s3://state-bucket?region=eu-central-1"
INITIALISED = "encryptionsalt: v1:abc=:v1:def:ghi==\nconfig: {}\n"


def _stack_list(cwd: Path, tmp_path: Path, order: str = "", backend: str = BACKEND
                ) -> tuple[subprocess.CompletedProcess, list | None, str | None]:
    script = _step("stacks.yml", "list", "list")["run"]
    proc, out = _run_step(script, cwd, {"STACK_ORDER": order, "PULUMI_BACKEND_URL": backend}, tmp_path)
    values = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    return proc, json.loads(values["stacks"]) if "stacks" in values else None, values.get("ready")


def _repo(tmp_path: Path, stacks: dict[str, str]) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir(exist_ok=True)
    (repo / "Pulumi.yaml").write_text("name: x\n")
    for stack, text in stacks.items():
        (repo / f"Pulumi.{stack}.yaml").write_text(text)
    return repo


def test_the_stack_list_comes_from_the_stack_files(tmp_path):
    """Guards against a stack file that no pipeline picks up (the matrix is read from the files, not typed)."""
    repo = _repo(tmp_path, {s: INITIALISED for s in STACKS})
    proc, stacks, ready = _stack_list(repo, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert stacks == STACKS and stacks and ready == "true"


def test_a_new_stack_file_joins_every_pipeline_in_promotion_order(tmp_path):
    """Guards against a new stack needing a workflow edit, or deploying before the stacks it is promoted after."""
    repo = _repo(tmp_path, {s: INITIALISED for s in ("production", "dev", "staging", "sandbox")})
    proc, stacks, _ = _stack_list(repo, tmp_path, order="dev staging production ghost dev")
    assert proc.returncode == 0, proc.stderr
    assert stacks == ["dev", "staging", "production", "sandbox"]
    assert "::warning::STACK_ORDER names ghost" in proc.stdout


@pytest.mark.parametrize("files,backend,expected", [
    ({}, BACKEND, "No Pulumi.<stack>.yaml in the repository root"),
    ({"dev": INITIALISED}, "", "The repository variable PULUMI_BACKEND_URL is not set"),
    ({"dev": "config: {}\n"}, BACKEND, "Pulumi.dev.yaml holds no encryptionsalt or secretsprovider"),
])
def test_an_unbootstrapped_repository_skips_with_a_notice_naming_the_setup_step(tmp_path, files, backend, expected):
    """Guards against every workflow failing (or GitHub rejecting an empty matrix) on a repository whose stacks
    are not set up yet: the list step succeeds, says which set-up step is missing, and the per-stack jobs skip."""
    proc, stacks, ready = _stack_list(_repo(tmp_path, files), tmp_path, backend=backend)
    assert proc.returncode == 0, proc.stderr
    assert stacks == [] and ready == "false"
    (notice,) = [line for line in proc.stdout.splitlines() if line.startswith("::notice")]
    assert expected in notice and "Setting up a stack for the pipelines" in notice
    for name, (job, _) in STACK_JOBS.items():
        assert "needs.stacks.outputs.ready == 'true'" in _workflow(name)["jobs"][job]["if"]


def test_a_stack_not_initialised_in_the_backend_is_skipped_alone(tmp_path):
    """Guards against one new stack file (committed before `pulumi stack init`) failing every stack's pipeline,
    while Pulumi Cloud stacks (no encryptionsalt: the service encrypts) still count as bootstrapped."""
    repo = _repo(tmp_path, {"dev": "config: {}\n", "production": INITIALISED})
    proc, stacks, ready = _stack_list(repo, tmp_path)
    assert (stacks, ready) == (["production"], "true")
    assert "pulumi stack init dev --secrets-provider passphrase" in proc.stdout
    proc, stacks, _ = _stack_list(repo, tmp_path, backend="https://api.pulumi.com")
    assert stacks == ["dev", "production"]


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
    creds = next(s for s in reversed(steps[:close_index]) if _uses(s, "aws-actions/configure-aws-credentials"))
    assert steps.index(creds) > up_index
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


# ---- secrets out of reach of unreviewed code ---------------------------------------------------------------

def _jobs() -> list[tuple[str, str, dict]]:
    return [(path.name, name, job) for path in FILES for name, job in yaml.safe_load(path.read_text())["jobs"].items()]


def test_secrets_are_read_only_by_jobs_bound_to_a_stack_environment():
    """Guards against a passphrase that a job without an environment could read (a repository secret reaches any
    job of a same-repository pull request, the tests included): every `secrets.` reference sits in a job bound to
    the stack's environment, whose required reviewers hold it until a maintainer approves."""
    readers = []
    for workflow, name, job in _jobs():
        if "secrets." in yaml.safe_dump(job):
            assert job.get("environment", {}).get("name") == "${{ matrix.stack }}", \
                f"{workflow}:{name} reads a secret outside the stack's environment"
            readers.append(f"{workflow}:{name}")
    assert sorted(readers) == ["deploy.yml:up", "drift.yml:drift", "preview.yml:preview"]


def test_pull_requests_from_forks_and_dependabot_get_no_stack_preview():
    """Guards against `pull_request_target` (which hands a fork's code the base repository's secrets) and against
    previews that fail on every fork or Dependabot pull request, for want of secrets GitHub never gives them."""
    for path in FILES:
        triggers = yaml.safe_load(path.read_text())[True]
        assert not {"pull_request_target", "workflow_run"} & set(triggers), path.name
    condition = _workflow("preview.yml")["jobs"]["preview"]["if"]
    assert "github.event.pull_request.head.repo.full_name == github.repository" in condition
    assert "github.actor != 'dependabot[bot]'" in condition
    notice = next(s for s in _steps("preview.yml", "test") if "::notice" in str(s.get("run")))
    assert "head.repo.full_name != github.repository" in notice["if"]


# ---- recovery of a killed `pulumi up` ----------------------------------------------------------------------

STATE = {
    "version": 3,
    "deployment": {
        "manifest": {"time": "2026-11-29T22:00:00Z"},
        "secrets_providers": {"type": "passphrase", "state": {"salt": "v1:abc"}},
        "resources": [{"urn": "urn:pulumi:dev::wallarm-postanalytics::pulumi:pulumi:Stack::wallarm-postanalytics-dev",
                       "type": "pulumi:pulumi:Stack", "custom": False}],
        "pending_operations": [
            {"type": "creating", "resource": {
                "urn": "urn:pulumi:dev::wallarm-postanalytics::aws:ec2/instance:Instance::filtering-0-g1",
                "type": "aws:ec2/instance:Instance", "inputs": {"tags": {"Name": "filtering-0-g1"}}}},
            {"type": "updating", "resource": {
                "urn": "urn:pulumi:dev::wallarm-postanalytics::command:remote:Command::filtering-0-configure",
                "type": "command:remote:Command"}},
        ],
    },
}

RECOVER_STUB = """#!/usr/bin/env bash
printf '%s\\n' "$(basename "$0") $*" >> "$STUB_LOG"
case "$*" in
  cancel*) exit "$(cat "$STUB_DIR/cancel-exit" 2>/dev/null || echo 0)" ;;
  "stack export"*) cp "$STUB_DIR/state.json" "${@: -1}" ;;
  "stack import"*) cp "${@: -1}" "$STUB_DIR/imported.json" ;;
esac
"""


def _recover(tmp_path: Path, state: dict, cancel_exit: int = 0) -> tuple[subprocess.CompletedProcess, list[str]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    stub = bin_dir / "pulumi"
    stub.write_text(RECOVER_STUB)
    stub.chmod(0o755)
    (bin_dir / "state.json").write_text(json.dumps(state))
    (bin_dir / "cancel-exit").write_text(str(cancel_exit))
    log = tmp_path / "calls.log"
    log.write_text("")
    proc = subprocess.run(["bash", str(ROOT / ".ci" / "recover-stack"), "--stack", "dev"], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}",
                                                      "STUB_DIR": str(bin_dir), "STUB_LOG": str(log)})
    return proc, log.read_text().splitlines()


def test_recovery_releases_the_lock_and_resolves_pending_operations(tmp_path):
    """Guards against a timed-out or killed `pulumi up` that leaves the stack locked, or with pending operations
    that stop the next deploy; and against a recovery that silently forgets a resource AWS created: each pending
    create is named, with its Name tag, and everything else in the state is imported back unchanged."""
    proc, calls = _recover(tmp_path, STATE)
    assert proc.returncode == 0, proc.stderr
    assert calls[0] == "pulumi cancel --yes --non-interactive --stack dev"
    assert calls[1].startswith("pulumi stack export --stack dev --file ")
    assert calls[2].startswith("pulumi stack import --stack dev --file ")
    imported = json.loads((tmp_path / "bin" / "imported.json").read_text())
    expected = json.loads(json.dumps(STATE))
    del expected["deployment"]["pending_operations"]
    assert imported == expected
    warnings = [line for line in proc.stdout.splitlines() if line.startswith("::warning::")]
    assert len(warnings) == 2
    assert "pending creating of aws:ec2/instance:Instance filtering-0-g1" in warnings[0]
    assert "Name tag filtering-0-g1" in warnings[0] and "pulumi import" in warnings[0]
    assert "pending updating of command:remote:Command filtering-0-configure" in warnings[1]


def test_recovery_of_a_clean_stack_changes_nothing(tmp_path):
    """Guards against a recovery that re-imports (and so rewrites) a state that needs nothing, or fails when the
    lock is already gone."""
    clean = json.loads(json.dumps(STATE))
    del clean["deployment"]["pending_operations"]
    proc, calls = _recover(tmp_path, clean, cancel_exit=1)
    assert proc.returncode == 0, proc.stderr
    assert not [c for c in calls if "import" in c]
    assert "no pending operation" in proc.stderr


def test_the_deploy_recovers_after_a_failed_or_cancelled_up_or_bootstrap():
    """Guards against a recovery that never runs when it is needed (a timeout is a failure, a cancel is not), or
    that runs on the expired session of the `pulumi up` it follows; and a runner that died can be recovered by
    hand from the workflow's form."""
    steps = _steps("deploy.yml", "up")
    ids = [s.get("id") for s in steps]
    recover = steps[ids.index("recover")]
    assert recover["run"] == 'bash .ci/recover-stack --stack "$STACK"'
    for step_id in ("up", "bootstrap"):
        for outcome in ("failure", "cancelled"):
            assert f"steps.{step_id}.outcome == '{outcome}'" in recover["if"]
    assert recover["if"].startswith("always() &&")
    assert ids.index("up") < ids.index("recover") < ids.index("close")
    creds = next(s for s in reversed(steps[:ids.index("recover")]) if _uses(s, "aws-actions/configure-aws-credentials"))
    assert steps.index(creds) > ids.index("up") and recover["if"].split("&&", 1)[1].strip()[1:-1] in creds["if"]
    first = steps[ids.index("recover-first")]
    assert first["if"] == "inputs.recover" and first["run"] == recover["run"]
    assert _workflow("deploy.yml")[True]["workflow_dispatch"]["inputs"]["recover"]["type"] == "boolean"


# ---- the drift check's deployer group ------------------------------------------------------------------------

DRIFT_STUB = """#!/usr/bin/env bash
printf '%s\\n' "$(basename "$0") $*" >> "$STUB_LOG"
case "$(basename "$0") $*" in
  "pulumi stack output"*) cat "$STUB_DIR/group" ;;
  "aws ec2 describe-security-group-rules"*) cat "$STUB_DIR/rules" ;;
  "gh api"*) run="${2##*/}"; cat "$STUB_DIR/run-$run" 2>/dev/null || echo completed ;;
esac
"""


@pytest.mark.parametrize("rules,running,fails", [
    ("", set(), False),
    ("None\n", set(), False),
    ("sgr-01\t198.51.100.7/32\tGitHub Actions run 77\n", {"77"}, False),
    ("sgr-01\t198.51.100.7/32\tGitHub Actions run 77\n", set(), True),
    ("sgr-02\t0.0.0.0/0\topened by hand\n", set(), True),
])
def test_the_drift_check_fails_on_a_deployer_group_rule_left_open(tmp_path, rules, running, fails):
    """Guards against a rule that a dead runner (or a person) left on the deployer group, which `pulumi preview`
    cannot see (Pulumi manages no rule of that group), while a deploy in progress keeps its own rule."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("pulumi", "aws", "gh"):
        (bin_dir / name).write_text(DRIFT_STUB)
        (bin_dir / name).chmod(0o755)
    (bin_dir / "group").write_text("sg-0dep\n")
    (bin_dir / "rules").write_text(rules)
    for run in running:
        (bin_dir / f"run-{run}").write_text("in_progress\n")
    log = tmp_path / "calls.log"
    log.write_text("")
    step = _step("drift.yml", "drift", "deployer-group")
    assert step["if"] == "success() || failure()"
    proc, _ = _run_step(step["run"], ROOT, {"PATH": f"{bin_dir}:{os.environ['PATH']}", "STUB_DIR": str(bin_dir),
                                            "STUB_LOG": str(log), "STACK": "dev", "GITHUB_REPOSITORY": "o/r"},
                        tmp_path)
    errors = [line for line in proc.stdout.splitlines() if line.startswith("::error")]
    assert (proc.returncode != 0) is fails and bool(errors) is fails, proc.stdout + proc.stderr
    if fails:
        assert "sg-0dep, the deployer group of dev" in errors[0] and "revoke-security-group-ingress" in errors[0]
    assert _workflow("drift.yml")["jobs"]["drift"]["permissions"]["actions"] == "read"
