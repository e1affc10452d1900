"""Read-only AWS lookups (invokes) for the images. No resources are declared here."""

from __future__ import annotations

from typing import Optional

import pulumi
import pulumi_aws as aws

from .settings import Settings

# Official image owners and name patterns, per OS and installer architecture.
IMAGES = {
    "debian-12": ("136693071363", {"x86_64": "debian-12-amd64-*", "aarch64": "debian-12-arm64-*"}),
    "ubuntu-24.04": ("099720109477", {
        "x86_64": "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*",
        "aarch64": "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-arm64-server-*",
    }),
}


def ami(s: Settings, arch: str, pinned: bool = True, opts: Optional[pulumi.InvokeOptions] = None) -> str:
    """The AMI for an architecture: amiId when set (and `pinned`: the nodes, not the jump host), else the newest
    official image of `os`. A running node keeps its image when a newer one is published (components/host.py);
    a new machine takes the one named here. opts: the AWS provider to ask (a WallarmDeployment's)."""
    if s.ami_id and pinned:
        return s.ami_id
    owner, names = IMAGES[s.os]
    return aws.ec2.get_ami(
        owners=[owner], most_recent=True,
        filters=[{"name": "name", "values": [names[arch]]}, {"name": "architecture",
                                                            "values": ["arm64" if arch == "aarch64" else "x86_64"]}],
        opts=opts).id
