"""The settings' model: the validated values of one stack, the limits they are checked against, the refusal, and
the one reader of the declaration in Pulumi.yaml (every key once, with its type and default)."""

from __future__ import annotations

import dataclasses
import ipaddress
from pathlib import Path
from typing import Any, Callable, Optional

import pulumi
import yaml

from .. import bundled
from ..pki import ROTATIONS

PROJECT_FILE = bundled.PROJECT_FILE
"""Pulumi.yaml: beside components/ in the repository, inside the package when installed (components/bundled.py)."""

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
    """period, errors, unhealthy, timeframe, memory, disk, certificate_days, internal_certificate_days (see
    Pulumi.yaml's alarm* keys)."""


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


def fail(key: str, value: Any, allowed: str) -> SettingsError:
    end = "" if allowed.endswith("?") else "."  # a sentence that ends in a question ("did you mean ...?") is one
    if value is None:
        return SettingsError(f"{key} is not set: {allowed}{end}")
    shown = "(secret)" if value == "(secret)" else repr(value)
    return SettingsError(f"{key} is {shown}: {allowed}{end}")


class Errors:
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


