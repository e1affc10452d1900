"""Settings: the only reader of Pulumi config.

Every key, its type and its default are declared once, in Pulumi.yaml; this module reads that declaration,
takes each value from the stack (or the declared default), parses it by its declared type and validates it.
Every wrong value is reported at once, one line each (one sentence naming the key, the value and what is
allowed), in a SettingsError raised before the program declares any resource. Secrets are never echoed.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import json
import re
from pathlib import Path
from typing import Any, Callable, Optional
from urllib.parse import urlsplit

import pulumi
import yaml

from components import versions

PROJECT_FILE = Path(__file__).resolve().parent.parent / "Pulumi.yaml"

CLOUDS = ("US", "EU", "ME")
TOKEN_TYPES = ("api", "node")
MODES = ("off", "monitoring", "safe_blocking", "block")
OPERATING_SYSTEMS = ("debian-12", "ubuntu-24.04")
NAT_STRATEGIES = ("single", "perAz")
ARCHES = ("x86_64", "aarch64")
# TLS to wstore exists from 6.2.0 on.
TLS_MIN_VERSION = (6, 2, 0)
MAX_POSTANALYTICS = 50
MAX_FILTERING = 500
# Targets per network load balancer with cross-zone load balancing on: AWS's default quota.
NLB_TARGETS_QUOTA = 500
# Keys whose values must be encrypted in the stack file (set with `pulumi config set --secret`).
SECRET_KEYS = ("wallarmToken", "sshPrivateKey")
# The widest source ranges allowed: wstore runs Lua and OS commands for whoever reaches it.
WSTORE_WIDEST_PREFIX = 16
SSH_WIDEST_PREFIX = 8
RFC1918 = tuple(ipaddress.IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
# Namespaces other than this project's that a stack file legitimately holds.
OTHER_NAMESPACES = ("aws", "pulumi", "awsx", "command", "tls")


class SettingsError(pulumi.RunError):
    """Settings that the program refuses: one line per wrong value, each one sentence saying why."""


@dataclasses.dataclass(frozen=True)
class InstanceShape:
    """What AWS says of an instance type."""

    instance_type: str
    memory_gib: float
    arch: str
    """Installer architecture: x86_64 or aarch64."""


@dataclasses.dataclass(frozen=True)
class MonitoringSettings:
    """What the fleet reports and when it alarms (components/monitoring.py)."""

    log_retention_days: int
    alarm_emails: tuple[str, ...]
    """Empty: no SNS topic."""
    thresholds: dict[str, float]
    """period, errors, unhealthy, timeframe, memory, disk, certificate_days (see Pulumi.yaml's alarm* keys)."""


# CloudWatch Logs' allowed retentions (PutRetentionPolicy retentionInDays).
LOG_RETENTIONS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
                  3288, 3653)


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
    postanalytics_version: str
    filtering_version: str
    installer_sha256: dict[str, str]
    """"VERSION/ARCH" -> pinned SHA-256 of the installer."""
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
    """None: the program creates the VPC."""
    public_subnet_ids: tuple[str, ...]
    private_subnet_ids: tuple[str, ...]
    vpc_cidr: str
    availability_zone_count: int
    nat_gateways: str
    jump_host: Optional[InstanceShape]
    """None when jumpHost is false: the steps dial the nodes' private IPs directly."""
    tls_certificate_arn: Optional[str]
    health_check_port: int
    deregistration_delay: int
    wait_for_target_health: bool
    root_volume_gb: int
    monitoring: Optional[MonitoringSettings] = None
    """None only in Settings built by hand (tests of other parts)."""

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


class _Errors:
    """Collects every refusal, so that all of them come out together."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def take(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """fn(*args, **kwargs), or None after recording its SettingsError. A check whose input already failed
        (None) is skipped: that value has its own line."""
        if any(a is None for a in args):
            return None
        try:
            return fn(*args, **kwargs)
        except SettingsError as exc:
            self.add(exc)
            return None

    def add(self, error: SettingsError) -> None:
        if str(error) not in self.messages:
            self.messages.append(str(error))


class _Reader:
    """Reads raw values for one project namespace, from the stack or the declared defaults."""

    def __init__(self, project: str, decls: dict[str, dict], stack_config: dict[str, Any], errors: _Errors):
        self.project, self.decls = project, decls
        prefix = f"{project}:"
        self.raw = {k[len(prefix):]: v for k, v in stack_config.items() if k.startswith(prefix)}
        secret_env = set(pulumi.runtime.get_config_secret_keys_env())
        for key in SECRET_KEYS:
            full = f"{prefix}{key}"
            if self.raw.get(key) and not (pulumi.runtime.is_config_secret(full) or full in secret_env):
                errors.add(SettingsError(
                    f"{key} is set in plaintext in the stack file: it must be encrypted, set it with "
                    f"`pulumi config set --secret {key} ...` (and remove the plaintext value from git history)."))
        for key in sorted(set(self.raw) - set(decls)):
            errors.add(_fail(f"{prefix}{key}", self.raw[key] if key not in SECRET_KEYS else "(secret)",
                             "it is not a setting of this program" + _did_you_mean(key, decls, prefix)))
        for full in sorted(k for k in stack_config if not k.startswith(prefix)):
            namespace, _, name = full.rpartition(":")
            if namespace in OTHER_NAMESPACES:
                continue
            ours = [name] if name in decls else difflib.get_close_matches(name, decls, n=1, cutoff=0.8)
            if ours:
                where = f"under the namespace {namespace!r}" if namespace else "without a namespace"
                errors.add(SettingsError(
                    f"{full} is {where}, so this program would ignore it: write it as {prefix}{ours[0]}."))

    def given(self, key: str) -> bool:
        return key in self.raw and self.raw[key] not in (None, "")

    def value(self, key: str) -> Any:
        decl = self.decls[key]
        if self.given(key):
            return _parse(key, decl, self.raw[key])
        if "default" in decl:
            return _parse(key, decl, decl["default"])
        what = decl.get("description", "").split(". ")[0].rstrip(".")
        raise _fail(key, None, f"it is required ({what})")

    def optional(self, key: str) -> Any:
        """Empty strings and empty lists mean unset."""
        value = self.value(key)
        return value if value not in ("", []) else None


def _did_you_mean(key: str, decls: dict, prefix: str) -> str:
    close = difflib.get_close_matches(key, decls, n=1, cutoff=0.6) or \
        [k for k in decls if k.lower() == key.lower()]
    return f"; did you mean {prefix}{close[0]}?" if close else f" (the settings are the keys under config: in Pulumi.yaml)"


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


def _network(key: str, value: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(value, strict=True)
    except ValueError:
        raise _fail(key, value, "each entry must be an IPv4 CIDR with no host bits set, such as 198.51.100.7/32") from None


def _rfc1918(net: ipaddress.IPv4Network) -> bool:
    return any(net.subnet_of(private) for private in RFC1918)


def _cidrs(key: str, values: list[str], *, widest: int, at_least_one: bool,
           private_unless: Optional[str] = None) -> tuple[str, ...]:
    """Validated CIDRs in their order, a repeated one folded (with a warning): two rules of one name cannot exist."""
    if at_least_one and not values:
        raise _fail(key, values, "list at least one IPv4 CIDR, such as 198.51.100.7/32")
    for value in values:
        net = _network(key, value)
        if net.prefixlen == 0 and widest > 0:
            raise _fail(key, value, "it must not open the port to the whole internet; list the addresses that need it")
        if net.prefixlen < widest:
            raise _fail(key, value, f"it is wider than /{widest}, the widest range allowed here; list narrower ranges")
        if private_unless and not _rfc1918(net):
            raise _fail(key, value, f"a public range is allowed here only with {private_unless}; "
                                    "use private (RFC 1918) ranges or turn it on")
    unique = tuple(dict.fromkeys(values))
    if len(unique) != len(values):
        repeated = sorted({v for v in values if values.count(v) > 1})
        pulumi.log.warn(f"{key} lists {', '.join(repeated)} more than once; each range is used once.")
    return unique


def _version(key: str, value: str, tls: bool) -> tuple[int, ...]:
    match = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", value)
    parts = tuple(int(p) for p in match.groups()) if match else ()
    if not match or parts[0] not in versions.MAJORS or parts < versions.MINIMUM:
        raise _fail(key, value, "it must be an X.Y.Z version of Wallarm's all-in-one installer, 6.2.0 or later "
                                f"in 6.x, or {' or '.join(f'{m}.x' for m in sorted(versions.MAJORS) if m > 6)}, "
                                "such as 6.12.1 or 7.1.0")
    if tls and parts < TLS_MIN_VERSION:
        raise _fail(key, value, "TLS to wstore needs 6.2.0 or later; raise the version or set tls to false")
    return parts


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
    try:
        address = ipaddress.ip_address(parts.hostname)
    except ValueError:
        address = ipaddress.ip_address("127.0.0.1") if parts.hostname.lower() == "localhost" else None
    if address is not None and (address.is_loopback or address.is_link_local or address.is_unspecified
                                or address.is_multicast):
        raise _fail("protectedUpstream", value, "it must be the application's address; loopback, link-local "
                                                "(the instance metadata service), unspecified and multicast addresses are not")
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


def _digests(values: list[str]) -> dict[str, str]:
    pinned: dict[str, str] = {}
    for entry in values:
        match = re.fullmatch(r"(6\.\d+\.\d+/(?:x86_64|aarch64))=([0-9a-f]{64})", entry)
        if not match:
            raise _fail("installerSha256", entry, "each entry must be VERSION/ARCH=SHA256, such as "
                                                  "6.12.1/x86_64= and 64 lowercase hex digits")
        if pinned.get(match.group(1), match.group(2)) != match.group(2):
            raise _fail("installerSha256", entry, f"{match.group(1)} is pinned twice with different digests")
        pinned[match.group(1)] = match.group(2)
    return pinned


class LookupFailed(Exception):
    """AWS could not answer (credentials, permissions, throttling): not the same as "no such type"."""


ShapeLookup = Callable[[str], Optional[tuple[float, list[str]]]]


def aws_instance_shape(instance_type: str) -> Optional[tuple[float, list[str]]]:
    """Memory (GiB) and architectures of an EC2 type, from AWS; None when AWS does not know the type."""
    import pulumi_aws as aws

    try:
        info = aws.ec2.get_instance_type(instance_type=instance_type)
    except Exception as exc:  # the provider answers every failure with an error; tell them apart by AWS's code
        text = str(exc).strip()
        if re.search(r"InvalidInstanceType|does not exist|no matching EC2 Instance Type", text):
            return None
        reason = text.splitlines()[-1] if text else type(exc).__name__
        if "offline instance type table" in reason:  # the rehearsal's mocks, not AWS
            raise LookupFailed(reason) from None
        raise LookupFailed(f"AWS could not be asked about it ({reason}); check the credentials, the "
                           "ec2:DescribeInstanceTypes permission and the region, then run again") from None
    return info.memory_size / 1024, list(info.supported_architectures)


def _shape(key: str, instance_type: str, lookup: ShapeLookup) -> InstanceShape:
    _matching(key, instance_type, r"[a-z][a-z0-9-]*\.[a-z0-9]+", "it must be an EC2 instance type, such as m6i.large")
    try:
        found = lookup(instance_type)
    except LookupFailed as exc:
        raise _fail(key, instance_type, str(exc)) from None
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


def _ids(key: str, values: list[str], kind: str) -> tuple[str, ...]:
    for value in values:
        _matching(key, value, rf"{kind}-[0-9a-f]{{8,17}}", f"each entry must be a {kind} ID such as {kind}-0123456789abcdef0")
    return tuple(dict.fromkeys(values))


def _monitoring(v: Callable[[str], Any], e: "_Errors") -> Optional[MonitoringSettings]:
    retention = v("logRetentionDays")
    if retention is not None and retention not in LOG_RETENTIONS:
        e.add(_fail("logRetentionDays", retention, "CloudWatch Logs keeps logs for one of "
                                                  + ", ".join(map(str, LOG_RETENTIONS)) + " days"))
    emails = v("alarmEmails") or []
    for email in emails:
        e.take(_matching, "alarmEmails", email, r"[^@\s,;]+@[^@\s,;]+\.[A-Za-z]{2,}",
               "each entry must be one email address, such as ops@example.com")
    period = e.take(_in_range, "alarmPeriodSeconds", v("alarmPeriodSeconds"), 60, 3600)
    if period is not None and period % 60:
        e.add(_fail("alarmPeriodSeconds", period, "CloudWatch alarms take a multiple of 60 seconds"))
    thresholds = {
        "period": period,
        "errors": e.take(_in_range, "alarmErrorsPerPeriod", v("alarmErrorsPerPeriod"), 0, 10**9),
        "unhealthy": e.take(_in_range, "alarmUnhealthyTargets", v("alarmUnhealthyTargets"), 0, MAX_FILTERING),
        "timeframe": e.take(_in_range, "alarmWstoreTimeframeSeconds", v("alarmWstoreTimeframeSeconds"), 60, 86400),
        "memory": e.take(_in_range, "alarmMemoryPercent", v("alarmMemoryPercent"), 1, 100),
        "disk": e.take(_in_range, "alarmDiskPercent", v("alarmDiskPercent"), 1, 100),
        "certificate_days": e.take(_in_range, "alarmCertificateDays", v("alarmCertificateDays"), 1, 365),
    }
    if retention not in LOG_RETENTIONS or any(t is None for t in thresholds.values()):
        return None
    return MonitoringSettings(retention, tuple(dict.fromkeys(emails)), thresholds)


def load(lookup: ShapeLookup = aws_instance_shape, config: Optional[dict[str, Any]] = None) -> Settings:
    """Reads and validates the stack's settings. Raises SettingsError listing every wrong value."""
    project = pulumi.get_project()
    if config is None:
        config = {**pulumi.runtime.config.get_config_env(), **pulumi.runtime.config.CONFIG.get()}
    e = _Errors()
    r = _Reader(project, declared_keys(), config, e)
    v = lambda key: e.take(r.value, key)  # noqa: E731 - one value, its error recorded

    token = r.raw.get("wallarmToken")
    if not token:
        e.add(_fail("wallarmToken", None, "it is required, set it with `pulumi config set --secret wallarmToken <token>`"))
    elif not re.fullmatch(r"[A-Za-z0-9+/=._:-]{16,}", token):
        e.add(_fail("wallarmToken", "(secret)", "a Wallarm token is one line of at least 16 letters, digits or +/=._:-"))
    cloud = e.take(_one_of, "wallarmCloud", v("wallarmCloud"), CLOUDS)
    token_type = e.take(_one_of, "wallarmTokenType", v("wallarmTokenType"), TOKEN_TYPES)
    group = r.optional("wallarmNodeGroup")
    if group is not None:
        e.take(_matching, "wallarmNodeGroup", group, r"[A-Za-z0-9._-]{1,64}", "it must be 1 to 64 letters, digits, dots, dashes or underscores")
    elif token_type == "api":
        e.add(_fail("wallarmNodeGroup", None, "an api token needs a node group; set wallarmNodeGroup or use a node token (wallarmTokenType node)"))

    tls = bool(v("tls"))
    # mutualTls defaults to tls: only a mutualTls the user set to true contradicts tls false.
    mutual_tls = bool(v("mutualTls")) if r.given("mutualTls") else tls
    if mutual_tls and not tls:
        e.add(_fail("mutualTls", True, "mutual TLS needs tls true; set mutualTls false or tls true"))
    versions = {}
    for key in ("wallarmVersion", "postanalyticsVersion", "filteringVersion"):
        text = r.optional(key) or r.value("wallarmVersion")
        versions[key] = (text, e.take(_version, key, text, tls))
    pa_version, f_version = versions["postanalyticsVersion"], versions["filteringVersion"]
    if pa_version[1] and f_version[1] and f_version[1] > pa_version[1]:
        e.add(_fail("filteringVersion", f_version[0], f"it must not be newer than postanalyticsVersion ({pa_version[0]}): "
                                                      "Wallarm upgrades postanalytics first, so raise postanalyticsVersion first"))
    digests = e.take(_digests, v("installerSha256") or []) or {}

    wstore_port = e.take(_in_range, "wstorePort", v("wstorePort"), 1, 65535)
    wstore_tls_port = e.take(_in_range, "wstoreTlsPort", v("wstoreTlsPort"), 1, 65535)
    if tls and wstore_tls_port is not None and wstore_tls_port == wstore_port:
        e.add(_fail("wstoreTlsPort", wstore_tls_port, f"it must differ from wstorePort ({wstore_port})"))
    health_port = e.take(_in_range, "healthCheckPort", v("healthCheckPort"), 1024, 65535)
    validity = e.take(_in_range, "certValidityHours", v("certValidityHours"), 24, 10 * 8760)
    renewal = e.take(_in_range, "certEarlyRenewalHours", v("certEarlyRenewalHours"), 0, (validity or 25) - 1)

    ssh_public = r.optional("sshPublicKey")
    ssh_private_raw = r.optional("sshPrivateKey")
    if (ssh_public is None) != (ssh_private_raw is None):
        missing = "sshPrivateKey" if ssh_public else "sshPublicKey"
        e.add(_fail(missing, None, "sshPublicKey and sshPrivateKey go together; set both, or neither to have a key pair generated"))
    elif ssh_public is not None:
        e.take(_matching, "sshPublicKey", ssh_public.strip(), r"(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/=]+( .*)?",
               "it must be one OpenSSH public key line, such as 'ssh-ed25519 AAAA... me@host'")
        if "PRIVATE KEY" not in ssh_private_raw:
            e.add(_fail("sshPrivateKey", "(secret)", "it must be a PEM or OpenSSH private key"))

    os_name = e.take(_one_of, "os", v("os"), OPERATING_SYSTEMS)
    ami = r.optional("amiId")
    if ami is not None:
        e.take(_matching, "amiId", ami, r"ami-[0-9a-f]{8,17}", "it must be an AMI ID such as ami-0123456789abcdef0")
    vpc = r.optional("vpcId")
    if vpc is not None:
        e.take(_matching, "vpcId", vpc, r"vpc-[0-9a-f]{8,17}", "it must be a VPC ID such as vpc-0123456789abcdef0")
    public = e.take(_ids, "publicSubnetIds", v("publicSubnetIds") or [], "subnet") or ()
    private = e.take(_ids, "privateSubnetIds", v("privateSubnetIds") or [], "subnet") or ()
    for key, subnets in (("publicSubnetIds", public), ("privateSubnetIds", private)):
        if vpc is None and subnets:
            e.add(_fail(key, list(subnets), "subnets need their VPC; set vpcId too, or unset both to have the VPC created"))
        elif vpc is not None and not subnets:
            e.add(_fail(key, None, "an existing VPC (vpcId) needs its public and private subnets listed"))
    vpc_cidr = v("vpcCidr")
    if vpc_cidr is not None:
        net = e.take(_network, "vpcCidr", vpc_cidr)
        if net is not None and not (16 <= net.prefixlen <= 20 and _rfc1918(net)):
            e.add(_fail("vpcCidr", vpc_cidr, "it must be a private (RFC 1918) range from /16 to /20"))
    az_count = e.take(_in_range, "availabilityZoneCount", v("availabilityZoneCount"), 2, 4)
    nat = e.take(_one_of, "natGateways", v("natGateways"), NAT_STRATEGIES)
    certificate = r.optional("tlsCertificateArn")
    if certificate is not None and e.take(
            _matching, "tlsCertificateArn", certificate, r"arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]{36}",
            "it must be an ACM certificate ARN, such as arn:aws:acm:eu-central-1:123456789012:certificate/<uuid>"):
        region = config.get("aws:region")
        if region and certificate.split(":")[3] != region:
            e.add(_fail("tlsCertificateArn", certificate, f"a load balancer takes an ACM certificate of its own region "
                                                          f"({region}); request or import one there"))

    pa_count = e.take(_in_range, "postanalyticsCount", v("postanalyticsCount"), 1, MAX_POSTANALYTICS)
    f_count = e.take(_in_range, "filteringCount", v("filteringCount"), 1, MAX_FILTERING)
    pa_shape = e.take(_shape, "postanalyticsInstanceType", v("postanalyticsInstanceType"), lookup)
    f_shape = e.take(_shape, "filteringInstanceType", v("filteringInstanceType"), lookup)
    jump = e.take(_shape, "jumpHostInstanceType", v("jumpHostInstanceType"), lookup) if v("jumpHost") else None
    arches = {shape.arch for shape in (pa_shape, f_shape) if shape is not None}
    if ami is not None and len(arches) > 1:
        e.add(_fail("amiId", ami, f"one AMI cannot serve {' and '.join(sorted(arches))} instance types; "
                                  "unset amiId or choose types of one architecture"))
    arena = e.take(_arena, v("slabAllocArena"), pa_shape) if pa_shape else None

    client = e.take(_cidrs, "clientCidrs", v("clientCidrs") or [], widest=0, at_least_one=True)
    external = e.take(_cidrs, "externalFilteringCidrs", v("externalFilteringCidrs") or [], widest=WSTORE_WIDEST_PREFIX,
                      at_least_one=False, private_unless=None if mutual_tls else "mutualTls true")
    ssh = e.take(_cidrs, "sshAllowedCidrs", v("sshAllowedCidrs") or [], widest=SSH_WIDEST_PREFIX, at_least_one=True)
    upstream_url = v("protectedUpstream")
    upstream = e.take(_upstream, upstream_url) if upstream_url is not None else None

    values = dict(
        mode=e.take(_one_of, "wallarmMode", v("wallarmMode"), MODES),
        delay=e.take(_in_range, "deregistrationDelay", v("deregistrationDelay"), 0, 3600),
        root=e.take(_in_range, "rootVolumeGb", v("rootVolumeGb"), 8, 16384),
    )
    monitoring = _monitoring(v, e)
    if e.messages:
        raise SettingsError("\n".join(e.messages))
    if f_count > NLB_TARGETS_QUOTA // 2:
        pulumi.log.warn(
            f"filteringCount is {f_count}: replacing every filtering node (a new version or type) registers the new "
            f"nodes before the old ones leave, {2 * f_count} targets, beyond the network load balancer's default "
            f"quota of {NLB_TARGETS_QUOTA} targets with cross-zone load balancing; raise that quota first, or change "
            "the fleet in steps.")
    return Settings(
        project=project,
        stack=pulumi.get_stack(),
        wallarm_cloud=cloud,
        wallarm_token=pulumi.Output.secret(token),
        wallarm_token_type=token_type,
        wallarm_node_group=group,
        postanalytics_version=pa_version[0],
        filtering_version=f_version[0],
        installer_sha256=digests,
        wallarm_mode=values["mode"],
        postanalytics_count=pa_count,
        postanalytics=pa_shape,
        slab_alloc_arena=arena,
        wstore_port=wstore_port,
        wstore_tls_port=wstore_tls_port,
        tls=tls,
        mutual_tls=mutual_tls,
        cert_validity_hours=validity,
        cert_early_renewal_hours=renewal,
        filtering_count=f_count,
        filtering=f_shape,
        protected_upstream=upstream,
        client_cidrs=client,
        external_filtering_cidrs=external,
        ssh_allowed_cidrs=ssh,
        ssh_public_key=ssh_public.strip() if ssh_public else None,
        ssh_private_key=pulumi.Output.secret(ssh_private_raw) if ssh_private_raw else None,
        os=os_name,
        ami_id=ami,
        vpc_id=vpc,
        public_subnet_ids=public,
        private_subnet_ids=private,
        vpc_cidr=vpc_cidr,
        availability_zone_count=az_count,
        nat_gateways=nat,
        jump_host=jump,
        tls_certificate_arn=certificate,
        health_check_port=health_port,
        deregistration_delay=values["delay"],
        wait_for_target_health=bool(v("waitForTargetHealth")),
        root_volume_gb=values["root"],
        monitoring=monitoring,
    )
