"""The Wallarm token and private keys never appear in plaintext: not in any resource input or output, not in
command text, not in a non-secret stack output. They travel only inside secret values (Command stdin)."""

from __future__ import annotations

from typing import Any, Iterator

import pulumi
import pytest

from harness.mocks import SECRET_SIG
from harness.program import STAND_IN_TOKEN, run_program, stack_config

EXISTING_PRIVATE = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAAExistingKeyMaterialXYZ\n-----END OPENSSH PRIVATE KEY-----\n"
EXISTING_PUBLIC = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExistingPublicKey me@laptop"


def plaintext_strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string not inside a secret (a wrapped secret input, or a secret Output from the provider)."""
    if isinstance(value, pulumi.Output):
        return  # the mocks return Outputs only as Output.secret(...), as the providers mark them
    if isinstance(value, dict):
        if SECRET_SIG in value:
            return
        for k, v in value.items():
            yield from plaintext_strings(v, f"{path}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from plaintext_strings(v, f"{path}[{i}]")
    elif isinstance(value, str):
        yield path, value


def secret_material(run) -> list[str]:
    """The token and the body of every private key the run made or was given."""
    keys = [pem for pem in run.mocks._keys]
    bodies = [line for pem in keys for line in pem.splitlines() if len(line) > 40][:200]
    return [STAND_IN_TOKEN, EXISTING_PRIVATE.splitlines()[1], *bodies]


def _leaks(run) -> list[str]:
    found = []
    material = secret_material(run)
    for r in run.mocks.resources:
        for where, value in [*plaintext_strings(r.raw_inputs, "inputs"), *plaintext_strings(r.outputs, "outputs")]:
            if "PRIVATE KEY-----" in value or any(m in value for m in material):
                found.append(f"{r.typ}::{r.name} {where}")
    for name, value in run.exports.items():
        if name not in run.secret_exports and any(m in str(value) for m in material + ["PRIVATE KEY"]):
            found.append(f"stack output {name}")
    return found


@pytest.mark.parametrize("overrides", [
    {}, {"postanalyticsCount": 2, "filteringCount": 3}, {"tls": False, "mutualTls": False},
    {"sshPublicKey": EXISTING_PUBLIC, "sshPrivateKey": EXISTING_PRIVATE},
], ids=["dev", "2x3", "plain", "given-key"])
def test_no_secret_in_plaintext(overrides):
    """Guards against the token or a private key in state, logs or a preview diff."""
    run = run_program(stack_config("dev", **overrides))
    assert run.error is None, run.error
    assert _leaks(run) == []


def test_the_scan_finds_a_planted_leak():
    """Guards against a scan that cannot fail: a token in command text must be reported."""
    run = run_program(stack_config("dev"))
    victim = next(r for r in run.mocks.resources if r.name == "filtering-0-wait")
    victim.raw_inputs = {**victim.raw_inputs, "create": f"echo {STAND_IN_TOKEN}"}
    assert _leaks(run) == ["command:remote:Command::filtering-0-wait inputs.create"]


def test_secrets_do_reach_the_hosts_through_stdin():
    """Guards against a test that passes because the secrets were never sent at all."""
    run = run_program(stack_config("dev"))
    install = run.mocks.named("postanalytics-0-install")
    assert SECRET_SIG in install.raw_inputs["stdin"], "the install stdin is not a secret"
    assert install.inputs["stdin"] == STAND_IN_TOKEN + "\n"
    configure = run.mocks.named("filtering-0-configure")
    assert SECRET_SIG in configure.raw_inputs["stdin"]
    assert "PRIVATE KEY" in configure.inputs["stdin"]
    assert SECRET_SIG in install.raw_inputs["connection"], "the SSH connection (with its key) is not a secret"
    assert "PRIVATE KEY" in install.inputs["connection"]["privateKey"]


def test_command_output_is_secret():
    """Guards against an installer that echoes the token landing in state through stdout or stderr."""
    run = run_program(stack_config("dev"))
    for r in run.mocks.of_type("command:remote:Command"):
        for key in ("stdout", "stderr"):
            assert isinstance(r.outputs[key], pulumi.Output), f"{r.name}.{key} is plaintext"


def test_generated_key_exported_only_as_secret():
    """Guards against the generated SSH key printed by `pulumi stack output`."""
    run = run_program(stack_config("dev"))
    assert "sshPrivateKey" in run.secret_exports
    assert run.exports["sshPrivateKey"].startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    given = run_program(stack_config("dev", sshPublicKey=EXISTING_PUBLIC, sshPrivateKey=EXISTING_PRIVATE))
    assert "sshPrivateKey" not in given.exports
