"""The host scripts, run for real against sandbox roots with the exact command text and stdin that the program
hands to each remote.Command (captured under mocks)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from components import render
from tests.conftest import program_run
from tools.sandbox import Sandbox, replay

SCRIPTS = sorted((Path(__file__).resolve().parent.parent / "scripts").glob("*.sh"))
STUBS = sorted((Path(__file__).resolve().parent.parent / "tools" / "sandbox" / "bin").glob("[a-z]*"))


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
    [result] = replay(run.mocks, "filtering-0", sb, steps=("health",), upload=False,
                      STUB_STATUS_JSON='{"requests": 3, "tnt_errors": 2}')
    assert result.returncode == 1
    assert "filtering node filtering-0 is unhealthy: tnt_errors is 2 after 20 checks" in result.stderr


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
