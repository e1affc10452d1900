"""Firewall: the security groups of the jump host, the load balancer and both fleets, and every rule, from one table.

Creates: security groups `firewall-jumphost` and `firewall-deployer` (with a jump host), `firewall-loadbalancer`,
`firewall-filtering` and `firewall-postanalytics`, and one SecurityGroupIngressRule / SecurityGroupEgressRule per
row of `rules()`.
- wstore admits the filtering group by reference (one rule per port and protocol, whatever the fleet's size)
  plus externalFilteringCidrs; nothing else reaches it.
- SSH reaches the nodes only from the jump host's group (or from sshAllowedCidrs without a jump host); the jump
  host admits sshAllowedCidrs. The deployer group has no rule at all: the deploy workflow opens it to the
  runner's address for one `pulumi up` and closes it after, and Pulumi never manages its rules (no drift).
- The load balancer's own group (attached to the NLB when it is created: AWS cannot add one later) admits clientCidrs
  on 80 (and 443 with the TLS listener), and its egress reaches only the filtering group, on the traffic ports and
  the health ports. The filtering nodes admit those ports only from the load balancer's group, by reference: AWS
  lets a target whose group references the load balancer's group accept its traffic even with client IP
  preservation on, and its health checks from whatever subnet it sits in, a secondary CIDR's too (NLB guide,
  load-balancer-security-groups.md and target-group-register-targets.md "Target security groups").
  So clientCidrs are enforced once, at the load balancer, for 80 and 443 alike; no VPC range opens a node port.
- Every CIDR list is folded (ipaddress.collapse_addresses) before it becomes rules: fewer rules, same reach.
- Egress is what installation, registration, proxying, wstore and the distribution's updates (unattended
  security upgrades, on every host, the jump host included) need. Security groups cannot filter by host name, so
  HTTP and HTTPS to the mirrors, meganode.wallarm.com and the Wallarm API are to any address on 80 and 443; the same
  443 rule carries the CloudWatch agent's package (the region's amazoncloudwatch-agent S3 bucket) and its CloudWatch
  and Logs endpoints.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from typing import Optional, Sequence, Union
from urllib.parse import urlsplit

import pulumi
import pulumi_aws as aws

from .settings import literal_address

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
    "loadbalancer": "Wallarm load balancer: clients on 80 and 443, forwards to the filtering nodes only",
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


def fold(cidrs: Sequence[str]) -> list[str]:
    """The CIDRs with overlapping and adjacent ranges merged, in address order: one rule per folded range."""
    return [str(n) for n in ipaddress.collapse_addresses(ipaddress.IPv4Network(c) for c in cidrs)]


def upstream_target(url: str) -> tuple[str, int]:
    """CIDR and port that the filtering nodes proxy to; a host name may resolve anywhere."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    # The address as the node's resolver reads the literal (127.1, 0x0a000001, [::ffff:10.0.0.1] ...), so that the
    # rule opens exactly what NGINX connects to.
    address = literal_address(parts.hostname or "")
    return (f"{address}/32" if address is not None and address.version == 4 else WORLD), port


@dataclasses.dataclass(frozen=True)
class FirewallArgs:
    vpc_id: pulumi.Input[str]
    """VPC of every group."""
    ssh_allowed_cidrs: Sequence[str]
    """Who may reach port 22 of the jump host (of the nodes, without a jump host)."""
    client_cidrs: Sequence[str]
    """Who may reach the load balancer on 80 (and 443)."""
    external_filtering_cidrs: Sequence[str]
    """Filtering nodes outside the stack that may reach wstore."""
    wstore: Sequence[tuple[int, str]]
    """wstore (port, protocol) pairs, from wstore_listeners()."""
    protected_upstream: str
    """URL the filtering nodes proxy to."""
    traffic_ports: Sequence[int]
    """Ports the load balancer forwards to on the filtering nodes (80, and the TLS target port)."""
    health_ports: Sequence[int]
    """Ports the load balancer health-checks on the filtering nodes."""
    listener_ports: Sequence[int]
    """Ports the load balancer listens on for clients (80, and 443 with the TLS listener)."""
    jump_host: bool
    """True: SSH to the nodes only from the jump host's group."""


_LISTENER = {80: "HTTP", 443: "HTTPS"}


def rules(a: FirewallArgs) -> list[Rule]:
    """Every rule of every group: the whole firewall as one table."""
    table: list[Rule] = []
    ssh_cidrs = fold(a.ssh_allowed_cidrs)
    ssh_sources: list[Union[str, Group]] = [Group("jumphost")] if a.jump_host else list(ssh_cidrs)
    if a.jump_host:
        table += [Rule("jumphost", "ingress", 22, "tcp", c, f"SSH from admin network {c}") for c in ssh_cidrs]
        table += [Rule("jumphost", "egress", 22, "tcp", Group(g), f"SSH to the {g} nodes") for g in ("filtering", "postanalytics")]
        table += [Rule("jumphost", "egress", port, "tcp", WORLD, text) for port, text in UPDATES]
    for group in ("filtering", "postanalytics"):
        table += [Rule(group, "ingress", 22, "tcp", p, "SSH from the jump host" if isinstance(p, Group)
                       else f"SSH from admin network {p}") for p in ssh_sources]
        table.append(Rule(group, "egress", 443, "tcp", WORLD,
                          "HTTPS to the Wallarm installer and API, the CloudWatch agent package and CloudWatch"))
        table.append(Rule(group, "egress", 80, "tcp", WORLD, UPDATES[0][1]))
    table += [Rule("loadbalancer", "ingress", port, "tcp", c, f"{_LISTENER.get(port, 'TCP')} from clients {c}")
              for port in a.listener_ports for c in fold(a.client_cidrs)]
    for port in dict.fromkeys([*a.traffic_ports, *a.health_ports]):
        what = "traffic" if port in a.traffic_ports else "health checks"
        table.append(Rule("loadbalancer", "egress", port, "tcp", Group("filtering"),
                          f"Load balancer {what} to the filtering nodes"))
        table.append(Rule("filtering", "ingress", port, "tcp", Group("loadbalancer"),
                          f"Load balancer {what} from its group (clientCidrs are enforced there)"
                          if what == "traffic" else f"Load balancer {what} from its group"))
    for port, proto in a.wstore:
        table.append(Rule("postanalytics", "ingress", port, proto, Group("filtering"),
                          f"wstore {proto.upper()} from the filtering nodes"))
        table += [Rule("postanalytics", "ingress", port, proto, c, f"wstore {proto.upper()} from external filtering nodes {c}")
                  for c in fold(a.external_filtering_cidrs)]
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
    """role -> security group ID (jumphost, deployer, loadbalancer, filtering, postanalytics)."""

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
