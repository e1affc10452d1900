"""The whole __main__.py under mocks: what it declares for the dev stack and the 2x3 variants, TLS on and off,
mutual TLS on and off."""

from __future__ import annotations

import ipaddress
import re

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from components import render
from tools.nginxconf import parse_text
from tests.helpers import cert, command, instances, sans, spec, spec_file

INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"


def _settings(overrides):
    tls = overrides.get("tls", True)
    return {
        "pa": overrides.get("postanalyticsCount", 1), "f": overrides.get("filteringCount", 2),
        "tls": tls, "mtls": overrides.get("mutualTls", True) and tls,
    }


def _rules(mocks, typ, role):
    """The rules of one fleet's security group."""
    sg_id = mocks.named(f"firewall-{role}").id
    return [r for r in mocks.of_type(typ) if r.inputs["securityGroupId"] == sg_id]


def test_counts(variant):
    """Guards against a count setting that does not produce that many servers and nodes."""
    _, overrides, run = variant
    s = _settings(overrides)
    assert len(instances(run.mocks, "postanalytics")) == s["pa"]
    assert len(instances(run.mocks, "filtering")) == s["f"]


def test_wstore_reachable_only_from_filtering_nodes(variant):
    """Guards against wstore (arbitrary Lua and OS commands) being open beyond this stack's filtering nodes."""
    _, overrides, run = variant
    s = _settings(overrides)
    wanted = {(6388, "tcp")} if s["tls"] else {(3313, "tcp"), (3313, "udp")}
    filtering_cidrs = {f"{o['privateIp']}/32" for o in instances(run.mocks, "filtering").values()}
    rules = _rules(run.mocks, INGRESS, "postanalytics")
    wstore = [r for r in rules if r.inputs["fromPort"] != 22]
    assert wstore, "no wstore ingress rule at all"
    for r in wstore:
        i = r.inputs
        assert (i["fromPort"], i["ipProtocol"]) in wanted, f"{r.name} opens {i['ipProtocol']}/{i['fromPort']}"
        assert i["fromPort"] == i["toPort"], r.name
        assert i["cidrIpv4"] in filtering_cidrs, f"{r.name} admits {i['cidrIpv4']}, not a filtering node"
        assert i.get("description"), r.name
    have = {(r.inputs["cidrIpv4"], r.inputs["fromPort"], r.inputs["ipProtocol"]) for r in wstore}
    assert have == {(c, p, proto) for c in filtering_cidrs for p, proto in wanted}


def test_ssh_only_from_listed_cidrs(variant):
    """Guards against port 22 open to anything but sshAllowedCidrs, on either fleet."""
    _, _, run = variant
    for role in ("postanalytics", "filtering"):
        ssh = [r for r in _rules(run.mocks, INGRESS, role) if r.inputs["fromPort"] == 22]
        assert [r.inputs["cidrIpv4"] for r in ssh] == ["203.0.113.10/32"], role


def test_filtering_ingress_is_http_and_ssh_only(variant):
    """Guards against the filtering nodes exposing anything but port 80 to clients."""
    _, _, run = variant
    ports = {(r.inputs["fromPort"], r.inputs["cidrIpv4"]) for r in _rules(run.mocks, INGRESS, "filtering")}
    assert ports == {(80, "0.0.0.0/0"), (22, "203.0.113.10/32")}


def test_egress_is_limited(variant):
    """Guards against allow-all egress: only HTTPS, apt's HTTP, wstore and the protected application."""
    _, overrides, run = variant
    s = _settings(overrides)
    pa = {(r.inputs["fromPort"], r.inputs["ipProtocol"]) for r in _rules(run.mocks, EGRESS, "postanalytics")}
    assert pa == {(443, "tcp")}
    fl = _rules(run.mocks, EGRESS, "filtering")
    to_wstore = {(r.inputs["fromPort"], r.inputs["ipProtocol"]) for r in fl if r.inputs.get("referencedSecurityGroupId")}
    assert to_wstore == ({(6388, "tcp")} if s["tls"] else {(3313, "tcp"), (3313, "udp")})
    assert all(r.inputs["ipProtocol"] != "-1" for r in fl), "an all-protocols egress rule"
    assert any(r.inputs.get("cidrIpv4") == "10.0.0.10/32" and r.inputs["fromPort"] == 8080 for r in fl), \
        "no egress to the protected application 10.0.0.10:8080"


def test_instances_are_hardened(variant):
    """Guards against IMDSv1, unencrypted volumes, or in-place reinstalls on a new version."""
    _, _, run = variant
    for r in run.mocks.of_type("aws:ec2/instance:Instance"):
        i = r.inputs
        assert i["metadataOptions"]["httpTokens"] == "required", r.name
        assert i["rootBlockDevice"]["encrypted"] is True, r.name
        assert i["userDataReplaceOnChange"] is True and "version=6.12.1" in i["userData"], r.name
        assert i["tags"]["Name"] == r.name


def test_nodes_spread_across_subnets():
    """Guards against every node landing in one availability zone."""
    from tests.conftest import program_run
    run = program_run(postanalyticsCount=2, filteringCount=3)
    for role in ("postanalytics", "filtering"):
        subnets = [r.inputs["subnetId"] for r in run.mocks.of_type("aws:ec2/instance:Instance") if r.name.startswith(role)]
        assert len(set(subnets)) == len(subnets), f"{role}: {subnets}"


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
            assert create.startswith("sudo bash ~/wallarm-deploy/install-wallarm.sh"), create


def test_arm_types_get_the_aarch64_installer():
    """Guards against the architecture being fixed rather than following the instance type."""
    from tests.conftest import program_run
    run = program_run(postanalyticsInstanceType="m7g.large", filteringInstanceType="c7g.large")
    for name in ("postanalytics-0", "filtering-0"):
        assert "wallarm-6.12.1.aarch64-glibc.sh" in command(run.mocks, f"{name}-install")["create"]
    amis = {r.inputs["ami"] for r in run.mocks.of_type("aws:ec2/instance:Instance")}
    assert len(amis) == 1


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


def test_every_remote_step_follows_its_instance(variant):
    """Guards against a replaced instance that never gets installed (an update runs on the new host by chance)."""
    _, _, run = variant
    ids = {r.name: r.id for r in run.mocks.of_type("aws:ec2/instance:Instance")}
    steps = run.mocks.of_type("command:remote:Command") + run.mocks.of_type("command:remote:CopyToRemote")
    assert steps
    for r in steps:
        host = re.match(r"(postanalytics|filtering)-\d+", r.name).group(0)
        assert ids[host] in r.inputs["triggers"], f"{r.name} does not follow {host}'s instance"
        assert r.inputs["connection"]["user"] == "admin" and r.inputs["connection"]["host"], r.name


def test_exports(variant):
    """Guards against outputs that do not match what the hosts got."""
    _, overrides, run = variant
    s = _settings(overrides)
    e = run.exports
    assert e["postanalyticsPrivateIps"] == [o["privateIp"] for o in instances(run.mocks, "postanalytics").values()]
    assert e["filteringPublicIps"] == [o["publicIp"] for o in instances(run.mocks, "filtering").values()]
    for ip in e["filteringPublicIps"]:
        ipaddress.IPv4Address(ip)
    for name in instances(run.mocks, "filtering"):
        assert e["wstoreUpstream"] in spec_file(spec(run.mocks, name), render.NGINX_CONF)["content"]
    assert (e["caCertificate"] or "").startswith("-----BEGIN CERTIFICATE-----") == s["tls"]
    assert "sshPrivateKey" in run.secret_exports


@pytest.mark.parametrize("os_name,user", [("debian-12", "admin"), ("ubuntu-24.04", "ubuntu")])
def test_ssh_user_follows_os(os_name, user):
    """Guards against connecting as a user the image does not have."""
    from tests.conftest import program_run
    run = program_run(os=os_name)
    for r in run.mocks.of_type("command:remote:Command"):
        assert r.inputs["connection"]["user"] == user
    uploads = run.mocks.of_type("command:remote:CopyToRemote")
    assert all(r.inputs["remotePath"].startswith(f"/home/{user}/wallarm-deploy/") for r in uploads)
