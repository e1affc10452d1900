"""The loopback rehearsal: it passes for the dev stack and its variants, and fails, with the reason, for real
faults in what the hosts get."""

from __future__ import annotations

import re

import pytest

from components import render
from tests.helpers import rogue_pair
from tools.rehearse import main, rehearse


@pytest.mark.parametrize("overrides", [
    {}, {"postanalyticsCount": 2, "filteringCount": 3}, {"mutualTls": False},
    {"tls": False, "mutualTls": False, "postanalyticsCount": 2},
], ids=["dev", "2x3-mtls", "tls-only", "plain-2"])
def test_rehearsal_passes(overrides, tmp_path):
    """Guards against a stack whose hosts would not connect, even though every declaration looks right."""
    report = rehearse("dev", overrides, tmp_path)
    text = "\n".join(report.lines)
    assert report.ok, text
    pa = overrides.get("postanalyticsCount", 1)
    f = overrides.get("filteringCount", 2)
    assert report.connections == pa * f, text
    assert text.count("health check: ok") == f
    if overrides.get("tls", True):
        assert "plain listener 127.0.0.1:3313 (loopback only)" in text
        assert text.count("server certificate verified") == pa * f


def swap_server_certificates(sandboxes):
    """postanalytics-0 serves postanalytics-1's certificate: right CA, wrong IP."""
    a, b = sandboxes["postanalytics-0"], sandboxes["postanalytics-1"]
    for path in (render.WSTORE_CERT, render.WSTORE_KEY):
        a.path(path).write_bytes(b.path(path).read_bytes())


def client_from_another_ca(sandboxes):
    cert, key = rogue_pair("filtering-0")
    sandboxes["filtering-0"].path(render.NGINX_CLIENT_CERT).write_bytes(cert)
    sandboxes["filtering-0"].path(render.NGINX_CLIENT_KEY).write_bytes(key)


def no_client_certificate_on_node(sandboxes):
    conf = sandboxes["filtering-0"].path(render.NGINX_CONF)
    conf.write_text(re.sub(r"(?m)^wallarm_wstore_ssl_(cert|key)_file .*\n", "", conf.read_text()))


def upstream_missing_a_server(sandboxes):
    """filtering-0's upstream loses its second server line (postanalytics-1)."""
    conf = sandboxes["filtering-0"].path(render.NGINX_CONF)
    lines = conf.read_text().splitlines(keepends=True)
    servers = [i for i, line in enumerate(lines) if re.match(r"\s+server \S+ max_fails=", line)]
    conf.write_text("".join(lines[:servers[1]] + lines[servers[1] + 1:]))


@pytest.mark.parametrize("tamper,reason,node_side", [
    (swap_server_certificates, "filtering-0: upstream {pa0}: server certificate refused: IP address mismatch", False),
    (client_from_another_ca, "filtering-0: upstream {pa0}: ", True),
    (no_client_certificate_on_node, "filtering-0: upstream {pa0}: ", True),
    (upstream_missing_a_server, "filtering-0: upstream lacks postanalytics-1 ({pa1})", True),
], ids=["server-cert-without-its-ip", "client-cert-from-another-ca", "mtls-server-no-client-cert",
        "upstream-missing-a-server"])
def test_rehearsal_fails_for_real_faults(tamper, reason, node_side, tmp_path):
    """Guards against a rehearsal that reports OK whatever the hosts got."""
    report = rehearse("dev", {"postanalyticsCount": 2}, tmp_path, tamper=tamper)
    text = "\n".join(report.lines)
    assert not report.ok, text
    pa0, pa1 = report.wstore["postanalytics-0"], report.wstore["postanalytics-1"]
    reason = reason.format(pa0=pa0, pa1=pa1)
    assert any(f.startswith(reason) for f in report.failures), report.failures
    assert "filtering-0: health check: filtering node filtering-0 is unhealthy" in text
    if node_side:
        assert "filtering-1: " not in " ".join(report.failures), "a fault on filtering-0 failed filtering-1 too"
    else:  # a bad server certificate fails every node that connects to that server
        assert any(f.startswith(f"filtering-1: upstream {pa0}: server certificate refused")
                   for f in report.failures)
    assert text.splitlines()[-1].startswith("Result: FAILED")


def test_command_line_exit_codes(capsys, tmp_path):
    """Guards against a CI step that stays green when the rehearsal fails."""
    assert main(["--stack", "dev", "--keep", str(tmp_path / "ok")]) == 0
    assert "Result: OK" in capsys.readouterr().out
    assert main(["--stack", "dev", "--set", "slabAllocArena=2,0"]) == 1
    assert "slabAllocArena is '2,0'" in capsys.readouterr().out
