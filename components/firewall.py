"""Firewall: the security groups of both fleets and their fixed rules.

Creates: one security group for the postanalytics servers and one for the filtering nodes, with ingress
(SSH from sshAllowedCidrs, port 80 from clientCidrs, wstore from externalFilteringCidrs) and egress limited
to what installation, registration, proxying and wstore need. `allow_wstore_from` adds, per filtering node of
this stack, the /32 rules that let it reach wstore. AWS security groups cannot filter by host name, so the
HTTPS egress to meganode.wallarm.com and the Wallarm API is to any address on 443 only.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from typing import Optional, Sequence
from urllib.parse import urlsplit

import pulumi
import pulumi_aws as aws

WORLD = "0.0.0.0/0"


@dataclasses.dataclass(frozen=True)
class Rule:
    port: int
    protocol: str
    description: str
    cidr: Optional[pulumi.Input[str]] = None
    group: Optional[pulumi.Input[str]] = None
    """A security group ID instead of a CIDR."""


def wstore_listeners(port: int, tls_port: int, tls: bool) -> list[tuple[int, str]]:
    """(port, protocol) that filtering nodes use to reach wstore: TCP+UDP plain, or TCP on the TLS port."""
    return [(tls_port, "tcp")] if tls else [(port, "tcp"), (port, "udp")]


def upstream_target(url: str) -> tuple[str, int]:
    """CIDR and port that the filtering nodes proxy to; a host name may resolve anywhere."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        return f"{ipaddress.IPv4Address(parts.hostname)}/32", port
    except ValueError:
        return WORLD, port


def _slug(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "_", value)


@dataclasses.dataclass(frozen=True)
class FirewallArgs:
    vpc_id: pulumi.Input[str]
    """VPC of both groups."""
    ssh_allowed_cidrs: Sequence[str]
    """Who may reach port 22."""
    client_cidrs: Sequence[str]
    """Who may reach the filtering nodes on port 80."""
    external_filtering_cidrs: Sequence[str]
    """Filtering nodes outside the stack that may reach wstore."""
    wstore: Sequence[tuple[int, str]]
    """wstore (port, protocol) pairs, from wstore_listeners()."""
    protected_upstream: str
    """URL the filtering nodes proxy to."""


class Firewall(pulumi.ComponentResource):
    postanalytics_sg_id: pulumi.Output[str]
    """Security group of the postanalytics servers."""
    filtering_sg_id: pulumi.Output[str]
    """Security group of the filtering nodes."""

    def __init__(self, name: str, args: FirewallArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("wallarm:index:Firewall", name, None, opts)
        self.name = name
        self.args = args
        self._child = pulumi.ResourceOptions(parent=self)
        pa = self._group("postanalytics", "Wallarm postanalytics (wstore) servers")
        fl = self._group("filtering", "Wallarm filtering nodes")
        self.postanalytics_sg_id, self.filtering_sg_id = pa.id, fl.id

        ssh = [Rule(22, "tcp", f"SSH from admin network {c}", cidr=c) for c in args.ssh_allowed_cidrs]
        self._rules("postanalytics", pa.id, "ingress", ssh + [
            Rule(p, proto, f"wstore {proto.upper()} from external filtering nodes {c}", cidr=c)
            for c in args.external_filtering_cidrs for p, proto in args.wstore])
        self._rules("postanalytics", pa.id, "egress", [
            Rule(443, "tcp", "HTTPS to the Wallarm installer and API", cidr=WORLD)])
        self._rules("filtering", fl.id, "ingress", ssh + [
            Rule(80, "tcp", f"HTTP from clients {c}", cidr=c) for c in args.client_cidrs])
        upstream_cidr, upstream_port = upstream_target(args.protected_upstream)
        egress = [
            Rule(443, "tcp", "HTTPS to the Wallarm installer and API", cidr=WORLD),
            Rule(80, "tcp", "HTTP to the distribution's package mirrors", cidr=WORLD),
            *[Rule(p, proto, f"wstore {proto.upper()} to the postanalytics servers", group=pa.id)
              for p, proto in args.wstore],
        ]
        if not any(r.cidr in (WORLD, upstream_cidr) and r.port == upstream_port for r in egress):
            egress.append(Rule(upstream_port, "tcp", "HTTP to the protected application", cidr=upstream_cidr))
        self._rules("filtering", fl.id, "egress", egress)
        self.register_outputs({"postanalyticsSgId": pa.id, "filteringSgId": fl.id})

    def _group(self, role: str, description: str) -> aws.ec2.SecurityGroup:
        sg_name = f"{self.name}-{role}"
        return aws.ec2.SecurityGroup(sg_name, vpc_id=self.args.vpc_id, description=description,
                                     tags={"Name": sg_name}, opts=self._child)

    def _rules(self, role: str, sg_id: pulumi.Input[str], direction: str, rules: Sequence[Rule]) -> None:
        for rule in rules:
            peer = _slug(rule.cidr) if rule.cidr is not None else "sg"
            _rule(f"{self.name}-{role}-{direction}-{rule.protocol}{rule.port}-{peer}", sg_id, direction,
                  rule, self._child)

    def allow_wstore_from(self, name: str, private_ip: pulumi.Output[str], parent: pulumi.Resource) -> None:
        """Lets one filtering node of this stack (its private IP, /32) reach wstore."""
        for port, proto in self.args.wstore:
            rule = Rule(port, proto, f"wstore {proto.upper()} from filtering node {name}",
                        cidr=private_ip.apply(lambda ip: f"{ip}/32"))
            _rule(f"{name}-wstore-{proto}{port}", self.postanalytics_sg_id, "ingress", rule,
                  pulumi.ResourceOptions(parent=parent))


def _rule(name: str, sg_id: pulumi.Input[str], direction: str, rule: Rule, opts: pulumi.ResourceOptions):
    cls = aws.vpc.SecurityGroupIngressRule if direction == "ingress" else aws.vpc.SecurityGroupEgressRule
    return cls(
        name,
        security_group_id=sg_id,
        ip_protocol=rule.protocol,
        from_port=rule.port,
        to_port=rule.port,
        cidr_ipv4=rule.cidr,
        referenced_security_group_id=rule.group,
        description=rule.description,
        tags={"Name": name},
        opts=opts,
    )
