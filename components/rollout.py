"""The order between the fleets and the load balancer: the one place that says who waits for whom, and why.

One host's chain is sshd -> wait (stage, boot, name) -> install -> configure -> health -> registration; the fleets
meet only at three barriers (local commands that run nothing), so the critical path of a first deploy is one
host's chain plus the waits at those barriers.

1. Both fleets boot and install in parallel: a filtering node's install does not wait for wstore.
2. A filtering node is configured (its NGINX pointed at the wstore servers it lists, every one of them) only once
   every postanalytics server is installed: it waits for the barrier `postanalytics-installed`. Nothing serves
   before its configure step: the load balancer registers a node only after its health check (5.), and before
   the configure step NGINX points at no wstore of ours. This also keeps wstore never older than the filtering
   nodes it serves: the settings refuse a filteringVersion newer than postanalyticsVersion, a new version is a
   new machine (the generation in components/host.py), and a node's configure step, which is where it starts
   serving a wstore, waits for that wstore's install. With a new wallarmVersion both fleets get new machines;
   the new filtering nodes install beside the new wstore servers, are configured only after those installed,
   and the old filtering nodes keep serving the old wstore servers until Pulumi deletes both at the end.
3. Every filtering node is configured, then every postanalytics server: with mutual TLS, wstore asks for client
   certificates only once every NGINX has one (Wallarm's order for switching to mTLS). Each wstore's configure
   step waits for the barrier `filtering-configured`, which waits for every filtering node's.
4. Each filtering node's health check runs after every configure step, and again whenever its own or any wstore's
   configuration changes. It waits for one barrier, `postanalytics-configured`, that waits for every wstore.
   Why barriers: the SDK walks the whole graph behind every dependency it is given to rule out cycles
   (pulumi/runtime/resource_cycle_breaker.py, `declare_dependency`), so M direct links per node would cost
   N x M walks; through a barrier, N + M.
5. Only a checked node is registered in the load balancer, and its in-service wait follows. A replaced node is
   healthy in the target group before Pulumi, at the end of the update, deletes what it replaces.
"""

from __future__ import annotations

import hashlib
from typing import Optional, Sequence

import pulumi
from pulumi_command import local

from .entrypoint import EntryPoint
from .filtering import FilteringNode
from .postanalytics import Postanalytics


def wire(postanalytics: Sequence[Postanalytics], filtering: Sequence[FilteringNode],
         entry: Optional[EntryPoint], opts: Optional[pulumi.ResourceOptions] = None) -> None:
    """opts: the barriers' parent (and aliases), a WallarmDeployment."""
    installed = local.Command("postanalytics-installed", add_previous_output_in_env=False,
                              opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
                                  depends_on=[p.installed for p in postanalytics])))
    filtering_configured = [f.install(configure_after=[installed]) for f in filtering]
    configured = local.Command("filtering-configured", add_previous_output_in_env=False,
                               opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
                                   depends_on=filtering_configured)))
    wstore_configured = [p.configure(after=[configured]) for p in postanalytics]
    wstore_specs = pulumi.Output.all(*[p.spec for p in postanalytics])
    barrier = local.Command("postanalytics-configured", add_previous_output_in_env=False,
                            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
                                depends_on=wstore_configured)))
    for f in filtering:
        fingerprint = pulumi.Output.unsecret(pulumi.Output.all(f.spec, wstore_specs).apply(
            lambda v: hashlib.sha256((v[0] + "".join(v[1])).encode()).hexdigest()))
        health = f.check_health(after=[barrier], fingerprint=fingerprint)
        if entry is not None:
            f.in_service = entry.register(f.name, f.instance.id, [health], parent=f)
