"""Settings: the only reader of Pulumi config.

Every key, its type and its default are declared once, in Pulumi.yaml; this module reads that declaration,
takes each value from the stack (or the declared default), parses it by its declared type and validates it.
A wrong value raises SettingsError, one sentence naming the key, the value and what is allowed, before the
program declares any resource. Secrets are never echoed in a message.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import re
from pathlib import Path
from typing import Any, Callable, Optional
from urllib.parse import urlsplit

import pulumi
import yaml

PROJECT_FILE = Path(__file__).resolve().parent.parent / "Pulumi.yaml"

CLOUDS = ("US", "EU", "ME")
TOKEN_TYPES = ("api", "node")
MODES = ("off", "monitoring", "safe_blocking", "block")
OPERATING_SYSTEMS = ("debian-12", "ubuntu-24.04")
# TLS to wstore exists from 6.2.0 on.
TLS_MIN_VERSION = (6, 2, 0)
MAX_POSTANALYTICS = 50
MAX_FILTERING = 500
# Keys whose values must be encrypted in the stack file (set with `pulumi config set --secret`).
SECRET_KEYS = ("wallarmToken", "sshPrivateKey")
# AWS's default quota of inbound rules per security group.
SG_INBOUND_RULES_QUOTA = 60


class SettingsError(pulumi.RunError):
    """A setting that the program refuses, with one sentence saying why."""


@dataclasses.dataclass(frozen=True)
class InstanceShape:
    """What AWS says of an instance type."""

    instance_type: str
    memory_gib: float
    arch: str
    """Installer architecture: x86_64 or aarch64."""


@dataclasses.dataclass(frozen=True)
class Settings:
    """The validated settings of one stack."""

    project: str
    stack: str
    wallarm_cloud: str
    wallarm_token: pulumi.Output[str]
    """Secret Output; never plaintext."""
    wallarm_token_type: str
    wallarm_node_group: Optional[str]
    wallarm_version: str
    wallarm_mode: str
    postanalytics_count: int
    postanalytics: InstanceShape
    slab_alloc_arena: str
    wstore_port: int
    wstore_tls_port: int
    tls: bool
    mutual_tls: bool
    cert_validity_hours: int
    cert_early_renewal_hours: int
    filtering_count: int
    filtering: InstanceShape
    protected_upstream: str
    client_cidrs: tuple[str, ...]
    external_filtering_cidrs: tuple[str, ...]
    ssh_allowed_cidrs: tuple[str, ...]
    ssh_public_key: Optional[str]
    ssh_private_key: Optional[pulumi.Output[str]]
    """Secret Output when an existing key pair is given; None means generate one."""
    os: str
    ami_id: Optional[str]
    vpc_id: Optional[str]
    subnet_ids: tuple[str, ...]
    root_volume_gb: int

    @property
    def ssh_user(self) -> str:
        return "admin" if self.os.startswith("debian") else "ubuntu"


def declared_keys(project_file: Path = PROJECT_FILE) -> dict[str, dict]:
    """The `config:` block of Pulumi.yaml: key -> {type, default?, secret?, description}."""
    return yaml.safe_load(project_file.read_text())["config"]


def _fail(key: str, value: Any, allowed: str) -> SettingsError:
    if value is None:
        return SettingsError(f"{key} is not set: {allowed}.")
    shown = "(secret)" if value == "(secret)" else repr(value)
    return SettingsError(f"{key} is {shown}: {allowed}.")


def _parse(key: str, decl: dict, raw: Any) -> Any:
    """Turns a stack value (a string, or JSON for arrays) into the declared type."""
    kind = decl.get("type", "string")
    if kind == "string":
        return str(raw)
    if kind == "integer":
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and re.fullmatch(r"-?\d+", raw.strip()):
            return int(raw)
        raise _fail(key, raw, "it must be a whole number")
    if kind == "boolean":
        if isinstance(raw, bool):
            return raw
        if str(raw).lower() in ("true", "false"):
            return str(raw).lower() == "true"
        raise _fail(key, raw, "it must be true or false")
    if kind == "array":
        value = raw
        if isinstance(raw, str):
            try:
                value = json.loads(raw)
            except json.JSONDecodeError:
                raise _fail(key, raw, "it must be a list of strings, such as [\"10.0.0.0/16\"]") from None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise _fail(key, raw, "it must be a list of strings, such as [\"10.0.0.0/16\"]")
        return value
    raise SettingsError(f"Pulumi.yaml declares {key} with type {kind!r}, which this program cannot read.")


class _Reader:
    """Reads raw values for one project namespace, from the stack or the declared defaults."""

    def __init__(self, project: str, decls: dict[str, dict], stack_config: dict[str, Any]):
        self.project = project
        self.decls = decls
        prefix = f"{project}:"
        self.raw = {k[len(prefix):]: v for k, v in stack_config.items() if k.startswith(prefix)}
        secret_env = set(pulumi.runtime.get_config_secret_keys_env())
        for key in SECRET_KEYS:
            full = f"{prefix}{key}"
            if self.raw.get(key) and not (pulumi.runtime.is_config_secret(full) or full in secret_env):
                raise SettingsError(
                    f"{key} is set in plaintext in the stack file: it must be encrypted, set it with "
                    f"`pulumi config set --secret {key} ...` (and remove the plaintext value from git history).")
        unknown = sorted(set(self.raw) - set(decls))
        if unknown:
            raise SettingsError(
                f"{prefix}{unknown[0]} is not a setting of this program: the settings are the keys under "
                f"config: in Pulumi.yaml ({', '.join(sorted(decls))})."
            )

    def value(self, key: str) -> Any:
        decl = self.decls[key]
        if key in self.raw and self.raw[key] not in (None, ""):
            return _parse(key, decl, self.raw[key])
        if "default" in decl:
            return _parse(key, decl, decl["default"])
        what = decl.get("description", "").split(". ")[0].rstrip(".")
        raise _fail(key, None, f"it is required ({what})")

    def optional(self, key: str) -> Any:
        """Empty strings and empty lists mean unset."""
        value = self.value(key)
        return value if value not in ("", []) else None


def _one_of(key: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise _fail(key, value, "allowed values are " + ", ".join(allowed))
    return value


def _in_range(key: str, value: int, low: int, high: int) -> int:
    if not low <= value <= high:
        raise _fail(key, value, f"it must be from {low} to {high}")
    return value


def _matching(key: str, value: str, pattern: str, allowed: str) -> str:
    if not re.fullmatch(pattern, value):
        raise _fail(key, value, allowed)
    return value


def _cidrs(key: str, values: list[str], *, allow_world: bool, at_least_one: bool) -> tuple[str, ...]:
    if at_least_one and not values:
        raise _fail(key, values, "list at least one IPv4 CIDR, such as 198.51.100.7/32")
    for value in values:
        try:
            net = ipaddress.IPv4Network(value, strict=True)
        except ValueError:
            raise _fail(key, value, "each entry must be an IPv4 CIDR with no host bits set, such as 198.51.100.7/32") from None
        if net.prefixlen == 0 and not allow_world:
            raise _fail(key, value, "it must not open the port to the whole internet; list the addresses that need it")
    return tuple(values)


def _version(value: str, tls: bool) -> str:
    match = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", value)
    if not match or int(match.group(1)) != 6:
        raise _fail("wallarmVersion", value, "it must be an X.Y.Z version of the 6.x all-in-one installer, such as 6.12.1")
    if tls and tuple(int(p) for p in match.groups()) < TLS_MIN_VERSION:
        raise _fail("wallarmVersion", value, "TLS to wstore needs 6.2.0 or later; raise the version or set tls to false")
    return value


def _upstream(value: str) -> str:
    allowed = "it must be an http:// or https:// URL with a host, such as http://10.0.0.10:8080"
    if re.search(r"[\s;{}'\"$\\]", value):
        raise _fail("protectedUpstream", value, allowed + ", with no spaces, quotes, $, ;, { or }")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise _fail("protectedUpstream", value, allowed) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _fail("protectedUpstream", value, allowed)
    return value


def _arena(value: str, shape: InstanceShape) -> str:
    if not re.fullmatch(r"\d+(\.\d+)?", value) or float(value) <= 0:
        raise _fail("slabAllocArena", value, "it must be a positive number of GB, an integer or a float with a dot, such as 2.0")
    headroom = max(1.0, shape.memory_gib * 0.25)
    most = shape.memory_gib - headroom
    if float(value) > most:
        raise _fail(
            "slabAllocArena", value,
            f"at most {most:g} GB fits {shape.instance_type} ({shape.memory_gib:g} GiB of memory, keeping "
            f"{headroom:g} GiB for the OS and wstore itself); lower it or choose a larger postanalyticsInstanceType",
        )
    return value


ShapeLookup = Callable[[str], Optional[tuple[float, list[str]]]]


def aws_instance_shape(instance_type: str) -> Optional[tuple[float, list[str]]]:
    """Memory (GiB) and architectures of an EC2 type, from AWS; None when the region does not know it."""
    import pulumi_aws as aws

    try:
        info = aws.ec2.get_instance_type(instance_type=instance_type)
    except Exception:  # the provider answers an unknown type with an error
        return None
    return info.memory_size / 1024, list(info.supported_architectures)


def _shape(key: str, instance_type: str, lookup: ShapeLookup) -> InstanceShape:
    _matching(key, instance_type, r"[a-z][a-z0-9-]*\.[a-z0-9]+", "it must be an EC2 instance type, such as m6i.large")
    found = lookup(instance_type)
    if found is None:
        raise _fail(key, instance_type, "AWS does not offer this instance type in the stack's region")
    memory_gib, arches = found
    if "x86_64" in arches:
        arch = "x86_64"
    elif "arm64" in arches:
        arch = "aarch64"
    else:
        raise _fail(key, instance_type, "the installer exists for x86_64 and arm64 types only")
    return InstanceShape(instance_type, memory_gib, arch)


def load(lookup: ShapeLookup = aws_instance_shape, config: Optional[dict[str, Any]] = None) -> Settings:
    """Reads and validates the stack's settings. Raises SettingsError on the first wrong value."""
    project = pulumi.get_project()
    if config is None:
        config = {**pulumi.runtime.config.get_config_env(), **pulumi.runtime.config.CONFIG.get()}
    r = _Reader(project, declared_keys(), config)

    token = r.raw.get("wallarmToken")
    if not token:
        raise _fail("wallarmToken", None, "it is required, set it with `pulumi config set --secret wallarmToken <token>`")
    if not re.fullmatch(r"[A-Za-z0-9+/=._:-]{16,}", token):
        raise _fail("wallarmToken", "(secret)", "a Wallarm token is one line of at least 16 letters, digits or +/=._:-")
    cloud = _one_of("wallarmCloud", r.value("wallarmCloud"), CLOUDS)
    token_type = _one_of("wallarmTokenType", r.value("wallarmTokenType"), TOKEN_TYPES)
    group = r.optional("wallarmNodeGroup")
    if group is not None:
        _matching("wallarmNodeGroup", group, r"[A-Za-z0-9._-]{1,64}", "it must be 1 to 64 letters, digits, dots, dashes or underscores")
    elif token_type == "api":
        raise _fail("wallarmNodeGroup", None, "an api token needs a node group; set wallarmNodeGroup or use a node token (wallarmTokenType node)")

    tls, mutual_tls = r.value("tls"), r.value("mutualTls")
    if mutual_tls and not tls:
        raise _fail("mutualTls", True, "mutual TLS needs tls true; set mutualTls false or tls true")
    version = _version(r.value("wallarmVersion"), tls)

    wstore_port = _in_range("wstorePort", r.value("wstorePort"), 1, 65535)
    wstore_tls_port = _in_range("wstoreTlsPort", r.value("wstoreTlsPort"), 1, 65535)
    if tls and wstore_tls_port == wstore_port:
        raise _fail("wstoreTlsPort", wstore_tls_port, f"it must differ from wstorePort ({wstore_port})")

    validity = _in_range("certValidityHours", r.value("certValidityHours"), 24, 10 * 8760)
    renewal = _in_range("certEarlyRenewalHours", r.value("certEarlyRenewalHours"), 0, validity - 1)

    ssh_public = r.optional("sshPublicKey")
    ssh_private_raw = r.optional("sshPrivateKey")
    if (ssh_public is None) != (ssh_private_raw is None):
        missing = "sshPrivateKey" if ssh_public else "sshPublicKey"
        raise _fail(missing, None, "sshPublicKey and sshPrivateKey go together; set both, or neither to have a key pair generated")
    if ssh_public is not None:
        _matching("sshPublicKey", ssh_public.strip(), r"(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/=]+( .*)?",
                  "it must be one OpenSSH public key line, such as 'ssh-ed25519 AAAA... me@host'")
        if "PRIVATE KEY" not in ssh_private_raw:
            raise _fail("sshPrivateKey", "(secret)", "it must be a PEM or OpenSSH private key")

    os_name = _one_of("os", r.value("os"), OPERATING_SYSTEMS)
    ami = r.optional("amiId")
    if ami is not None:
        _matching("amiId", ami, r"ami-[0-9a-f]{8,17}", "it must be an AMI ID such as ami-0123456789abcdef0")
    vpc = r.optional("vpcId")
    if vpc is not None:
        _matching("vpcId", vpc, r"vpc-[0-9a-f]{8,17}", "it must be a VPC ID such as vpc-0123456789abcdef0")
    subnets = r.optional("subnetIds") or []
    for subnet in subnets:
        _matching("subnetIds", subnet, r"subnet-[0-9a-f]{8,17}", "each entry must be a subnet ID such as subnet-0123456789abcdef0")
    if subnets and vpc is None:
        raise _fail("subnetIds", subnets, "subnets need their VPC; set vpcId too")

    pa_count = _in_range("postanalyticsCount", r.value("postanalyticsCount"), 1, MAX_POSTANALYTICS)
    f_count = _in_range("filteringCount", r.value("filteringCount"), 1, MAX_FILTERING)
    pa_shape = _shape("postanalyticsInstanceType", r.value("postanalyticsInstanceType"), lookup)
    f_shape = _shape("filteringInstanceType", r.value("filteringInstanceType"), lookup)
    if ami is not None and pa_shape.arch != f_shape.arch:
        raise _fail("amiId", ami, f"one AMI cannot serve {pa_shape.arch} postanalytics and {f_shape.arch} filtering "
                                  "instance types; unset amiId or choose types of one architecture")

    settings = Settings(
        project=project,
        stack=pulumi.get_stack(),
        wallarm_cloud=cloud,
        wallarm_token=pulumi.Output.secret(token),
        wallarm_token_type=token_type,
        wallarm_node_group=group,
        wallarm_version=version,
        wallarm_mode=_one_of("wallarmMode", r.value("wallarmMode"), MODES),
        postanalytics_count=pa_count,
        postanalytics=pa_shape,
        slab_alloc_arena=_arena(r.value("slabAllocArena"), pa_shape),
        wstore_port=wstore_port,
        wstore_tls_port=wstore_tls_port,
        tls=tls,
        mutual_tls=mutual_tls,
        cert_validity_hours=validity,
        cert_early_renewal_hours=renewal,
        filtering_count=f_count,
        filtering=f_shape,
        protected_upstream=_upstream(r.value("protectedUpstream")),
        client_cidrs=_cidrs("clientCidrs", r.value("clientCidrs"), allow_world=True, at_least_one=True),
        external_filtering_cidrs=_cidrs("externalFilteringCidrs", r.value("externalFilteringCidrs"), allow_world=False, at_least_one=False),
        ssh_allowed_cidrs=_cidrs("sshAllowedCidrs", r.value("sshAllowedCidrs"), allow_world=False, at_least_one=True),
        ssh_public_key=ssh_public.strip() if ssh_public else None,
        ssh_private_key=pulumi.Output.secret(ssh_private_raw) if ssh_private_raw else None,
        os=os_name,
        ami_id=ami,
        vpc_id=vpc,
        subnet_ids=tuple(subnets),
        root_volume_gb=_in_range("rootVolumeGb", r.value("rootVolumeGb"), 8, 16384),
    )
    _warn_about_quota(settings)
    return settings


def _warn_about_quota(s: Settings) -> None:
    rules = s.filtering_count * (1 if s.tls else 2) + len(s.external_filtering_cidrs) * (1 if s.tls else 2)
    if rules > SG_INBOUND_RULES_QUOTA:
        pulumi.log.warn(
            f"The postanalytics security group needs {rules} wstore rules (one per filtering node and protocol) "
            f"beyond AWS's default quota of {SG_INBOUND_RULES_QUOTA} inbound rules per group: raise the quota "
            "'Inbound or outbound rules per security group' before `pulumi up`."
        )
