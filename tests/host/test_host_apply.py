"""scripts/apply_spec.py run for real in sandbox roots: YAML edited in place (comments, anchors and YAML 1.1 values
kept), env files, owners and modes of merged files, exact rollback (symlinks, created directories, owners), signals,
non-UTF-8 command output, and the journal that completes an interrupted run."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import yaml

from components import render
from harness.sandbox import APPLY_FILES, Sandbox
from tests.helpers import WSTORE_HOSTILE

CERT, KEY, CA = "-----BEGIN CERTIFICATE-----\nsrv\n", "-----BEGIN PRIVATE KEY-----\nk\n", "-----BEGIN CA-----\n"


def pa_spec(ip: str = "10.0.1.5", arena: str = "1.0", tls: bool = True, mutual: bool = True) -> dict:
    return render.postanalytics_spec(name="postanalytics-0", private_ip=ip, arena=arena, port=3313, tls_port=6388,
                                     tls=tls, mutual_tls=mutual, server_cert=CERT, server_key=KEY, ca_cert=CA)


def f_spec(conf: str = "# ours\nwallarm_wstore_upstream wallarm_wstore ssl=on;\n") -> dict:
    return render.filtering_spec(name="filtering-0", nginx_conf=conf, tls=True, mutual_tls=True, ca_cert=CA,
                                 client_cert=CERT, client_key=KEY)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """One sandbox per role where the install step ran (cloned for each test)."""
    base = tmp_path_factory.mktemp("installed")
    out = {}
    for role in ("postanalytics", "filtering"):
        out[role] = Sandbox(base / role)
        out[role].install(role)
    return out


@pytest.fixture
def pa(installed, tmp_path) -> Sandbox:
    return installed["postanalytics"].clone(tmp_path / "pa")


@pytest.fixture
def fl(installed, tmp_path) -> Sandbox:
    return installed["filtering"].clone(tmp_path / "fl")


def _ok(proc):
    assert proc.returncode == 0, proc.stderr.decode()
    return json.loads(proc.stdout)


def _restarts(sb: Sandbox) -> list[str]:
    return [c for c in sb.calls() if c.startswith(("systemctl restart", "systemctl reload"))]


def test_yaml_edit_keeps_comments_anchors_and_unmanaged_values(pa):
    """Guards against a merge that re-dumps wstore.yaml: comments gone, anchors expanded, `off`/`1:30`/`0640`/`1.10`
    rewritten into other text (or other values)."""
    path = pa.path(render.WSTORE_YAML)
    path.write_text(WSTORE_HOSTILE)
    before = yaml.safe_load(WSTORE_HOSTILE)
    _ok(pa.apply(pa_spec()))
    text = path.read_text()
    managed = {k.split(".")[-1] for k in render.wstore_settings("10.0.1.5", 3313, 6388, True, True)}
    kept = [line for line in WSTORE_HOSTILE.splitlines() if line.split(":")[0].strip() not in managed]
    lines = text.splitlines()
    positions = [lines.index(line) for line in kept]  # every unmanaged line, verbatim...
    assert positions == sorted(positions), "unmanaged lines were reordered"  # ...and in its order
    after = yaml.safe_load(text)
    expected = json.loads(json.dumps(before, default=str))
    for dotted, value in render.wstore_settings("10.0.1.5", 3313, 6388, True, True).items():
        node = expected
        for part in dotted.split(".")[:-1]:
            node = node.setdefault(part, {})
        node[dotted.split(".")[-1]] = value
    assert json.loads(json.dumps(after, default=str)) == expected
    assert after["metrics"]["enabled"] is False and after["metrics"]["mode"] == 0o640
    assert after["metrics"]["version"] == 1.1 and after["logging"]["rotate"] == 90
    assert "# TLS comes later" in text and "&logdefaults" in text and "*logdefaults" in text


def test_yaml_inserted_keys_follow_the_files_indentation(pa):
    """Guards against inserted keys at another indentation than the file's (YAML that loads, but differently)."""
    path = pa.path(render.WSTORE_YAML)
    path.write_text(WSTORE_HOSTILE)
    _ok(pa.apply(pa_spec()))
    lines = path.read_text().splitlines()
    assert "        mutualTLS:" in lines and "            enabled: true" in lines
    assert all(len(line) - len(line.lstrip()) in (0, 4, 8, 12) for line in lines if line.strip())


def test_yaml_with_the_right_meaning_is_not_rewritten(pa):
    """Guards against a rewrite (and a restart) because the file quotes or orders values differently."""
    _ok(pa.apply(pa_spec()))
    path = pa.path(render.WSTORE_YAML)
    text = path.read_text().replace("address: 127.0.0.1:3313", "address: '127.0.0.1:3313'")
    path.write_text(text)
    mtime = path.stat().st_mtime_ns
    pa.clear_calls()
    assert _ok(pa.apply(pa_spec()))["changed"] == []
    assert path.stat().st_mtime_ns == mtime and _restarts(pa) == []


@pytest.mark.parametrize("text,words", [
    ("service:\n  address: &a 0.0.0.0:3313\nmetrics:\n  listenAddress: *a\n", "would also change metrics"),
    ("service:\n  TLS: false\n", "because service.TLS is False, not a mapping"),
    ("service:\n  address: [0.0.0.0, 3313]\n", "service.address is a list, not one value"),
    ("- service\n", "is not a YAML mapping"),
], ids=["shared-anchor", "scalar-for-mapping", "list-for-value", "not-a-mapping"])
def test_yaml_edits_that_would_change_other_keys_are_refused(pa, text, words):
    """Guards against an edit that silently changes a key we do not manage (through an anchor) or guesses."""
    path = pa.path(render.WSTORE_YAML)
    path.write_text(text)
    proc = pa.apply(pa_spec())
    assert proc.returncode == 2 and words in proc.stderr.decode(), proc.stderr.decode()
    assert path.read_text() == text and _restarts(pa) == []


@pytest.mark.parametrize("text", [
    "service:\n  TLS:\n  address: x\n",
    "service:\n  TLS: ~   # later\n",
    "service: {address: 0.0.0.0:3313, TLS: {}}\n",
    "",
    "# only comments\n",
    "service:\r\n  address: x\r\n",
    "service:\n  address: x",
], ids=["empty-value", "tilde", "flow", "empty-file", "comments-only", "crlf", "no-final-newline"])
def test_yaml_shapes_are_edited_to_the_right_meaning(pa, text):
    """Guards against YAML forms (null sections, flow mappings, CRLF, no final newline) that break the editor."""
    path = pa.path(render.WSTORE_YAML)
    path.write_bytes(text.encode())
    _ok(pa.apply(pa_spec()))
    after = yaml.safe_load(path.read_text())
    for dotted, value in render.wstore_settings("10.0.1.5", 3313, 6388, True, True).items():
        node = after
        for part in dotted.split("."):
            node = node[part]
        assert node == value and type(node) is type(value), dotted
    if "# later" in text or "# only" in text:
        assert "# later" in path.read_text() or "# only comments" in path.read_text()


def test_env_export_lines_quotes_and_no_final_newline(pa):
    """Guards against an `export NAME=` line not recognised (a second, conflicting line appended), or a rewrite
    and restart when the value is already right but quoted or on a last line without a newline."""
    env = pa.path(render.ENV_LIST)
    _ok(pa.apply(pa_spec()))
    for text in ('# env\nexport SLAB_ALLOC_ARENA="1.0"\nOTHER=\xff\n'.encode("latin-1"),
                 b"# env\nSLAB_ALLOC_ARENA=1.0"):
        env.write_bytes(text)
        mtime = env.stat().st_mtime_ns
        pa.clear_calls()
        assert _ok(pa.apply(pa_spec()))["changed"] == [], text
        assert env.read_bytes() == text and env.stat().st_mtime_ns == mtime and _restarts(pa) == []
    env.write_bytes(b"# env\nexport SLAB_ALLOC_ARENA=1.0\nOTHER=\xff")
    _ok(pa.apply(pa_spec(arena="2.5")))
    assert env.read_bytes() == b"# env\nexport SLAB_ALLOC_ARENA=2.5\nOTHER=\xff"
    env.write_bytes(b"# env\nOTHER=1")
    _ok(pa.apply(pa_spec(arena="2.5")))
    assert env.read_bytes() == b"# env\nOTHER=1\nSLAB_ALLOC_ARENA=2.5\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="owners other than oneself need root, as apply_spec.py has on a host")
def test_merged_files_keep_owner_group_and_mode(pa):
    """Guards against wstore.yaml, node.yaml or env.list coming back as root:root 0644 after a merge."""
    paths = [render.ENV_LIST, render.WSTORE_YAML, render.NODE_YAML]
    for i, p in enumerate(paths):
        os.chown(pa.path(p), 1000 + i, 2000 + i)
        os.chmod(pa.path(p), 0o640)
    result = _ok(pa.apply(pa_spec(arena="3.0")))
    assert set(paths) <= set(result["changed"])
    for i, p in enumerate(paths):
        st = pa.path(p).stat()
        assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (1000 + i, 2000 + i, 0o640), p


@pytest.mark.skipif(os.geteuid() != 0, reason="owners other than oneself need root, as apply_spec.py has on a host")
def test_failed_check_puts_everything_back_exactly(fl):
    """Guards against a rollback that turns the default site's symlink into a file, leaves new files or new
    directories behind, or loses a mode or owner."""
    ours = fl.path(render.NGINX_CONF)
    ours.write_text("# drifted\n")
    os.chown(ours, 1234, 4321)
    os.chmod(ours, 0o640)
    before = fl.tree()
    assert before["etc/nginx/sites-enabled/default"][0] == "link"
    proc = fl.apply(f_spec("# ours\nSTUB_INVALID;\n"))
    assert proc.returncode == 1 and "check `nginx -t -q` failed" in proc.stderr.decode()
    assert fl.tree() == before
    assert not fl.path("/etc/nginx/wallarm").exists(), "a directory created by the failed run was left"
    assert fl.temporary_files() == [] and fl.journal() is None


def test_a_signal_during_the_restart_rolls_back(fl):
    """Guards against a cancelled `pulumi up` (SIGTERM, SIGHUP) leaving half-applied files behind."""
    before = fl.tree()
    spec = f_spec()
    spec["on_change"] = [["sh", "-c", "kill -TERM $PPID; sleep 5"]]
    proc = fl.apply(spec)
    assert proc.returncode == 1, proc.stderr.decode()
    assert "interrupted by signal SIGTERM" in proc.stderr.decode() and "restored" in proc.stderr.decode()
    assert "Traceback" not in proc.stderr.decode()
    assert fl.tree() == before and fl.journal() is None


def test_check_output_that_is_not_utf8_is_shown_safely_and_rolls_back(fl):
    """Guards against a crash (and no rollback) when a check prints bytes that are not UTF-8."""
    before = fl.tree()
    spec = f_spec()
    spec["check"] = [["sh", "-c", r"printf 'bad \377\376 bytes\033[31m\n' >&2; exit 1"]]
    proc = fl.apply(spec)
    err = proc.stderr.decode("utf-8")  # strict: the message itself is valid UTF-8
    assert proc.returncode == 1 and r"bad \xff\xfe bytes?[31m" in err, err
    assert "\x1b" not in err and fl.tree() == before


def test_an_interrupted_apply_is_completed_by_the_next_run(installed, tmp_path):
    """Guards against a re-run that finds matching files, says "no change" and leaves NGINX on the old
    configuration (the issue's dropped SSH session)."""
    witness = installed["filtering"].clone(tmp_path / "witness")
    trace = tmp_path / "trace"
    _ok(witness.apply(f_spec(), WALLARM_APPLY_TRACE=str(trace)))
    # The same apply, killed right after its last file was written, before the check and the reload.
    last_write = max(int(line.split()[0]) for line in trace.read_text().splitlines()
                     if " wrote " in line or " removed " in line)
    sb = installed["filtering"].clone(tmp_path / "killed")
    killed = sb.apply(f_spec(), WALLARM_APPLY_CRASH_AT=str(last_write))
    assert killed.returncode == 99 and sb.journal() is not None
    assert sb.loaded("nginx") != sb.manifest("nginx"), "the reload ran before the kill"
    sb.clear_calls()
    result = _ok(sb.apply(f_spec()))
    assert result["resumed"] is True and result["changed"] == []
    assert sb.calls().count("nginx -t -q") == 1 and _restarts(sb) == ["systemctl reload-or-restart nginx"]
    assert sb.loaded("nginx") == sb.manifest("nginx") and sb.journal() is None
    assert sb.tree() == witness.tree()


def test_paths_outside_the_managed_roots_are_refused(fl):
    """Guards against a spec (or a bug in one) that writes or removes a file the deployment does not own."""
    before = fl.tree()
    for path in ("/etc/passwd", "/root/.ssh/authorized_keys", "/etc/nginx/../shadow", "/opt/wallarmx/a"):
        spec = f_spec()
        spec["absent"].append(path)
        proc = fl.apply(spec)
        assert proc.returncode == 2, path
        assert re.search(r"absent\[\d+\] is '", proc.stderr.decode()), proc.stderr.decode()
    assert fl.tree() == before


def test_a_directory_in_the_staging_dir_is_a_managed_root(tmp_path):
    """Guards against the staging directory (where the scripts are copied) not being recognised as managed."""
    sb = Sandbox(tmp_path / "stage")
    stage = sb.home / "wallarm-deploy"
    stage.mkdir(parents=True)
    for name in APPLY_FILES:  # as the roles upload them: apply_spec.py and the YAML editor beside it
        (stage / name).write_text((Path(__file__).resolve().parents[2] / "scripts" / name).read_text())
    spec = {"name": "s", "files": [{"path": "/home/admin/wallarm-deploy/note", "content": "x\n", "mode": "0600"}]}
    result = sb.run("configure", "python3 ~/wallarm-deploy/apply_spec.py", json.dumps(spec))
    assert result.returncode == 0, result.stderr
    assert sb.path("/home/admin/wallarm-deploy/note").read_text() == "x\n"
    spec["files"][0]["path"] = "/home/admin/other/note"
    assert sb.run("configure", "python3 ~/wallarm-deploy/apply_spec.py", json.dumps(spec)).returncode == 2
