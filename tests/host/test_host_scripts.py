"""The host scripts, run for real against sandbox roots with the exact command text and stdin that the program
hands to each remote.Command (captured under mocks)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import urllib.parse
from pathlib import Path

import pytest
import yaml

from components import render
from harness.sandbox import Sandbox, installer_archive, replay
from tests.conftest import program_run

SCRIPTS = sorted((Path(__file__).resolve().parents[2] / "scripts").glob("*.sh"))
STUBS = sorted((Path(__file__).resolve().parents[2] / "harness" / "sandbox" / "bin").glob("[a-z]*"))
assert STUBS, "no sandbox stubs found: a moved folder would silently skip their checks"


def _ok(results):
    for r in results:
        assert r.returncode == 0, f"{r.step} failed ({r.returncode}): {r.stderr}"
    return results


STATE = "var/lib/wallarm-deploy/"


def _snapshot(sandbox: Sandbox) -> dict[str, tuple[bytes, int, int]]:
    """Every file under the sandbox root but the deploy scripts' own state (lock, journal): bytes, mode, mtime."""
    out = {}
    for p in sandbox.root.rglob("*"):
        if p.is_file() and not p.is_symlink() and not str(p.relative_to(sandbox.root)).startswith(STATE):
            st = p.stat()
            out[str(p.relative_to(sandbox.root))] = (p.read_bytes(), stat.S_IMODE(st.st_mode), st.st_mtime_ns)
    return out


def _yaml(sandbox: Sandbox, path: str) -> dict:
    return yaml.safe_load(sandbox.path(path).read_text())


def _restarts(sandbox: Sandbox) -> list[str]:
    return [c for c in sandbox.calls() if c.startswith(("systemctl restart", "systemctl reload"))]


def _applied(host: str, base: Path):
    """The dev stack's run and a sandbox where `host`'s steps all ran once."""
    run = program_run()
    sandbox = Sandbox(base / host)
    _ok(replay(run.mocks, host, sandbox))
    return run, sandbox


@pytest.fixture
def postanalytics(tmp_path):
    return _applied("postanalytics-0", tmp_path)


@pytest.fixture
def filtering(tmp_path):
    return _applied("filtering-0", tmp_path)


def test_first_run_installs_and_configures_postanalytics(postanalytics):
    """Guards against a postanalytics server left with the shipped listener, arena or no certificates."""
    run, sb = postanalytics
    calls = sb.calls()
    assert "installer batch=yes mode=postanalytics cloud=EU host=default labels=group=dev token=given" in calls
    assert _restarts(sb) == ["systemctl restart wallarm.service"]
    wstore = _yaml(sb, render.WSTORE_YAML)
    ip = run.exports["postanalyticsPrivateIps"][0]
    assert wstore["service"]["address"] == "127.0.0.1:3313"
    assert wstore["service"]["TLS"] == {
        "enabled": True, "address": f"{ip}:6388", "certFile": render.WSTORE_CERT, "keyFile": render.WSTORE_KEY,
        "caCertFile": render.WSTORE_CA, "mutualTLS": {"enabled": True, "clientCACertFile": render.WSTORE_CA}}
    assert _yaml(sb, render.NODE_YAML)["wstore"] == {"host": "127.0.0.1", "port": 3313}
    assert "SLAB_ALLOC_ARENA=1.0" in sb.path(render.ENV_LIST).read_text().splitlines()
    assert stat.S_IMODE(sb.path(render.WSTORE_KEY).stat().st_mode) == 0o600
    assert sb.path(render.WSTORE_CERT).read_text().startswith("-----BEGIN CERTIFICATE-----")


def test_keys_we_do_not_manage_survive(postanalytics):
    """Guards against a merge that drops the installer's own settings (metrics, logging, API credentials)."""
    _, sb = postanalytics
    wstore, node = _yaml(sb, render.WSTORE_YAML), _yaml(sb, render.NODE_YAML)
    assert wstore["service"]["protocol"] == "tcp"
    assert wstore["metrics"] == {"enabled": True, "listenAddress": "localhost:9001"}
    assert wstore["logging"] == {"level": "info", "format": "text"} and wstore["arena"] == {"blocks": 4096}
    assert node["api"] == {"uuid": "0b5d9a3e-0000-4000-8000-000000000001", "secret": "stub-node-secret",
                           "host": "api.wallarm.com", "port": 443}
    assert node["hostname"] == "stub-postanalytics"
    env = sb.path(render.ENV_LIST).read_text().splitlines()
    assert env[0] == "# Wallarm node environment" and "WALLARM_WSTORE__LOGGING__LEVEL=info" in env


def test_second_run_changes_nothing(postanalytics):
    """Guards against a `pulumi up` on an unchanged stack rewriting files or restarting wstore."""
    run, sb = postanalytics
    before = _snapshot(sb)
    sb.clear_calls()
    # An unchanged CopyToRemote copies nothing again; the steps run as they would if re-triggered.
    results = _ok(replay(run.mocks, "postanalytics-0", sb, upload=False))
    assert _snapshot(sb) == before
    assert _restarts(sb) == [] and not any(c.startswith(("installer", "curl")) for c in sb.calls())
    by_step = {r.step: r for r in results}
    assert "already installed: nothing to do" in by_step["install"].stderr
    assert "no change" in by_step["configure"].stderr
    assert json.loads(by_step["configure"].stdout) == {"name": "postanalytics-0", "changed": [], "restarted": False,
                                                          "resumed": False}


def test_changed_arena_changes_only_env_list_and_restarts_once(postanalytics):
    """Guards against a new arena that is not applied, or that rewrites more than it must."""
    _, sb = postanalytics
    before = _snapshot(sb)
    sb.clear_calls()
    changed = program_run(slabAllocArena="2.5")
    results = _ok(replay(changed.mocks, "postanalytics-0", sb, steps=("configure",), upload=False))
    after = _snapshot(sb)
    assert sorted(k for k in after if after[k] != before.get(k)) == [render.ENV_LIST.lstrip("/")]
    assert "SLAB_ALLOC_ARENA=2.5" in sb.path(render.ENV_LIST).read_text().splitlines()
    assert _restarts(sb) == ["systemctl restart wallarm.service"]
    assert json.loads(results[-1].stdout)["changed"] == [render.ENV_LIST]


def test_first_run_installs_nginx_then_filtering(filtering):
    """Guards against the filtering installer running before NGINX, or our file not being the live one."""
    run, sb = filtering
    calls = sb.calls()
    apt = calls.index("apt-get -o DPkg::Lock::Timeout=600 -qq install -y nginx")
    installer = next(i for i, c in enumerate(calls) if c.startswith("installer"))
    assert apt < installer and "mode=filtering" in calls[installer]
    conf = sb.path(render.NGINX_CONF).read_text()
    assert conf == json.loads(run.mocks.named("filtering-0-configure").inputs["stdin"])["files"][0]["content"]
    assert not sb.path(render.NGINX_DEFAULT_SITE).exists() and not sb.path(render.NGINX_DEFAULT_SITE).is_symlink()
    assert stat.S_IMODE(sb.path(render.NGINX_CLIENT_KEY).stat().st_mode) == 0o600
    assert calls.index("nginx -t -q") < calls.index("systemctl reload-or-restart nginx")
    assert "# wallarm_wstore_upstream wallarm_wstore;" in sb.path("/etc/nginx/nginx.conf").read_text()


def test_a_live_installer_directive_is_set_aside(filtering):
    """Guards against two live wallarm_wstore_upstream lines (NGINX refuses a duplicate directive)."""
    run, sb = filtering
    nginx_conf = sb.path("/etc/nginx/nginx.conf")
    nginx_conf.write_text(nginx_conf.read_text().replace("# wallarm_wstore_upstream", "wallarm_wstore_upstream"))
    sb.path(render.NGINX_CONF).write_text("# drifted\n")  # force a change so the check and reload run
    _ok(replay(run.mocks, "filtering-0", sb, steps=("configure",), upload=False))
    live = [line for line in nginx_conf.read_text().splitlines() if line.strip().startswith("wallarm_wstore_upstream")]
    assert live == [], live
    assert "disabled by wallarm-deploy" in nginx_conf.read_text()


def test_changed_upstream_changes_only_our_file_and_reloads_once(filtering):
    """Guards against a new postanalytics server not reaching NGINX, or a reload without a change."""
    _, sb = filtering
    before = _snapshot(sb)
    sb.clear_calls()
    grown = program_run(postanalyticsCount=2)
    _ok(replay(grown.mocks, "filtering-0", sb, steps=("configure",), upload=False))
    after = _snapshot(sb)
    assert [k for k in after if after[k] != before.get(k)] == [render.NGINX_CONF.lstrip("/")]
    conf = sb.path(render.NGINX_CONF).read_text()
    for ip in grown.exports["postanalyticsPrivateIps"]:
        assert f"server {ip}:6388 max_fails=0 fail_timeout=0 max_conns=1;" in conf
    assert _restarts(sb) == ["systemctl reload-or-restart nginx"]


def test_failed_nginx_check_restores_the_previous_file(filtering):
    """Guards against a broken NGINX file left in place (the next restart would take the node down)."""
    _, sb = filtering
    before = _snapshot(sb)
    sb.clear_calls()
    grown = program_run(postanalyticsCount=2)
    [result] = replay(grown.mocks, "filtering-0", sb, steps=("configure",), upload=False,
                      STUB_NGINX_T_FAIL="unknown directive")
    assert result.returncode == 1
    assert "check `nginx -t -q` failed" in result.stderr and "previous configuration was restored" in result.stderr
    assert {k: v[0] for k, v in _snapshot(sb).items()} == {k: v[0] for k, v in before.items()}
    assert _restarts(sb) == []
    assert not list(sb.path("/etc/nginx/conf.d").glob(".wallarm-deploy-*")), "a temporary file was left"


def test_failed_restart_restores_and_restarts_on_the_old_files(postanalytics):
    """Guards against wstore left down on a configuration it could not start with."""
    _, sb = postanalytics
    before = {k: v[0] for k, v in _snapshot(sb).items()}
    sb.clear_calls()
    changed = program_run(slabAllocArena="3")
    [result] = replay(changed.mocks, "postanalytics-0", sb, steps=("configure",), upload=False,
                      STUB_SYSTEMCTL_FAIL="restart")
    assert result.returncode == 1 and "systemctl restart wallarm.service` failed" in result.stderr
    assert {k: v[0] for k, v in _snapshot(sb).items()} == before
    assert _restarts(sb) == ["systemctl restart wallarm.service"] * 2
    # wstore is down: the journal stays, so the next run restarts it even if no file changes.
    assert "the next run restarts it again" in result.stderr
    assert sb.path("/var/lib/wallarm-deploy/apply-journal.json").exists()


def test_installer_failure_is_reported_without_the_token(tmp_path):
    """Guards against a failed registration that passes, or that prints the token in the Pulumi log."""
    bad = program_run(wallarmToken="invalidTokenForTheStubInstaller0123")
    sb = Sandbox(tmp_path / "bad")
    results = replay(bad.mocks, "postanalytics-0", sb)
    assert results[-1].step == "install" and results[-1].returncode == 1
    assert "the Wallarm installer exited with 1" in results[-1].stderr
    assert "token invalid" not in results[-1].stderr and "token ***" in results[-1].stderr
    assert "invalidTokenForTheStubInstaller0123" not in results[-1].stderr + results[-1].stdout
    assert not sb.path("/var/lib/wallarm-deploy/installed").exists()


def test_download_failure_after_retries(tmp_path):
    """Guards against a download that gives up at once, or never."""
    sb = Sandbox(tmp_path / "dl", env={"STUB_DOWNLOAD_FAILS": "always"})
    results = replay(program_run().mocks, "postanalytics-0", sb)
    assert results[-1].step == "install" and results[-1].returncode == 1
    assert "failed after 5 attempts" in results[-1].stderr
    assert sum(c.startswith("curl https://meganode") for c in sb.calls()) == 5
    assert sb.calls().count("sleep 10") == 4
    assert not sb.path("/opt/wallarm").exists()


def test_download_recovers_within_retries(tmp_path):
    """Guards against a transient download failure failing the deployment."""
    sb = Sandbox(tmp_path / "dl2", env={"STUB_DOWNLOAD_FAILS": "2"})
    _ok(replay(program_run().mocks, "postanalytics-0", sb))
    assert sum(c.startswith("curl https://meganode") for c in sb.calls()) == 3


def test_configure_before_install_fails_and_changes_nothing(tmp_path):
    """Guards against a half-configured host when the files the installer writes are missing."""
    sb = Sandbox(tmp_path / "early")
    run = program_run()
    [result] = replay(run.mocks, "postanalytics-0", sb, steps=("configure",))
    assert result.returncode == 2
    assert f"missing file {render.ENV_LIST}" in result.stderr and "nothing was changed" in result.stderr
    assert not sb.path(render.WSTORE_KEY).exists()


@pytest.mark.parametrize("stdin,words", [
    ("not json", "standard input is not JSON"),
    ('{"files": [{"path": "relative/x", "content": "", "mode": "0644"}]}', "absolute path"),
    ('{"files": [{"path": "/etc/nginx/x", "content": "", "mode": "rwx"}]}', "octal mode"),
    ('{"surprise": 1}', "unknown keys"),
    ('{"env": [{"path": "/opt/wallarm/env.list", "set": {"bad key": "1"}}]}', "bad variable"),
], ids=["not-json", "relative-path", "bad-mode", "unknown-key", "bad-env"])
def test_malformed_spec_is_refused(postanalytics, stdin, words):
    """Guards against a malformed spec writing anything."""
    run, sb = postanalytics
    before = _snapshot(sb)
    result = sb.run("configure", run.mocks.named("postanalytics-0-configure").inputs["create"], stdin)
    assert result.returncode == 2 and words in result.stderr, result.stderr
    assert _snapshot(sb) == before


def test_unhealthy_node_fails_with_its_name(filtering):
    """Guards against `pulumi up` succeeding while a filtering node cannot write to wstore."""
    run, sb = filtering
    [result] = replay(run.mocks, "filtering-0", sb, steps=("health",), upload=False, STUB_TNT_ERRORS_PER_ATTACK="2")
    assert result.returncode == 1
    assert "filtering node filtering-0 is unhealthy: tnt_errors grew from 0 to 2 during the check" in result.stderr


def test_healthy_node_passes_despite_old_errors(filtering):
    """Guards against an error counted before this configuration failing every later `pulumi up`."""
    run, sb = filtering
    sb.reset_counters()
    sb.clear_calls()
    [result] = replay(run.mocks, "filtering-0", sb, steps=("health",), upload=False, STUB_TNT_ERRORS_BEFORE="7")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"node": "filtering-0", "attack_counted": True, "tnt_errors_before": 7,
                                         "tnt_errors": 7}
    calls = [c for c in sb.calls() if c.startswith("curl http://")]
    assert calls[0].endswith("/wallarm-status") and calls[1] == "curl http://localhost/etc/passwd", calls


@pytest.mark.parametrize("script", SCRIPTS + STUBS, ids=lambda p: p.name)
def test_shell_scripts_parse(script):
    """Guards against a syntax error that only shows on a real host."""
    shell = "sh" if script.read_text().startswith("#!/bin/sh") else "bash"
    proc = subprocess.run([shell, "-n", str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_shellcheck():
    """Guards against the shell pitfalls shellcheck knows (quoting, unset variables, subshell traps)."""
    if shutil.which("shellcheck") is None:
        if os.environ.get("CI"):
            pytest.fail("shellcheck is not installed; .ci/run installs it")
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    targets = [str(p) for p in SCRIPTS + STUBS + [STUBS[0].parent.parent / "wallarm-installer.sh"]]
    proc = subprocess.run(["shellcheck", "-x", *targets], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


def test_bad_mode_is_refused_by_the_wrapper_and_the_installer(tmp_path):
    """Guards against an install in the wrong mode (or both parts on one host) going unnoticed."""
    run = program_run()
    sb = Sandbox(tmp_path / "mode")
    _ok(replay(run.mocks, "postanalytics-0", sb, steps=("wait",)))
    create = run.mocks.named("postanalytics-0-install").inputs["create"].replace("--mode postanalytics", "--mode both")
    result = sb.run("install", create, "SomeToken0123456789abcdef\n")
    assert result.returncode == 1 and "--mode must be postanalytics or filtering, got 'both'" in result.stderr
    assert not any(c.startswith(("curl", "installer")) for c in sb.calls())
    stub = subprocess.run(["sh", str(STUBS[0].parent.parent / "wallarm-installer.sh"), "--", "--batch", "-t",
                           "SomeToken0123456789abcdef", "-c", "EU"], capture_output=True, text=True, env=sb.env())
    assert stub.returncode != 0 and "knows postanalytics and filtering only" in stub.stderr


WAIT = str(Path(__file__).resolve().parents[2] / "scripts" / "wait-for-boot.sh")


@pytest.mark.parametrize("timeout", ["0", "-5", "000", "abc", "1.5"])
def test_wait_for_boot_refuses_a_timeout_that_is_not_positive(tmp_path, timeout):
    """Guards against `--timeout 0` (or a negative one) turning into "wait forever" or "fail at once"."""
    sb = Sandbox(tmp_path / "wait")
    result = sb.run("wait", f"bash {WAIT} --timeout {timeout}")
    assert result.returncode == 1
    assert f"--timeout must be a positive whole number of seconds, got '{timeout}'" in result.stderr
    assert sb.calls() == [], "it waited for something before refusing"


@pytest.mark.parametrize("state,ok", [("running", True), ("degraded", True), ("maintenance", False)])
def test_wait_for_boot_without_cloud_init_asks_systemd(tmp_path, state, ok):
    """Guards against a custom image without cloud-init failing the deployment, or one that never finished booting
    passing it."""
    sb = Sandbox(tmp_path / "nocloud")
    result = sb.run("wait", f"bash {WAIT} --timeout 30", PATH=sb.path_without("cloud-init"),
                    STUB_SYSTEM_STATE=state)
    assert (result.returncode == 0) is ok, result.stderr
    assert sb.calls() == ["systemctl is-system-running --wait"]
    if ok:
        assert f"systemd reports {state}" in result.stderr
    else:
        assert "systemd reports 'maintenance' (exit 1), not running or degraded" in result.stderr


INSTALL = str(Path(__file__).resolve().parents[2] / "scripts" / "install-wallarm.sh")
URL = "https://meganode.wallarm.com/6.12/wallarm-6.12.1.{arch}-glibc.sh"


def _install(sb: Sandbox, token: str, *extra: str, arch: str = "x86_64", **env: str):
    """install-wallarm.sh straight from the repository, as the install step runs it (token on stdin)."""
    command = (f"bash {INSTALL} --version 6.12.1 --arch {arch} --url {URL.format(arch=arch)} --mode postanalytics "
               f"--cloud EU --retry-delay 0 {' '.join(extra)}")
    return sb.run("install", command, token + "\n", **env)


def test_pinned_digest_admits_the_vetted_installer_only(tmp_path):
    """Guards against a changed or tampered download running as root when the team pinned what it vetted."""
    good = hashlib.sha256(installer_archive()).hexdigest()
    sb = Sandbox(tmp_path / "pinned")
    result = _install(sb, "GoodToken0123456789abcdef", "--sha256", good)
    assert result.returncode == 0, result.stderr
    assert "matches the pinned SHA-256" in result.stderr

    other = Sandbox(tmp_path / "tampered")
    result = _install(other, "GoodToken0123456789abcdef", "--sha256", good, STUB_DOWNLOAD_BODY="tampered")
    named = re.search(rf"has SHA-256 ([0-9a-f]{{64}}), but --sha256 pins {good}", result.stderr)
    assert result.returncode == 1 and named and named.group(1) != good, result.stderr
    assert not any(c.startswith("installer") for c in other.calls()), "the tampered download ran"
    assert not other.path("/var/lib/wallarm-deploy/installed").exists()
    assert not list(other.path("/var/lib/wallarm-deploy").glob("wallarm-*.sh")), "the refused download was kept"

    bad = _install(Sandbox(tmp_path / "format"), "GoodToken0123456789abcdef", "--sha256", good.upper())
    assert bad.returncode == 1 and "--sha256 must be 64 lowercase hex digits" in bad.stderr


@pytest.mark.parametrize("host,arch,ok", [("x86_64", "x86_64", True), ("aarch64", "aarch64", True),
                                          ("aarch64", "x86_64", False), ("x86_64", "aarch64", False)])
def test_installer_architecture_must_match_the_host(tmp_path, host, arch, ok):
    """Guards against an installer for the other architecture being downloaded and run (it cannot work)."""
    sb = Sandbox(tmp_path / "arch")
    result = _install(sb, "GoodToken0123456789abcdef", arch=arch, STUB_UNAME_M=host)
    assert (result.returncode == 0) is ok, result.stderr
    if not ok:
        assert f"--arch is {arch} but this host is {host} (uname -m)" in result.stderr
        assert not any(c.startswith("curl") for c in sb.calls())


def _token_forms(token: str) -> list[str]:
    """How a token can show in text: as is, URL-encoded, and base64 at each of the three alignments (a 16-character
    window that only the token's bytes determine)."""
    forms = [token, urllib.parse.quote(token, safe="")]
    for pad in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            forms.append(encode(b"\0" * pad + token.encode()).decode()[4:20])
    return forms


def test_no_token_survives_in_output_or_logs_across_rotation(tmp_path):
    """Guards against a token (the current one, a rotated-away one, or an encoding of either) shown to Pulumi or
    left in a log on the host."""
    old, new = "invalidOldToken0123456789abcdefXYZ+/==", "invalidNewToken9876543210ZYXfedcba/+=="
    sb = Sandbox(tmp_path / "rotation")
    first = _install(sb, old)
    assert first.returncode == 1
    forms_old, forms_new = _token_forms(old), _token_forms(new)
    leak = (f"echo old -t {old}; token={old}; b64 {base64.b64encode(new.encode()).decode()}; "
            f"url {urllib.parse.quote(new, safe='')}; "
            f"header {base64.b64encode(b'Authorization: Bearer ' + new.encode()).decode()}")
    second = _install(sb, new, STUB_INSTALLER_SAY=leak)
    assert second.returncode == 1 and "the Wallarm installer exited with 1" in second.stderr
    shown = first.stdout + first.stderr + second.stdout + second.stderr
    logs = {p: p.read_text(errors="replace") for p in sb.path("/var/log/wallarm-deploy").iterdir()}
    for form in forms_old + forms_new:
        assert form not in shown, f"{form!r} shown to Pulumi"
        for path, text in logs.items():
            assert form not in text, f"{form!r} kept in {path}"
    assert "header ***" in second.stderr or "header " in second.stderr  # the masked line is still shown
    for path in logs:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path

    good = "GoodToken0123456789abcdefGHIJKLMNOP"
    third = _install(sb, good, STUB_INSTALLER_SAY=f"registered with {base64.b64encode(good.encode()).decode()}")
    assert third.returncode == 0, third.stderr
    log_text = sb.path("/var/log/wallarm-deploy/install.log").read_text()
    assert "Installation finished (stub)" in log_text, "the log of a successful install was lost"
    assert not any(form in log_text for form in _token_forms(good)), "the install log keeps the token"
    assert old not in log_text and new not in log_text


HEALTH = str(Path(__file__).resolve().parents[2] / "scripts" / "health-check.sh")


def test_health_check_in_mode_off_says_what_it_could_not_judge(tmp_path):
    """Guards against wallarm_mode off failing every health check (nothing is analysed, so no attack is ever
    counted), and against it hiding a growing error count."""
    sb = Sandbox(tmp_path / "off")
    command = f"bash {HEALTH} --node filtering-0 --wallarm-mode off --attempts 2 --interval 0"
    result = sb.run("health", command, STUB_ATTACK_UNSEEN="1")
    assert result.returncode == 0, result.stderr
    assert "wallarm_mode off: Wallarm analyses nothing, so only the status and tnt_errors were checked" in result.stderr
    assert json.loads(result.stdout)["attack_counted"] is False
    sb.reset_counters()
    result = sb.run("health", command, STUB_TNT_ERRORS_PER_ATTACK="1")
    assert result.returncode == 1 and "tnt_errors grew from 0 to 1" in result.stderr
    bad = sb.run("health", f"bash {HEALTH} --node filtering-0 --wallarm-mode blocking")
    assert bad.returncode == 1 and "--wallarm-mode must be off, monitoring, safe_blocking or block" in bad.stderr


# ------------------------------------------------------------------------------------------- staging (wait step)
def _stage(home: Path, files: dict[str, str], then: list[str]) -> subprocess.CompletedProcess:
    from components.host import stage_script
    return subprocess.run(["bash", "-s"], input=stage_script(files, then), capture_output=True, text=True,
                          env={**os.environ, "HOME": str(home)}, cwd=home, timeout=30)


def test_the_wait_step_stages_every_script_byte_for_byte(tmp_path):
    """Guards against a staged script that differs from the repository's (quoting, a line `EOF`, no final
    newline), and against a command after the staging that eats the rest of the script from stdin."""
    files = {"a.sh": "echo 'quoted' \"$HOME\"\nEOF\n", "b.py": "print('é')", "c.sh": ""}
    result = _stage(tmp_path, files, ["read -r line && echo ate-stdin || echo no-stdin", "cat ~/wallarm-deploy/b.py"])
    assert result.returncode == 0, result.stderr
    assert result.stdout == "no-stdin\nprint('é')"
    for name, text in files.items():
        staged = tmp_path / "wallarm-deploy" / name
        assert staged.read_text() == text, name
        assert stat.S_IMODE(staged.stat().st_mode) == 0o644, name
    assert sorted(p.name for p in (tmp_path / "wallarm-deploy").iterdir()) == sorted(files), "a temporary file stayed"


def test_a_second_staging_touches_nothing_and_a_failure_stops_the_step(tmp_path):
    """Guards against a re-run (any edited script re-runs the wait step on every host) that rewrites unchanged
    files, and against a failed boot wait that goes on to name the host."""
    assert _stage(tmp_path, {"a.sh": "one\n"}, []).returncode == 0
    before = (tmp_path / "wallarm-deploy" / "a.sh").stat()
    result = _stage(tmp_path, {"a.sh": "one\n", "b.sh": "two\n"}, ["false", "echo named"])
    after = (tmp_path / "wallarm-deploy" / "a.sh").stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns), "an unchanged file was rewritten"
    assert (tmp_path / "wallarm-deploy" / "b.sh").read_text() == "two\n"
    assert result.returncode != 0 and "named" not in result.stdout
