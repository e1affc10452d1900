"""The policy pack, run the way the engine runs it: every resource goes through pulumi_policy's own analyzer
(`_PolicyAnalyzerServicer.Analyze` / `AnalyzeStack`) as a gRPC request, so the policies get the read-only
`_DictProxy` / `_ListProxy` objects, numbers as floats and preview sentinels, exactly as in `pulumi preview`."""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
from pathlib import Path

import grpc
import pulumi.runtime.config
import pytest
import yaml
from google.protobuf import empty_pb2
from pulumi.runtime import proto
from pulumi.runtime.proto import analyzer_pb2_grpc
from pulumi_policy import EnforcementLevel
from pulumi_policy.deserialize import serialize_properties
from pulumi_policy.policy import _PolicyAnalyzerServicer
from pulumi_policy.proxy import UNKNOWN_ARRAY_VALUE, UNKNOWN_STRING_VALUE

from tests.conftest import VARIANTS, program_run

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "policy"))
import rules  # noqa: E402  (policy/rules.py: the checks without the blocking PolicyPack)

PACK = "wallarm-postanalytics"
SG_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
LEGACY = "aws:ec2/securityGroupRule:SecurityGroupRule"
GROUP = "aws:ec2/securityGroup:SecurityGroup"
INSTANCE = "aws:ec2/instance:Instance"


def _servicer() -> _PolicyAnalyzerServicer:
    return _PolicyAnalyzerServicer(PACK, "0.0.1", rules.POLICIES, EnforcementLevel.MANDATORY)


def _urn(typ: str, name: str, parent_type: str = "") -> str:
    return f"urn:pulumi:test::{PACK}::{parent_type + '$' if parent_type else ''}{typ}::{name}"


JUMP = "wallarm:index:JumpHost"


def _request(message, typ: str, name: str, props: dict, urn: str = ""):
    request = message(type=typ, name=name, urn=urn or _urn(typ, name))
    # What the engine puts on the wire: assets and secrets as signature maps, numbers as doubles.
    request.properties.update(serialize_properties(props))
    return request


def _diagnostics(response) -> list[tuple[str, str, int]]:
    """(policy, the violation's own message, enforcement level) per diagnostic."""
    return [(d.policyName, d.message.split("\n", 1)[-1], d.enforcementLevel) for d in response.diagnostics]


def analyze(typ: str, props: dict, name: str = "subject", servicer=None, urn: str = "") -> list[tuple[str, str, int]]:
    servicer = servicer or _servicer()
    return _diagnostics(servicer.Analyze(_request(proto.AnalyzeRequest, typ, name, props, urn), None))


def analyze_stack(resources: list[dict]) -> list[tuple[str, str, int]]:
    """resources: dicts with typ, name, props and optionally urn, parent, dependencies, property_deps."""
    request = proto.AnalyzeStackRequest()
    for r in resources:
        res = _request(proto.AnalyzerResource, r["typ"], r["name"], r["props"], r.get("urn", ""))
        res.parent = r.get("parent", "")
        res.dependencies.extend(r.get("dependencies", []))
        for key, urns in r.get("property_deps", {}).items():
            res.propertyDependencies[key].urns.extend(urns)
        request.resources.append(res)
    return _diagnostics(_servicer().AnalyzeStack(request, None))


# ---- builders of resources that pass, changed one field at a time ----------------------------------------

def rule(**changes) -> dict:
    return {"ipProtocol": "tcp", "fromPort": 22, "toPort": 22, "cidrIpv4": "203.0.113.10/32",
            "securityGroupId": "sg-0123", "description": "SSH", **changes}


def legacy(**changes) -> dict:
    return {"type": "ingress", "protocol": "tcp", "fromPort": 22, "toPort": 22, "cidrBlocks": ["203.0.113.10/32"],
            "securityGroupId": "sg-0123", **changes}


def instance(role: str = "postanalytics", drop: tuple = (), **changes) -> dict:
    props = {"ami": "ami-0123", "instanceType": "t3.large", "associatePublicIpAddress": False,
             "metadataOptions": {"httpTokens": "required", "httpEndpoint": "enabled", "httpPutResponseHopLimit": 1},
             "rootBlockDevice": {"encrypted": True, "volumeType": "gp3", "volumeSize": 20},
             "tags": {"Name": f"{role}-0", "Role": role}}
    for key in drop:
        props.pop(key)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(props.get(key), dict):
            props[key] = {**props[key], **value}
        else:
            props[key] = value
    return props


def jump_stack(name: str = "jumphost-0", group_role: str = "jumphost", ingress: tuple = (22,)) -> list[dict]:
    """The program's jump host: an instance of the JumpHost component, in its group, which admits SSH."""
    group = {"typ": GROUP, "name": f"firewall-{group_role}", "props": {"tags": {"Role": group_role}}}
    node = {"typ": INSTANCE, "name": name, "urn": _urn(INSTANCE, name, JUMP),
            "props": instance(role="jumphost", associatePublicIpAddress=True, vpcSecurityGroupIds=["sg-1"]),
            "property_deps": {"vpcSecurityGroupIds": [_urn(GROUP, f"firewall-{group_role}")]}}
    rules_ = [{"typ": SG_RULE, "name": f"{name}-in-{port}", "props": rule(fromPort=port, toPort=port),
               "property_deps": {"securityGroupId": [_urn(GROUP, f"firewall-{group_role}")]}} for port in ingress]
    return [group, node, *rules_]


def role_host(role: str) -> tuple[list[dict], dict, str]:
    """(the resources, the instance, its URN) of one `role` host: the whole jump host stack, or a bare node."""
    if role == "jumphost":
        resources = jump_stack()
        host = resources[1]
    else:
        host = {"typ": INSTANCE, "name": f"{role}-0", "props": instance(role=role)}
        resources = [host]
    return resources, host, host.get("urn") or _urn(INSTANCE, host["name"])


def eip_stack(role: str, typ: str = "aws:ec2/eip:Eip", key: str = "instance") -> list[dict]:
    nodes, _, target_urn = role_host(role)
    eip = {"typ": typ, "name": f"{role}-0-eip", "props": {key: "i-0123", "domain": "vpc"},
           "property_deps": {key: [target_urn]}}
    return [*nodes, eip]


# ---- the table: dangerous resources, each with the policy that must catch it and words of its message ----

DANGEROUS = [
    # id, resource type (or "stack"), props (or stack resources), policy, words in its message
    ("wstore-tls-world", SG_RULE, rule(fromPort=6388, toPort=6388, cidrIpv4="0.0.0.0/0"),
     "no-internet-ingress-beyond-http", "tcp port 6388 to 0.0.0.0/0"),
    ("ssh-lower-half", SG_RULE, rule(cidrIpv4="0.0.0.0/1"), "no-internet-ingress-beyond-http", "1/2 of the IPv4"),
    ("ssh-upper-half", SG_RULE, rule(cidrIpv4="128.0.0.0/1"), "no-internet-ingress-beyond-http", "128.0.0.0/1"),
    ("ssh-a-quarter", SG_RULE, rule(cidrIpv4="64.0.0.0/2"), "no-internet-ingress-beyond-http", "1/4 of the IPv4"),
    ("all-ipv6-world", SG_RULE, rule(ipProtocol="-1", fromPort=None, toPort=None, cidrIpv4=None, cidrIpv6="::/0"),
     "no-internet-ingress-beyond-http", "every protocol and port to ::/0"),
    ("ssh-ipv6-global-unicast", SG_RULE, rule(cidrIpv4=None, cidrIpv6="2000::/3"),
     "no-internet-ingress-beyond-http", "1/8 of the IPv6"),
    ("http-range-world", SG_RULE, rule(fromPort=80, toPort=443, cidrIpv4="0.0.0.0/0"),
     "no-internet-ingress-beyond-http", "tcp ports 80-443"),
    ("udp-443-world", SG_RULE, rule(ipProtocol="udp", fromPort=443, toPort=443, cidrIpv4="0.0.0.0/0"),
     "no-internet-ingress-beyond-http", "udp port 443"),
    ("protocol-number-world", SG_RULE, rule(ipProtocol="6", cidrIpv4="0.0.0.0/0"),
     "no-internet-ingress-beyond-http", "tcp port 22 to 0.0.0.0/0"),
    ("legacy-ssh-world", LEGACY, legacy(cidrBlocks=["0.0.0.0/0"]),
     "no-internet-ingress-beyond-http", "security group rule opens tcp port 22"),
    ("legacy-all-ipv6-world", LEGACY, legacy(protocol="-1", fromPort=0, toPort=0, cidrBlocks=[], ipv6CidrBlocks=["::/0"]),
     "no-internet-ingress-beyond-http", "security group rule opens every protocol"),
    ("legacy-wstore-udp-wide", LEGACY, legacy(protocol="udp", fromPort=3313, toPort=3313, cidrBlocks=["10.0.0.0/8"]),
     "wstore-narrow-sources", "udp port 3313 (wstore port 3313) from 10.0.0.0/8"),
    ("inline-ssh-world", GROUP, {"ingress": [{"protocol": "tcp", "fromPort": 22, "toPort": 22,
                                              "cidrBlocks": ["0.0.0.0/0"]}]},
     "no-internet-ingress-beyond-http", "inline ingress #0 opens tcp port 22"),
    ("inline-second-rule-wstore-half", GROUP, {"ingress": [
        {"protocol": "tcp", "fromPort": 80, "toPort": 80, "cidrBlocks": ["0.0.0.0/0"]},
        {"protocol": "tcp", "fromPort": 6388, "toPort": 6388, "cidrBlocks": ["0.0.0.0/1"], "ipv6CidrBlocks": []}]},
     "wstore-narrow-sources", "inline ingress #1 admits tcp port 6388"),
    ("default-group-all-world", "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup",
     {"ingress": [{"protocol": "-1", "fromPort": 0, "toPort": 0, "cidrBlocks": ["0.0.0.0/0"]}]},
     "no-internet-ingress-beyond-http", "inline ingress #0 opens every protocol and port to 0.0.0.0/0"),
    ("wstore-private-slash8", SG_RULE, rule(fromPort=6388, toPort=6388, cidrIpv4="10.0.0.0/8"),
     "wstore-narrow-sources", "tcp port 6388 (wstore port 6388) from 10.0.0.0/8"),
    ("wstore-plain-udp-slash12", SG_RULE, rule(ipProtocol="udp", fromPort=3313, toPort=3313, cidrIpv4="172.16.0.0/12"),
     "wstore-narrow-sources", "from 172.16.0.0/12"),
    ("wstore-prefix-list", SG_RULE, rule(fromPort=6388, toPort=6388, cidrIpv4=None, prefixListId="pl-0123"),
     "wstore-narrow-sources", "prefix list pl-0123"),
    ("all-ports-cover-wstore", SG_RULE, rule(fromPort=0, toPort=65535, cidrIpv4="10.0.0.0/12"),
     "wstore-narrow-sources", "tcp ports 0-65535 (wstore port 3313, 6388)"),
    ("wstore-ipv6-slash32", SG_RULE, rule(fromPort=6388, toPort=6388, cidrIpv4=None, cidrIpv6="2001:db8::/32"),
     "wstore-narrow-sources", "from 2001:db8::/32"),
    ("postanalytics-public-ip", INSTANCE, instance(associatePublicIpAddress=True),
     "private-nodes", "postanalytics instance gets a public IP"),
    ("postanalytics-public-ip-unset", INSTANCE, instance(drop=("associatePublicIpAddress",)),
     "private-nodes", "postanalytics instance leaves associatePublicIpAddress unset"),
    ("filtering-public-ip", INSTANCE, instance(role="filtering", associatePublicIpAddress=True),
     "private-nodes", "filtering instance gets a public IP"),
    ("untagged-public-ip", INSTANCE, instance(drop=("tags",), associatePublicIpAddress=True),
     "private-nodes", "untagged instance gets a public IP"),
    ("imdsv1", INSTANCE, instance(metadataOptions={"httpTokens": "optional"}),
     "imdsv2-hop-limit-1", "allows IMDSv1 (httpTokens optional)"),
    ("imds-tokens-unset", INSTANCE, instance(metadataOptions={"httpTokens": None}),
     "imdsv2-hop-limit-1", "allows IMDSv1 (httpTokens unset)"),
    ("imds-hop-limit-2", INSTANCE, instance(metadataOptions={"httpPutResponseHopLimit": 2}),
     "imdsv2-hop-limit-1", "hop limit of 2"),
    ("imds-hop-limit-unset", INSTANCE, instance(metadataOptions={"httpPutResponseHopLimit": None}),
     "imdsv2-hop-limit-1", "hop limit of unset"),
    ("root-unencrypted", INSTANCE, instance(rootBlockDevice={"encrypted": False}),
     "encrypted-volumes", "root volume is not encrypted"),
    ("root-device-unset", INSTANCE, instance(role="filtering", drop=("rootBlockDevice",)),
     "encrypted-volumes", "filtering instance's root volume"),
    ("extra-ebs-unencrypted", INSTANCE, instance(ebsBlockDevices=[{"deviceName": "/dev/sdf", "encrypted": False}]),
     "encrypted-volumes", "EBS volume /dev/sdf"),
    ("volume-unencrypted", "aws:ec2/volume:Volume", {"availabilityZone": "eu-central-1a", "size": 10},
     "encrypted-volumes", "EBS volume is not encrypted"),
    ("ecdsa-default-curve", "tls:index/privateKey:PrivateKey", {"algorithm": "ECDSA"}, "strong-tls-keys", "P224"),
    ("rsa-1024", "tls:index/privateKey:PrivateKey", {"algorithm": "RSA", "rsaBits": 1024},
     "strong-tls-keys", "RSA key of 1024 bits"),
    ("nlb-without-security-group", "aws:lb/loadBalancer:LoadBalancer",
     {"loadBalancerType": "network", "subnets": ["subnet-1", "subnet-2"]}, "nlb-security-group",
     "network load balancer has no security group"),
    ("nlb-with-empty-security-groups", "aws:lb/loadBalancer:LoadBalancer",
     {"loadBalancerType": "network", "securityGroups": []}, "nlb-security-group", "no security group"),
    ("eip-on-postanalytics", "stack", eip_stack("postanalytics"), "no-elastic-ip-on-nodes",
     "attached to postanalytics instance postanalytics-0"),
    ("eip-association-on-filtering", "stack",
     eip_stack("filtering", "aws:ec2/eipAssociation:EipAssociation", "instanceId"),
     "no-elastic-ip-on-nodes", "attached to filtering instance filtering-0"),
]


def _run_case(typ, props) -> list[tuple[str, str, int]]:
    """typ: a resource type, "stack" (props: the stack's resources), or (resource type, its parent's type)."""
    if isinstance(typ, tuple):
        return analyze(typ[0], props, urn=_urn(typ[0], "subject", typ[1]))
    return analyze_stack(props) if typ == "stack" else analyze(typ, props)


@pytest.mark.parametrize("case_id,typ,props,policy,words", DANGEROUS, ids=[c[0] for c in DANGEROUS])
def test_each_dangerous_resource_is_reported(case_id, typ, props, policy, words):
    """Guards against a policy that misses a dangerous resource, or crashes on the engine's proxies
    (`'_ListProxy' + list`) instead of reporting it."""
    found = _run_case(typ, props)
    assert found, f"{case_id}: no violation"
    assert all(level == proto.MANDATORY for _, _, level in found), f"{case_id}: {found}"
    assert any(name == policy and words in message for name, message, _ in found), f"{case_id}: {found}"


def test_every_dangerous_case_has_its_own_message():
    """Guards against one vague message ("insecure") standing for many different mistakes."""
    messages = {case_id: tuple(sorted(m for _, m, _ in _run_case(typ, props)))
                for case_id, typ, props, _, _ in DANGEROUS}
    assert len(DANGEROUS) >= 20
    seen: dict[tuple, str] = {}
    for case_id, found in messages.items():
        assert found, case_id
        assert found not in seen, f"{case_id} and {seen.get(found)} are reported with the same words: {found}"
        seen[found] = case_id


SAFE = [
    ("http-world", SG_RULE, rule(fromPort=80, toPort=80, cidrIpv4="0.0.0.0/0")),
    ("https-world-ipv6", SG_RULE, rule(fromPort=443, toPort=443, cidrIpv4=None, cidrIpv6="::/0")),
    ("ssh-slash8", SG_RULE, rule(cidrIpv4="10.0.0.0/8")),
    ("wstore-slash16", SG_RULE, rule(fromPort=6388, toPort=6388, cidrIpv4="10.1.0.0/16")),
    ("wstore-ipv6-slash64", SG_RULE, rule(fromPort=6388, toPort=6388, cidrIpv4=None, cidrIpv6="2001:db8:1::/64")),
    ("wstore-from-group", SG_RULE, rule(fromPort=6388, toPort=6388, cidrIpv4=None, referencedSecurityGroupId="sg-9")),
    ("egress-everything", "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
     rule(ipProtocol="tcp", fromPort=22, toPort=22, cidrIpv4="0.0.0.0/0")),  # all-protocol egress: test_policy_shapes
    ("legacy-egress", LEGACY, legacy(type="egress", protocol="tcp", cidrBlocks=["0.0.0.0/0"])),
    ("legacy-wstore-from-group", LEGACY, legacy(fromPort=6388, toPort=6388, cidrBlocks=[],
                                                sourceSecurityGroupId="sg-9")),
    ("inline-wstore-self", GROUP, {"ingress": [{"protocol": "tcp", "fromPort": 6388, "toPort": 6388, "self": True}]}),
    ("jump-host-public", (INSTANCE, JUMP), instance(role="jumphost", associatePublicIpAddress=True)),
    ("jump-host-stack", "stack", jump_stack()),
    ("imds-off", INSTANCE, instance(metadataOptions={"httpEndpoint": "disabled", "httpTokens": "optional"})),
    ("ecdsa-p384", "tls:index/privateKey:PrivateKey", {"algorithm": "ECDSA", "ecdsaCurve": "P384"}),
    ("rsa-4096", "tls:index/privateKey:PrivateKey", {"algorithm": "RSA", "rsaBits": 4096}),
    ("ed25519", "tls:index/privateKey:PrivateKey", {"algorithm": "ED25519"}),
    ("eip-on-jump-host", "stack", eip_stack("jumphost")),
    ("nlb-with-its-group", "aws:lb/loadBalancer:LoadBalancer", {"loadBalancerType": "network",
                                                                "securityGroups": ["sg-0123456789abcdef0"]}),
    ("gateway-lb-without-group", "aws:lb/loadBalancer:LoadBalancer", {"loadBalancerType": "gateway"}),
]


@pytest.mark.parametrize("case_id,typ,props", SAFE, ids=[c[0] for c in SAFE])
def test_near_misses_pass(case_id, typ, props):
    """Guards against policies so broad that the program's own choices (port 80 to the world, wstore from the
    filtering group, SSH from a /8, the jump host's public IP) would fail them."""
    assert _run_case(typ, props) == []


@pytest.mark.parametrize("case_id,typ,props", [
    ("group-not-known", SG_RULE, rule(fromPort=6388, toPort=6388, cidrIpv4=None,
                                      referencedSecurityGroupId=UNKNOWN_STRING_VALUE,
                                      securityGroupId=UNKNOWN_STRING_VALUE)),
    ("cidr-not-known", SG_RULE, rule(fromPort=6388, toPort=6388, cidrIpv4=UNKNOWN_STRING_VALUE)),
    ("inline-list-not-known", GROUP, {"ingress": UNKNOWN_ARRAY_VALUE, "vpcId": UNKNOWN_STRING_VALUE}),
    ("inline-cidrs-not-known", GROUP, {"ingress": [{"protocol": "tcp", "fromPort": 6388, "toPort": 6388,
                                                    "cidrBlocks": UNKNOWN_ARRAY_VALUE}]}),
    ("nlb-group-not-known", "aws:lb/loadBalancer:LoadBalancer", {"loadBalancerType": "network",
                                                                 "securityGroups": [UNKNOWN_STRING_VALUE]}),
    ("nlb-groups-not-known", "aws:lb/loadBalancer:LoadBalancer", {"loadBalancerType": "network",
                                                                  "securityGroups": UNKNOWN_ARRAY_VALUE}),
    ("instance-ids-not-known", INSTANCE, instance(subnetId=UNKNOWN_STRING_VALUE,
                                                  vpcSecurityGroupIds=[UNKNOWN_STRING_VALUE])),
], ids=lambda v: v if isinstance(v, str) and v[:1].isalpha() and len(v) < 40 else "")
def test_preview_unknowns_neither_fail_nor_skip_the_policies(case_id, typ, props):
    """Guards against a first preview (ids of groups not created yet) that fails, or reports "can't run policy"
    instead of checking what is known."""
    assert analyze(typ, props) == [], case_id


def test_a_moved_wstore_port_is_guarded_through_the_stack_config(monkeypatch):
    """Guards against a stack that moves wstore to another port and so escapes the wstore policy: the engine
    passes the stack's config to the policy pack in PULUMI_CONFIG."""
    wide = rule(fromPort=7443, toPort=7443, cidrIpv4="10.0.0.0/8")
    assert analyze(SG_RULE, wide) == []
    saved = copy.deepcopy(dict(pulumi.runtime.config.CONFIG.get()))
    monkeypatch.setenv("PULUMI_CONFIG", f'{{"{rules.PROJECT}:wstoreTlsPort": "7443"}}')
    try:
        found = analyze(SG_RULE, wide)
    finally:
        pulumi.runtime.config.set_all_config(saved)  # the analyzer copies PULUMI_CONFIG into the SDK's config
    assert [(p, "wstore port 7443" in m) for p, m, _ in found] == [("wstore-narrow-sources", True)]


def test_a_moved_wstore_port_is_guarded_through_the_policy_config():
    """Guards against a policy config (`--policy-pack-config`) that the engine hands over but the policy ignores."""
    servicer = _servicer()
    config = proto.PolicyConfig()
    config.properties.update({"wstorePorts": [9000]})
    servicer.Configure(proto.ConfigureAnalyzerRequest(policyConfig={"wstore-narrow-sources": config}), None)
    found = analyze(SG_RULE, rule(fromPort=9000, toPort=9000, cidrIpv4="10.0.0.0/8"), servicer=servicer)
    assert [p for p, _, _ in found] == ["wstore-narrow-sources"]


def test_default_wstore_ports_match_the_program_defaults():
    """Guards against the policy watching other ports than the ones wstore listens on by default."""
    config = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    assert set(rules.DEFAULT_WSTORE_PORTS) == {config["wstorePort"]["default"], config["wstoreTlsPort"]["default"]}


def _program_resources(run) -> list[dict]:
    return [{"typ": r.typ, "name": r.name, "props": r.raw_inputs, "urn": r.urn, "parent": r.parent,
             "dependencies": r.options.get("dependencies", []),
             "property_deps": r.options.get("propertyDependencies", {})} for r in run.mocks.resources]


@pytest.mark.parametrize("variant_name", list(VARIANTS))
def test_the_program_passes_its_own_policies(variant_name):
    """Guards against the program breaking its own guard rails (any diagnostic, "can't run policy" included)."""
    resources = _program_resources(program_run(**VARIANTS[variant_name]))
    servicer = _servicer()
    found = [(r["name"], d) for r in resources
             for d in analyze(r["typ"], r["props"], r["name"], servicer=servicer, urn=r["urn"])]
    found += [("stack", d) for d in analyze_stack(resources)]
    assert found == []
    types = {r["typ"] for r in resources}
    assert {INSTANCE, SG_RULE, "tls:index/privateKey:PrivateKey"} <= types, "the check saw nothing to check"


def test_policy_pack_is_constructed_only_in_its_entry_point():
    """Guards against `PolicyPack(...)` (which serves the engine and blocks) in a module tests import."""
    places = [p.relative_to(ROOT).as_posix() for p in ROOT.rglob("*.py")
              if not {"venv", ".venv", "site-packages"} & set(p.relative_to(ROOT).parts)
              and p.name != "test_policy.py" and "PolicyPack(" in p.read_text()]
    assert places == ["policy/__main__.py"]
    assert "rules import POLICIES" in (ROOT / "policy" / "__main__.py").read_text()
    assert os.path.exists(ROOT / "policy" / "requirements.txt")


def test_the_pack_runs_in_the_programs_virtual_environment():
    """Guards against a pack that the CLI starts with a python3 lacking pulumi-policy: a local pack gets no
    dependency install of its own, so it names the venv that `pulumi install` makes for the program."""
    pack = yaml.safe_load((ROOT / "policy" / "PulumiPolicy.yaml").read_text())["runtime"]
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["runtime"]
    assert pack["name"] == project["name"] == "python"
    assert pack["options"]["toolchain"] == project["options"]["toolchain"]
    pack_venv = (ROOT / "policy" / pack["options"]["virtualenv"]).resolve()
    assert pack_venv == (ROOT / project["options"]["virtualenv"]).resolve()
    requirements = (ROOT / "requirements.txt").read_text()
    assert re.search(r"^pulumi-policy\b", requirements, re.M), "the shared venv must hold pulumi-policy"


def test_the_pack_serves_the_engine_as_the_cli_starts_it():
    """Guards against a pack that imports in tests but does not start under the CLI (`python -u -m pulumi.policy
    ENGINE DIR`, which runs policy/__main__.py), or whose policies the engine never hears of."""
    proc = subprocess.Popen([sys.executable, "-u", "-m", "pulumi.policy", "127.0.0.1:1", str(ROOT / "policy")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT / "policy",
                            env={**os.environ, "PULUMI_CONFIG": "{}"})
    try:
        port = int(proc.stdout.readline().decode().strip() or 0)
        assert port, proc.stderr.read().decode() if proc.poll() is not None else "no port announced"
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = analyzer_pb2_grpc.AnalyzerStub(channel)
            info = stub.GetAnalyzerInfo(empty_pb2.Empty(), timeout=10)
            assert info.name == PACK
            assert {p.name for p in info.policies} == {p.name for p in rules.POLICIES}
            request = _request(proto.AnalyzeRequest, GROUP, "wire", {"ingress": [
                {"protocol": "tcp", "fromPort": 22, "toPort": 22, "cidrBlocks": ["0.0.0.0/0"]}]})
            found = _diagnostics(stub.Analyze(request, timeout=10))
        assert [(p, lvl) for p, _, lvl in found] == [("no-internet-ingress-beyond-http", proto.MANDATORY)]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()
