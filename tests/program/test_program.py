"""The whole __main__.py under mocks: what it declares for the dev stack and the 2x3 variants, TLS on and off,
mutual TLS on and off: fleets, firewall, certificates, installer steps, upstreams, exports."""

from __future__ import annotations

import ipaddress
import re

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from components import render
from harness.nginxconf import parse_text
from tests.conftest import program_run
from tests.helpers import cert, command, instance_records, instances, sans, spec, spec_file
from tools.benchmark import SG_RULES_QUOTA, max_rules

INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
ADMIN = "203.0.113.10/32"


def _settings(overrides):
    tls = overrides.get("tls", True)
    return {
        "pa": overrides.get("postanalyticsCount", 1), "f": overrides.get("filteringCount", 2),
        "tls": tls, "mtls": overrides.get("mutualTls", True) and tls,
    }


def _sg(mocks, role):
    return mocks.named(f"firewall-{role}").id


def _rules(mocks, typ, role):
    """The rules of one security group."""
    return [r for r in mocks.of_type(typ) if r.inputs["securityGroupId"] == _sg(mocks, role)]


def test_counts(variant):
    """Guards against a count setting that does not produce that many servers and nodes."""
    _, overrides, run = variant
    s = _settings(overrides)
    assert len(instances(run.mocks, "postanalytics")) == s["pa"]
    assert len(instances(run.mocks, "filtering")) == s["f"]
    assert len(instances(run.mocks, "jumphost")) == 1


def test_wstore_reachable_only_from_the_filtering_group(variant):
    """Guards against wstore (arbitrary Lua and OS commands) being open beyond this stack's filtering nodes."""
    _, overrides, run = variant
    s = _settings(overrides)
    wanted = {(6388, "tcp")} if s["tls"] else {(3313, "tcp"), (3313, "udp")}
    wstore = [r for r in _rules(run.mocks, INGRESS, "postanalytics") if r.inputs["fromPort"] != 22]
    assert {(r.inputs["fromPort"], r.inputs["ipProtocol"]) for r in wstore} == wanted
    for r in wstore:
        assert r.inputs.get("referencedSecurityGroupId") == _sg(run.mocks, "filtering"), \
            f"{r.name} admits {r.inputs.get('cidrIpv4')}, not the filtering group"
        assert not r.inputs.get("cidrIpv4") and r.inputs["fromPort"] == r.inputs["toPort"], r.name


def test_ssh_to_nodes_only_from_the_jump_host(variant):
    """Guards against port 22 of a node reachable from anywhere but the jump host's group."""
    _, _, run = variant
    for role in ("postanalytics", "filtering"):
        ssh = [r for r in _rules(run.mocks, INGRESS, role) if r.inputs["fromPort"] == 22]
        assert [(r.inputs.get("referencedSecurityGroupId"), r.inputs.get("cidrIpv4")) for r in ssh] == \
            [(_sg(run.mocks, "jumphost"), None)], role
    jump = [(r.inputs["fromPort"], r.inputs.get("cidrIpv4")) for r in _rules(run.mocks, INGRESS, "jumphost")]
    assert jump == [(22, ADMIN)]
    assert _rules(run.mocks, INGRESS, "deployer") == [] and _rules(run.mocks, EGRESS, "deployer") == []
    # The deploy role's IAM statement may open and close only the group tagged Role=deployer.
    assert run.mocks.named("firewall-deployer").inputs["tags"]["Role"] == "deployer"


def test_without_jump_host_nodes_take_ssh_from_the_admin_networks():
    """Guards against a deployer inside the VPC (jumpHost false) that cannot reach any node."""
    run = program_run(jumpHost=False)
    assert instances(run.mocks, "jumphost") == {}
    for role in ("postanalytics", "filtering"):
        ssh = [r.inputs.get("cidrIpv4") for r in _rules(run.mocks, INGRESS, role) if r.inputs["fromPort"] == 22]
        assert ssh == [ADMIN], role
    for r in run.mocks.of_type("command:remote:Command"):
        assert not r.inputs["connection"].get("proxy"), r.name
    assert "jumpHostPublicIp" not in run.exports
    assert all(c.startswith("ssh admin@10.") for c in run.exports["sshCommands"].values())


def _peer(mocks, rule) -> str:
    """A rule's peer: its CIDR, or the role of the group it references."""
    ref = rule.inputs.get("referencedSecurityGroupId")
    if ref is None:
        return rule.inputs["cidrIpv4"]
    return next(r.inputs["tags"]["Role"] for r in mocks.of_type("aws:ec2/securityGroup:SecurityGroup") if r.id == ref)


def test_filtering_ingress(variant):
    """Guards against the filtering nodes exposing a port to a CIDR (a client range, or the VPC's, which misses a
    secondary CIDR and, with client IP preservation, every client): port 80 and the health port only from the load
    balancer's group, SSH only from the jump host's."""
    _, _, run = variant
    ports = {(r.inputs["fromPort"], _peer(run.mocks, r)) for r in _rules(run.mocks, INGRESS, "filtering")}
    assert ports == {(80, "loadbalancer"), (8081, "loadbalancer"), (22, "jumphost")}


TLS_ARN = "arn:aws:acm:eu-central-1:123456789012:certificate/12345678-1234-1234-1234-123456789012"


@pytest.mark.parametrize("overrides", [{}, {"tlsCertificateArn": TLS_ARN},
                                       {"tlsCertificateArn": TLS_ARN, "clientCidrs": '["198.51.100.0/25", '
                                        '"198.51.100.128/25", "203.0.113.0/24"]'}],
                         ids=["plain", "tls", "tls-folded-clients"])
def test_the_load_balancer_group_admits_the_clients_and_reaches_only_the_nodes(overrides):
    """Guards against 443 open to everyone while clientCidrs restrict 80 (the issue's TLS path), a load balancer
    created without its group (AWS cannot add one later), egress from it beyond the nodes' traffic and health
    ports, and a client list that is not folded (two /25s are one rule)."""
    run = program_run(**overrides)
    tls = "tlsCertificateArn" in overrides
    [lb] = run.mocks.of_type("aws:lb/loadBalancer:LoadBalancer")
    assert lb.inputs["securityGroups"] == [_sg(run.mocks, "loadbalancer")], lb.name
    clients = {"198.51.100.0/24", "203.0.113.0/24"} if "clientCidrs" in overrides else {"0.0.0.0/0"}
    listeners = {80, 443} if tls else {80}
    ingress = {(r.inputs["fromPort"], _peer(run.mocks, r)) for r in _rules(run.mocks, INGRESS, "loadbalancer")}
    assert ingress == {(p, c) for p in listeners for c in clients}
    node_ports = {80, 8081} | ({8443, 8082} if tls else set())
    egress = {(r.inputs["fromPort"], _peer(run.mocks, r)) for r in _rules(run.mocks, EGRESS, "loadbalancer")}
    assert egress == {(p, "filtering") for p in node_ports}
    admitted = {r.inputs["fromPort"] for r in _rules(run.mocks, INGRESS, "filtering") if _peer(run.mocks, r) == "loadbalancer"}
    assert admitted == node_ports
    groups = run.mocks.of_type("aws:lb/targetGroup:TargetGroup")
    checked = {int(g.inputs["healthCheck"]["port"]) for g in groups}
    assert checked <= admitted and all(g.inputs["healthCheck"]["protocol"] == "HTTP" for g in groups)


def test_an_internal_load_balancer_sits_in_the_private_subnets():
    """Guards against loadBalancerInternal that leaves the load balancer internet-facing or in public subnets."""
    run = program_run(loadBalancerInternal=True)
    [lb] = run.mocks.of_type("aws:lb/loadBalancer:LoadBalancer")
    [vpc] = run.mocks.of_type("awsx:ec2:Vpc")
    assert lb.inputs["internal"] is True
    assert lb.inputs["subnets"] == vpc.outputs["privateSubnetIds"]
    [public] = program_run().mocks.of_type("aws:lb/loadBalancer:LoadBalancer")
    assert public.inputs["internal"] is False and public.inputs["subnets"] == vpc.outputs["publicSubnetIds"]


def test_egress_is_limited(variant):
    """Guards against allow-all egress: only HTTPS, apt's HTTP, wstore, SSH from the jump host, the application,
    and the distribution's updates on 80/443 from every host (the jump host too)."""
    _, overrides, run = variant
    s = _settings(overrides)
    pa = {(r.inputs["fromPort"], r.inputs["ipProtocol"]) for r in _rules(run.mocks, EGRESS, "postanalytics")}
    assert pa == {(443, "tcp"), (80, "tcp")}
    fl = _rules(run.mocks, EGRESS, "filtering")
    to_wstore = {(r.inputs["fromPort"], r.inputs["ipProtocol"]) for r in fl if r.inputs.get("referencedSecurityGroupId")}
    assert to_wstore == ({(6388, "tcp")} if s["tls"] else {(3313, "tcp"), (3313, "udp")})
    assert all(r.inputs["ipProtocol"] != "-1" for r in run.mocks.of_type(EGRESS)), "an all-protocols egress rule"
    assert any(r.inputs.get("cidrIpv4") == "10.0.0.10/32" and r.inputs["fromPort"] == 8080 for r in fl), \
        "no egress to the protected application 10.0.0.10:8080"
    jump = {(r.inputs["fromPort"], r.inputs.get("referencedSecurityGroupId")) for r in _rules(run.mocks, EGRESS, "jumphost")}
    assert jump == {(22, _sg(run.mocks, "filtering")), (22, _sg(run.mocks, "postanalytics")), (80, None), (443, None)}


def test_no_node_has_a_public_address(variant):
    """Guards against a node on the internet: only the jump host has a public IP."""
    _, _, run = variant
    for role in ("postanalytics", "filtering"):
        for r in instance_records(run.mocks, role):
            assert r.inputs["associatePublicIpAddress"] is False and not r.outputs["publicIp"], r.name
    [jump] = instance_records(run.mocks, "jumphost")
    assert jump.inputs["associatePublicIpAddress"] is True
    assert sorted(jump.inputs["vpcSecurityGroupIds"]) == sorted([_sg(run.mocks, "jumphost"), _sg(run.mocks, "deployer")])
    assert "iamInstanceProfile" not in jump.inputs


def test_instances_are_hardened(variant):
    """Guards against IMDSv1 (or a hop limit that lets containers reach it), or unencrypted volumes."""
    _, _, run = variant
    for r in run.mocks.of_type("aws:ec2/instance:Instance"):
        i = r.inputs
        assert i["metadataOptions"]["httpTokens"] == "required", r.name
        assert i["metadataOptions"]["httpPutResponseHopLimit"] == 1, r.name
        assert i["rootBlockDevice"]["encrypted"] is True, r.name
        assert i["userDataReplaceOnChange"] is True, r.name
        assert i["tags"]["Name"] == r.name


def test_every_remote_step_goes_through_the_jump_host(variant):
    """Guards against a step that dials a node directly (nodes have no public address)."""
    _, _, run = variant
    [eip] = run.mocks.of_type("aws:ec2/eip:Eip")
    [jump] = instance_records(run.mocks, "jumphost")
    assert eip.inputs["instance"] == jump.id, "the jump host's address is not its Elastic IP"
    steps = run.mocks.of_type("command:remote:Command") + run.mocks.of_type("command:remote:CopyToRemote")
    private = {o["privateIp"] for role in ("postanalytics", "filtering") for o in instances(run.mocks, role).values()}
    for r in steps:
        c = r.inputs["connection"]
        if r.name.endswith("-sshd"):  # the wait for a node's SSH banner runs on the jump host itself
            assert c["host"] == eip.outputs["publicIp"] and "proxy" not in c, r.name
            continue
        assert c["proxy"]["host"] == eip.outputs["publicIp"] and c["proxy"]["user"] == "admin", r.name
        assert c["host"] in private, f"{r.name} dials {c['host']}"
        assert "PRIVATE KEY" in c["proxy"]["privateKey"]


def test_load_balancer_targets_exactly_the_filtering_nodes(variant):
    """Guards against clients reaching a node that is not a filtering node, or a node left out."""
    _, _, run = variant
    [lb] = run.mocks.of_type("aws:lb/loadBalancer:LoadBalancer")
    assert lb.inputs["loadBalancerType"] == "network" and lb.inputs["internal"] is False
    assert lb.inputs["enableCrossZoneLoadBalancing"] is True
    assert lb.inputs["securityGroups"] == [_sg(run.mocks, "loadbalancer")]
    [tg] = run.mocks.of_type("aws:lb/targetGroup:TargetGroup")
    assert (tg.inputs["port"], tg.inputs["protocol"], tg.inputs["targetType"]) == (80, "TCP", "instance")
    assert tg.inputs["preserveClientIp"] == "true" and tg.inputs["deregistrationDelay"] == 30
    assert tg.inputs["healthCheck"]["port"] == "8081" and tg.inputs["healthCheck"]["path"] == "/healthz"
    targets = sorted(r.inputs["targetId"] for r in run.mocks.of_type("aws:lb/targetGroupAttachment:TargetGroupAttachment"))
    assert targets == sorted(r.id for r in instance_records(run.mocks, "filtering"))
    [listener] = run.mocks.of_type("aws:lb/listener:Listener")
    assert (listener.inputs["port"], listener.inputs["protocol"]) == (80, "TCP")
    assert run.exports["url"] == f"http://{lb.outputs['dnsName']}"


def test_tls_listener_with_a_certificate():
    """Guards against a certificate that is set but not served, and against HTTPS clients reported to the
    application as http (an application that forces HTTPS would redirect in a loop) or as the load balancer."""
    arn = "arn:aws:acm:eu-central-1:123456789012:certificate/12345678-1234-1234-1234-123456789012"
    run = program_run(tlsCertificateArn=arn)
    listeners = {r.inputs["port"]: r.inputs for r in run.mocks.of_type("aws:lb/listener:Listener")}
    assert sorted(listeners) == [80, 443]
    assert listeners[443]["protocol"] == "TLS" and listeners[443]["certificateArn"] == arn
    assert listeners[443]["sslPolicy"].startswith("ELBSecurityPolicy-TLS13")
    groups = {r.outputs["arn"]: r.inputs for r in run.mocks.of_type("aws:lb/targetGroup:TargetGroup")}
    tls_group = groups[listeners[443]["defaultActions"][0]["targetGroupArn"]]
    assert (tls_group["port"], tls_group["proxyProtocolV2"], tls_group["preserveClientIp"]) == (8443, True, "false")
    assert groups[listeners[80]["defaultActions"][0]["targetGroupArn"]]["port"] == 80
    attachments = run.mocks.of_type("aws:lb/targetGroupAttachment:TargetGroupAttachment")
    ids = sorted(r.id for r in instance_records(run.mocks, "filtering"))
    for port in (80, 8443):
        assert sorted(a.inputs["targetId"] for a in attachments if a.inputs["port"] == port) == ids, port
    tls_in = [r for r in _rules(run.mocks, INGRESS, "filtering") if r.inputs["fromPort"] == 8443]
    assert [_peer(run.mocks, r) for r in tls_in] == ["loadbalancer"], "the PROXY protocol port is open beyond the load balancer"
    # Proxy protocol on: AWS sends the header on health checks too, so that group is checked where NGINX expects it.
    assert tls_group["healthCheck"]["port"] == "8082" and tls_group["healthCheck"]["protocol"] == "HTTP"
    health = [d for d in parse_text(spec_file(spec(run.mocks, "filtering-0"), render.NGINX_CONF)["content"])
              if d["directive"] == "server" and ["8082", "proxy_protocol"] in
              [x["args"] for x in d["block"] if x["directive"] == "listen"]]
    assert len(health) == 1 and any(d["args"] == ["=", "/healthz"] for d in health[0]["block"]
                                    if d["directive"] == "location")
    plain_group = groups[listeners[80]["defaultActions"][0]["targetGroupArn"]]
    assert not plain_group.get("proxyProtocolV2") and plain_group["healthCheck"]["port"] == "8081"
    conf = spec_file(spec(run.mocks, "filtering-0"), render.NGINX_CONF)["content"]
    server = next(d for d in parse_text(conf) if d["directive"] == "server"
                  and ["8443", "proxy_protocol"] in [x["args"] for x in d["block"] if x["directive"] == "listen"])
    body = {d["directive"]: d["args"] for d in server["block"]}
    assert body["set_real_ip_from"] == ["10.0.0.0/16"] and body["real_ip_header"] == ["proxy_protocol"]
    location = next(d for d in server["block"] if d["directive"] == "location")
    assert ["X-Forwarded-Proto", "https"] in [d["args"] for d in location["block"] if d["directive"] == "proxy_set_header"]
    plain = program_run()
    assert "8443" not in spec_file(spec(plain.mocks, "filtering-0"), render.NGINX_CONF)["content"]


def test_health_location_answers_locally(variant):
    """Guards against a load balancer check that proxies to the application (or that wstore trouble fails)."""
    _, _, run = variant
    conf = spec_file(spec(run.mocks, "filtering-0"), render.NGINX_CONF)["content"]
    servers = [d for d in parse_text(conf) if d["directive"] == "server"]
    health = next(s for s in servers if ["8081"] in [d["args"] for d in s["block"] if d["directive"] == "listen"])
    location = next(d for d in health["block"] if d["directive"] == "location" and d["args"] == ["=", "/healthz"])
    assert [d["directive"] for d in location["block"]] == ["default_type", "return"]
    assert not any(d["directive"] == "proxy_pass" for s in [health] for d in s["block"])


@pytest.mark.parametrize("mode", ["off", "block"])
def test_health_check_knows_the_mode(mode):
    """Guards against every health check failing with wallarm_mode off (no attack is ever counted then)."""
    run = program_run(wallarmMode=mode)
    for name in instances(run.mocks, "filtering"):
        assert command(run.mocks, f"{name}-health")["create"].endswith(f"--node {name} --wallarm-mode {mode}")


def test_installer_url_mode_and_group_per_host(variant):
    """Guards against a host getting the wrong installer, architecture or mode, or a token in the command text."""
    _, _, run = variant
    for role, mode, arch in (("postanalytics", "postanalytics", "x86_64"), ("filtering", "filtering", "x86_64")):
        for name in instances(run.mocks, role):
            create = command(run.mocks, f"{name}-install")["create"]
            url = f"https://meganode.wallarm.com/6.12/wallarm-6.12.1.{arch}-glibc.sh"
            assert f"--url {url}" in create, f"{name}: {create}"
            assert f"--mode {mode}" in create and f"--arch {arch}" in create, f"{name}: {create}"
            assert "--group dev" in create and "--cloud EU" in create, f"{name}: {create}"
            assert ("--with-nginx" in create) == (role == "filtering"), f"{name}: {create}"
            assert "--sha256" not in create
            assert create.startswith("sudo bash ~/wallarm-deploy/install-wallarm.sh"), create


def test_pinned_installer_digest_reaches_the_host():
    """Guards against an installerSha256 pin that the host never checks."""
    digest = "ab" * 32
    run = program_run(installerSha256=[f"6.12.1/x86_64={digest}"])
    for name in ("postanalytics-0", "filtering-0"):
        assert f"--sha256 {digest}" in command(run.mocks, f"{name}-install")["create"]
    arm = program_run(installerSha256=[f"6.12.1/x86_64={digest}"], filteringInstanceType="c7g.large")
    assert "--sha256" not in command(arm.mocks, "filtering-0-install")["create"], "an x86_64 pin applied to aarch64"


def test_arm_types_get_the_aarch64_installer():
    """Guards against the architecture being fixed rather than following the instance type."""
    run = program_run(postanalyticsInstanceType="m7g.large", filteringInstanceType="c7g.large")
    for name in ("postanalytics-0", "filtering-0"):
        assert "wallarm-6.12.1.aarch64-glibc.sh" in command(run.mocks, f"{name}-install")["create"]
    amis = {r.inputs["ami"] for r in run.mocks.of_type("aws:ec2/instance:Instance")}
    assert len(amis) == 1, "arm64 nodes and the arm64 jump host share one image"


def test_arena_and_listeners(variant):
    """Guards against a wrong arena, or the plain wstore listener reachable from the network with TLS on."""
    _, overrides, run = variant
    s = _settings(overrides)
    for name, out in instances(run.mocks, "postanalytics").items():
        sp = spec(run.mocks, name)
        assert sp["env"] == [{"path": render.ENV_LIST, "set": {"SLAB_ALLOC_ARENA": "1.0"}}]
        wstore = next(y["set"] for y in sp["yaml"] if y["path"] == render.WSTORE_YAML)
        node = next(y["set"] for y in sp["yaml"] if y["path"] == render.NODE_YAML)
        ip = out["privateIp"]
        if s["tls"]:
            assert wstore["service.address"] == "127.0.0.1:3313", name
            assert wstore["service.TLS.address"] == f"{ip}:6388" and wstore["service.TLS.enabled"] is True
            assert node == {"wstore.host": "127.0.0.1", "wstore.port": 3313}
        else:
            assert wstore["service.address"] == f"{ip}:3313" and wstore["service.TLS.enabled"] is False
            assert node == {"wstore.host": ip, "wstore.port": 3313}
        assert wstore["service.TLS.mutualTLS.enabled"] is s["mtls"]
        assert sp["on_change"] == [["systemctl", "restart", "wallarm.service"]]


def test_upstream_lists_every_server_on_every_node(variant):
    """Guards against a filtering node missing a postanalytics server, or TLS directives not matching settings."""
    _, overrides, run = variant
    s = _settings(overrides)
    port = 6388 if s["tls"] else 3313
    servers = {f"{o['privateIp']}:{port}" for o in instances(run.mocks, "postanalytics").values()}
    for name in instances(run.mocks, "filtering"):
        conf = spec_file(spec(run.mocks, name), render.NGINX_CONF)["content"]
        top = parse_text(conf)
        upstream = next(d for d in top if d["directive"] == "upstream")
        assert upstream["args"] == ["wallarm_wstore"]
        lines = [d for d in upstream["block"] if d["directive"] == "server"]
        assert {d["args"][0] for d in lines} == servers, name
        for d in lines:
            assert d["args"][1:] == ["max_fails=0", "fail_timeout=0", "max_conns=1"], d
        keepalive = next(d for d in upstream["block"] if d["directive"] == "keepalive")
        assert int(keepalive["args"][0]) >= len(servers)
        live = [d for d in top if d["directive"] == "wallarm_wstore_upstream"]
        assert [d["args"] for d in live] == [["wallarm_wstore", "ssl=on"] if s["tls"] else ["wallarm_wstore"]]
        names = {d["directive"]: d["args"][0] for d in top if d["directive"].startswith("wallarm_wstore_ssl")}
        expected = {}
        if s["tls"]:
            expected["wallarm_wstore_ssl_ca_cert_file"] = render.NGINX_CA
        if s["mtls"]:
            expected["wallarm_wstore_ssl_cert_file"] = render.NGINX_CLIENT_CERT
            expected["wallarm_wstore_ssl_key_file"] = render.NGINX_CLIENT_KEY
        assert names == expected, name
        server = next(d for d in top if d["directive"] == "server")
        body = {d["directive"]: d["args"] for d in server["block"]}
        assert body["wallarm_mode"] == ["monitoring"] and body["listen"] == ["80", "default_server"]
        location = next(d for d in server["block"] if d["directive"] == "location")
        assert ["http://10.0.0.10:8080"] in [d["args"] for d in location["block"] if d["directive"] == "proxy_pass"]


def test_certificates(variant):
    """Guards against server certificates that do not name their server, leaves with the wrong key usage,
    a CA that cannot sign, or weak keys."""
    _, overrides, run = variant
    s = _settings(overrides)
    pa = instances(run.mocks, "postanalytics")
    if not s["tls"]:
        assert not run.mocks.of_type("tls:index/locallySignedCert:LocallySignedCert")
        return
    ca_rec = run.mocks.of_type("tls:index/selfSignedCert:SelfSignedCert")
    assert len(ca_rec) == 1
    ca = cert(ca_rec[0].outputs["certPem"])
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    for name, out in pa.items():
        sp = spec(run.mocks, name)
        leaf = cert(spec_file(sp, render.WSTORE_CERT)["content"])
        assert sans(leaf) == {out["privateIp"], out["privateDns"]}, name
        assert ExtendedKeyUsageOID.SERVER_AUTH in leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        leaf.verify_directly_issued_by(ca)
        assert isinstance(leaf.public_key(), ec.EllipticCurvePublicKey) and leaf.public_key().curve.key_size >= 256
        assert spec_file(sp, render.WSTORE_KEY)["mode"] == "0600"
        assert spec_file(sp, render.WSTORE_CA)["content"] == ca_rec[0].outputs["certPem"]
    for name, out in instances(run.mocks, "filtering").items():
        sp = spec(run.mocks, name)
        paths = {f["path"] for f in sp["files"]}
        assert (render.NGINX_CLIENT_CERT in paths) == s["mtls"], name
        if s["mtls"]:
            leaf = cert(spec_file(sp, render.NGINX_CLIENT_CERT)["content"])
            usages = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
            assert ExtendedKeyUsageOID.CLIENT_AUTH in usages and ExtendedKeyUsageOID.SERVER_AUTH not in usages
            assert out["privateIp"] in sans(leaf)
            leaf.verify_directly_issued_by(ca)
            assert spec_file(sp, render.NGINX_CLIENT_KEY)["mode"] == "0600"


def test_every_remote_step_follows_its_instance_and_its_script(variant):
    """Guards against a replaced instance that never gets installed, or an edited script that never runs again."""
    _, _, run = variant
    ids = {r.inputs["tags"]["Node"]: r.id for r in run.mocks.of_type("aws:ec2/instance:Instance")}
    steps = run.mocks.of_type("command:remote:Command") + run.mocks.of_type("command:remote:CopyToRemote")
    assert steps
    for r in steps:
        host = re.match(r"(postanalytics|filtering)-\d+", r.name).group(0)
        assert r.inputs["triggers"][0] == ids[host], f"{r.name} does not follow {host}'s instance"
        assert r.inputs["connection"]["user"] == "admin" and r.inputs["connection"]["host"], r.name
    for r in run.mocks.of_type("command:remote:Command"):
        assert re.fullmatch(r"[0-9a-f]{64}", r.inputs["triggers"][1]), f"{r.name} lacks its script's hash"


def test_no_command_asks_sshd_for_environment_variables(variant):
    """Guards against PULUMI_COMMAND_STDOUT sent over SSH on every update (stock sshd refuses it, with a warning)."""
    _, _, run = variant
    commands = run.mocks.of_type("command:remote:Command") + run.mocks.of_type("command:local:Command")
    assert commands and all(r.inputs["addPreviousOutputInEnv"] is False for r in commands)


def test_exports(variant):
    """Guards against outputs that do not match what the hosts got, or that operators cannot use."""
    _, overrides, run = variant
    s = _settings(overrides)
    e = run.exports
    assert e["postanalyticsPrivateIps"] == [o["privateIp"] for o in instances(run.mocks, "postanalytics").values()]
    assert e["filteringPrivateIps"] == [o["privateIp"] for o in instances(run.mocks, "filtering").values()]
    for ip in e["filteringPrivateIps"] + e["postanalyticsPrivateIps"]:
        assert ipaddress.IPv4Address(ip).is_private
    for name in instances(run.mocks, "filtering"):
        assert e["wstoreUpstream"] in spec_file(spec(run.mocks, name), render.NGINX_CONF)["content"]
    assert (e["caCertificate"] or "").startswith("-----BEGIN CERTIFICATE-----") == s["tls"]
    assert "sshPrivateKey" in run.secret_exports
    [eip] = run.mocks.of_type("aws:ec2/eip:Eip")
    assert e["jumpHostPublicIp"] == eip.outputs["publicIp"]
    assert e["deployerSecurityGroupId"] == _sg(run.mocks, "deployer")
    nodes = {**instances(run.mocks, "postanalytics"), **instances(run.mocks, "filtering")}
    assert e["sshCommands"] == {n: f"ssh -J admin@{e['jumpHostPublicIp']} admin@{o['privateIp']}" for n, o in nodes.items()}


@pytest.mark.parametrize("os_name,user", [("debian-12", "admin"), ("ubuntu-24.04", "ubuntu")])
def test_ssh_user_follows_os(os_name, user):
    """Guards against connecting as a user the image does not have."""
    run = program_run(os=os_name)
    for r in run.mocks.of_type("command:remote:Command"):
        c = r.inputs["connection"]
        hop = c if r.name.endswith("-sshd") else c["proxy"]  # a node's SSH wait runs on the jump host itself
        assert c["user"] == user and hop["user"] == user, r.name
    # The wait step stages the scripts in the SSH user's own home ($HOME), where every later step runs them.
    for r in run.mocks.of_type("command:remote:Command"):
        if r.name.endswith("-wait"):
            assert 'stage="$HOME/wallarm-deploy"' in r.inputs["stdin"], r.name
        elif not r.name.endswith("-sshd"):
            assert "~/wallarm-deploy/" in r.inputs["create"] and "/home/" not in r.inputs["create"], r.name


def test_500_filtering_nodes_stay_within_aws_quotas():
    """Guards against a fleet that outgrows AWS's default quotas (60 rules per security group, 5 groups per
    instance): wstore admits the filtering group by reference, so no rule count grows with the fleet."""
    run = program_run(postanalyticsCount=10, filteringCount=500)
    assert max_rules(run.mocks) <= SG_RULES_QUOTA
    rules = run.mocks.of_type(INGRESS) + run.mocks.of_type(EGRESS)
    assert len(rules) == len(program_run().mocks.of_type(INGRESS) + program_run().mocks.of_type(EGRESS))
    assert all(len(r.inputs["vpcSecurityGroupIds"]) <= 5 for r in run.mocks.of_type("aws:ec2/instance:Instance"))
    assert len(instance_records(run.mocks, "filtering")) == 500
    assert len(run.mocks.of_type("aws:lb/targetGroupAttachment:TargetGroupAttachment")) == 500
    # A rolling replacement registers 1000 targets for a while: the program says so before it starts.
    assert any("1000 targets, beyond the network load balancer's default quota of 500" in w for w in run.warnings)
    assert not [w for w in program_run().warnings if "quota" in w]
