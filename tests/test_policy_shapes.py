"""Shapes the first policies passed, each now caught through pulumi_policy's own analyzer (the helpers of
tests/test_policy.py): a load balancer in front of SSH or wstore, egress for every protocol and port, and a CA
valid 100 years."""

from __future__ import annotations

import pytest

from tests.test_policy import analyze

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
