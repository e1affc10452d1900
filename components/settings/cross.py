"""The named cross-key checks: what depends on more than one key, run after every key's own rule (rules.py).

Each takes the checked values (rules.Checked: key -> value, None when unset or refused with its own line, an
instance type key holding its InstanceShape once AWS has told it) and yields one SettingsError per wrong
combination; a check whose input was refused says nothing, that value has its line already. The docstring of each
is the sentence it says.
"""

from __future__ import annotations

import ipaddress
from typing import Iterator, Optional
from urllib.parse import urlsplit

import pulumi

from .checks import numbers, rfc1918
from .model import (EIP_QUOTA, EIP_QUOTA_NAME, SSH_PORT, TLS_MIN_VERSION, InstanceShape,
                                       SettingsError, fail)
from .rules import Checked

Errors = Iterator[SettingsError]
VERSIONS = ("wallarmVersion", "postanalyticsVersion", "filteringVersion")


def api_token_needs_node_group(c: Checked) -> Errors:
    """wallarmNodeGroup is not set: an api token needs a node group; set wallarmNodeGroup or use a node token."""
    if c["wallarmTokenType"] == "api" and "wallarmNodeGroup" not in c.given:
        yield fail("wallarmNodeGroup", None, "an api token needs a node group; set wallarmNodeGroup or use a node "
                                             "token (wallarmTokenType node)")


def mutual_tls_needs_tls(c: Checked) -> Errors:
    """mutualTls is True: mutual TLS needs tls true (mutualTls unset follows tls, so only a true one the user set)."""
    if c["mutualTls"] and not c["tls"]:
        yield fail("mutualTls", True, "mutual TLS needs tls true; set mutualTls false or tls true")


def versions_support_tls(c: Checked) -> Errors:
    """<version key> is <v>: TLS to wstore needs 6.2.0 or later (the wallarmVersion and the fleet versions set)."""
    for key in VERSIONS:
        if c["tls"] and c[key] is not None and (key in c.given or key == "wallarmVersion") \
                and numbers(c[key]) < TLS_MIN_VERSION:
            yield fail(key, c[key], "TLS to wstore needs 6.2.0 or later; raise the version or set tls to false")


def filtering_not_newer_than_postanalytics(c: Checked) -> Errors:
    """filteringVersion must not be newer than postanalyticsVersion: Wallarm upgrades postanalytics first."""
    post, filtering = c["postanalyticsVersion"], c["filteringVersion"]
    if post is not None and filtering is not None and numbers(filtering) > numbers(post):
        yield fail("filteringVersion", filtering, f"it must not be newer than postanalyticsVersion ({post}): Wallarm "
                                                  "upgrades postanalytics first, so raise postanalyticsVersion first")


def wstore_ports_differ(c: Checked) -> Errors:
    """wstoreTlsPort must differ from wstorePort when tls is on (both listen on the postanalytics servers)."""
    if c["tls"] and c["wstoreTlsPort"] is not None and c["wstoreTlsPort"] == c["wstorePort"]:
        yield fail("wstoreTlsPort", c["wstoreTlsPort"], f"it must differ from wstorePort ({c['wstorePort']})")


def renewal_before_expiry(c: Checked) -> Errors:
    """certEarlyRenewalHours must be from 0 to certValidityHours - 1; when only the validity is set, below the
    default renewal window, the validity is what is wrong."""
    validity, renewal = c["certValidityHours"], c["certEarlyRenewalHours"]
    if validity is not None and renewal is not None and renewal >= validity \
            and "certEarlyRenewalHours" not in c.given:
        yield fail("certValidityHours", validity, f"it must be longer than certEarlyRenewalHours ({renewal}, its "
                                                  f"default); raise it, or set certEarlyRenewalHours below {validity}")
    elif renewal is not None and not 0 <= renewal <= (validity or 25) - 1:
        yield fail("certEarlyRenewalHours", renewal, f"it must be from 0 to {(validity or 25) - 1}")


def ca_rotation_needs_tls(c: Checked) -> Errors:
    """caRotation other than none needs tls true: with tls false there is no CA."""
    if c["caRotation"] not in (None, "none") and not c["tls"]:
        yield fail("caRotation", c["caRotation"], "a CA rotation needs tls true (with tls false there is no CA); "
                                                  "set caRotation none")


def ssh_keys_go_together(c: Checked) -> Errors:
    """sshPublicKey and sshPrivateKey go together: both, or neither to have a key pair generated."""
    public, private = "sshPublicKey" in c.given, "sshPrivateKey" in c.given
    if public != private:
        yield fail("sshPrivateKey" if public else "sshPublicKey", None,
                   "sshPublicKey and sshPrivateKey go together; set both, or neither to have a key pair generated")


def subnets_need_their_vpc(c: Checked) -> Errors:
    """Subnets need their VPC (vpcId), and an existing VPC needs its public and private subnets listed."""
    vpc = "vpcId" in c.given
    for key in ("publicSubnetIds", "privateSubnetIds"):
        subnets = c[key]
        if subnets is None and key in c.given:
            continue
        if not vpc and subnets:
            yield fail(key, list(subnets), "subnets need their VPC; set vpcId too, or unset both to have the VPC "
                                           "created")
        elif vpc and not subnets:
            yield fail(key, None, "an existing VPC (vpcId) needs its public and private subnets listed")


def certificate_in_region(c: Checked) -> Errors:
    """tlsCertificateArn must be of the stack's region: a load balancer takes an ACM certificate of its own."""
    certificate, region = c["tlsCertificateArn"], c["aws:region"]
    if certificate is not None and region and certificate.split(":")[3] != region:
        yield fail("tlsCertificateArn", certificate, f"a load balancer takes an ACM certificate of its own region "
                                                     f"({region}); request or import one there")


def port_collisions(c: Checked) -> Errors:
    """A health port must be a port of its own: NGINX cannot listen twice on one port with and without the PROXY
    protocol, and two rules or servers of one port collide."""
    from ..entrypoint import TLS_TARGET_PORT, TRAFFIC_PORT

    tls_listener = "tlsCertificateArn" in c.given
    taken = {TRAFFIC_PORT: "the HTTP traffic port", SSH_PORT: "SSH"}
    if tls_listener:
        taken[TLS_TARGET_PORT] = "the TLS listener's target port on the filtering nodes"
    for key in ("wstorePort", "wstoreTlsPort"):
        if c[key] is not None:
            taken.setdefault(c[key], f"wstore's port ({key})")
    keys = ["healthCheckPort"] + (["healthCheckProxyProtocolPort"] if tls_listener else [])
    for key in keys:
        port = c[key]
        if port in taken:
            yield fail(key, port, f"it collides with {taken[port]}, {port}; choose a port of its own from 1024 to 65535")
        elif port is not None:
            taken[port] = f"the other health port ({key})"


def elastic_ips(nat: str, az_count: int, jump_host: bool) -> None:
    """The Elastic IPs the stack allocates against the region's default quota: one per NAT gateway, one for the
    jump host. Refused beyond the quota; a warning when the stack fills it (any address already allocated in the
    region makes `pulumi up` fail half-way)."""
    needed = (az_count if nat == "perAz" else 1) + (1 if jump_host else 0)
    parts = f"{az_count if nat == 'perAz' else 1} for NAT gateways" + (" and 1 for the jump host" if jump_host else "")
    how = (f"raise the quota {EIP_QUOTA_NAME} in the Service Quotas console first (or `aws service-quotas "
           "request-service-quota-increase --service-code ec2 --quota-code L-0263D0A3`)")
    if needed > EIP_QUOTA:
        raise fail("natGateways", nat, f"the stack needs {needed} Elastic IPs ({parts}), beyond AWS's default quota "
                                       f"of {EIP_QUOTA} per region; {how}, or use fewer zones")
    if needed == EIP_QUOTA:
        pulumi.log.warn(f"natGateways is {nat!r}: the stack needs {needed} Elastic IPs ({parts}), all of AWS's "
                        f"default quota of {EIP_QUOTA} per region, so any Elastic IP already allocated in the region "
                        f"makes `pulumi up` fail; check the quota and {how}.")


def elastic_ips_within_quota(c: Checked) -> Errors:
    """natGateways is <nat>: the stack needs N Elastic IPs, beyond AWS's default quota of 5 per region (a created
    VPC only: an existing one brings its own NAT)."""
    if "vpcId" not in c.given and c["availabilityZoneCount"] is not None and c["natGateways"] is not None:
        try:
            elastic_ips(c["natGateways"], c["availabilityZoneCount"], bool(c["jumpHost"]))
        except SettingsError as exc:
            yield exc


def one_ami_one_arch(c: Checked) -> Errors:
    """amiId: one AMI cannot serve x86_64 and aarch64 instance types."""
    shapes = (c["postanalyticsInstanceType"], c["filteringInstanceType"])
    arches = {shape.arch for shape in shapes if isinstance(shape, InstanceShape)}
    if c["amiId"] is not None and len(arches) > 1:
        yield fail("amiId", c["amiId"], f"one AMI cannot serve {' and '.join(sorted(arches))} instance types; "
                                        "unset amiId or choose types of one architecture")


def arena_fits_memory(c: Checked) -> Errors:
    """slabAllocArena: at most the postanalytics type's memory less a quarter (at least 1 GiB) for the OS and wstore."""
    value, shape = c["slabAllocArena"], c["postanalyticsInstanceType"]
    if value is None or not isinstance(shape, InstanceShape):
        return
    headroom = max(1.0, shape.memory_gib * 0.25)
    most = shape.memory_gib - headroom
    if float(value) > most:
        yield fail("slabAllocArena", value,
                   f"at most {most:g} GB fits {shape.instance_type} ({shape.memory_gib:g} GiB of memory, keeping "
                   f"{headroom:g} GiB for the OS and wstore itself); lower it or choose a larger "
                   "postanalyticsInstanceType")


def public_wstore_ranges_need_mutual_tls(c: Checked) -> Errors:
    """externalFilteringCidrs: a public range is allowed only with mutualTls true (wstore runs Lua and OS commands
    for whoever reaches it)."""
    if c["mutualTls"]:
        return
    for value in c["externalFilteringCidrs"] or ():
        if not rfc1918(ipaddress.IPv4Network(value)):
            yield fail("externalFilteringCidrs", value, "a public range is allowed here only with mutualTls true; "
                                                        "use private (RFC 1918) ranges or turn it on")
            return


def upstream_ca_needs_https(c: Checked) -> Errors:
    """protectedUpstreamCaCertificate is used only for an https:// protectedUpstream."""
    upstream: Optional[str] = c["protectedUpstream"]
    if c["protectedUpstreamCaCertificate"] is not None and upstream is not None \
            and urlsplit(upstream).scheme != "https":
        key = "protectedUpstreamCaCertificate"
        yield SettingsError(f"{key} is set while protectedUpstream is {upstream!r}: it is used only for an https:// "
                            "application; unset it or use https://.")


def internal_certificate_alarm_can_clear(c: Checked) -> Errors:
    """alarmInternalCertificateDays must be below the leaves' validity: a new certificate would alarm already, and
    the alarm could never clear. Only a value the user set is refused; see internal_certificate_days."""
    days, validity = c["alarmInternalCertificateDays"], c["certValidityHours"]
    if days is not None and validity is not None and "alarmInternalCertificateDays" in c.given \
            and days * 24 >= validity:
        yield fail("alarmInternalCertificateDays", days,
                   f"a new certificate holds certValidityHours ({validity}) hours, so the alarm must fire below "
                   f"{validity / 24:g} days")


def internal_certificate_days(c: Checked) -> float:
    """The internal certificate alarm's threshold in days: the setting, or half the validity when the user shortened
    only certValidityHours below the default threshold (Pulumi.yaml says so)."""
    days, validity = c["alarmInternalCertificateDays"], c["certValidityHours"]
    return validity / 48 if days * 24 >= validity else days


CROSS_CHECKS = (api_token_needs_node_group, mutual_tls_needs_tls, versions_support_tls,
                filtering_not_newer_than_postanalytics, wstore_ports_differ, renewal_before_expiry,
                ca_rotation_needs_tls, ssh_keys_go_together, subnets_need_their_vpc, certificate_in_region,
                port_collisions, elastic_ips_within_quota, one_ami_one_arch, arena_fits_memory,
                public_wstore_ranges_need_mutual_tls, upstream_ca_needs_https,
                internal_certificate_alarm_can_clear)
"""Run in this order after the rules; rules_per_group_within_quota (quotas.py) runs on the built Settings."""
