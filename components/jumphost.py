"""JumpHost: the management path every remote step takes to the nodes, which have no public address.

Creates: an ED25519 SSH host key (`jumphost-hostkey`, a stack resource of its own, not tied to the machine); one
small EC2 instance (IMDSv2 with hop limit 1, encrypted volume, no instance profile) that boots with that key, with
an Elastic IP in a public subnet, in two security groups: `firewall-jumphost` (SSH from sshAllowedCidrs, SSH out to
the nodes' groups, HTTP(S) out for the distribution's updates) and `firewall-deployer` (no rules; the deploy
workflow opens it to its runner for one run); and `jumphost-sshd`, a local command that waits until the machine
answers SSH (no key involved), before anything dials it with its pinned key.
A new image (jumpHostAmiId) is a new machine with the same address and the same host key: the nodes' connections
do not change, so no node step runs again.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import pulumi
import pulumi_aws as aws
from pulumi_command import remote

from .host import HANDSHAKE_TRIES, PER_DIAL_TIMEOUT, connection, create_instance, host_key, wait_for_sshd
from .nodeargs import Bastion, HostArgs
from .settings import InstanceShape


@dataclasses.dataclass(frozen=True)
class JumpHostArgs:
    """What the jump host uses (the WallarmDeployment builds it from the settings, with jumpHost true)."""

    host: HostArgs
    """Its machine: image (chosen_ami is jumpHostAmiId), public subnet, groups, SSH."""
    shape: InstanceShape
    """jumpHostInstanceType and its architecture."""


class JumpHost(pulumi.ComponentResource):
    public_ip: pulumi.Output[str]
    """Where operators and pulumi-command connect (ssh -J)."""
    host_key: pulumi.Output[str]
    """Its SSH host key, an OpenSSH public key line (for operators' known_hosts)."""
    proxy: remote.ProxyConnectionArgs
    """The proxy of every node's connection, pinning the jump host's key."""
    bastion: Bastion
    """Its pinned connection and readiness, for the nodes' SSH waits."""

    def __init__(self, name: str, args: JumpHostArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("wallarm:index:JumpHost", name, None, opts)
        h = args.host
        key = host_key(f"{name}-hostkey", self)
        self.instance, _ = create_instance(name, "jumphost", args.shape, h, "jumphost", self, public=True, key=key)
        # An Elastic IP: a stop and start (maintenance, a new type) or a new machine would otherwise change the
        # address that every remote step's connection names, and every step on every node would run again.
        self.address = aws.ec2.Eip(f"{name}-address", domain="vpc", instance=self.instance.id,
                                   tags={"Name": f"{name}-address", "Role": "jumphost"},
                                   opts=pulumi.ResourceOptions(parent=self))
        self.public_ip = self.address.public_ip
        self.host_key = key.public_key_openssh
        # Waits for the machine behind the address: a new machine (new image) waits again, through the EIP.
        ready = wait_for_sshd(name, self.public_ip, None, [self.instance.id, self.address.id], [self.address], self)
        self.proxy = remote.ProxyConnectionArgs(
            host=self.public_ip, user=h.ssh_user, private_key=h.ssh_private_key, host_key=self.host_key,
            dial_error_limit=HANDSHAKE_TRIES, per_dial_timeout=PER_DIAL_TIMEOUT)
        self.bastion = Bastion(connection(self.public_ip, h.ssh_user, h.ssh_private_key, self.host_key), ready)
        self.register_outputs({"publicIp": self.public_ip, "hostKey": self.host_key})
