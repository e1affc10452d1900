"""The order between the fleets and the load balancer: the one place that says who waits for whom, and why.

1. Both fleets boot in parallel.
2. Every filtering node installs after every postanalytics server installed: Wallarm upgrades postanalytics
   before the filtering nodes, and with both versions changed in one `pulumi up` (a new wallarmVersion) the new
   filtering nodes are installed only once the new wstore servers are (a filtering version newer than the
   postanalytics one is refused in the settings).
3. Every filtering node is configured, then every postanalytics server: with mutual TLS, wstore asks for client
   certificates only once every NGINX has one (Wallarm's order for switching to mTLS).
4. Each filtering node's health check runs after every configure step, and again whenever its own or any wstore's
   configuration changes. It waits for one barrier, `postanalytics-configured` (a local command that runs
   nothing), that waits for every wstore: the SDK walks the whole graph behind every dependency it is given to
   rule out cycles, so M direct links per node would cost N x M walks of N nodes each.
5. Only a checked node is registered in the load balancer, and its in-service wait follows. A replaced node is
   healthy in the target group before Pulumi, at the end of the update, deletes what it replaces.
"""

from __future__ import annotations

import hashlib
from typing import Optional, Sequence

import pulumi
from pulumi_command import local

from components.entrypoint import EntryPoint
from components.filtering import FilteringNode
from components.postanalytics import Postanalytics


def wire(postanalytics: Sequence[Postanalytics], filtering: Sequence[FilteringNode],
         entry: Optional[EntryPoint]) -> None:
    installed = [p.installed for p in postanalytics]
    for f in filtering:
        f.install(after=installed)
    for p in postanalytics:
        p.configure(after=[f.configured for f in filtering])
    wstore_specs = pulumi.Output.all(*[p.spec for p in postanalytics])
    barrier = local.Command("postanalytics-configured", add_previous_output_in_env=False,
                            opts=pulumi.ResourceOptions(depends_on=[p.configured for p in postanalytics]))
    for f in filtering:
        fingerprint = pulumi.Output.unsecret(pulumi.Output.all(f.spec, wstore_specs).apply(
            lambda v: hashlib.sha256((v[0] + "".join(v[1])).encode()).hexdigest()))
        f.check_health(after=[barrier], fingerprint=fingerprint)
        if entry is not None:
            f.in_service = entry.register(f.name, f.instance.id, [f.health], parent=f)
