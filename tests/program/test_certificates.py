"""Certificate lifetimes: short leaves renewed by the next `pulumi up`, a CA that outlives every leaf it signs and
stays put when a stack upgrades, and the drift check's report of what is due (tools/certs.py)."""

from __future__ import annotations

import contextlib
import datetime
import io
import json
from pathlib import Path

import yaml
from cryptography import x509
from hypothesis import given, strategies as st

from components import pki
from components.settings import declared_keys
from tests.conftest import program_run
from tests.helpers import cert
from tools import certs

LEAF = "tls:index/locallySignedCert:LocallySignedCert"
CA = "tls:index/selfSignedCert:SelfSignedCert"


def test_leaves_are_short_lived_by_default():
    """Guards against a year-long leaf: a stolen node key stays useful for its certificate's life."""
    mocks = program_run().mocks
    keys = declared_keys()
    assert keys["certValidityHours"]["default"] == 720 and keys["certEarlyRenewalHours"]["default"] == 240
    leaves = mocks.of_type(LEAF)
    assert leaves
    for r in leaves:
        c = cert(r.outputs["certPem"])
        hours = (c.not_valid_after_utc - c.not_valid_before_utc).total_seconds() / 3600
        assert hours == 720 and r.inputs["earlyRenewalHours"] == 240, r.name


def test_the_ca_outlives_its_leaves_and_says_what_it_can():
    """Guards against a CA that ends before a leaf it signed, and a CA certificate without CA:TRUE."""
    mocks = program_run().mocks
    (ca,) = mocks.of_type(CA)
    assert (ca.inputs["validityPeriodHours"], ca.inputs["earlyRenewalHours"]) == pki.ca_hours(720, 240)
    c = cert(ca.outputs["certPem"])
    constraints = c.extensions.get_extension_for_class(x509.BasicConstraints)
    # pulumi-tls has no field for pathLenConstraint: the mocks, as the provider, leave it absent.
    assert constraints.critical and constraints.value.ca and constraints.value.path_length is None
    usage = c.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign


@given(st.integers(24, 10 * 8760).flatmap(lambda v: st.tuples(st.just(v), st.integers(0, v - 1))))
def test_no_leaf_outlives_its_ca(hours):
    """Guards against a leaf issued just before the CA's renewal that ends after the CA: the CA renews while a
    whole leaf lifetime and its renewal window are left."""
    validity, renewal = hours
    ca_validity, ca_renewal = pki.ca_hours(validity, renewal)
    latest_issue = ca_validity - ca_renewal  # after this, a plan replaces the CA (and every leaf)
    assert latest_issue > 0 and latest_issue + validity <= ca_validity - renewal


def test_an_upgraded_stack_keeps_its_ca():
    """Guards against a change of the leaf defaults that silently rotates every stack's CA (a rotation loses
    wstore writes for a restart's time): the former defaults' CA and today's are the same inputs."""
    assert pki.ca_hours(8760, 720) == pki.ca_hours(720, 240) == (3 * 8760, 8760 + 720)


def _export(mocks, shift_hours: float = 0) -> dict:
    """A `pulumi stack export` document from a run, with every certificate's end moved by shift_hours."""
    resources = []
    for r in mocks.of_type(LEAF) + mocks.of_type(CA):
        end = datetime.datetime.fromisoformat(r.outputs["validityEndTime"]) + datetime.timedelta(hours=shift_hours)
        outputs = {"validityEndTime": end.isoformat(), "earlyRenewalHours": r.inputs["earlyRenewalHours"]}
        resources.append({"urn": r.urn, "type": r.typ, "outputs": outputs})
    return {"version": 3, "deployment": {"resources": resources}}


def test_drift_report_names_what_is_due_and_alarms_before_expiry():
    """Guards against a renewal that nobody notices until a certificate has expired."""
    mocks = program_run().mocks
    leaves = len(mocks.of_type(LEAF))

    def run(doc) -> tuple[int, str]:
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            code = certs.main(["--alarm-hours", "72"], stdin=io.StringIO(json.dumps(doc)))
        return code, buf.getvalue()

    code, text = run(_export(mocks))
    assert code == 0 and text.count(": ok") == leaves + 1, text
    code, text = run(_export(mocks, shift_hours=-(720 - 100)))  # 100 h left: inside the 240 h window
    assert code == 0 and text.count("ready for renewal") == leaves, text
    assert "postanalytics-0-server-cert" in text
    code, text = run(_export(mocks, shift_hours=-(720 - 10)))  # 10 h left
    assert code == 1 and text.count("ALARM") == leaves, text
    code, _ = run({"version": 3, "deployment": {"resources": []}})
    assert code == 0


def test_the_drift_check_runs_the_certificate_report():
    """Guards against a report that exists but that no scheduled run calls."""
    wf = yaml.safe_load((Path(__file__).resolve().parents[2] / ".github/workflows/drift.yml").read_text())
    runs = [s.get("run", "") for s in wf["jobs"]["drift"]["steps"]]
    (step,) = [s for s in wf["jobs"]["drift"]["steps"] if "tools.certs" in s.get("run", "")]
    assert step["if"] == "always()" and "pulumi stack export" in step["run"] and "--show-secrets" not in step["run"]
    assert runs.index(step["run"]) == len(runs) - 1


def test_the_drift_report_alarms_before_the_ca_would_be_swapped_at_once():
    """Guards against a CA that enters its renewal window unnoticed: from then on any `pulumi up` replaces it in
    one step (failed wstore writes between NGINX's and wstore's configure steps), so the report says when to rotate
    it and fails ca-notice-days before that."""
    mocks = program_run().mocks
    validity, renewal = pki.ca_hours(720, 240)

    def run(ca_shift: float) -> tuple[int, str]:
        doc = _export(mocks)
        for r in doc["deployment"]["resources"]:
            if r["type"] == CA:
                end = datetime.datetime.fromisoformat(r["outputs"]["validityEndTime"])
                r["outputs"]["validityEndTime"] = (end + datetime.timedelta(hours=ca_shift)).isoformat()
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            code = certs.main(["--ca-notice-days", "30"], stdin=io.StringIO(json.dumps(doc)))
        [line] = [x for x in buf.getvalue().splitlines() if x.startswith("pki-ca:")]
        return code, line

    code, line = run(0)
    assert code == 0 and "ok; rotate it" in line and "Rotate the CA" in line, line
    code, line = run(-(validity - renewal) + 10 * 24)  # its window opens in 10 days
    assert code == 1 and "ALARM: rotate now" in line, line
    code, line = run(-(validity - renewal) - 24)  # a day into it
    assert code == 1 and "replaces this CA at once" in line, line
