"""Firewall: the security groups of the jump host and both fleets, and every rule, from one table.

Creates: security groups `firewall-jumphost` and `firewall-deployer` (with a jump host), `firewall-filtering` and
`firewall-postanalytics`, and one SecurityGroupIngressRule / SecurityGroupEgressRule per row of `rules()`.
- wstore admits the filtering group by reference (one rule per port and protocol, whatever the fleet's size)
  plus externalFilteringCidrs; nothing else reaches it.
- SSH reaches the nodes only from the jump host's group (or from sshAllowedCidrs without a jump host); the jump
  host admits sshAllowedCidrs. The deployer group has no rule at all: the deploy workflow opens it to the
  runner's address for one `pulumi up` and closes it after, and Pulumi never manages its rules (no drift).
- The filtering nodes admit port 80 from clientCidrs (the load balancer preserves client addresses), and the
  health check port and the TLS listener's target port (the PROXY protocol carries the client) from the VPC only.
- Egress is what installation, registration, proxying, wstore and the distribution's updates (unattended
  security upgrades, on every host, the jump host included) need. Security groups cannot filter by host name, so
  HTTP and HTTPS to the mirrors, meganode.wallarm.com and the Wallarm API are to any address on 80 and 443.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from typing import Optional, Sequence, Union
from urllib.parse import urlsplit

import pulumi
import pulumi_aws as aws

WORLD = "0.0.0.0/0"
# What every host needs for its distribution's updates: apt's mirrors (deb.debian.org, security.debian.org, the
# Ubuntu archive) are plain HTTP (apt checks the signed Release files) on addresses of CDNs that change; some
# mirrors and the Wallarm installer answer on HTTPS. A security group matches addresses, never host names: it
# cannot narrow this to the mirrors, nor tell apt's traffic from anything else on 80/443.
UPDATES = ((80, "HTTP to the package mirrors of the distribution"),
           (443, "HTTPS to the package mirrors of the distribution"))
GROUPS = {
    "jumphost": "Wallarm jump host: SSH from the admin networks",
    "deployer": "Wallarm deployer: opened to a CI runner for one deployment, no rules managed by Pulumi",
    "filtering": "Wallarm filtering nodes",
    "postanalytics": "Wallarm postanalytics (wstore) servers",
}


@dataclasses.dataclass(frozen=True)
class Group:
    """A peer that is one of our security groups."""

    role: str


@dataclasses.dataclass(frozen=True)
class Rule:
    group: str
    """Whose rule: a key of GROUPS."""
    direction: str
    """ingress or egress."""
    port: int
    protocol: str
    peer: Union[str, Group]
    """A CIDR, or one of our groups."""
    description: str


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


@dataclasses.dataclass(frozen=True)
class FirewallArgs:
    vpc_id: pulumi.Input[str]
    """VPC of every group."""
    vpc_cidr: str
    """The VPC's CIDR: the load balancer's health checks come from there."""
    ssh_allowed_cidrs: Sequence[str]
    """Who may reach port 22 of the jump host (of the nodes, without a jump host)."""
    client_cidrs: Sequence[str]
    """Who may reach the filtering nodes on port 80."""
    external_filtering_cidrs: Sequence[str]
    """Filtering nodes outside the stack that may reach wstore."""
    wstore: Sequence[tuple[int, str]]
    """wstore (port, protocol) pairs, from wstore_listeners()."""
    protected_upstream: str
    """URL the filtering nodes proxy to."""
    health_check_port: int
    """Port of the load balancer's health check on the filtering nodes."""
    jump_host: bool
    """True: SSH to the nodes only from the jump host's group."""
    tls_target_port: Optional[int] = None
    """The port the load balancer's TLS listener forwards to (PROXY protocol, from the VPC); None without it."""


def rules(a: FirewallArgs) -> list[Rule]:
    """Every rule of every group: the whole firewall as one table."""
    table: list[Rule] = []
    ssh_sources: list[Union[str, Group]] = [Group("jumphost")] if a.jump_host else list(a.ssh_allowed_cidrs)
    if a.jump_host:
        table += [Rule("jumphost", "ingress", 22, "tcp", c, f"SSH from admin network {c}") for c in a.ssh_allowed_cidrs]
        table += [Rule("jumphost", "egress", 22, "tcp", Group(g), f"SSH to the {g} nodes") for g in ("filtering", "postanalytics")]
        table += [Rule("jumphost", "egress", port, "tcp", WORLD, text) for port, text in UPDATES]
    for group in ("filtering", "postanalytics"):
        table += [Rule(group, "ingress", 22, "tcp", p, "SSH from the jump host" if isinstance(p, Group)
                       else f"SSH from admin network {p}") for p in ssh_sources]
        table.append(Rule(group, "egress", 443, "tcp", WORLD, "HTTPS to the Wallarm installer and API"))
        table.append(Rule(group, "egress", 80, "tcp", WORLD, UPDATES[0][1]))
    table += [Rule("filtering", "ingress", 80, "tcp", c, f"HTTP from clients {c}") for c in a.client_cidrs]
    table.append(Rule("filtering", "ingress", a.health_check_port, "tcp", a.vpc_cidr,
                      "Load balancer health checks from the VPC"))
    if a.tls_target_port is not None:
        table.append(Rule("filtering", "ingress", a.tls_target_port, "tcp", a.vpc_cidr,
                          "HTTPS clients through the load balancer TLS listener (PROXY protocol) from the VPC"))
    for port, proto in a.wstore:
        table.append(Rule("postanalytics", "ingress", port, proto, Group("filtering"),
                          f"wstore {proto.upper()} from the filtering nodes"))
        table += [Rule("postanalytics", "ingress", port, proto, c, f"wstore {proto.upper()} from external filtering nodes {c}")
                  for c in a.external_filtering_cidrs]
        table.append(Rule("filtering", "egress", port, proto, Group("postanalytics"),
                          f"wstore {proto.upper()} to the postanalytics servers"))
    upstream_cidr, upstream_port = upstream_target(a.protected_upstream)
    if not any(r.group == "filtering" and r.direction == "egress" and r.peer in (WORLD, upstream_cidr)
               and r.port == upstream_port for r in table):
        table.append(Rule("filtering", "egress", upstream_port, "tcp", upstream_cidr, "HTTP to the protected application"))
    return table


def _slug(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "_", value)


class Firewall(pulumi.ComponentResource):
    group_ids: dict[str, pulumi.Output[str]]
    """role -> security group ID (jumphost, deployer, filtering, postanalytics)."""

    def __init__(self, name: str, args: FirewallArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("wallarm:index:Firewall", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        roles = [r for r in GROUPS if args.jump_host or r not in ("jumphost", "deployer")]
        self.group_ids = {}
        for role in roles:
            sg_name = f"{name}-{role}"
            self.group_ids[role] = aws.ec2.SecurityGroup(
                # The Role tag scopes IAM: the deploy role may open and close only the group tagged deployer.
                sg_name, vpc_id=args.vpc_id, description=GROUPS[role], tags={"Name": sg_name, "Role": role},
                opts=child).id
        for rule in rules(args):
            peer = rule.peer.role if isinstance(rule.peer, Group) else _slug(rule.peer)
            rule_name = f"{name}-{rule.group}-{rule.direction}-{rule.protocol}{rule.port}-{peer}"
            cls = aws.vpc.SecurityGroupIngressRule if rule.direction == "ingress" else aws.vpc.SecurityGroupEgressRule
            cls(rule_name,
                security_group_id=self.group_ids[rule.group],
                ip_protocol=rule.protocol,
                from_port=rule.port,
                to_port=rule.port,
                cidr_ipv4=None if isinstance(rule.peer, Group) else rule.peer,
                referenced_security_group_id=self.group_ids[rule.peer.role] if isinstance(rule.peer, Group) else None,
                description=rule.description,
                tags={"Name": rule_name},
                opts=child)
        self.register_outputs({f"{role}SgId": sg for role, sg in self.group_ids.items()})
