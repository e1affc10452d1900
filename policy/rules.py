"""Policy checks, importable by tests without starting a policy pack.

- No security group rule opens anything but HTTP(S) to the whole internet (wstore runs Lua and OS commands
  for whoever reaches it; SSH belongs to listed admin networks). Inline `ingress` of SecurityGroup and separate
  SecurityGroupIngressRule resources are both covered.
- EC2 instances require IMDSv2 and an encrypted root volume.
- TLS keys are not weak: no ECDSA P224 (pulumi-tls's default curve), no RSA under 2048 bits.
"""

from __future__ import annotations

from pulumi_policy import EnforcementLevel, ResourceValidationPolicy

WORLD = {"0.0.0.0/0", "::/0"}
PUBLIC_PORTS = {80, 443}


def _opens_world_beyond_http(from_port, to_port, protocol, cidrs) -> bool:
    if not WORLD & set(cidrs or []):
        return False
    if str(protocol) == "-1":
        return True
    ports = set(range(int(from_port or 0), int(to_port or 0) + 1))
    return not ports <= PUBLIC_PORTS


def check_ingress(args, report_violation) -> None:
    if args.resource_type == "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule":
        p = args.props
        cidrs = [c for c in (p.get("cidrIpv4"), p.get("cidrIpv6")) if c]
        if _opens_world_beyond_http(p.get("fromPort"), p.get("toPort"), p.get("ipProtocol"), cidrs):
            report_violation(f"ingress rule opens {p.get('ipProtocol')}/{p.get('fromPort')}-{p.get('toPort')} "
                             "to the whole internet; only ports 80 and 443 may be")
    elif args.resource_type == "aws:ec2/securityGroup:SecurityGroup":
        for rule in args.props.get("ingress") or []:
            cidrs = (rule.get("cidrBlocks") or []) + (rule.get("ipv6CidrBlocks") or [])
            if _opens_world_beyond_http(rule.get("fromPort"), rule.get("toPort"), rule.get("protocol"), cidrs):
                report_violation(f"inline ingress opens {rule.get('protocol')}/{rule.get('fromPort')} to the "
                                 "whole internet; only ports 80 and 443 may be")


def check_instance(args, report_violation) -> None:
    if args.resource_type != "aws:ec2/instance:Instance":
        return
    metadata = args.props.get("metadataOptions") or {}
    if metadata.get("httpTokens") != "required":
        report_violation("the instance allows IMDSv1; set metadata_options http_tokens to required")
    root = args.props.get("rootBlockDevice") or {}
    if root.get("encrypted") is not True:
        report_violation("the root volume is not encrypted; set root_block_device encrypted to true")


def check_keys(args, report_violation) -> None:
    if args.resource_type != "tls:index/privateKey:PrivateKey":
        return
    p = args.props
    if p.get("algorithm") == "ECDSA" and p.get("ecdsaCurve", "P224") == "P224":
        report_violation("ECDSA key on P224 (pulumi-tls's default): use P256 or stronger")
    if p.get("algorithm", "RSA") == "RSA" and int(p.get("rsaBits") or 2048) < 2048:
        report_violation("RSA key under 2048 bits")


POLICIES = [
    ResourceValidationPolicy(name="no-world-ingress-beyond-http", description="Only HTTP(S) may be open to the "
                             "internet: wstore and SSH never.", validate=check_ingress,
                             enforcement_level=EnforcementLevel.MANDATORY),
    ResourceValidationPolicy(name="hardened-instances", description="EC2 instances require IMDSv2 and an "
                             "encrypted root volume.", validate=check_instance,
                             enforcement_level=EnforcementLevel.MANDATORY),
    ResourceValidationPolicy(name="strong-tls-keys", description="No ECDSA P224 or short RSA keys.",
                             validate=check_keys, enforcement_level=EnforcementLevel.MANDATORY),
]
