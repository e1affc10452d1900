"""The arguments every machine takes (HostArgs) and those both Wallarm roles share (WallarmArgs).

Each node component takes its own typed arguments, holding only what it uses: FilteringNodeArgs
(components/filtering.py), PostanalyticsArgs (components/postanalytics.py), JumpHostArgs (components/jumphost.py),
each made of a HostArgs and, for the Wallarm roles, a WallarmArgs. Only the WallarmDeployment
(components/deployment.py) builds them from the validated settings; no node reads the settings
(tests/repo/test_layout.py holds the rule).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Mapping, Optional, Sequence

import pulumi
from pulumi_command import remote

if TYPE_CHECKING:
    from .pki import Pki


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where one node goes."""

    subnet_id: pulumi.Input[str]
    """A private subnet (an Output when the program creates the VPC)."""
    zone: str
    """Its availability zone."""
    key: str
    """A plain string naming the placement (subnet ID, or zone of a created VPC): part of the generation."""


@dataclasses.dataclass(frozen=True)
class Bastion:
    """The jump host as the nodes' steps use it."""

    connection: remote.ConnectionArgs
    """A pinned connection to the jump host itself (the nodes' `-sshd` waits run there)."""
    ready: pulumi.Resource
    """The jump host's own SSH wait: nothing dials it before."""


@dataclasses.dataclass(frozen=True)
class HostArgs:
    """What every machine needs: its instance (components/host.py, create_instance) and its remote steps (HostSteps)."""

    stack: str
    """The stack's name: the node's host name is `<stack>-<node>`."""
    os: str
    """The image's operating system (os): part of the generation."""
    ssh_user: str
    """The image's login user (admin on Debian, ubuntu on Ubuntu)."""
    root_volume_gb: int
    """Size of the encrypted gp3 root volume (rootVolumeGb)."""
    ssh_public_key: Optional[str]
    """sshPublicKey as given, None when the program generates the key pair: part of the generation."""
    chosen_ami: Optional[str]
    """The image chosen by name (amiId; jumpHostAmiId for the jump host), part of the generation; None: newest."""
    ami_id: pulumi.Input[str]
    """The image the machine boots (chosen_ami, or the newest official one for its architecture)."""
    placement: Placement
    """Subnet and zone."""
    security_group_ids: Sequence[pulumi.Input[str]]
    """Its fleet's security groups."""
    key_name: pulumi.Input[str]
    """EC2 key pair name."""
    ssh_private_key: pulumi.Output[str]
    """Private key for the remote steps (secret)."""
    proxy: Optional[remote.ProxyConnectionArgs] = None
    """The jump host to dial through; None dials the private IP directly."""
    jump: Optional[Bastion] = None
    """The jump host's pinned connection and its readiness; None dials the private IP directly."""
    instance_profile: Optional[pulumi.Input[str]] = None
    """The CloudWatch agent's instance profile (components/monitoring.py); None gives the instance no role."""


@dataclasses.dataclass(frozen=True)
class WallarmArgs:
    """What both Wallarm roles need: the installer's registration and the TLS between them."""

    cloud: str
    """wallarmCloud: the installer's --cloud (US or EU)."""
    token: pulumi.Output[str]
    """wallarmToken (secret Output): on the installer's stdin only."""
    token_type: str
    """wallarmTokenType: node or api (an api token registers in node_group)."""
    node_group: Optional[str]
    """wallarmNodeGroup, the installer's --group with an api token."""
    installer_sha256: Mapping[str, str]
    """"VERSION/ARCH" -> pinned SHA-256 of the installer (installerSha256)."""
    tls: bool
    """TLS between the filtering nodes and wstore."""
    mutual_tls: bool
    """And the nodes present client certificates."""
    pki: Optional["Pki"] = None
    """The CA that issues both ends' certificates; None when TLS is off."""
