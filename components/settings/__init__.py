"""Settings: the only reader of Pulumi config.

Every key, its type and its default are declared once, in Pulumi.yaml; this package reads that declaration, takes
each value from the stack (or the declared default), parses it by its declared type and validates it. Every wrong
value is reported at once, one line each (one sentence naming the key, the value and what is allowed), in a
SettingsError raised before the program declares any resource. Secrets are never echoed.

    model.py     Settings and its parts, the limits, SettingsError, declared_keys() (the one reader of Pulumi.yaml)
    reader.py    a stack's config: unknown keys, plaintext secrets, wrong namespaces, text parsed by declared type
    rules.py     the rule table: one entry per key, its type and the checks of its value (checks.py, upstream.py)
    cross.py     the named cross-key checks (mutual_tls_needs_tls, port_collisions, elastic_ips_within_quota, ...)
    quotas.py    the settings as firewall rules, and those against AWS's rules-per-group quota
    validate.py  from_values and the one validation that load shares with it

The AWS look-ups the checks use (region and instance type names, an instance type's shape) are components/lookups.py.
"""

from __future__ import annotations

from typing import Any, Optional

import pulumi

from ..lookups import LookupFailed, ShapeLookup, aws_instance_shape
from .model import (ARCHES, CA_ROTATIONS, CLOUDS, EIP_QUOTA, LOG_RETENTIONS, MAX_FILTERING,
                                       MAX_POSTANALYTICS, MODES, NAT_STRATEGIES, NLB_TARGETS_QUOTA, OPERATING_SYSTEMS,
                                       OTHER_NAMESPACES, PROJECT_FILE, RESERVED_PORTS, RULES_QUOTA, SECRET_KEYS,
                                       TOKEN_TYPES, InstanceShape, MonitoringSettings, Settings, SettingsError,
                                       declared_keys)
from .model import Errors
from .quotas import firewall_args
from .reader import Reader
from .upstream import internal_reason, literal_address
from . import validate
from .validate import from_values

__all__ = [
    "ARCHES", "CA_ROTATIONS", "CLOUDS", "EIP_QUOTA", "LOG_RETENTIONS", "MAX_FILTERING", "MAX_POSTANALYTICS", "MODES",
    "NAT_STRATEGIES", "NLB_TARGETS_QUOTA", "OPERATING_SYSTEMS", "OTHER_NAMESPACES", "PROJECT_FILE", "RESERVED_PORTS",
    "RULES_QUOTA", "SECRET_KEYS", "TOKEN_TYPES", "InstanceShape", "LookupFailed", "MonitoringSettings", "Settings",
    "SettingsError", "ShapeLookup", "aws_instance_shape", "declared_keys", "firewall_args", "from_values",
    "internal_reason", "literal_address", "load",
]


def load(lookup: ShapeLookup = aws_instance_shape, config: Optional[dict[str, Any]] = None) -> Settings:
    """Reads and validates the stack's settings. Raises SettingsError listing every wrong value: the stack file's
    own (unknown keys, plaintext secrets, keys under another namespace, text that is not of the declared type)
    together with the rules' (the same as from_values says)."""
    project = pulumi.get_project()
    if config is None:
        config = {**pulumi.runtime.config.get_config_env(), **pulumi.runtime.config.CONFIG.get()}
    e = Errors()
    decls = declared_keys()
    r = Reader(project, decls, config, e)
    values, given = r.typed(e)
    return validate.validate(values, given, e, decls=decls, project=project, stack=pulumi.get_stack(),
                             region=config.get("aws:region") or "", wallarm_token=r.raw.get("wallarmToken") or None,
                             ssh_private_key=r.raw.get("sshPrivateKey") or None, lookup=lookup, aws_config=config)
