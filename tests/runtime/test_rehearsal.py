"""The loopback rehearsal: it passes for the dev stack and its variants, and fails, with the reason, for real
faults in what the hosts get."""

from __future__ import annotations

import datetime
import os
import re
import subprocess
import tempfile
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from components import render
from harness.nginxconf import nginx_binary, on_free_ports, without_wallarm
from tests.helpers import rogue_pair
from tools.rehearse import main, rehearse


TLS_ARN = "arn:aws:acm:eu-central-1:123456789012:certificate/12345678-1234-1234-1234-123456789012"
PROD = str(Path(__file__).resolve().parents[2] / "examples" / "Pulumi.prod.yaml")
ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="client addresses (usesrc clientip) and the firewall (nftables) "
                                "need root and a network namespace of the rehearsal's own")


@pytest.mark.parametrize("overrides", [
    {}, {"postanalyticsCount": 2, "filteringCount": 3}, {"mutualTls": False},
    {"tls": False, "mutualTls": False, "postanalyticsCount": 2},
    {"tlsCertificateArn": TLS_ARN},
], ids=["dev", "2x3-mtls", "tls-only", "plain-2", "tls-listener"])
def test_rehearsal_passes(overrides, tmp_path):
    """Guards against a stack whose hosts would not connect, even though every declaration looks right."""
    report = rehearse("dev", overrides, tmp_path)
    text = "\n".join(report.lines)
    assert report.ok, text
    pa = overrides.get("postanalyticsCount", 1)
    f = overrides.get("filteringCount", 2)
    assert report.connections == pa * f, text
    rows = {host: dict(r) for host, r in report.hosts.items()}
    filtering = [h for h in rows if h.startswith("filtering-")]
    assert len(filtering) == f and len(rows) == pa + f + 1  # and the load balancer's table
    assert all(rows[h]["health"].startswith("ok: the test attack was counted") for h in filtering), text
    assert all(rows[h]["removed"] == render.NGINX_DEFAULT_SITE for h in filtering), text
    assert [line for line in report.lines if line.strip().startswith("result")] == ["  result    ok"] * (pa + f + 1)
    assert "jump host 198.51.100.10" in report.lines[1] and "load balancer entrypoint-nlb (TCP/80" in report.lines[1]
    if overrides.get("tls", True):
        assert "plain listener 127.0.0.1:3313 (loopback only)" in text
        assert text.count("server certificate verified") == pa * f
    health = [t for label, t in report.hosts["load balancer entrypoint-nlb (HAProxy stand-in)"] if label == "health"]
    traffic = [t for label, t in report.hosts["load balancer entrypoint-nlb (HAProxy stand-in)"] if label == "traffic"]
    listeners = 2 if "tlsCertificateArn" in overrides else 1
    assert len(health) == listeners and health[0].startswith(f"entrypoint-http: {f}/{f} healthy (HTTP GET /healthz "
                                                             "on port 8081"), text
    assert len(traffic) == 1 + listeners * (max(2, f) + 1), text
    assert all(" ok: " in t for t in traffic[1:]), text
    assert {t.split()[1] for t in traffic[1:]} == {f"filtering-{i}" for i in range(f)}, "not every target served"
    assert sum("/etc/passwd" in t and "test attack 200 OK" in t for t in traffic) == listeners, text


def swap_server_certificates(sandboxes, _run):
    """postanalytics-0 serves postanalytics-1's certificate: right CA, wrong IP."""
    a, b = sandboxes["postanalytics-0"], sandboxes["postanalytics-1"]
    for path in (render.WSTORE_CERT, render.WSTORE_KEY):
        a.path(path).write_bytes(b.path(path).read_bytes())


def client_from_another_ca(sandboxes, _run):
    cert, key = rogue_pair("filtering-0")
    sandboxes["filtering-0"].path(render.NGINX_CLIENT_CERT).write_bytes(cert)
    sandboxes["filtering-0"].path(render.NGINX_CLIENT_KEY).write_bytes(key)


def no_client_certificate_on_node(sandboxes, _run):
    conf = sandboxes["filtering-0"].path(render.NGINX_CONF)
    conf.write_text(re.sub(r"(?m)^wallarm_wstore_ssl_(cert|key)_file .*\n", "", conf.read_text()))


def upstream_missing_a_server(sandboxes, _run):
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
    assert any(f.startswith("filtering-0: health check: filtering node filtering-0 is unhealthy")
               for f in report.failures), report.failures
    assert "  result    FAILED" in text.split("\nfiltering-0\n", 1)[1].split("\n\n", 1)[0]
    if node_side:
        assert "filtering-1: " not in " ".join(report.failures), "a fault on filtering-0 failed filtering-1 too"
    else:  # a bad server certificate fails every node that connects to that server
        assert any(f.startswith(f"filtering-1: upstream {pa0}: server certificate refused")
                   for f in report.failures)
    assert text.splitlines()[-1].startswith("Result: FAILED")
    if tamper is client_from_another_ca:  # named with its cause, not only as a failed handshake
        assert any(f.startswith(f"filtering-0: the client certificate {render.NGINX_CLIENT_CERT} is not issued by "
                                f"the CA in {render.NGINX_CA}") for f in report.failures), report.failures


def test_the_sandbox_is_named_only_when_kept(capsys):
    """Guards against a report that points at a folder it has already deleted."""
    assert main(["--stack", "dev"]) == 0
    out = capsys.readouterr().out
    assert "wallarm-rehearsal-" not in out and "kept in" not in out
    assert out.splitlines()[-1].startswith("Result: OK: 3 hosts, 2 upstream connections, 0 failures, 0 warnings")


def test_command_line_exit_codes(capsys, tmp_path):
    """Guards against a CI step that stays green when the rehearsal fails."""
    assert main(["--stack", "dev", "--keep", str(tmp_path / "ok")]) == 0
    assert "Result: OK" in capsys.readouterr().out
    assert main(["--stack", "dev", "--set", "slabAllocArena=2,0"]) == 1
    assert "slabAllocArena is '2,0'" in capsys.readouterr().out


def _expired_client_from_the_stack_ca(run) -> tuple[bytes, bytes]:
    """A client certificate from the stack's own CA whose validity ended yesterday."""
    ca_record = run.mocks.of_type("tls:index/selfSignedCert:SelfSignedCert")[0]
    ca_key = serialization.load_pem_private_key(ca_record.inputs["privateKeyPem"].encode(), password=None)
    ca_cert = x509.load_pem_x509_certificate(ca_record.outputs["certPem"].encode())
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "expired")]))
            .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=30)).not_valid_after(now - datetime.timedelta(days=1))
            .sign(ca_key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM), key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def broken_files_everywhere(sandboxes, run):
    """One broken file per host: each must be named, with its cause."""
    _, other_key = rogue_pair("other")
    sandboxes["postanalytics-1"].path(render.WSTORE_KEY).write_bytes(other_key)
    sandboxes["postanalytics-2"].path(render.WSTORE_YAML).write_text("service: [\n")
    ca = sandboxes["filtering-0"].path(render.NGINX_CA)
    ca.write_text(ca.read_text()[: len(ca.read_text()) // 2])
    sandboxes["filtering-1"].path(render.NGINX_CLIENT_KEY).unlink()
    cert, key = _expired_client_from_the_stack_ca(run)
    sandboxes["filtering-2"].path(render.NGINX_CLIENT_CERT).write_bytes(cert)
    sandboxes["filtering-2"].path(render.NGINX_CLIENT_KEY).write_bytes(key)
    sandboxes["filtering-3"].path(render.NGINX_CONF).unlink()


def test_bad_certificate_and_key_files_are_named_with_their_cause(tmp_path):
    """Guards against a rehearsal that crashes (or says only "handshake failed") on a key that does not match its
    certificate, a truncated CA, a missing file, an expired client certificate or a broken wstore.yaml."""
    report = rehearse("dev", {"postanalyticsCount": 3, "filteringCount": 4}, tmp_path, tamper=broken_files_everywhere)
    text = "\n".join(report.lines)
    assert not report.ok, text
    expected = [
        f"postanalytics-1: the server key {render.WSTORE_KEY} does not match the certificate {render.WSTORE_CERT}",
        f"postanalytics-2: {render.WSTORE_YAML} does not say where and how wstore listens",
        f"filtering-0: the CA file {render.NGINX_CA} holds no complete PEM certificate (empty or truncated?)",
        f"filtering-1: the client key {render.NGINX_CLIENT_KEY} is missing",
        f"filtering-2: the client certificate {render.NGINX_CLIENT_CERT} expired on ",
        f"filtering-3: cannot read {render.NGINX_CONF}",
    ]
    for line in expected:
        assert any(f.startswith(line) for f in report.failures), f"{line!r} not in {report.failures}"
    pa0 = report.wstore["postanalytics-0"]
    expired = [f for f in report.failures if f.startswith(f"filtering-2: upstream {pa0}: ")]
    assert expired and "wstore refused it: certificate has expired" in expired[0], report.failures
    assert "Traceback" not in text and "could not check this host" not in text, text
    assert set(report.wstore) == {"postanalytics-0"}, "a stand-in started with unusable files"


def test_an_upstream_host_name_is_left_to_the_node(tmp_path):
    """Guards against a protectedUpstream given by name failing the rehearsal because this machine cannot resolve
    it (NGINX resolves it on the node, in the VPC's DNS), and against the name being changed in what the node
    gets."""
    report = rehearse("dev", {"protectedUpstream": "http://app.internal:8080"}, tmp_path)
    text = "\n".join(report.lines)
    assert report.ok, text
    warning = [w for w in report.warnings if "app.internal (protectedUpstream) is a host name the node resolves" in w]
    assert len(warning) == 1 and text.count("a host name the node resolves") == 1, "a warning printed more than once"
    conf = (tmp_path / "filtering-0" / "root" / render.NGINX_CONF.lstrip("/")).read_text()
    assert "proxy_pass http://app.internal:8080;" in conf
    assert not nginx_test_without_set_aside(conf)[0], "nginx -t would pass even without setting the name aside"


def nginx_test_without_set_aside(conf: str) -> tuple[bool, str]:
    """nginx -t on the file as it is (Wallarm directives aside, the host name kept)."""
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "f.conf").write_text(on_free_ports(without_wallarm(conf)))
        Path(tmp, "nginx.conf").write_text(f"pid {tmp}/p;\nerror_log {tmp}/e;\nevents {{}}\n"
                                           f"http {{\n    include {tmp}/f.conf;\n}}\n")
        proc = subprocess.run([nginx_binary(), "-t", "-q", "-p", tmp, "-c", f"{tmp}/nginx.conf"], capture_output=True,
                              text=True)
    return proc.returncode == 0, proc.stderr


def test_two_rehearsals_at_once_never_share_addresses():
    """Guards against concurrent rehearsals (two CI jobs, two developers) binding the same wstore address."""
    from tools.rehearse import reserve_loopback_network
    held = [reserve_loopback_network() for _ in range(40)]
    try:
        nets = [net for net, _ in held]
        assert len(set(nets)) == len(nets), nets
    finally:
        for _, sentinel in held:
            sentinel.close()


ANY_VPC = {"vpcId": "vpc-0123456789abcdef0",
           "publicSubnetIds": ["subnet-0aaaaaaaaaaaaaaa1", "subnet-0aaaaaaaaaaaaaaa2"],
           "privateSubnetIds": ["subnet-0bbbbbbbbbbbbbbb1", "subnet-0bbbbbbbbbbbbbbb2"]}


@pytest.mark.parametrize("overrides,assumed", [
    ({"aws:region": "us-east-1", "availabilityZoneCount": 4},
     "zones of us-east-1: us-east-1a, us-east-1b, us-east-1c, us-east-1d (invented"),
    (ANY_VPC, "subnet subnet-0bbbbbbbbbbbbbbb2 is in eu-central-1b of vpc-0123456789abcdef0 (assumed"),
], ids=["us-east-1-4-zones", "existing-vpc-any-ids"])
def test_rehearsal_in_any_region_and_vpc_says_what_it_assumed(overrides, assumed, tmp_path):
    """Guards against a rehearsal that works only in the example's region and VPC, or that passes off the mocks'
    inventions (zones, an existing VPC's subnets) as facts."""
    report = rehearse("dev", overrides, tmp_path)
    assert report.ok, "\n".join(report.lines)
    assert any(line.startswith("Assumed offline: ") and assumed in line for line in report.header), report.header


# ---------------------------------------------------------------- the load balancer stand-in
LB_HOST = "load balancer entrypoint-nlb (HAProxy stand-in)"


def _lb_rows(report, label: str) -> list[str]:
    return [t for lab, t in report.hosts.get(LB_HOST, []) if lab == label]


def health_server_loses_proxy_protocol(sandboxes, _run):
    """Every node's health server (the one with `location = /healthz`) listens without proxy_protocol."""
    for sandbox in sandboxes.values():
        conf = sandbox.path(render.NGINX_CONF)
        if conf.exists():
            servers = re.split(r"(?m)^(?=server \{)", conf.read_text())
            conf.write_text("".join(re.sub(r"(?m)^(\s*listen [^;]*?) proxy_protocol", r"\1", block)
                                    if f"location = {render.HEALTH_PATH}" in block else block for block in servers))


def test_prod_rehearsal_passes(tmp_path):
    """Guards against an example production stack whose TLS listener never gets a healthy target (AWS sends the
    PROXY v2 header on health checks when proxy protocol is on)."""
    report = rehearse(PROD, {"filteringCount": 2, "postanalyticsCount": 1}, tmp_path)
    text = "\n".join(report.lines)
    assert report.ok, text
    assert any(t.startswith("entrypoint-https: 2/2 healthy") and "with the PROXY v2 header" in t
               for t in _lb_rows(report, "health")), text
    assert sum(t.startswith("TLS/443") and "X-Forwarded-Proto https" in t for t in _lb_rows(report, "traffic")) == 3


def test_prod_fails_when_the_health_server_loses_proxy_protocol(tmp_path):
    """Guards against a rehearsal that passes while the load balancer would never see a healthy TLS target: named
    with the target group and the reason."""
    report = rehearse(PROD, {"filteringCount": 2, "postanalyticsCount": 1}, tmp_path,
                      tamper=health_server_loses_proxy_protocol)
    assert not report.ok
    failures = [f for f in report.failures if f.startswith("load balancer")]
    assert any("target group entrypoint-https: filtering-0 " in f and "is unhealthy: health check HTTP GET /healthz"
               in f and "with the PROXY v2 header answered HTTP 400" in f for f in failures), report.failures
    assert not any("entrypoint-http:" in f for f in failures), "the TCP group (no proxy protocol) failed too"
    assert any(t.startswith("TLS/443") and "FAILED: no healthy target in entrypoint-https" in t
               for t in _lb_rows(report, "traffic")), "traffic went to a target that is not healthy"


def node_health_answers_503(sandboxes, _run):
    conf = sandboxes["filtering-0"].path(render.NGINX_CONF)
    conf.write_text(conf.read_text().replace('return 200 "ok\\n";', 'return 503 "down\\n";'))


def test_an_unhealthy_node_gets_no_traffic(tmp_path):
    """Guards against a load balancer stand-in that sends traffic to targets whose health check fails."""
    report = rehearse("dev", {}, tmp_path, tamper=node_health_answers_503)
    assert any(f.startswith("load balancer") and "target group entrypoint-http: filtering-0 " in f
               and "answered HTTP 503" in f for f in report.failures), report.failures
    traffic = _lb_rows(report, "traffic")[1:]
    assert traffic and all(t.split()[1] == "filtering-1" for t in traffic), traffic


@needs_root
def test_a_client_outside_client_cidrs_is_refused(tmp_path):
    """Guards against a firewall that admits clients outside clientCidrs, and against client addresses lost on the
    way (the application must see the client's own address)."""
    report = rehearse("dev", {"clientCidrs": ["203.0.113.0/24"], "tlsCertificateArn": TLS_ARN}, tmp_path)
    text = "\n".join(report.lines)
    assert report.ok, text
    traffic = _lb_rows(report, "traffic")
    for listener in ("TCP/80", "TLS/443"):  # 443 too: its target sees the load balancer, not the client
        assert [t for t in traffic if t.startswith(listener) and "198.18.0.77" in t and "ok: refused" in t], text
    assert all("203.0.113.77" in t for t in traffic[1:] if "198.18.0.77" not in t), text
    assert _lb_rows(report, "firewall")[0].startswith("nftables in the namespace: firewall-filtering ingress")


@needs_root
def test_without_the_firewall_the_outside_client_gets_through(tmp_path, monkeypatch):
    """Guards against an outside-client check that passes whatever the firewall does."""
    from harness import lbstandin
    monkeypatch.setattr(lbstandin, "nft_ruleset", lambda *a: ("table inet rehearsal {}\n", ["nothing"]))
    report = rehearse("dev", {"clientCidrs": ["203.0.113.0/24"]}, tmp_path)
    assert any("a client outside clientCidrs (198.18.0.77) reached the application" in f
               for f in report.failures), report.failures


def test_without_root_the_report_says_what_was_not_exercised(tmp_path):
    """Guards against a rehearsal that, without root, claims client addresses or the firewall were checked."""
    report = rehearse("dev", {}, tmp_path, privileged=False)
    text = "\n".join(report.lines)
    assert report.ok, text
    assert _lb_rows(report, "network")[0].startswith("NOT ROOT: client addresses and the firewall were not exercised")
    assert not _lb_rows(report, "firewall")
    assert all("(client address not exercised)" in t for t in _lb_rows(report, "traffic")[1:]), text


def test_the_haproxy_config_follows_the_declarations():
    """Guards against a load balancer stand-in with ports of its own instead of the program's."""
    from harness.lbstandin import Layout, declared, haproxy_config
    from harness.mocks import ProviderMocks
    from harness.program import run_program, stack_config
    run = run_program(stack_config("dev", healthCheckPort=9090, tlsCertificateArn=TLS_ARN),
                      mocks=ProviderMocks(loopback=True, loopback_net=9))
    assert run.error is None, run.error
    lb = declared(run)
    config = haproxy_config(lb, Layout(True, "10.0.255.250", ("10.0.0.10", 8080), "198.18.0.77", None, {}, []),
                            Path("/x.pem"), Path("/x.sock"))
    servers = [line.split() for line in config.splitlines() if line.strip().startswith("server ")]
    assert len(servers) == 4 and all("9090" in s or "8081" not in " ".join(s) for s in servers), config
    https = [s for s in servers if s[2].endswith(":8443")]
    assert len(https) == 2 and all("send-proxy-v2" in s and "check-send-proxy" in s for s in https), config
    assert not any("send-proxy-v2" in s for s in servers if s not in https), config
    assert "bind 10.0.255.250:443 ssl crt /x.pem" in config and "bind 10.0.255.250:80\n" in config
    assert "inter 500 rise 2 fall 2" in config and "http-check send meth GET uri /healthz" in config
