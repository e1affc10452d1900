"""A CA rotation (caRotation prepare, switch, then caGeneration + 1) that never fails a wstore write: the steps the
program declares, and real TLS handshakes between every mix of old and new hosts in the loopback rehearsal."""

from __future__ import annotations

import pytest
from cryptography import x509

from components.settings import SettingsError
from harness.program import run_program, stack_config
from tests.conftest import program_run
from tests.helpers import cert
from tools import rehearse_rotation as rotation

CA = "tls:index/selfSignedCert:SelfSignedCert"
LEAF = "tls:index/locallySignedCert:LocallySignedCert"
STEPS = {name: values for name, values in rotation.ROTATION}


def _subjects(pem: str) -> list[str]:
    return [c.subject.rfc4514_string() for c in x509.load_pem_x509_certificates(pem.encode())]


@pytest.mark.parametrize("overrides,words", [
    ({"caRotation": "rotate"}, ["caRotation is 'rotate'", "none, prepare, switch"]),
    ({"caGeneration": 0}, ["caGeneration is 0"]),
    ({"caRotation": "prepare", "tls": False, "mutualTls": False}, ["caRotation is 'prepare'", "needs tls true"]),
])
def test_a_wrong_rotation_setting_stops_before_any_resource(overrides, words):
    """Guards against a typo in caRotation read as "no rotation" (the next step would then swap the CA at once)."""
    run = run_program(stack_config("dev", **overrides))
    assert isinstance(run.error, SettingsError), f"{overrides} was accepted"
    assert all(w in str(run.error) for w in words), str(run.error)
    assert run.mocks.resources == []


def test_each_step_changes_one_side_only():
    """Guards against a step that changes the trust bundles and the leaves together: the mixes of a rolling apply
    would then pair a leaf with a bundle that lacks its CA. prepare adds a CA to the bundles and keeps every leaf;
    switch re-issues every leaf from the new CA and keeps the bundles; the last step drops the old CA and keeps
    every leaf. A stack that never rotates keeps its CA's names (pki-ca, pki-ca-key): no replacement on upgrade."""
    runs = {name: program_run(**values) for name, values in STEPS.items()}
    cas = {name: {r.name: r.outputs["certPem"] for r in run.mocks.of_type(CA)} for name, run in runs.items()}
    assert list(cas["before"]) == ["pki-ca"] and list(cas["finish"]) == ["pki-ca2"]
    assert cas["prepare"] == cas["switch"] == {**cas["before"], **cas["finish"]}, "a CA was re-made mid-rotation"
    bundles = {name: run.exports["caCertificate"] for name, run in runs.items()}
    old, new = (cert(cas["prepare"][n]).subject.rfc4514_string() for n in ("pki-ca", "pki-ca2"))
    assert [_subjects(bundles[n]) for n in STEPS] == [[old], [old, new], [old, new], [new]]
    leaves = {name: {r.name: r.outputs["certPem"] for r in run.mocks.of_type(LEAF)} for name, run in runs.items()}
    assert leaves["before"] == leaves["prepare"], "prepare re-issued a leaf"
    assert leaves["switch"] == leaves["finish"], "the last step re-issued a leaf"
    for name in STEPS:
        issuer = old if name in ("before", "prepare") else new
        for leaf, pem in leaves[name].items():
            assert cert(pem).issuer.rfc4514_string() == issuer, f"{name}: {leaf} issued by {cert(pem).issuer}"
    assert not set(leaves["prepare"].values()) & set(leaves["switch"].values()), "switch kept a leaf of the old CA"
    for name, run in runs.items():
        configure = [s for s in run.mocks.of_type("command:remote:Command") if s.name.endswith("-configure")]
        assert len(configure) == 3, [s.name for s in configure]  # 1 wstore, 2 filtering nodes
        for step in configure:
            assert bundles[name].strip() in str(step.inputs.get("stdin")).replace("\\n", "\n"), \
                    f"{name}: {step.name} does not install the trust bundle"


def test_no_mix_of_a_rotation_step_fails_a_handshake(tmp_path):
    """Guards against a write to wstore refused during a rotation: between two steps, a filtering node has its old
    or its new files and a wstore its old or its new ones (the configure steps run filtering first, several at
    once), and every pairing completes mutual TLS with the real handshake of the rehearsal's stand-in."""
    phases = rotation.rehearse_steps("dev", rotation.ROTATION, tmp_path, {"postanalyticsCount": 2})
    for p in phases:
        assert p.report.ok, f"step {p.name}: {p.report.failures}"
        assert "mutual TLS on" in p.report.header[0], p.report.header[0]
    for old, new in zip(phases, phases[1:]):
        shakes = rotation.mixed_handshakes(old, new)
        assert len(shakes) == 2 * 2 * 2 * 2, [str(h) for h in shakes]  # 2 wstore x 2 nodes x old/new x old/new
        failed = [str(h) for h in shakes if not h.result.ok]
        assert not failed, f"{old.name} -> {new.name}: " + "; ".join(failed)


def test_a_one_step_ca_swap_fails_in_the_mixes(tmp_path):
    """The negative control: a CA replaced in one `pulumi up` (caGeneration + 1 without the rotation's steps)
    passes the rehearsal of its end state but refuses a handshake in both mixes, new NGINX with old wstore and old
    NGINX with new wstore: the writes of that window fail. Guards against a mixed-state check that cannot fail."""
    phases = rotation.rehearse_steps("dev", rotation.ONE_STEP, tmp_path)
    assert all(p.report.ok for p in phases), [p.report.failures for p in phases]
    shakes = rotation.mixed_handshakes(*phases)
    for h in shakes:
        mixed = h.wstore.endswith("(before)") != h.nginx.endswith("(before)")
        assert h.result.ok != mixed, str(h)
