"""tools.plan --changes (tools/changes.py): what a change does to a deployed stack, from the program at the base
commit and the working tree, both under the mocks. The table is read back and checked against the rules a
reviewer relies on: a mode change reloads the filtering nodes only; scaling out only creates; a secret is never
printed; a new machine, a new CA, a new load balancer are called what they are."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import re

import pytest

from harness.program import STAND_IN_TOKEN
from tests.conftest import program_run
from tools import changes, plan


def preview(*sets: str) -> str:
    """The command's output, as a user runs it (base HEAD: in a clean checkout, the same program)."""
    out = io.StringIO()
    argv = ["--stack", "dev", "--changes"] + [a for s in sets for a in ("--set", s)]
    with contextlib.redirect_stdout(out):
        assert plan.main(argv) == 0
    return out.getvalue()


def table(text: str) -> list[tuple[str, str, str]]:
    """(type, name, plan) of every row of the resource table."""
    rows = []
    for line in text.splitlines():
        match = re.match(r" (\+-|~\?|\+|-|~)\s+(\S+)\s+(\S+)\s+(create|update or replace|update|replace|delete)$", line)
        if match:
            rows.append(match.group(2, 3, 4))
    return rows


def section(text: str, title: str) -> list[str]:
    lines = text.split(f"\n{title}")[1].split("\n\n")[0].splitlines()[1:]
    return [line.strip() for line in lines]


@pytest.fixture(scope="module")
def mode_change() -> str:
    return preview("wallarmMode=block")


def test_a_mode_change_runs_the_filtering_nodes_configure_and_health_and_nothing_else(mode_change):
    """Guards against a preview that hides what a mode change does, or a program whose mode change touches wstore,
    the machines or the installs."""
    rows = table(mode_change)
    assert {(name, typ) for typ, name, _ in rows} == {
        (f"filtering-{i}-{step}", "command:remote:Command") for i in range(2) for step in ("configure", "health")}, rows
    assert section(mode_change, "Steps that run") == ["filtering-0: configure, health (again)",
                                                      "filtering-1: configure, health (again)"]
    assert section(mode_change, "Changes that hurt") == ["none"]
    assert "allarm-mode monitoring' => '...allarm-mode block'" in mode_change, "the input that differs is not shown"


def test_one_more_filtering_node_is_only_creations():
    """Guards against a scale-out preview that updates or replaces what serves already."""
    text = preview("filteringCount=3")
    rows = table(text)
    assert rows and {op for _, _, op in rows} == {"create"}, [r for r in rows if r[2] != "create"]
    assert all("filtering-2" in name for _, name, _ in rows), rows
    assert re.search(r"Resources: \d+ to create; \d+ unchanged", text)


def test_a_secret_change_is_shown_changed_never_its_value():
    """Guards against a token rotation printed in a preview (and so in a pull request's comment or CI log)."""
    token = "RotatedWallarmToken0123456789abcdef=="
    text = preview(f"wallarmToken={token}")
    assert token not in text and STAND_IN_TOKEN not in text
    rows = table(text)
    assert rows and all(name.endswith("-install") for _, name, _ in rows), rows
    assert text.count("~ stdin: changed (secret)") == len(rows)


def test_the_same_program_and_settings_preview_no_change():
    """Guards against noise: new keys, certificates or addresses between the two runs would show as changes."""
    text = preview()
    assert "No changes" in text and table(text) == []
    assert "Resources: no change;" in text


def test_a_new_postanalytics_version_replaces_the_machine_and_says_wstore_memory_is_lost():
    """Guards against a new generation shown as an unrelated create and delete, and against wstore's loss unsaid."""
    result = changes.compare(program_run().mocks.resources, program_run(postanalyticsVersion="6.13.0").mocks.resources)
    [machine] = [c for c in result if c.record.typ == changes.INSTANCE]
    assert machine.op == "replace" and "a new generation" in machine.why
    assert not [c for c in result if c.op == "delete"], "the old generation is listed as an unrelated delete"
    harm = changes.hurts(result, program_run().mocks.resources)
    assert any(h.startswith("postanalytics-0: wstore's machine replace") for h in harm), harm


def test_a_new_ca_is_flagged():
    """Guards against a CA replaced silently: every certificate and whoever pins caCertificate follow."""
    before = program_run().mocks.resources
    result = changes.compare(before, program_run(certValidityHours=9000).mocks.resources)
    [ca] = [c for c in result if c.record.typ == "tls:index/selfSignedCert:SelfSignedCert"]
    assert ca.op == "replace" and "ForceNew" in ca.why
    assert any("a new CA" in h for h in changes.hurts(result, before))


def test_a_load_balancer_replaced_by_its_provider_is_flagged():
    """Guards against a load balancer replacement (a new DNS name) shown as a harmless update: `internal` is
    ForceNew in the provider; tags are updated in place."""
    [lb] = [r for r in program_run().mocks.resources if r.typ == "aws:lb/loadBalancer:LoadBalancer"]
    internal = dataclasses.replace(lb, inputs={**lb.inputs, "internal": True}, raw_inputs={**lb.raw_inputs, "internal": True})
    tagged = dataclasses.replace(lb, inputs={**lb.inputs, "tags": {"Name": "x"}}, raw_inputs={**lb.raw_inputs, "tags": {"Name": "x"}})
    [replaced] = changes.compare([lb], [internal])
    [updated] = changes.compare([lb], [tagged])
    assert (replaced.op, updated.op) == ("replace", "update"), (replaced.why, updated.why)
    assert any("new DNS name" in h for h in changes.hurts([replaced], [lb]))
    assert not changes.hurts([updated], [lb])


def test_a_type_the_table_does_not_know_is_update_or_replace():
    """Guards against "update" claimed for a type whose provider's rules the table does not hold."""
    [vpc] = [r for r in program_run().mocks.resources if r.typ == "awsx:ec2:Vpc"]
    other = dataclasses.replace(vpc, inputs={**vpc.inputs, "cidrBlock": "10.1.0.0/16"},
                                raw_inputs={**vpc.raw_inputs, "cidrBlock": "10.1.0.0/16"})
    [change] = changes.compare([vpc], [other])
    assert change.op == "update or replace" and change.inputs == {"cidrBlock": "'10.0.0.0/16' => '10.1.0.0/16'"}


def test_a_renewal_window_change_updates_certificates_in_place_and_runs_nothing():
    """Guards against mocks that re-issue a certificate for an input its provider updates in place (the preview
    would then show a new CA and every step running again)."""
    before = program_run().mocks.resources
    result = changes.compare(before, program_run(certEarlyRenewalHours=700).mocks.resources)
    # The CA's own renewal window has a floor (components/pki.py ca_hours) above 700 + 720: only the leaves change.
    assert result and {(c.op, c.record.typ.split(":")[1]) for c in result} == {
        ("update", "index/locallySignedCert")}, [(c.op, c.record.name) for c in result]
    assert all(set(c.inputs) == {"earlyRenewalHours"} for c in result)
    assert changes.hurts(result, before) == []
