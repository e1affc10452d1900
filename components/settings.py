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
import socket
from pathlib import Path
from typing import Any, Callable, Optional
from urllib.parse import urlsplit

import pulumi
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from components import awsfacts

from components import awsconfig
from components.pki import ROTATIONS

from components import versions

PROJECT_FILE = Path(__file__).resolve().parent.parent / "Pulumi.yaml"

CLOUDS = ("US", "EU", "ME")
TOKEN_TYPES = ("api", "node")
CA_ROTATIONS = ROTATIONS  # the steps of a CA rotation (components/pki.py)
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
# AWS's default quotas that a stack of this program can reach, and how to raise them (Service Quotas console).
# "EC2-VPC Elastic IPs": 5 per region (EC2 User Guide, elastic-ip-addresses-eip.md, "Elastic IP address quota").
EIP_QUOTA = 5
EIP_QUOTA_NAME = "EC2-VPC Elastic IPs (L-0263D0A3)"
# "Inbound or outbound rules per security group": 60 each way, counted separately for IPv4 and IPv6; a rule that
# references a security group counts in both (VPC User Guide, amazon-vpc-limits.md, "Security groups").
RULES_QUOTA = 60
RULES_QUOTA_NAME = "Inbound or outbound rules per security group (L-0EA8095F)"
SSH_PORT = 22
# Integers longer than this are refused before Python converts them (a 5000-digit string raises ValueError).
MAX_INT_DIGITS = 9
# Ports that belong to other services on every node (SSH, which the groups open between hosts, and the client
# listeners): the wstore and health-check ports must be none of them, and differ from each other.
RESERVED_PORTS = {22: "SSH", 80: "the clients' HTTP", 443: "the clients' HTTPS"}
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
    ca_generation: int
    """The CA generation that signs the leaves (caGeneration)."""
    ca_rotation: str
    """The step of a CA rotation (caRotation): none, prepare or switch."""
    filtering_count: int
    filtering: InstanceShape
    protected_upstream: str
    protected_upstream_ca: Optional[str]
    """PEM CA certificates for an https:// protectedUpstream; None: the system trust store."""
    client_cidrs: tuple[str, ...]
    external_filtering_cidrs: tuple[str, ...]
    ssh_allowed_cidrs: tuple[str, ...]
    ssh_public_key: Optional[str]
    ssh_private_key: Optional[pulumi.Output[str]]
    """Secret Output when an existing key pair is given; None means generate one."""
    os: str
    ami_id: Optional[str]
    jump_host_ami_id: Optional[str]
    """None: the jump host boots the newest official image and keeps it; set: a new jump host from this image."""
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
    health_check_proxy_port: int
    """Health port of the proxy-protocol (TLS listener's) target group."""
    load_balancer_internal: bool
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
    end = "" if allowed.endswith("?") else "."  # a sentence that ends in a question ("did you mean ...?") is one
    if value is None:
        return SettingsError(f"{key} is not set: {allowed}{end}")
    shown = "(secret)" if value == "(secret)" else repr(value)
    return SettingsError(f"{key} is {shown}: {allowed}{end}")


def _parse(key: str, decl: dict, raw: Any) -> Any:
    """Turns a stack value (a string, or JSON for arrays) into the declared type."""
    kind = decl.get("type", "string")
    if kind == "string":
        return str(raw)
    if kind == "integer":
        if isinstance(raw, int) and not isinstance(raw, bool) and abs(raw) >= 10 ** MAX_INT_DIGITS:
            raise SettingsError(f"{key} is a number of more than {MAX_INT_DIGITS} digits: it must be a whole number "
                                f"of at most {MAX_INT_DIGITS} digits.")
        text = raw.strip() if isinstance(raw, str) else ""
        if re.fullmatch(r"-?\d+", text) and len(text.lstrip("-")) > MAX_INT_DIGITS:
            raise SettingsError(f"{key} is a {len(text.lstrip('-'))}-digit number: it must be a whole number of at "
                                f"most {MAX_INT_DIGITS} digits.")
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
            errors.add(_fail(f"{prefix}{key}", "(secret)" if _maybe_secret(key, self.raw[key], prefix) else self.raw[key],
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


def _maybe_secret(key: str, value: Any, prefix: str) -> bool:
    """An unknown key whose value must not be printed: encrypted in the stack file, a near miss of a secret key
    (sshPrivatekey), or a value that looks like key material. The CLI masks only the values it knows are secret."""
    near = difflib.get_close_matches(key.lower(), [k.lower() for k in SECRET_KEYS], n=1, cutoff=0.6)
    secret_env = set(pulumi.runtime.get_config_secret_keys_env())
    return bool(near) or pulumi.runtime.is_config_secret(f"{prefix}{key}") or f"{prefix}{key}" in secret_env \
        or "PRIVATE KEY" in str(value) or re.search(r"(?i)(token|secret|private|passw)", key) is not None


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


def _region(value: str) -> str:
    try:
        return awsfacts.check_region(value)
    except awsfacts.UnknownName as exc:
        raise _fail("aws:region", value or None, str(exc)) from None


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
    nets = list(ipaddress.collapse_addresses(ipaddress.IPv4Network(v) for v in unique))
    total, most = sum(n.num_addresses for n in nets), 2 ** (32 - widest)
    if widest > 0 and total > most:
        raise SettingsError(f"{key} lists {len(unique)} ranges that together span {total:,} addresses "
                            f"({100 * total / 2 ** 32:.1f}% of IPv4): at most {most:,} (one /{widest}) are allowed "
                            "here, so list narrower ranges.")
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


# Names that mean this host (RFC 6761 `localhost` and its subdomains; the aliases of Debian's and Ubuntu's
# /etc/hosts) or the metadata service (EC2's DNS answers `instance-data` with 169.254.169.254).
LOCAL_NAMES = re.compile(r"(.+\.)?localhost|localhost\.localdomain|ip6-[a-z]+|instance-data(\..+)?")
# AWS's services on link-local addresses also answer on IPv6 at unique-local addresses (not link-local to Python):
# the instance metadata service (EC2 User Guide, "Instance metadata service endpoint"), the Route 53 Resolver and
# the time sync service.
AWS_IPV6_SERVICES: dict[ipaddress.IPv4Address | ipaddress.IPv6Address, str] = {
    ipaddress.IPv6Address("fd00:ec2::254"): "the instance metadata service",
    ipaddress.IPv6Address("fd00:ec2::253"): "the Route 53 Resolver",
    ipaddress.IPv6Address("fd00:ec2::123"): "the time sync service"}
METADATA_V4 = ipaddress.IPv4Address("169.254.169.254")
HOST_NAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*\.?")


def literal_address(host: str) -> Optional[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The address a URL's host part means when it is a literal, as the node's resolver reads it; None for a name.

    NGINX takes a dotted quad itself and hands anything else to getaddrinfo(), and glibc's getaddrinfo() reads
    every inet_aton() form as an address: 0x7f000001, 2130706433, 127.1, 0, octal (0177.0.0.1) and hex parts. An
    IPv4-mapped IPv6 address ([::ffff:127.0.0.1]) reaches the IPv4 address it maps, so it is judged as that."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        try:
            address = ipaddress.IPv4Address(socket.inet_aton(host))
        except (OSError, ValueError):
            return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def internal_reason(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> Optional[str]:
    """Why the filtering node must not proxy to this address (this host, or AWS's services), or None."""
    if address == METADATA_V4 or address in AWS_IPV6_SERVICES:
        return f"it is {AWS_IPV6_SERVICES.get(address, 'the instance metadata service')} ({address})"
    for attribute, what in (("is_loopback", "loopback"), ("is_link_local", "link-local"),
                            ("is_unspecified", "unspecified (this host)"), ("is_multicast", "multicast"),
                            ("is_reserved", "reserved (broadcast or class E)")):
        if getattr(address, attribute):
            return f"it is a {what} address ({address})"
    return None


def _upstream(value: str) -> str:
    key = "protectedUpstream"
    allowed = "it must be an http:// or https:// URL with a host, such as http://10.0.0.10:8080"
    if re.search(r"[\s;{}'\"$\\]", value):
        raise _fail(key, value, allowed + ", with no spaces, quotes, $, ;, { or }")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise _fail(key, value, allowed) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _fail(key, value, allowed)
    if parts.query or parts.fragment or "?" in value or "#" in value or "@" in parts.netloc:
        raise _fail(key, value, allowed + "; a query, a fragment or a user name has no place in it")
    host = parts.hostname
    internal = "it must be the application's address, not this host, its link-local range or AWS's metadata service"
    if host == "unix":
        raise _fail(key, value, f"it names a Unix socket (NGINX reads http://unix: as a socket path); {internal}")
    address = literal_address(host)
    if address is None:
        if not HOST_NAME.fullmatch(host):
            raise _fail(key, value, allowed + "; a host name has letters, digits, dots and hyphens")
        if LOCAL_NAMES.fullmatch(host.rstrip(".")):
            raise _fail(key, value, f"the name {host.rstrip('.')} means this host or the metadata service; {internal}")
        return value
    reason = internal_reason(address)
    if reason is not None:
        raise _fail(key, value, f"{reason}; {internal}")
    if address.version == 6:
        raise _fail(key, value, "the VPC and its security groups are IPv4 only; give an IPv4 address or a host name")
    if parts.scheme == "https":
        # NGINX checks the upstream's certificate with X509_check_host() only: an IP address in it never matches.
        raise _fail(key, value, "an https:// application is verified by name (NGINX never matches an address in "
                                "a certificate); give the host name its certificate names")
    return value


def _upstream_ca(value: str, upstream: Optional[str]) -> str:
    """PEM certificates NGINX trusts for an https:// protectedUpstream instead of the system trust store."""
    key = "protectedUpstreamCaCertificate"
    allowed = ("it must be the PEM text of the CA that signed the application's certificate "
               "(-----BEGIN CERTIFICATE-----), set with `pulumi config set " + key + " -- \"$(cat ca.pem)\"`")
    if "PRIVATE KEY" in value:
        raise SettingsError(f"{key} holds a private key (not shown): {allowed}, and never a key.")
    try:
        certificates = x509.load_pem_x509_certificates(value.encode())
    except ValueError:
        raise SettingsError(f"{key} is not a readable PEM certificate (not shown): {allowed}.") from None
    if upstream is not None and urlsplit(upstream).scheme != "https":
        raise SettingsError(f"{key} is set while protectedUpstream is {upstream!r}: it is used only for an https:// "
                            "application; unset it or use https://.")
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certificates)


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
        if "size unknown offline" in reason:  # the mocks (tools/mocks.py), not AWS
            raise LookupFailed(reason[reason.index("size unknown offline"):].removesuffix(" (instanceType)")) from None
        raise LookupFailed(f"AWS could not be asked about it ({reason}); check the credentials, the "
                           "ec2:DescribeInstanceTypes permission and the region, then run again") from None
    return info.memory_size / 1024, list(info.supported_architectures)


def _shape(key: str, instance_type: str, lookup: ShapeLookup) -> InstanceShape:
    _matching(key, instance_type, r"[a-z][a-z0-9-]*\.[a-z0-9-]+", "it must be an EC2 instance type, such as m6i.large")
    try:
        newer = awsfacts.check_instance_type(instance_type)
    except awsfacts.UnknownName as exc:
        raise _fail(key, instance_type, str(exc)) from None
    if newer:
        pulumi.log.warn(f"{key}: {newer}.")
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


def _waits_honour_aws(wanted: bool, config: dict[str, Any]) -> bool:
    """The load balancer waits ask the account the AWS provider changes, or do not run: an `aws:` key they cannot
    honour turns them off with a warning naming it (components/awsconfig.py says which keys)."""
    problems = awsconfig.unhonoured(awsconfig.aws_settings(config)) if wanted else []
    for problem in problems:
        pulumi.log.warn(f"{problem}; waitForTargetHealth is off for this run (no in-service or drain waits), "
                        "rather than waits that ask another account.")
    return wanted and not problems


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
    e.take(_region, config.get("aws:region") or "")
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
    text = r.value("wallarmVersion")
    versions = {"wallarmVersion": (text, e.take(_version, "wallarmVersion", text, tls))}
    for key in ("postanalyticsVersion", "filteringVersion"):
        text = r.optional(key)
        # An unset fleet version is wallarmVersion: its error is wallarmVersion's line, not one line per fleet.
        versions[key] = (text, e.take(_version, key, text, tls)) if text else versions["wallarmVersion"]
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
    proxy_health_port = e.take(_in_range, "healthCheckProxyProtocolPort", v("healthCheckProxyProtocolPort"), 1024, 65535)
    # The health ports start at 1024; their collisions with wstore and the traffic ports are _port_collisions'.
    for key, port in (("wstorePort", wstore_port), ("wstoreTlsPort", wstore_tls_port)):
        if port in RESERVED_PORTS:
            e.add(_fail(key, port, f"port {port} belongs to {RESERVED_PORTS[port]} on every node; choose another "
                                   f"port than {', '.join(map(str, RESERVED_PORTS))}"))
    validity = e.take(_in_range, "certValidityHours", v("certValidityHours"), 24, 10 * 8760)
    renewal = v("certEarlyRenewalHours")
    if validity is not None and renewal is not None and renewal >= validity and not r.given("certEarlyRenewalHours"):
        # The user set the validity only: the default renewal window is not what they got wrong.
        e.add(_fail("certValidityHours", validity, f"it must be longer than certEarlyRenewalHours ({renewal}, its "
                                                   f"default); raise it, or set certEarlyRenewalHours below {validity}"))
        renewal = None
    else:
        renewal = e.take(_in_range, "certEarlyRenewalHours", renewal, 0, (validity or 25) - 1)
    ca_generation = e.take(_in_range, "caGeneration", v("caGeneration"), 1, 9999)
    ca_rotation = e.take(_one_of, "caRotation", v("caRotation"), CA_ROTATIONS)
    if ca_rotation not in (None, "none") and not tls:
        e.add(_fail("caRotation", ca_rotation, "a CA rotation needs tls true (with tls false there is no CA); "
                                               "set caRotation none"))

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
    jump_ami = r.optional("jumpHostAmiId")
    if jump_ami is not None:
        e.take(_matching, "jumpHostAmiId", jump_ami, r"ami-[0-9a-f]{8,17}",
               "it must be an AMI ID such as ami-0123456789abcdef0")
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

    for error in _port_collisions(health_port, proxy_health_port, certificate is not None, wstore_port, wstore_tls_port):
        e.add(error)
    if vpc is None and az_count is not None and nat is not None:
        e.take(_elastic_ips, nat, az_count, bool(v("jumpHost")))

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

    client = e.take(_cidrs, "clientCidrs", v("clientCidrs"), widest=0, at_least_one=True)
    external = e.take(_cidrs, "externalFilteringCidrs", v("externalFilteringCidrs"), widest=WSTORE_WIDEST_PREFIX,
                      at_least_one=False, private_unless=None if mutual_tls else "mutualTls true")
    ssh = e.take(_cidrs, "sshAllowedCidrs", v("sshAllowedCidrs"), widest=SSH_WIDEST_PREFIX, at_least_one=True)
    upstream_url = v("protectedUpstream")
    upstream = e.take(_upstream, upstream_url) if upstream_url is not None else None
    upstream_ca_pem = r.optional("protectedUpstreamCaCertificate")
    upstream_ca = e.take(_upstream_ca, upstream_ca_pem, upstream) if upstream_ca_pem is not None else None

    values = dict(
        mode=e.take(_one_of, "wallarmMode", v("wallarmMode"), MODES),
        delay=e.take(_in_range, "deregistrationDelay", v("deregistrationDelay"), 0, 3600),
        root=e.take(_in_range, "rootVolumeGb", v("rootVolumeGb"), 8, 16384),
        internal=v("loadBalancerInternal"),
        # Read before the check below, so that a wrong value is refused rather than read as false.
        wait=v("waitForTargetHealth"),
    )
    monitoring = _monitoring(v, e)
    if e.messages:
        raise SettingsError("\n".join(e.messages))
    # Each of these is None only after its error was recorded above.
    assert token is not None and arena is not None and upstream is not None
    if f_count > NLB_TARGETS_QUOTA // 2:
        pulumi.log.warn(
            f"filteringCount is {f_count}: replacing every filtering node (a new version or type) registers the new "
            f"nodes before the old ones leave, {2 * f_count} targets, beyond the network load balancer's default "
            f"quota of {NLB_TARGETS_QUOTA} targets with cross-zone load balancing; raise that quota first, or change "
            "the fleet in steps.")
    settings = Settings(
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
        ca_generation=ca_generation,
        ca_rotation=ca_rotation,
        filtering_count=f_count,
        filtering=f_shape,
        protected_upstream=upstream,
        protected_upstream_ca=upstream_ca,
        client_cidrs=client,
        external_filtering_cidrs=external,
        ssh_allowed_cidrs=ssh,
        ssh_public_key=ssh_public.strip() if ssh_public else None,
        ssh_private_key=pulumi.Output.secret(ssh_private_raw) if ssh_private_raw else None,
        os=os_name,
        ami_id=ami,
        jump_host_ami_id=jump_ami,
        vpc_id=vpc,
        public_subnet_ids=public,
        private_subnet_ids=private,
        vpc_cidr=vpc_cidr,
        availability_zone_count=az_count,
        nat_gateways=nat,
        jump_host=jump,
        tls_certificate_arn=certificate,
        health_check_port=health_port,
        health_check_proxy_port=proxy_health_port,
        load_balancer_internal=bool(values["internal"]),
        deregistration_delay=values["delay"],
        wait_for_target_health=_waits_honour_aws(bool(values["wait"]), config),
        root_volume_gb=values["root"],
        monitoring=monitoring,
    )
    rule_errors = _rules_per_group(settings)
    if rule_errors:
        raise SettingsError("\n".join(rule_errors))
    return settings


def _port_collisions(health: Optional[int], proxy_health: Optional[int], tls_listener: bool,
                     wstore: Optional[int], wstore_tls: Optional[int]) -> list[SettingsError]:
    """A health port must be a port of its own: NGINX cannot listen twice on one port with and without the PROXY
    protocol, and two rules or servers of one port collide."""
    from components.entrypoint import TLS_TARGET_PORT, TRAFFIC_PORT

    taken = {TRAFFIC_PORT: "the HTTP traffic port", SSH_PORT: "SSH"}
    if tls_listener:
        taken[TLS_TARGET_PORT] = "the TLS listener's target port on the filtering nodes"
    for port, key in ((wstore, "wstorePort"), (wstore_tls, "wstoreTlsPort")):
        if port is not None:
            taken.setdefault(port, f"wstore's port ({key})")
    errors = []
    checks = [("healthCheckPort", health)] + ([("healthCheckProxyProtocolPort", proxy_health)] if tls_listener else [])
    for key, port in checks:
        if port in taken:
            errors.append(_fail(key, port, f"it collides with {taken[port]}, {port}; choose a port of its own "
                                           "from 1024 to 65535"))
        elif port is not None:
            taken[port] = f"the other health port ({key})"
    return errors


def _elastic_ips(nat: str, az_count: int, jump_host: bool) -> None:
    """The Elastic IPs the stack allocates against the region's default quota: one per NAT gateway, one for the
    jump host. Refused beyond the quota; a warning when the stack fills it (any address already allocated in the
    region makes `pulumi up` fail half-way)."""
    needed = (az_count if nat == "perAz" else 1) + (1 if jump_host else 0)
    parts = f"{az_count if nat == 'perAz' else 1} for NAT gateways" + (" and 1 for the jump host" if jump_host else "")
    how = (f"raise the quota {EIP_QUOTA_NAME} in the Service Quotas console first (or `aws service-quotas "
           "request-service-quota-increase --service-code ec2 --quota-code L-0263D0A3`)")
    if needed > EIP_QUOTA:
        raise _fail("natGateways", nat, f"the stack needs {needed} Elastic IPs ({parts}), beyond AWS's default quota "
                                        f"of {EIP_QUOTA} per region; {how}, or use fewer zones")
    if needed == EIP_QUOTA:
        pulumi.log.warn(f"natGateways is {nat!r}: the stack needs {needed} Elastic IPs ({parts}), all of AWS's "
                        f"default quota of {EIP_QUOTA} per region, so any Elastic IP already allocated in the region "
                        f"makes `pulumi up` fail; check the quota and {how}.")


def firewall_args(s: Settings, vpc_id: Any = ""):
    """The firewall's arguments, from the settings: the one place that turns settings into rules, used by the
    program and by the quota check below (before any resource)."""
    from components.entrypoint import target_groups
    from components.firewall import FirewallArgs, wstore_listeners

    groups = target_groups(s.tls_certificate_arn is not None, s.health_check_port, s.health_check_proxy_port)
    return FirewallArgs(
        vpc_id=vpc_id, ssh_allowed_cidrs=s.ssh_allowed_cidrs, client_cidrs=s.client_cidrs,
        external_filtering_cidrs=s.external_filtering_cidrs,
        wstore=wstore_listeners(s.wstore_port, s.wstore_tls_port, s.tls), protected_upstream=s.protected_upstream,
        traffic_ports=[g.port for g in groups], health_ports=[g.health_port for g in groups],
        listener_ports=[g.listener_port for g in groups], jump_host=s.jump_host is not None)


def _rules_per_group(s: Settings) -> list[str]:
    """Each security group's inbound and outbound rules (as the firewall declares them, CIDR lists folded) against
    AWS's default quota; a refusal names the settings whose ranges fill the group."""
    from components.firewall import GROUPS, Group, fold, rules

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
