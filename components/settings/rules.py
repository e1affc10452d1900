"""The rule table: one entry per key declared in Pulumi.yaml, with its type and the checks of its value alone.

The declaration in Pulumi.yaml says a key's type and default; this table says what a value of it may be. A test
(tests/unit/test_settings_rules.py) fails when a key is declared without a rule here, or a rule names an undeclared key,
or the types disagree. What depends on two keys (mutual TLS needs TLS, the versions' order, ports that collide,
quotas) is a named cross-key check in cross.py, run after every key's own checks.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

from . import checks
from .checks import Check, cidrs, each, ids, in_range, matching, member, multiple_of, one_of
from .model import (CA_ROTATIONS, CLOUDS, LOG_RETENTIONS, MAX_FILTERING, MAX_POSTANALYTICS, MODES,
                                       NAT_STRATEGIES, OPERATING_SYSTEMS, SSH_WIDEST_PREFIX, TOKEN_TYPES,
                                       WSTORE_WIDEST_PREFIX, Errors, SettingsError, fail)
from .reader import parse
from .upstream import upstream, upstream_ca

AMI = matching(r"ami-[0-9a-f]{8,17}", "it must be an AMI ID such as ami-0123456789abcdef0")
PORT = in_range(1, 65535)
# Health ports start at 1024; their collisions with wstore and the traffic ports are cross.port_collisions'.
HEALTH_PORT = in_range(1024, 65535)
PERCENT = in_range(1, 100)


@dataclasses.dataclass(frozen=True)
class Rule:
    """What a value of one key may be."""

    key: str
    type: type
    """The Python type of its value: str, int, bool or list (of str), as Pulumi.yaml declares it."""
    checks: tuple[Check, ...] = ()
    """Run in order on the value (each may normalise it); the first refusal is the key's line."""
    optional: bool = False
    """An empty string or list means unset: no check, and the value is None."""
    only_if: Optional[str] = None
    """A boolean key: the value is checked and used only when it is true (else None)."""
    missing: Optional[str] = None
    """What to say when the key has no value and no default (else "it is required (<description>)")."""


RULES: tuple[Rule, ...] = (
    Rule("wallarmCloud", str, (one_of(*CLOUDS),)),
    Rule("wallarmToken", str, (checks.token,),
         missing="it is required, set it with `pulumi config set --secret wallarmToken <token>`"),
    Rule("wallarmTokenType", str, (one_of(*TOKEN_TYPES),)),
    Rule("wallarmNodeGroup", str, (matching(r"[A-Za-z0-9._-]{1,64}",
                                            "it must be 1 to 64 letters, digits, dots, dashes or underscores"),),
         optional=True),
    Rule("wallarmVersion", str, (checks.version,)),
    Rule("postanalyticsVersion", str, (checks.version,), optional=True),
    Rule("filteringVersion", str, (checks.version,), optional=True),
    Rule("installerSha256", list, (checks.digests,)),
    Rule("wallarmMode", str, (one_of(*MODES),)),
    Rule("postanalyticsCount", int, (in_range(1, MAX_POSTANALYTICS),)),
    Rule("postanalyticsInstanceType", str, (checks.instance_type,)),
    Rule("slabAllocArena", str, (checks.gigabytes,)),
    Rule("wstorePort", int, (PORT, checks.not_reserved)),
    Rule("wstoreTlsPort", int, (PORT, checks.not_reserved)),
    Rule("tls", bool),
    Rule("mutualTls", bool),
    Rule("certValidityHours", int, (in_range(24, 10 * 8760),)),
    Rule("certEarlyRenewalHours", int),  # from 0 to certValidityHours - 1: cross.renewal_before_expiry
    Rule("caGeneration", int, (in_range(1, 9999),)),
    Rule("caRotation", str, (one_of(*CA_ROTATIONS),)),
    Rule("filteringCount", int, (in_range(1, MAX_FILTERING),)),
    Rule("filteringInstanceType", str, (checks.instance_type,)),
    Rule("protectedUpstream", str, (upstream,)),
    Rule("protectedUpstreamCaCertificate", str, (upstream_ca,), optional=True),
    Rule("clientCidrs", list, (cidrs(widest=0, at_least_one=True),)),
    # Public ranges only with mutual TLS: cross.public_wstore_ranges_need_mutual_tls.
    Rule("externalFilteringCidrs", list, (cidrs(widest=WSTORE_WIDEST_PREFIX, at_least_one=False),)),
    Rule("sshAllowedCidrs", list, (cidrs(widest=SSH_WIDEST_PREFIX, at_least_one=True),)),
    Rule("sshPublicKey", str, (checks.public_key,), optional=True),
    Rule("sshPrivateKey", str, (checks.private_key,), optional=True),
    Rule("os", str, (one_of(*OPERATING_SYSTEMS),)),
    Rule("amiId", str, (AMI,), optional=True),
    Rule("vpcId", str, (matching(r"vpc-[0-9a-f]{8,17}", "it must be a VPC ID such as vpc-0123456789abcdef0"),),
         optional=True),
    Rule("publicSubnetIds", list, (ids("subnet"),)),
    Rule("privateSubnetIds", list, (ids("subnet"),)),
    Rule("vpcCidr", str, (checks.private_range(16, 20),)),
    Rule("availabilityZoneCount", int, (in_range(2, 4),)),
    Rule("natGateways", str, (one_of(*NAT_STRATEGIES),)),
    Rule("jumpHost", bool),
    Rule("jumpHostInstanceType", str, (checks.instance_type,), only_if="jumpHost"),
    Rule("jumpHostAmiId", str, (AMI,), optional=True),
    Rule("tlsCertificateArn", str, (matching(
        r"arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]{36}",
        "it must be an ACM certificate ARN, such as arn:aws:acm:eu-central-1:123456789012:certificate/<uuid>"),),
         optional=True),
    Rule("healthCheckPort", int, (HEALTH_PORT,)),
    Rule("healthCheckProxyProtocolPort", int, (HEALTH_PORT,)),
    Rule("loadBalancerInternal", bool),
    Rule("deregistrationDelay", int, (in_range(0, 3600),)),
    Rule("waitForTargetHealth", bool),
    Rule("rootVolumeGb", int, (in_range(8, 16384),)),
    Rule("logRetentionDays", int, (member(LOG_RETENTIONS, "CloudWatch Logs keeps logs for one of "
                                          + ", ".join(map(str, LOG_RETENTIONS)) + " days"),)),
    Rule("alarmEmails", list, (each(matching(r"[^@\s,;]+@[^@\s,;]+\.[A-Za-z]{2,}",
                                             "each entry must be one email address, such as ops@example.com")),)),
    Rule("alarmPeriodSeconds", int, (in_range(60, 3600),
                                     multiple_of(60, "CloudWatch alarms take a multiple of 60 seconds"))),
    Rule("alarmErrorsPerPeriod", int, (in_range(0, 10**9),)),
    Rule("alarmUnhealthyTargets", int, (in_range(0, MAX_FILTERING),)),
    Rule("alarmWstoreTimeframeSeconds", int, (in_range(60, 86400),)),
    Rule("alarmMemoryPercent", int, (PERCENT,)),
    Rule("alarmDiskPercent", int, (PERCENT,)),
    Rule("alarmCertificateDays", int, (in_range(1, 365),)),
    Rule("alarmInternalCertificateDays", int, (in_range(1, 365),)),  # below the validity: cross.internal_certificate_alarm_can_clear
)
BY_KEY = {rule.key: rule for rule in RULES}
TYPES = {"string": str, "integer": int, "boolean": bool, "array": list}
"""Pulumi.yaml's type names -> the Python types of the rules."""


class Checked(dict):
    """Every key -> its value after its own checks (None: unset, or refused with its own line); `given` holds the
    keys the user set (a default is not what they got wrong)."""

    def __init__(self, values: dict[str, Any], given: frozenset[str]):
        super().__init__(values)
        self.given = given


def apply(values: dict[str, Any], given: frozenset[str], errors: Errors, decls: dict[str, dict]) -> Checked:
    """Every rule on its key's value: `values` holds the typed values set (a key missing or None takes its declared
    default; a key missing from `given` too is unset). A refusal is recorded and the value becomes None, so the
    cross-key checks skip it."""
    checked: dict[str, Any] = {}
    for rule in RULES:
        value = values.get(rule.key) if rule.key in given else default(rule, decls[rule.key], errors)
        if rule.only_if is not None and not checked.get(rule.only_if):
            value = None
        if rule.optional and value in ("", []):
            value = None
        for check in rule.checks if value is not None else ():
            try:
                value = check(rule.key, value)
            except SettingsError as exc:
                errors.add(exc)
                value = None
                break
        checked[rule.key] = value
    return Checked(checked, given)


def default(rule: Rule, decl: dict, errors: Errors) -> Any:
    """The declared default, typed; None (recorded) when the key has none."""
    if "default" in decl:
        return parse(rule.key, decl, decl["default"])
    what = decl.get("description", "").split(". ")[0].rstrip(".")
    errors.add(fail(rule.key, None, rule.missing or f"it is required ({what})"))
    return None
