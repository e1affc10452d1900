"""Shapes the first policies passed, each now caught through pulumi_policy's own analyzer (the helpers of
tests/program/test_policy.py): a load balancer in front of SSH or wstore, egress for every protocol and port, and a CA
valid 100 years."""

from __future__ import annotations

import os

import pytest

from tests.program.test_policy import analyze

LISTENER = "aws:lb/listener:Listener"
TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"
EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"

DANGEROUS = [
    ("listener-on-ssh", LISTENER, {"port": 22, "protocol": "TCP", "loadBalancerArn": "arn:lb"},
     "no-load-balancer-path-to-ssh-or-wstore", "listener on port 22 (SSH)"),
    ("target-group-on-wstore-tls", TARGET_GROUP, {"port": 6388, "protocol": "TCP", "vpcId": "vpc-0123"},
     "no-load-balancer-path-to-ssh-or-wstore", "target group on port 6388 (wstore)"),
    ("target-group-on-wstore-plain", TARGET_GROUP, {"port": 3313, "protocol": "TCP", "vpcId": "vpc-0123"},
     "no-load-balancer-path-to-ssh-or-wstore", "target group on port 3313 (wstore)"),
    ("egress-all-protocols", EGRESS, {"ipProtocol": "-1", "cidrIpv4": "0.0.0.0/0", "securityGroupId": "sg-1"},
     "no-all-protocol-egress", "egress rule allows every protocol and port"),
    ("legacy-egress-all", "aws:ec2/securityGroupRule:SecurityGroupRule",
     {"type": "egress", "protocol": "all", "fromPort": 0, "toPort": 0, "cidrBlocks": ["10.0.0.0/16"],
      "securityGroupId": "sg-1"}, "no-all-protocol-egress", "security group rule (egress) allows every protocol"),
    ("inline-egress-all", "aws:ec2/securityGroup:SecurityGroup",
     {"egress": [{"protocol": "tcp", "fromPort": 443, "toPort": 443, "cidrBlocks": ["0.0.0.0/0"]},
                 {"protocol": "-1", "fromPort": 0, "toPort": 0, "cidrBlocks": ["0.0.0.0/0"]}]},
     "no-all-protocol-egress", "inline egress #1 allows every protocol"),
    ("ca-valid-100-years", "tls:index/selfSignedCert:SelfSignedCert",
     {"isCaCertificate": True, "validityPeriodHours": 876000, "allowedUses": ["cert_signing"]},
     "bounded-certificate-lifetimes", "CA certificate valid 876000 hours (100 years)"),
    ("leaf-valid-20-years", "tls:index/locallySignedCert:LocallySignedCert",
     {"validityPeriodHours": 175200, "allowedUses": ["server_auth"]},
     "bounded-certificate-lifetimes", "leaf certificate valid 175200 hours (20 years)"),
]

NEAR_MISSES = [
    ("listener-on-http", LISTENER, {"port": 80, "protocol": "TCP", "loadBalancerArn": "arn:lb"}),
    ("target-group-on-http", TARGET_GROUP, {"port": 80, "protocol": "TCP", "vpcId": "vpc-0123"}),
    ("egress-https", EGRESS, {"ipProtocol": "tcp", "fromPort": 443, "toPort": 443, "cidrIpv4": "0.0.0.0/0",
                              "securityGroupId": "sg-1"}),
    ("ca-valid-30-years", "tls:index/selfSignedCert:SelfSignedCert",
     {"isCaCertificate": True, "validityPeriodHours": 262800}),
    ("leaf-valid-10-years", "tls:index/locallySignedCert:LocallySignedCert", {"validityPeriodHours": 87600}),
    ("legacy-ingress-all-is-another-policy", "aws:ec2/securityGroupRule:SecurityGroupRule",
     {"type": "ingress", "protocol": "-1", "fromPort": 0, "toPort": 0, "sourceSecurityGroupId": "sg-2",
      "securityGroupId": "sg-1"}),
]


@pytest.mark.parametrize("case_id,typ,props,policy,words", DANGEROUS, ids=[c[0] for c in DANGEROUS])
def test_each_shape_is_reported_by_its_policy(case_id, typ, props, policy, words):
    """Guards against a load balancer that carries the internet to SSH or wstore past the security groups, and
    an egress rule that lets a taken-over host reach anything."""
    found = analyze(typ, props)
    assert [f for f in found if f[0] == policy and words in f[1]], f"{case_id}: {found}"


@pytest.mark.parametrize("case_id,typ,props", NEAR_MISSES, ids=[c[0] for c in NEAR_MISSES])
def test_near_misses_pass_the_new_policies(case_id, typ, props):
    """Guards against policies that refuse the program's own shapes (HTTP listeners, named egress)."""
    found = [f for f in analyze(typ, props)
             if f[0] in ("no-load-balancer-path-to-ssh-or-wstore", "no-all-protocol-egress",
                         "bounded-certificate-lifetimes")]
    assert not found, f"{case_id}: {found}"


# ---- the rest of the shapes issue 13 names: each dangerous case, the policy, words of its own message ---------

import contextlib  # noqa: E402
import copy  # noqa: E402
import json  # noqa: E402

import pulumi.runtime.config  # noqa: E402
from pulumi_policy.proxy import UNKNOWN_ARRAY_VALUE, UNKNOWN_STRING_VALUE  # noqa: E402

from tests.program.test_policy import (GROUP, INSTANCE, LEGACY, SG_RULE, _urn, analyze_stack, instance, jump_stack,  # noqa: E402
                               legacy, role_host, rule, rules)

LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
ENI = "aws:ec2/networkInterface:NetworkInterface"
EIP = "aws:ec2/eip:Eip"


def template(**changes) -> dict:
    """A launch template that passes: IMDSv2 hop 1, an encrypted root, an interface without a public IP."""
    return {"imageId": "ami-0123", "instanceType": "t3.large", "tags": {"Role": "filtering"},
            "metadataOptions": {"httpTokens": "required", "httpEndpoint": "enabled", "httpPutResponseHopLimit": 1},
            "blockDeviceMappings": [{"deviceName": "/dev/xvda", "ebs": {"encrypted": "true", "volumeSize": 20}}],
            "networkInterfaces": [{"associatePublicIpAddress": "false", "securityGroups": ["sg-1"]}], **changes}


def group_rules(group: str, specs: list[tuple], form: str = "rule") -> list[dict]:
    """Ingress rules of one security group resource (by property dependency, as the engine reports it):
    specs are (port, cidr) pairs; form "legacy" puts every CIDR of a spec list in one rule's cidrBlocks."""
    out = [{"typ": GROUP, "name": group, "props": {"tags": {"Role": "postanalytics"}}}]
    for i, (port, cidrs) in enumerate(specs):
        if form == "legacy":
            props, typ = legacy(fromPort=port, toPort=port, cidrBlocks=list(cidrs)), LEGACY
        else:
            props, typ = rule(fromPort=port, toPort=port, cidrIpv4=cidrs), SG_RULE
        out.append({"typ": typ, "name": f"{group}-in-{i}", "props": props,
                    "property_deps": {"securityGroupId": [_urn(GROUP, group)]}})
    return out


def slash16s(count: int, first: int = 10) -> list[str]:
    return [f"{first + i // 256}.{i % 256}.0.0/16" for i in range(count)]


def eni_stack(role: str, how: str) -> list[dict]:
    """An Elastic IP on a network interface that is attached to a `role` instance in one of pulumi-aws's ways."""
    res, host, host_urn = role_host(role)
    eni = {"typ": ENI, "name": f"{role}-eni", "props": {"subnetId": "subnet-1"}}
    if how == "inline":
        eni["props"]["attachments"] = [{"instance": "i-0123", "deviceIndex": 1}]
        eni["property_deps"] = {"attachments": [host_urn]}
    elif how == "attachment":
        res.append({"typ": "aws:ec2/networkInterfaceAttachment:NetworkInterfaceAttachment", "name": f"{role}-attach",
                    "props": {"instanceId": "i-0123", "networkInterfaceId": "eni-0123", "deviceIndex": 1},
                    "property_deps": {"instanceId": [host_urn], "networkInterfaceId": [_urn(ENI, f"{role}-eni")]}})
    elif how == "instance":
        host.setdefault("property_deps", {})["networkInterfaces"] = [_urn(ENI, f"{role}-eni")]
    eip_typ, key = (EIP, "networkInterface") if how != "attachment" else \
        ("aws:ec2/eipAssociation:EipAssociation", "networkInterfaceId")
    res += [eni, {"typ": eip_typ, "name": f"{role}-eip-{how}", "props": {key: "eni-0123", "domain": "vpc"},
                  "property_deps": {key: [_urn(ENI, f"{role}-eni")]}}]
    return res


def _second_jump_host() -> list[dict]:
    stack = jump_stack()
    second = copy.deepcopy(stack[1])
    second["name"], second["urn"] = "jumphost-1", _urn(INSTANCE, "jumphost-1", "wallarm:index:JumpHost")
    return [*stack, second]


MORE = [
    # prefix lists: unknown content, refused wherever a CIDR would be judged
    ("ssh-from-prefix-list", SG_RULE, rule(cidrIpv4=None, prefixListId="pl-0123"),
     "no-internet-ingress-beyond-http", "opens tcp port 22 to prefix list pl-0123"),
    ("node-port-from-inline-prefix-list", GROUP, {"ingress": [{"protocol": "tcp", "fromPort": 8080, "toPort": 8080,
                                                               "prefixListIds": ["pl-0456"]}]},
     "no-internet-ingress-beyond-http", "inline ingress #0 opens tcp port 8080 to prefix list pl-0456"),
    ("legacy-wstore-prefix-list", LEGACY, legacy(fromPort=3313, toPort=3313, cidrBlocks=[], prefixListIds=["pl-0789"]),
     "no-internet-ingress-beyond-http", "security group rule opens tcp port 3313 to prefix list pl-0789"),
    # many rules that add up
    ("ssh-two-slash8-rules", "stack", group_rules("g", [(22, "10.0.0.0/8"), (22, "11.0.0.0/8")]),
     "no-wide-union-of-sources", "2 IPv4 sources on tcp port 22 (SSH) together span 33,554,432 addresses"),
    ("ssh-sixty-slash8", "stack", group_rules("g", [(22, [f"{i}.0.0.0/8" for i in range(20, 80)])], "legacy"),
     "no-wide-union-of-sources", "60 IPv4 sources on tcp port 22 (SSH) together span 1,006,632,960 addresses (23.4%"),
    ("wstore-two-slash16-rules", "stack", group_rules("g", [(6388, "10.1.0.0/16"), (6388, "10.2.0.0/16")]),
     "no-wide-union-of-sources", "2 IPv4 sources on tcp port 6388 (wstore) together span 131,072 addresses"),
    ("node-port-512-slash16", "stack", group_rules("g", [(8080, slash16s(512))], "legacy"),
     "no-wide-union-of-sources", "512 IPv4 sources on tcp port 8080 (the internet) together span 33,554,432"),
    # IPv6 widths
    ("ssh-ipv6-slash32", SG_RULE, rule(cidrIpv4=None, cidrIpv6="2001:db8::/32"),
     "ssh-narrow-sources", "(SSH) from IPv6 2001:db8::/32, 7.92e+28 addresses, wider than one /64"),
    ("ssh-ipv6-world", SG_RULE, rule(cidrIpv4=None, cidrIpv6="::/0"),
     "no-internet-ingress-beyond-http", "opens tcp port 22 to ::/0, the whole IPv6 internet"),
    ("wstore-ipv6-slash48", SG_RULE, rule(fromPort=6388, toPort=6388, cidrIpv4=None, cidrIpv6="2001:db8:1::/48"),
     "wstore-narrow-sources", "from 2001:db8:1::/48, wider than /16 (IPv6 /64)"),
    # the jump host's exemption
    ("tag-only-jump-host", INSTANCE, instance(role="jumphost", associatePublicIpAddress=True),
     "private-nodes", "a Role=jumphost tag alone does not exempt it"),
    ("second-jump-host", "stack", _second_jump_host(),
     "jump-host-exemption", "instance jumphost-1 is a second jump host (Role=jumphost) beside jumphost-0"),
    ("jump-host-group-admits-http", "stack", jump_stack(ingress=(22, 80)),
     "jump-host-exemption", "security group firewall-jumphost admits tcp port 80 (ingress rule)"),
    ("jump-host-outside-its-group", "stack", jump_stack(group_role="filtering"),
     "jump-host-exemption", "jump host jumphost-0 is not in the stack's jump-host security group"),
    # Elastic IPs through a network interface
    ("eip-on-eni-of-postanalytics", "stack", eni_stack("postanalytics", "inline"),
     "no-elastic-ip-on-nodes", "through network interface postanalytics-eni to postanalytics instance postanalytics-0"),
    ("eip-association-on-eni-of-filtering", "stack", eni_stack("filtering", "attachment"),
     "no-elastic-ip-on-nodes", "through network interface filtering-eni to filtering instance filtering-0"),
    ("eip-on-eni-in-filtering-instance", "stack", eni_stack("filtering", "instance"),
     "no-elastic-ip-on-nodes", "Elastic IP filtering-eip-instance is attached through network interface filtering-eni"),
    ("eip-on-foreign-eni", "stack", [{"typ": EIP, "name": "stray", "props": {"networkInterface": "eni-0abc"}}],
     "no-elastic-ip-on-nodes", "attached to a network interface (eni-0abc) that no jump host of this stack uses"),
    # launch templates: the instance checks
    ("template-imdsv1", LAUNCH_TEMPLATE, template(metadataOptions={"httpTokens": "optional",
                                                                    "httpPutResponseHopLimit": 1}),
     "imdsv2-hop-limit-1", "filtering launch template allows IMDSv1 (httpTokens optional)"),
    ("template-no-metadata-options", LAUNCH_TEMPLATE, {k: v for k, v in template().items() if k != "metadataOptions"},
     "imdsv2-hop-limit-1", "filtering launch template has a metadata hop limit of unset"),
    ("template-hop-limit-2", LAUNCH_TEMPLATE, template(metadataOptions={"httpTokens": "required",
                                                                         "httpPutResponseHopLimit": 2}),
     "imdsv2-hop-limit-1", "filtering launch template has a metadata hop limit of 2"),
    ("template-unencrypted", LAUNCH_TEMPLATE, template(blockDeviceMappings=[{"deviceName": "/dev/xvda",
                                                                             "ebs": {"encrypted": "false"}}]),
     "encrypted-volumes", "filtering launch template's EBS volume /dev/xvda is not encrypted"),
    ("template-no-mappings", LAUNCH_TEMPLATE, template(blockDeviceMappings=[]),
     "encrypted-volumes", "filtering launch template maps no EBS volume"),
    ("template-public-ip", LAUNCH_TEMPLATE, template(networkInterfaces=[{"associatePublicIpAddress": "true"}]),
     "private-nodes", "filtering launch template gives its instances a public IP address"),
    ("template-public-ip-unset", LAUNCH_TEMPLATE, {k: v for k, v in template().items() if k != "networkInterfaces"},
     "private-nodes", "filtering launch template leaves associatePublicIpAddress unset"),
]

MORE_NEAR_MISSES = [
    ("https-from-prefix-list", SG_RULE, rule(fromPort=443, toPort=443, cidrIpv4=None, prefixListId="pl-0123")),
    ("ssh-256-slash16-is-one-slash8", "stack", group_rules("g", [(22, slash16s(256))], "legacy")),
    ("wstore-two-slash17-are-one-slash16", "stack", group_rules("g", [(6388, "10.1.0.0/17"),
                                                                      (6388, "10.1.128.0/17")])),
    ("wstore-slash16-in-two-groups", "stack", group_rules("g", [(6388, "10.1.0.0/16")])
     + group_rules("h", [(6388, "10.2.0.0/16")])),
    ("same-slash16-twice", "stack", group_rules("g", [(6388, "10.1.0.0/16"), (6388, "10.1.0.0/16")])),
    ("https-from-many-ranges", "stack", group_rules("g", [(443, "0.0.0.0/1"), (443, "128.0.0.0/1")])),
    ("ssh-ipv6-slash64", SG_RULE, rule(cidrIpv4=None, cidrIpv6="2001:db8:0:1::/64")),
    ("jump-host-in-two-ssh-groups", "stack", jump_stack() + [
        {"typ": GROUP, "name": "firewall-deployer", "props": {"tags": {"Role": "deployer"}}}]),
    ("eip-on-eni-of-jump-host", "stack", eni_stack("jumphost", "instance")),
    ("template-as-the-instances", LAUNCH_TEMPLATE, template()),
    ("template-imds-off", LAUNCH_TEMPLATE, template(metadataOptions={"httpEndpoint": "disabled"})),
    ("template-not-known-yet", LAUNCH_TEMPLATE, template(networkInterfaces=UNKNOWN_ARRAY_VALUE,
                                                         blockDeviceMappings=UNKNOWN_ARRAY_VALUE,
                                                         metadataOptions=UNKNOWN_ARRAY_VALUE)),
    ("eip-on-eni-not-known-yet", "stack", [{**e, "props": {**e["props"], "networkInterface": UNKNOWN_STRING_VALUE}}
                                           if e["typ"] == EIP else e for e in eni_stack("jumphost", "instance")]),
]


def _found(typ, props):
    return analyze_stack(props) if typ == "stack" else analyze(typ, props)


@pytest.mark.parametrize("case_id,typ,props,policy,words", MORE, ids=[c[0] for c in MORE])
def test_each_remaining_shape_is_reported(case_id, typ, props, policy, words):
    """Guards against the shapes the pack passed before (prefix lists, many narrow rules that add up, IPv6 /32,
    a jump host by tag, Elastic IPs on a network interface, launch templates)."""
    found = _found(typ, props)
    assert [f for f in found if f[0] == policy and words in f[1]], f"{case_id}: {found}"


def test_each_remaining_shape_has_its_own_message():
    """Guards against one vague message standing for different mistakes."""
    seen: dict[tuple, str] = {}
    for case_id, typ, props, _, _ in MORE:
        found = tuple(sorted(m for _, m, _ in _found(typ, props)))
        assert found and found not in seen, f"{case_id} and {seen.get(found)}: {found}"
        seen[found] = case_id


@pytest.mark.parametrize("case_id,typ,props", MORE_NEAR_MISSES, ids=[c[0] for c in MORE_NEAR_MISSES])
def test_remaining_near_misses_pass(case_id, typ, props):
    """Guards against checks so broad that they refuse neighbours that are safe: HTTPS from a prefix list, ranges
    that fold to exactly the limit, the same ranges in different groups, the jump host in its two groups."""
    assert _found(typ, props) == [], case_id


@contextlib.contextmanager
def stack_config(**values):
    """The stack config as the engine hands it to the pack (PULUMI_CONFIG, text values)."""
    saved_env = os.environ.get("PULUMI_CONFIG")
    saved = copy.deepcopy(dict(pulumi.runtime.config.CONFIG.get()))
    os.environ["PULUMI_CONFIG"] = json.dumps({f"{rules.PROJECT}:{k}": v for k, v in values.items()})
    try:
        yield
    finally:
        if saved_env is None:
            os.environ.pop("PULUMI_CONFIG", None)
        else:
            os.environ["PULUMI_CONFIG"] = saved_env
        pulumi.runtime.config.set_all_config(saved)  # the analyzer copies PULUMI_CONFIG into the SDK's config


PUBLIC = "198.51.0.0/16"
WSTORE_PUBLIC = [
    # id, stack config, rule, words of the message (None: passes)
    ("public-without-mutual-tls", {"mutualTls": "false"}, rule(fromPort=6388, toPort=6388, cidrIpv4=PUBLIC),
     "from public 198.51.0.0/16 while mutual TLS is off (mutualTls false)"),
    ("public-without-tls", {"tls": "false"}, rule(fromPort=3313, toPort=3313, cidrIpv4=PUBLIC),
     "admits wstore (port 3313) from public 198.51.0.0/16 while TLS is off (tls false)"),
    ("public-on-the-plain-port", {}, rule(fromPort=3313, toPort=3313, cidrIpv4=PUBLIC),
     "admits public 198.51.0.0/16 on wstore port 3313, not the mutual-TLS port 6388"),
    ("public-ipv6-without-mutual-tls", {"mutualTls": "false"},
     rule(fromPort=6388, toPort=6388, cidrIpv4=None, cidrIpv6="2001:db8:1:2::/64"), "mutual TLS is off"),
    ("public-on-a-moved-tls-port", {"wstoreTlsPort": "7443", "mutualTls": "false"},
     rule(fromPort=7443, toPort=7443, cidrIpv4=PUBLIC), "admits wstore (port 7443) from public"),
    ("public-with-mutual-tls", {}, rule(fromPort=6388, toPort=6388, cidrIpv4=PUBLIC), None),
    ("public-with-mutual-tls-set", {"tls": "true", "mutualTls": "true"},
     rule(fromPort=6388, toPort=6388, cidrIpv4=PUBLIC), None),
    ("private-without-mutual-tls", {"mutualTls": "false"}, rule(fromPort=6388, toPort=6388, cidrIpv4="10.1.0.0/16"),
     None),
    ("public-ssh-is-another-policy", {"mutualTls": "false"}, rule(cidrIpv4=PUBLIC), None),
]


@pytest.mark.parametrize("case_id,config,props,words", WSTORE_PUBLIC, ids=[c[0] for c in WSTORE_PUBLIC])
def test_public_wstore_sources_need_mutual_tls(case_id, config, props, words):
    """Guards against a public range on wstore without client certificates, which the settings refuse for
    externalFilteringCidrs but a rule added by hand would pass; the pack reads the same stack config."""
    with stack_config(**config):
        found = [f for f in analyze(SG_RULE, props) if f[0] == "wstore-public-sources-need-mutual-tls"]
    if words is None:
        assert found == [], case_id
    else:
        assert [m for _, m, _ in found if words in m], f"{case_id}: {found}"


def test_the_tls_defaults_match_the_program():
    """Guards against a pack that assumes mutual TLS on a stack whose defaults turned it off."""
    import yaml
    from pathlib import Path
    config = yaml.safe_load((Path(__file__).resolve().parents[2] / "Pulumi.yaml").read_text())["config"]
    assert rules.DEFAULT_TLS is config["tls"]["default"] is config["mutualTls"]["default"]
    assert (rules.DEFAULT_PLAIN_PORT, rules.DEFAULT_TLS_PORT) == (config["wstorePort"]["default"],
                                                                  config["wstoreTlsPort"]["default"])
