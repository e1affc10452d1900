"""JumpHost: the management path every remote step takes to the nodes, which have no public address.

Creates: one small EC2 instance (IMDSv2 with hop limit 1, encrypted volume, no instance profile) with an Elastic IP
in a public subnet, in two security groups: `firewall-jumphost` (SSH from sshAllowedCidrs, SSH out to the nodes'
groups only) and `firewall-deployer` (no rules; the deploy workflow opens it to its runner for one run).
It runs no step of its own: pulumi-command dials through it (`connection.proxy`), retrying while it boots.
"""

from __future__ import annotations

from typing import Optional

import pulumi
import pulumi_aws as aws
from pulumi_command import remote

from components.host import NodeArgs, create_instance


class JumpHost(pulumi.ComponentResource):
    public_ip: pulumi.Output[str]
    """Where operators and pulumi-command connect (ssh -J)."""
    proxy: remote.ProxyConnectionArgs
    """The proxy of every node's connection."""

    def __init__(self, name: str, args: NodeArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("wallarm:index:JumpHost", name, None, opts)
        s = args.settings
        self.instance = create_instance(name, "jumphost", s.jump_host, args, "jumphost", self, public=True)
        # An Elastic IP: a stop and start (maintenance, a new type) would otherwise change the address that every
        # remote step's connection names, and every step on every node would run again.
        self.address = aws.ec2.Eip(f"{name}-address", domain="vpc", instance=self.instance.id,
                                   tags={"Name": f"{name}-address", "Role": "jumphost"},
                                   opts=pulumi.ResourceOptions(parent=self))
        self.public_ip = self.address.public_ip
        self.proxy = remote.ProxyConnectionArgs(
            host=self.public_ip, user=s.ssh_user, private_key=args.ssh_private_key,
            # The jump host boots at the same time as the nodes: keep dialling it too.
            dial_error_limit=90, per_dial_timeout=10)
        self.register_outputs({"publicIp": self.public_ip})
