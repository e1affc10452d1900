"""The one validation of every value, whether a stack's config gave it (load) or another program (from_values): the
rule table on each key, AWS asked what the instance types are, the named cross-key checks, then Settings built and
its firewall rules counted against AWS's quota. Every wrong value comes out at once, in one SettingsError.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

import pulumi

from .. import awsconfig, lookups
from ..lookups import ShapeLookup
from . import rules
from .checks import region as region_check
from .cross import CROSS_CHECKS, VERSIONS, internal_certificate_days
from .model import (NLB_TARGETS_QUOTA, SECRET_KEYS, Errors, InstanceShape, MonitoringSettings,
                                       Settings, SettingsError, declared_keys, fail)
from .quotas import rules_per_group_within_quota
from .reader import did_you_mean, parse

INSTANCE_TYPES = ("postanalyticsInstanceType", "filteringInstanceType", "jumpHostInstanceType")
# MonitoringSettings.thresholds' names -> their keys in Pulumi.yaml.
THRESHOLDS = {
    "period": "alarmPeriodSeconds",
    "errors": "alarmErrorsPerPeriod",
    "unhealthy": "alarmUnhealthyTargets",
    "timeframe": "alarmWstoreTimeframeSeconds",
    "memory": "alarmMemoryPercent",
    "disk": "alarmDiskPercent",
    "certificate_days": "alarmCertificateDays",
    "internal_certificate_days": "alarmInternalCertificateDays",
}


def from_values(values: Mapping[str, Any], *, project: str, stack: str, region: str,
                wallarm_token: pulumi.Input[str], ssh_private_key: Optional[pulumi.Input[str]] = None,
                lookup: ShapeLookup = lookups.aws_instance_shape) -> Settings:
    """Validates settings given as values rather than read from a stack: keyed by the keys of Pulumi.yaml
    (camelCase), already typed (int, bool, list of str, str; None for unset), a missing key taking its declared
    default. The secrets come apart: a wallarm_token that is a plain str is checked as the stack's is, an Output
    cannot be read before resources and is taken as it is. Raises SettingsError listing every wrong value."""
    e = Errors()
    decls = declared_keys()
    given: dict[str, Any] = {}
    for key, value in values.items():
        if key in SECRET_KEYS:
            arg = "wallarm_token" if key == "wallarmToken" else "ssh_private_key"
            e.add(SettingsError(f"{key} is among the values (not shown): pass it as {arg}, a secret, instead."))
        elif key not in decls:
            e.add(fail(key, value, "it is not a setting of this program" + did_you_mean(key, decls, "")))
        elif value is not None and value != "":
            given[key] = e.take(typed, key, decls[key], value)
    return validate({k: v for k, v in given.items() if v is not None}, set(given), e, decls=decls, project=project,
                    stack=stack, region=region, wallarm_token=wallarm_token, ssh_private_key=ssh_private_key, lookup=lookup,
                    aws_config={})


def typed(key: str, decl: dict, value: Any) -> Any:
    """A value given already typed, checked against its declared type (in the sentences a stack's parse says)."""
    kind = decl.get("type", "string")
    if kind == "string" and not isinstance(value, str):
        raise fail(key, value, "it must be a string")
    if kind == "integer" and (isinstance(value, bool) or not isinstance(value, int)):
        raise fail(key, value, "it must be a whole number")
    if kind == "boolean" and not isinstance(value, bool):
        raise fail(key, value, "it must be true or false")
    if kind == "array":
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise fail(key, value, "it must be a list of strings, such as [\"10.0.0.0/16\"]")
        value = list(value)
    return parse(key, decl, value)


def validate(values: dict[str, Any], given: set[str], e: Errors, *, decls: dict[str, dict], project: str, stack: str,
             region: str, wallarm_token: Any, ssh_private_key: Any, lookup: ShapeLookup,
             aws_config: Mapping[str, Any]) -> Settings:
    """`values` holds the typed values set, `given` the keys set (one in `given` but not in `values` is refused
    already, with its line in `e`); any other key takes its declared default (`decls`: declared_keys(), which the
    caller has read already)."""
    e.take(region_check, "aws:region", region)
    values, given = dict(values), set(given)
    for key, secret in (("wallarmToken", wallarm_token), ("sshPrivateKey", ssh_private_key)):
        if secret is not None and not (isinstance(secret, str) and secret == ""):
            values[key] = secret
            given.add(key)
    c = resolve(rules.apply(values, frozenset(given), e, decls), region, lookup, e)
    for check in CROSS_CHECKS:
        for error in check(c):
            e.add(error)
    if e.messages:
        raise SettingsError("\n".join(e.messages))
    if c["filteringCount"] > NLB_TARGETS_QUOTA // 2:
        pulumi.log.warn(
            f"filteringCount is {c['filteringCount']}: replacing every filtering node (a new version or type) "
            f"registers the new nodes before the old ones leave, {2 * c['filteringCount']} targets, beyond the "
            f"network load balancer's default quota of {NLB_TARGETS_QUOTA} targets with cross-zone load balancing; "
            "raise that quota first, or change the fleet in steps.")
    settings = build(c, project, stack, aws_config)
    errors = rules_per_group_within_quota(settings)
    if errors:
        raise SettingsError("\n".join(errors))
    return settings


def resolve(c: rules.Checked, region: str, lookup: ShapeLookup, e: Errors) -> rules.Checked:
    """The checked values as the cross-key checks read them: the region under aws:region, the values that default
    to another key's, and each instance type as AWS describes it (an InstanceShape, None when refused)."""
    c["aws:region"] = region
    if "mutualTls" not in c.given:  # mutualTls defaults to tls: only a true one the user set contradicts tls false
        c["mutualTls"] = c["tls"]
    for key in VERSIONS[1:]:  # an unset fleet version is wallarmVersion's (its error, wallarmVersion's one line)
        if key not in c.given:
            c[key] = c["wallarmVersion"]
    for key in INSTANCE_TYPES:
        c[key] = e.take(shape, key, c[key], lookup)
    return c


def shape(key: str, instance_type: str, lookup: ShapeLookup) -> InstanceShape:
    """What AWS says of a type whose name the rule passed: offered in the region, and of an installer's arch."""
    try:
        found = lookup(instance_type)
    except lookups.LookupFailed as exc:
        raise fail(key, instance_type, str(exc)) from None
    if found is None:
        raise fail(key, instance_type, "AWS does not offer this instance type in the stack's region")
    memory_gib, arches = found
    if "x86_64" in arches:
        arch = "x86_64"
    elif "arm64" in arches:
        arch = "aarch64"
    else:
        raise fail(key, instance_type, "the installer exists for x86_64 and arm64 types only")
    return InstanceShape(instance_type, memory_gib, arch)


def waits_honour_aws(wanted: bool, config: Mapping[str, Any]) -> bool:
    """The load balancer waits ask the account the AWS provider changes, or do not run: an `aws:` key they cannot
    honour turns them off with a warning naming it (components/awsconfig.py says which keys)."""
    problems = awsconfig.unhonoured(awsconfig.aws_settings(config)) if wanted else []
    for problem in problems:
        pulumi.log.warn(f"{problem}; waitForTargetHealth is off for this run (no in-service or drain waits), "
                        "rather than waits that ask another account.")
    return wanted and not problems


def build(c: rules.Checked, project: str, stack: str, aws_config: Mapping[str, Any]) -> Settings:
    """Settings from values that passed every check."""
    private_key = c["sshPrivateKey"]
    return Settings(
        project=project,
        stack=stack,
        wallarm_cloud=c["wallarmCloud"],
        wallarm_token=pulumi.Output.secret(c["wallarmToken"]),
        wallarm_token_type=c["wallarmTokenType"],
        wallarm_node_group=c["wallarmNodeGroup"],
        postanalytics_version=c["postanalyticsVersion"],
        filtering_version=c["filteringVersion"],
        installer_sha256=c["installerSha256"],
        wallarm_mode=c["wallarmMode"],
        postanalytics_count=c["postanalyticsCount"],
        postanalytics=c["postanalyticsInstanceType"],
        slab_alloc_arena=c["slabAllocArena"],
        wstore_port=c["wstorePort"],
        wstore_tls_port=c["wstoreTlsPort"],
        tls=c["tls"],
        mutual_tls=c["mutualTls"],
        cert_validity_hours=c["certValidityHours"],
        cert_early_renewal_hours=c["certEarlyRenewalHours"],
        ca_generation=c["caGeneration"],
        ca_rotation=c["caRotation"],
        filtering_count=c["filteringCount"],
        filtering=c["filteringInstanceType"],
        protected_upstream=c["protectedUpstream"],
        protected_upstream_ca=c["protectedUpstreamCaCertificate"],
        client_cidrs=c["clientCidrs"],
        external_filtering_cidrs=c["externalFilteringCidrs"],
        ssh_allowed_cidrs=c["sshAllowedCidrs"],
        ssh_public_key=c["sshPublicKey"],
        ssh_private_key=pulumi.Output.secret(private_key) if private_key is not None else None,
        os=c["os"],
        ami_id=c["amiId"],
        jump_host_ami_id=c["jumpHostAmiId"],
        vpc_id=c["vpcId"],
        public_subnet_ids=c["publicSubnetIds"],
        private_subnet_ids=c["privateSubnetIds"],
        vpc_cidr=c["vpcCidr"],
        availability_zone_count=c["availabilityZoneCount"],
        nat_gateways=c["natGateways"],
        jump_host=c["jumpHostInstanceType"],
        tls_certificate_arn=c["tlsCertificateArn"],
        health_check_port=c["healthCheckPort"],
        health_check_proxy_port=c["healthCheckProxyProtocolPort"],
        load_balancer_internal=c["loadBalancerInternal"],
        deregistration_delay=c["deregistrationDelay"],
        wait_for_target_health=waits_honour_aws(c["waitForTargetHealth"], aws_config),
        root_volume_gb=c["rootVolumeGb"],
        monitoring=MonitoringSettings(c["logRetentionDays"], tuple(dict.fromkeys(c["alarmEmails"])),
                                      {**{name: c[key] for name, key in THRESHOLDS.items()},
                                       "internal_certificate_days": internal_certificate_days(c)}),
    )
