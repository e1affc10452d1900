"""What the mocks answer for facts that only AWS knows, taken from the stack's settings or assumed, and said.

Offline there is no DescribeAvailabilityZones, DescribeInstanceTypeOfferings, DescribeVpcs or DescribeSubnets. The
mocks (harness/mocks.py) answer them from here:
- the region is the stack's aws:region (the settings refuse a missing or unknown one before anything is asked);
- its zones: eu-central-1's three (the example region, table below), any other region's invented as <region>a, b, ...,
  as many as availabilityZoneCount asks (at least three);
- every zone offers every instance type, except the table of harness/mocks.py (NOT_OFFERED, eu-central-1 only), which
  proves that placement follows the offers;
- an existing VPC's CIDR and subnets: the example's IDs (examples/Pulumi.prod.yaml) from the table of harness/mocks.py;
  any other vpcId is the stack's, with vpcCidr as its CIDR, and the subnets it lists are in it, the public ones one
  per zone in list order and the private ones spread the same way.
Each answer that was not the stack's own setting is noted once in `notes`, which tools.plan and tools.rehearse print
under "Assumed", so no one mistakes an offline answer for AWS's.
"""

from __future__ import annotations

import string
from typing import Any, Optional

from components import settings

KNOWN_ZONES = {"eu-central-1": ("eu-central-1a", "eu-central-1b", "eu-central-1c")}
DEFAULT_REGION = "eu-central-1"


class OfflineFacts:
    def __init__(self, config: Optional[dict[str, Any]] = None):
        self.config = dict(config or {})
        self.region = self.config.get("aws:region") or DEFAULT_REGION
        self.notes: list[str] = []

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def setting(self, key: str) -> Any:
        """The stack's value of one of this project's keys (any namespace prefix), else its declared default."""
        for full, value in self.config.items():
            if full.rpartition(":")[2] == key and full.partition(":")[0] not in settings.OTHER_NAMESPACES:
                return value
        return settings.declared_keys().get(key, {}).get("default")

    def _list(self, key: str) -> list[str]:
        value = self.setting(key)
        if isinstance(value, str):
            import json
            try:
                value = json.loads(value)
            except ValueError:
                return []
        return list(value) if isinstance(value, list) else []

    # ---------------------------------------------------------------- zones
    def zones(self) -> list[str]:
        if self.region in KNOWN_ZONES:
            zones = list(KNOWN_ZONES[self.region])
            self.note(f"zones of {self.region}: {', '.join(zones)} (the mocks' table)")
            return zones
        try:
            wanted = int(self.setting("availabilityZoneCount") or 0)
        except ValueError:
            wanted = 0
        wanted = max(wanted, len(self._list("publicSubnetIds")), 3)
        zones = [f"{self.region}{letter}" for letter in string.ascii_lowercase[:wanted]]
        self.note(f"zones of {self.region}: {', '.join(zones)} (invented: only AWS knows the region's zones)")
        return zones

    def zone_ids(self) -> list[str]:
        short = "".join(part[0] if not part.isdigit() else part for part in self.region.split("-"))
        return [f"{short}-az{i + 1}" for i in range(len(self.zones()))]

    def offered(self, instance_type: str, not_offered: set[str]) -> list[str]:
        zones = [z for z in self.zones() if z not in not_offered]
        if not_offered:
            self.note(f"{instance_type} is offered in {', '.join(zones) or 'no zone'} of {self.region} (the mocks' table)")
        else:
            self.note(f"every zone of {self.region} offers every instance type (only AWS knows the offers per zone)")
        return zones

    # ---------------------------------------------------------------- an existing VPC
    def vpc(self, vpc_id: str, known: dict[str, str]) -> Optional[str]:
        """The VPC's CIDR, or None when the stack does not name this VPC."""
        if vpc_id in known:
            self.note(f"{vpc_id} has the CIDR {known[vpc_id]} (the mocks' table of the example's IDs)")
            return known[vpc_id]
        if vpc_id != self.setting("vpcId"):
            return None
        cidr = self.setting("vpcCidr")
        self.note(f"{vpc_id} has the CIDR {cidr} (vpcCidr; only AWS knows the VPC's real CIDR)")
        return cidr

    def subnet(self, subnet_id: str, known: dict[str, tuple[str, str]]) -> Optional[tuple[str, str]]:
        """(VPC, zone) of a subnet, or None when the stack does not list it."""
        if subnet_id in known:
            vpc, zone = known[subnet_id]
            self.note("the example's subnets are in the zones the mocks' table gives them")
            return vpc, zone
        public, private = self._list("publicSubnetIds"), self._list("privateSubnetIds")
        zones = self.zones()
        if subnet_id in public:
            index = public.index(subnet_id)
        elif subnet_id in private:
            index = private.index(subnet_id) % max(1, min(len(public), len(zones)))
        else:
            return None
        zone = zones[index % len(zones)]
        self.note(f"subnet {subnet_id} is in {zone} of {self.setting('vpcId')} (assumed from its place in the list; "
                  "only AWS knows its zone)")
        return self.setting("vpcId"), zone
