"""Network: the VPC and the subnets every piece goes in, existing or created.

Creates (only without vpcId): an awsx.ec2.Vpc with a public and a private subnet in each of the first
`availabilityZoneCount` zones of the region, NAT gateways (single or one per zone) for the nodes' egress, and
DNS hostnames on. With vpcId, nothing: the listed subnets are looked up (zone, VPC) and checked.

Placement: a node goes only into a private subnet whose zone offers its instance type
(ec2:DescribeInstanceTypeOfferings) and has a public subnet of the load balancer; node i takes the i-th subnet of a
list that alternates zones. The subnets
come from the settings, never from an enumeration of the VPC, so a subnet someone adds to the VPC moves nothing.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import pulumi
import pulumi_aws as aws
import pulumi_awsx as awsx

from .nodeargs import Placement
from .settings import SettingsError


@dataclasses.dataclass(frozen=True)
class NetworkArgs:
    """What the network and the placement use (the WallarmDeployment builds it from the settings)."""

    vpc_id: Optional[str]
    """vpcId; None: the program creates the VPC."""
    public_subnet_ids: Sequence[str]
    """publicSubnetIds (with vpcId): the load balancer's and the jump host's."""
    private_subnet_ids: Sequence[str]
    """privateSubnetIds (with vpcId): the nodes'."""
    vpc_cidr: str
    """vpcCidr: the created VPC's CIDR (with vpcId, used only when the look-up gives none)."""
    availability_zone_count: int
    """availabilityZoneCount: the zones of a created VPC."""
    nat_gateways: str
    """natGateways: single or perAz (a created VPC)."""
    postanalytics_type: str
    """postanalyticsInstanceType: only zones that offer it."""
    postanalytics_count: int
    filtering_type: str
    """filteringInstanceType: only zones that offer it."""
    filtering_count: int
    jump_host_type: Optional[str]
    """jumpHostInstanceType; None without a jump host."""


@dataclasses.dataclass(frozen=True)
class Subnet:
    index: int
    """Position in the settings' list (or the zone's position in a created VPC)."""
    zone: str
    key: str
    """Subnet ID, or the zone name of a created VPC."""


@dataclasses.dataclass(frozen=True)
class Layout:
    """Zones, subnets and where each node goes, all known before any resource is declared."""

    zones: list[str]
    """The zones of a created VPC (empty with vpcId)."""
    vpc_cidr: Optional[str]
    """The existing VPC's CIDR; None when created (then vpcCidr)."""
    public: list[Subnet]
    private: list[Subnet]
    nodes: dict[str, list[Subnet]]
    """role -> one subnet per node."""


def offered_zones(instance_type: str, invoke: Optional[pulumi.InvokeOptions] = None) -> set[str]:
    found = aws.ec2.get_instance_type_offerings(
        location_type="availability-zone", filters=[{"name": "instance-type", "values": [instance_type]}], opts=invoke)
    return set(found.locations)


def interleave(subnets: Sequence[Subnet]) -> list[Subnet]:
    """One subnet per zone in turn (zones in name order), so consecutive nodes land in different zones."""
    by_zone: dict[str, list[Subnet]] = {}
    for subnet in subnets:
        by_zone.setdefault(subnet.zone, []).append(subnet)
    zones = sorted(by_zone)
    rounds = max((len(v) for v in by_zone.values()), default=0)
    return [by_zone[z][i] for i in range(rounds) for z in zones if i < len(by_zone[z])]


def place(subnets: Sequence[Subnet], offered: set[str], count: int) -> list[Subnet]:
    """Node i's subnet: the i-th of the subnets in an offered zone, interleaved by zone, round robin. Node i's
    subnet depends on nothing but i, so a node added to the fleet moves no other node. Empty when none is usable."""
    usable = interleave([s for s in subnets if s.zone in offered])
    return [usable[i % len(usable)] for i in range(count)] if usable else []


def _place(key: str, instance_type: str, count: int, subnets: list[Subnet], kind: str,
           invoke: Optional[pulumi.InvokeOptions] = None) -> list[Subnet]:
    offered = offered_zones(instance_type, invoke)
    if not any(s.zone in offered for s in subnets):
        zones = ", ".join(sorted({s.zone for s in subnets}))
        raise SettingsError(f"{key} is {instance_type!r}: AWS offers it in none of the zones of the {kind} "
                            f"subnets ({zones}); choose another type or other subnets.")
    return place(subnets, offered, count)


def layout(s: NetworkArgs, invoke: Optional[pulumi.InvokeOptions] = None) -> Layout:
    """Looks up zones and subnets and places every node. Raises SettingsError; declares nothing.
    invoke: the AWS provider to ask (a WallarmDeployment's), None for the default provider."""
    if s.vpc_id:
        vpc = aws.ec2.get_vpc(id=s.vpc_id, opts=invoke)
        lists = {}
        for key, ids in (("publicSubnetIds", s.public_subnet_ids), ("privateSubnetIds", s.private_subnet_ids)):
            found = [aws.ec2.get_subnet(id=i, opts=invoke) for i in ids]
            foreign = [i for i, f in zip(ids, found) if f.vpc_id != s.vpc_id]
            if foreign:
                raise SettingsError(f"{key} is {list(ids)}: {', '.join(foreign)} is not in {s.vpc_id}; list subnets of vpcId only.")
            lists[key] = [Subnet(k, f.availability_zone, i) for k, (i, f) in enumerate(zip(ids, found))]
        zones, cidr, public, private = [], vpc.cidr_block, lists["publicSubnetIds"], lists["privateSubnetIds"]
        public_zones = [p.zone for p in public]
        if len(set(public_zones)) != len(public_zones) or len(public_zones) < 2:
            raise SettingsError(f"publicSubnetIds is {list(s.public_subnet_ids)}: the load balancer needs one public "
                                f"subnet in each of two zones or more, one per zone (zones: {', '.join(public_zones)}).")
        # A target in a zone the load balancer does not serve gets no traffic (its state stays "unused").
        served = set(public_zones)
        private = [p for p in private if p.zone in served]
        if not private:
            raise SettingsError(f"privateSubnetIds is {list(s.private_subnet_ids)}: none is in a zone of the public "
                                f"subnets ({', '.join(sorted(served))}), where the load balancer sends traffic.")
    else:
        # Every zone, not only those "available" now: a zone in trouble must not shift the VPC's zones (awsx would
        # replace its subnets) or move every node.
        names = sorted(aws.get_availability_zones(
            filters=[{"name": "opt-in-status", "values": ["opt-in-not-required"]}], opts=invoke).names)
        if len(names) < s.availability_zone_count:
            raise SettingsError(f"availabilityZoneCount is {s.availability_zone_count}: the region has "
                                f"{len(names)} zones ({', '.join(names)}); lower it.")
        zones = names[: s.availability_zone_count]
        cidr = None
        public = [Subnet(k, z, z) for k, z in enumerate(zones)]
        private = list(public)
    nodes = {
        "postanalytics": _place("postanalyticsInstanceType", s.postanalytics_type, s.postanalytics_count,
                                private, "private", invoke),
        "filtering": _place("filteringInstanceType", s.filtering_type, s.filtering_count, private, "private", invoke),
    }
    if s.jump_host_type:
        nodes["jumphost"] = _place("jumpHostInstanceType", s.jump_host_type, 1, public, "public", invoke)
    return Layout(zones, cidr, public, private, nodes)


class Network(pulumi.ComponentResource):
    vpc_id: pulumi.Output[str]
    """The VPC."""
    vpc_cidr: pulumi.Output[str]
    """Its IPv4 CIDR."""
    public_subnet_ids: pulumi.Output[Sequence[str]]
    """Subnets of the load balancer and the jump host."""

    def __init__(self, name: str, s: NetworkArgs, plan: Layout, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("wallarm:index:Network", name, None, opts)
        self.plan, self.existing = plan, bool(s.vpc_id)
        private_ids: pulumi.Output[Sequence[str]]
        if s.vpc_id:
            self.vpc_id = pulumi.Output.from_input(s.vpc_id)
            self.vpc_cidr = pulumi.Output.from_input(plan.vpc_cidr or s.vpc_cidr)
            self.public_subnet_ids = pulumi.Output.from_input(list(s.public_subnet_ids))
            private_ids = pulumi.Output.from_input(list(s.private_subnet_ids))
        else:
            strategy = (awsx.ec2.NatGatewayStrategy.ONE_PER_AZ if s.nat_gateways == "perAz"
                        else awsx.ec2.NatGatewayStrategy.SINGLE)
            vpc = awsx.ec2.Vpc(
                f"{name}-vpc",
                cidr_block=s.vpc_cidr,
                availability_zone_names=plan.zones,
                nat_gateways=awsx.ec2.NatGatewayConfigurationArgs(strategy=strategy),
                enable_dns_hostnames=True,
                tags={"Name": f"{name}-vpc"},
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.vpc_id, self.vpc_cidr = vpc.vpc_id, pulumi.Output.from_input(s.vpc_cidr)
            # awsx lays the subnets out zone by zone, in the order of availability_zone_names.
            self.public_subnet_ids, private_ids = vpc.public_subnet_ids, vpc.private_subnet_ids
        self._ids = {"public": self.public_subnet_ids, "private": private_ids}
        self.register_outputs({"vpcId": self.vpc_id, "publicSubnetIds": self.public_subnet_ids})

    def load_balancer_subnet_ids(self, internal: bool) -> pulumi.Output[Sequence[str]]:
        """The load balancer's subnets, one per zone (an NLB takes no two in one zone): the public ones, or, for an
        internal load balancer, the private ones of the zones the public subnets serve."""
        if not internal:
            return self.public_subnet_ids
        if self.existing:
            first: dict[str, str] = {}
            for sub in self.plan.private:
                first.setdefault(sub.zone, sub.key)
            return pulumi.Output.from_input(list(first.values()))
        return self._ids["private"]

    def placements(self, role: str) -> list[Placement]:
        """One Placement per node of a role (the jump host's in a public subnet)."""
        ids = self._ids["public" if role == "jumphost" else "private"]

        def nth(k: int) -> pulumi.Output[str]:
            return ids.apply(lambda v: v[k])
        return [Placement(sub.key if self.existing else nth(sub.index), sub.zone, sub.key)
                for sub in self.plan.nodes[role]]
