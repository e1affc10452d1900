"""The settings turned into the firewall's rules, and those rules against AWS's quota per security group: the one
cross-key check that needs the whole Settings (quotas of what the settings give, before any resource)."""

from __future__ import annotations

from typing import Any

from .model import RULES_QUOTA, RULES_QUOTA_NAME, Settings


def firewall_args(s: Settings, vpc_id: Any = ""):
    """The firewall's arguments, from the settings: the one place that turns settings into rules, used by the
    program and by the quota check below (before any resource)."""
    from ..entrypoint import target_groups
    from ..firewall import FirewallArgs, wstore_listeners

    groups = target_groups(s.tls_certificate_arn is not None, s.health_check_port, s.health_check_proxy_port)
    return FirewallArgs(
        vpc_id=vpc_id, ssh_allowed_cidrs=s.ssh_allowed_cidrs, client_cidrs=s.client_cidrs,
        external_filtering_cidrs=s.external_filtering_cidrs,
        wstore=wstore_listeners(s.wstore_port, s.wstore_tls_port, s.tls), protected_upstream=s.protected_upstream,
        traffic_ports=[g.port for g in groups], health_ports=[g.health_port for g in groups],
        listener_ports=[g.listener_port for g in groups], jump_host=s.jump_host is not None)


def rules_per_group_within_quota(s: Settings) -> list[str]:
    """Each security group's inbound and outbound rules (as the firewall declares them, CIDR lists folded) against
    AWS's default quota; a refusal names the settings whose ranges fill the group."""
    from ..firewall import GROUPS, Group, fold, rules

    table = rules(firewall_args(s))
    lists = {"clientCidrs": fold(s.client_cidrs), "sshAllowedCidrs": fold(s.ssh_allowed_cidrs),
             "externalFilteringCidrs": fold(s.external_filtering_cidrs)}
    given = {"clientCidrs": s.client_cidrs, "sshAllowedCidrs": s.ssh_allowed_cidrs,
             "externalFilteringCidrs": s.external_filtering_cidrs}
    errors = []
    for group in GROUPS:
        for direction, word in (("ingress", "inbound"), ("egress", "outbound")):
            mine = [r for r in table if r.group == group and r.direction == direction]
            if len(mine) <= RULES_QUOTA:
                continue
            keys = [k for k, folded in lists.items() if any(not isinstance(r.peer, Group) and r.peer in folded
                                                            for r in mine)] or ["clientCidrs"]
            for key in keys:
                errors.append(
                    f"{key} lists {len(given[key])} ranges ({len(lists[key])} after folding), which give the {group} "
                    f"security group {len(mine)} {word} rules, beyond AWS's default quota of {RULES_QUOTA} per group "
                    f"({RULES_QUOTA_NAME}); list fewer or wider ranges, or raise the quota in the Service Quotas "
                    "console first.")
    return errors
