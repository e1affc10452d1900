"""Pinned SSH host keys on every hop, and the boot configuration that installs them and keeps hosts patched.

Under the mocks: every remote step and copy pins its node's ED25519 key and the jump host's on the proxy hop; the
user data installs exactly that key (and unattended upgrades); a replaced node comes with a new key, a new jump
host image with the same one and no node step changed; a wrong key fails within a minute. With a real OpenSSH
server (Debian's sshd, root only): the key the program pinned is accepted by a client that offers host keys as
pulumi-command does, another key is refused.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from components import cloudinit, host
from harness.aws_rules import USER_DATA_MAX
from harness.mocks import SECRET_SIG
from tests.conftest import program_run
from tests.helpers import instance_records
from tests.program.test_changes import changed

ROOT = Path(__file__).resolve().parents[2]
STEPS = ("command:remote:Command", "command:remote:CopyToRemote")
KEY = "tls:index/privateKey:PrivateKey"


def _keys(mocks) -> dict[str, str]:
    """host key resource name -> OpenSSH public key line."""
    return {r.name: r.outputs["publicKeyOpenssh"] for r in mocks.of_type(KEY) if r.name.endswith("-hostkey")}


def _node_key(mocks, node: str) -> str:
    """The public host key of a node's current machine (`<instance name>-hostkey`)."""
    (vm,) = [r for r in mocks.of_type("aws:ec2/instance:Instance") if r.inputs["tags"]["Node"] == node]
    return _keys(mocks)[f"{vm.name}-hostkey"]


@pytest.mark.parametrize("overrides", [{}, {"jumpHost": False}], ids=["jump-host", "direct"])
def test_every_step_pins_its_hosts_key(overrides):
    """Guards against a step that trusts whatever key answers (InsecureIgnoreHostKey), on either hop: a man in the
    middle, or a compromised jump host, would receive the token and the private keys."""
    mocks = program_run(**overrides).mocks
    jump_key = _keys(mocks).get("jumphost-hostkey")
    steps = [r for r in mocks.resources if r.typ in STEPS]
    assert steps
    for r in steps:
        c = r.inputs["connection"]
        node = r.name.rsplit("-", 1)[0] if not r.name.endswith("-sshd") else None
        if r.name.endswith("-sshd"):  # runs on the jump host, to wait for the node's banner
            assert c["hostKey"] == jump_key, f"{r.name}: the jump host's key is not pinned"
        else:
            node = "-".join(r.name.split("-")[:2])
            assert c["hostKey"] == _node_key(mocks, node), f"{r.name}: does not pin {node}'s key"
        assert c["hostKey"].startswith("ssh-ed25519 "), f"{r.name}: not an ED25519 key"
        assert c["dialErrorLimit"] == host.HANDSHAKE_TRIES, f"{r.name}: dials {c['dialErrorLimit']} times"
        if jump_key is None:
            assert "proxy" not in c, f"{r.name}: a proxy without a jump host"
        elif not r.name.endswith("-sshd"):
            assert c["proxy"]["hostKey"] == jump_key, f"{r.name}: the proxy hop does not pin the jump host's key"
            assert c["proxy"]["dialErrorLimit"] == host.HANDSHAKE_TRIES, f"{r.name}: proxy dials unbounded"
    assert len(set(_keys(mocks).values())) == len(_keys(mocks)), "two hosts share a host key"


def test_nothing_dials_a_pinned_key_before_the_host_answers_ssh():
    """Guards against a first step that spends its few pinned dials on a booting machine: every node's first copy
    waits for its `-sshd` step, which waits for the jump host's."""
    mocks = program_run().mocks
    by_urn = {r.urn: r for r in mocks.resources}
    for r in mocks.of_type("command:remote:CopyToRemote"):
        node = "-".join(r.name.split("-")[:2])
        deps = {by_urn[u].name for u in r.options["dependencies"]}
        assert f"{node}-sshd" in deps, f"{r.name}: dials before {node} answers SSH"
        wait = mocks.named(f"{node}-sshd")
        assert "jumphost-sshd" in {by_urn[u].name for u in wait.options["dependencies"]}, f"{wait.name}"
        assert wait.inputs["stdin"] == host.script_text("wait-for-ssh.sh")
    local = mocks.named("jumphost-sshd")
    assert local.typ == "command:local:Command" and "--host 198.51.100." in local.inputs["create"]


def test_user_data_installs_the_pinned_key_and_unattended_upgrades():
    """Guards against a pinned key that the machine never gets (every step would fail), an image key left beside
    it, user data over AWS's 16 KB, the private key in plaintext in state, and hosts without security updates."""
    mocks = program_run().mocks
    for role in ("jumphost", "postanalytics", "filtering"):
        for vm in instance_records(mocks, role):
            assert SECRET_SIG in vm.raw_inputs["userData"], f"{vm.name}: user data (the host's private key) not secret"
            text = vm.inputs["userData"]
            assert text.startswith("#cloud-config\n") and len(text.encode()) < USER_DATA_MAX, vm.name
            config = yaml.safe_load(text)
            assert config["ssh_deletekeys"] is True and config["ssh_genkeytypes"] == [], vm.name
            private = serialization.load_ssh_private_key(config["ssh_keys"]["ed25519_private"].encode(), None)
            assert isinstance(private, ed25519.Ed25519PrivateKey), vm.name
            public = private.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                        serialization.PublicFormat.OpenSSH).decode()
            pinned = _keys(mocks)["jumphost-hostkey" if role == "jumphost" else f"{vm.name}-hostkey"]
            assert pinned.split()[:2] == public.split() == config["ssh_keys"]["ed25519_public"].split()[:2], vm.name
            assert "unattended-upgrades" in config["packages"], vm.name
            (upgrades,) = [f for f in config["write_files"] if f["path"] == cloudinit.AUTO_UPGRADES_PATH]
            assert 'APT::Periodic::Unattended-Upgrade "1";' in upgrades["content"], vm.name
            assert 'APT::Periodic::Update-Package-Lists "1";' in upgrades["content"], vm.name


def test_no_host_key_reaches_a_plain_output():
    """Guards against a host's private key in a non-secret stack output."""
    run = program_run()
    secrets = [yaml.safe_load(vm.inputs["userData"])["ssh_keys"]["ed25519_private"].splitlines()[1]
               for vm in run.mocks.of_type("aws:ec2/instance:Instance")]
    assert len(secrets) == 4
    for name, value in run.exports.items():
        if name not in run.secret_exports:
            assert not any(s in str(value) for s in secrets), f"output {name} carries a host's private key"


def test_a_replaced_node_comes_with_its_own_new_key():
    """Guards against a new machine pinned with its predecessor's key (every step would fail) or with none."""
    before = program_run(postanalyticsCount=2, filteringCount=3)
    after = program_run(postanalyticsCount=2, filteringCount=3, filteringInstanceType="c6i.xlarge")
    for i in range(3):
        node = f"filtering-{i}"
        old, new = _node_key(before.mocks, node), _node_key(after.mocks, node)
        assert old != new, f"{node}: a new machine kept the old key"
        assert after.mocks.named(f"{node}-install").inputs["connection"]["hostKey"] == new, node
    assert _node_key(before.mocks, "postanalytics-0") == _node_key(after.mocks, "postanalytics-0")


def test_a_new_jump_host_image_changes_no_node_step():
    """Guards against a jump host refresh that re-runs every step on every node (a new key or address in every
    connection), or that never boots the new image."""
    before = program_run(postanalyticsCount=2, filteringCount=3)
    after = program_run(postanalyticsCount=2, filteringCount=3, jumpHostAmiId="ami-0123456789abcdef0")
    (old_vm,), (new_vm,) = instance_records(before.mocks, "jumphost"), instance_records(after.mocks, "jumphost")
    assert old_vm.name != new_vm.name and new_vm.inputs["ami"] == "ami-0123456789abcdef0", "no new jump host"
    assert _keys(before.mocks)["jumphost-hostkey"] == _keys(after.mocks)["jumphost-hostkey"]
    moved = {n for n in changed(before, after) if not n.startswith("jumphost")}
    assert moved == set(), f"a new jump host image changed {sorted(moved)}"


def test_a_wrong_key_fails_within_a_minute():
    """Guards against a wrong host key that pulumi-command retries for many minutes: it retries a failed handshake
    like a failed dial (provider/pkg/provider/remote/connection.go, dialWithRetry: `dials > limit` stops), waiting
    100 ms growing 1.5x up to 5 s between tries (pulumi sdk/go/common/util/retry: DefaultDelay, DefaultBackoff,
    DefaultMaxDelay). Each try is one TCP connect and key exchange: 2 s is generous across a region."""
    delays, delay = [], 0.1
    for _ in range(host.HANDSHAKE_TRIES):  # limit + 1 attempts, limit waits between them
        delays.append(delay)
        delay = min(delay * 1.5, 5.0)
    worst = sum(delays) + (host.HANDSHAKE_TRIES + 1) * 2.0
    assert worst < 60, f"a wrong host key fails only after {worst:.0f} s"


# ------------------------------------------------------------------ a real OpenSSH server

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def sshd(tmp_path):
    """Debian's sshd on 127.0.0.1 with the ED25519 host key from filtering-0's user data (where cloud-init installs
    it), admitting the stack's SSH key for root. Yields (port, pinned key of filtering-0's steps, user key file)."""
    if os.geteuid() != 0:
        pytest.skip("starting sshd needs root (it switches users and reads its host key as root)")
    if not Path("/usr/sbin/sshd").exists() or not shutil.which("ssh"):
        pytest.skip("openssh-server and openssh-client are not installed (.ci/run installs them)")
    mocks = program_run().mocks
    (vm,) = [r for r in instance_records(mocks, "filtering") if r.inputs["tags"]["Node"] == "filtering-0"]
    config = yaml.safe_load(vm.inputs["userData"])
    host_key = tmp_path / "ssh_host_ed25519_key"
    host_key.write_text(config["ssh_keys"]["ed25519_private"])
    host_key.chmod(0o600)
    connection = mocks.named("filtering-0-install").inputs["connection"]
    user_key = tmp_path / "id_ed25519"
    user_key.write_text(connection["privateKey"])
    user_key.chmod(0o600)
    private = serialization.load_ssh_private_key(user_key.read_bytes(), None)
    authorized = tmp_path / "authorized_keys"
    authorized.write_text(private.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                            serialization.PublicFormat.OpenSSH).decode() + "\n")
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation directory
    port = _free_port()
    conf = tmp_path / "sshd_config"
    conf.write_text(f"ListenAddress 127.0.0.1\nHostKey {host_key}\nAuthorizedKeysFile {authorized}\n"
                    "PermitRootLogin prohibit-password\nPasswordAuthentication no\nStrictModes no\nUsePAM no\n"
                    f"PidFile {tmp_path / 'sshd.pid'}\n")
    proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(conf), "-p", str(port)],
                            stderr=subprocess.PIPE, text=True)
    try:
        wait = subprocess.run(["bash", "-s", "--", "--host", "127.0.0.1", "--port", str(port), "--timeout", "20"],
                              input=host.script_text("wait-for-ssh.sh"), capture_output=True, text=True, timeout=40)
        assert wait.returncode == 0, wait.stderr
        yield port, connection["hostKey"], user_key, tmp_path
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _ssh(port: int, known: str, user_key: Path, tmp: Path) -> subprocess.CompletedProcess:
    """ssh as pulumi-command dials: offering only the pinned key's type, accepting only the pinned key
    (golang.org/x/crypto/ssh with HostKeyAlgorithms = [key.Type()] and FixedHostKey)."""
    known_hosts = tmp / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {known.strip()}\n")
    return subprocess.run(
        ["ssh", "-F", "/dev/null", "-p", str(port), "-i", str(user_key), "-o", "IdentitiesOnly=yes",
         "-o", "BatchMode=yes", "-o", "HostKeyAlgorithms=ssh-ed25519", "-o", "StrictHostKeyChecking=yes",
         "-o", f"UserKnownHostsFile={known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
         "-o", "ConnectTimeout=10", "root@127.0.0.1", "echo pinned-ok"],
        capture_output=True, text=True, timeout=30)


def test_real_sshd_accepts_the_pinned_key_and_refuses_another(sshd):
    """Guards against a pinned key that does not match what the booted host offers, and against a client that
    would go on with another key (the man in the middle)."""
    port, pinned, user_key, tmp = sshd
    ok = _ssh(port, pinned, user_key, tmp)
    assert ok.returncode == 0 and ok.stdout.strip() == "pinned-ok", ok.stderr
    other = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    refused = _ssh(port, other, user_key, tmp)
    assert refused.returncode == 255 and "pinned-ok" not in refused.stdout, refused.stdout
    assert "Host key verification failed" in refused.stderr or "REMOTE HOST IDENTIFICATION HAS CHANGED" in \
        refused.stderr, refused.stderr


def test_wait_for_ssh_names_the_host_that_never_answers():
    """Guards against a boot wait that hangs, or fails without saying which host."""
    port = _free_port()  # nothing listens there
    started = time.monotonic()
    done = subprocess.run(["bash", "-s", "--", "--host", "127.0.0.1", "--port", str(port), "--timeout", "2"],
                          input=host.script_text("wait-for-ssh.sh"), capture_output=True, text=True, timeout=30)
    assert done.returncode == 1 and time.monotonic() - started < 15
    assert done.stderr.strip().splitlines()[-1].endswith(f"no SSH server answered on 127.0.0.1:{port} within 2s")
    bad = subprocess.run(["bash", "-s", "--", "--host", "a;b"], input=host.script_text("wait-for-ssh.sh"),
                         capture_output=True, text=True, timeout=10)
    assert bad.returncode == 1 and "--host must be" in bad.stderr
