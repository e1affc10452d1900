"""Read-only AWS lookups (invokes): the network and the AMI. No resources are declared here."""

from __future__ import annotations

import pulumi_aws as aws

from components.settings import Settings, SettingsError

# Official image owners and name patterns, per OS and installer architecture.
IMAGES = {
    "debian-12": ("136693071363", {"x86_64": "debian-12-amd64-*", "aarch64": "debian-12-arm64-*"}),
    "ubuntu-24.04": ("099720109477", {
        "x86_64": "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*",
        "aarch64": "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-arm64-server-*",
    }),
}


def network(s: Settings) -> tuple[str, list[str]]:
    """VPC ID and the subnets to spread nodes across (the default VPC and all its subnets when unset)."""
    vpc_id = s.vpc_id or aws.ec2.get_vpc(default=True).id
    if s.subnet_ids:
        return vpc_id, list(s.subnet_ids)
    subnets = sorted(aws.ec2.get_subnets(filters=[{"name": "vpc-id", "values": [vpc_id]}]).ids)
    if not subnets:
        raise SettingsError(f"vpcId is {vpc_id!r}: it has no subnets; set subnetIds or use a VPC with subnets.")
    return vpc_id, subnets


def ami(s: Settings, arch: str) -> str:
    """The AMI for an architecture: amiId when set, else the newest official image of `os`."""
    if s.ami_id:
        return s.ami_id
    owner, names = IMAGES[s.os]
    return aws.ec2.get_ami(
        owners=[owner], most_recent=True,
        filters=[{"name": "name", "values": [names[arch]]}, {"name": "architecture",
                                                            "values": ["arm64" if arch == "aarch64" else "x86_64"]}],
    ).id
