"""The arguments of WallarmDeployment (components/deployment.py): one field per key of Pulumi.yaml's `config:`.

Why a TypedDict (total=False) rather than a frozen dataclass: the component provider host that serves this component
to other languages (pulumi/provider/experimental) infers the schema from this type and hands the component a plain
dict of the given inputs, keyed by these field names (component.py `construct` -> `map_inputs`, then
`constructor(name, mapped_args, options)`). Its analyzer (analyzer.py `analyze_type`) reads the annotations and the
docstring under each field; it marks a property optional only through Optional[...], NotRequired or `total=False`,
never through a dataclass default, so a dataclass would publish every defaulted key as required. A TypedDict is
built with keywords only (`WallarmDeploymentArgs(protected_upstream=...)`, or a dict literal), mypy checks its keys
and types, and it is what the host passes in. Required[...] marks the keys Pulumi.yaml gives no default.

A key left out takes Pulumi.yaml's declared default (the one place defaults live; the docstrings repeat them for the
reader, and tests/program/test_deployment.py checks they agree). Graph-shaping values (counts, instance types, versions,
tls/mutualTls, jumpHost, the monitoring keys) and every other value are plain: each is validated, all at once,
before any resource is declared. Only the secrets (wallarm_token, ssh_private_key) may be Outputs; a token given as
an unknown Output cannot be format-checked before resources, so only its presence is checked then.
Do not add `from __future__ import annotations` here: the analyzer reads the annotations as objects, not strings.
"""

from typing import Any, Mapping, Required, TypedDict

import pulumi


class WallarmDeploymentArgs(TypedDict, total=False):
    """The settings of one Wallarm tier: filtering nodes, separate postanalytics (wstore) servers, their network,
    load balancer, PKI and monitoring. Keys are the snake_case of Pulumi.yaml's config keys."""

    wallarm_cloud: Required[str]
    """Wallarm Cloud to register the nodes in, US, EU or ME (ME goes through -H me1.api.wallarm.com). Required."""
    wallarm_token: Required[pulumi.Input[str]]
    ("API token (usage type \"Node deployment/Deployment\") or node token. Set with `pulumi config set --secret`. "
     "Required.")
    wallarm_token_type: str
    """api or node. An api token needs wallarmNodeGroup. Default: 'api'."""
    wallarm_node_group: str
    ("Node group label, passed to the installer as WALLARM_LABELS='group=...'. Required with an api token. "
     "Default: unset.")
    wallarm_version: str
    ("All-in-one installer version X.Y.Z, 6.2.0 or later in 6.x (TLS to wstore) or any 7.x. Selects the download "
     "URL, the scrape targets and the health check's endpoints. Default: '6.12.1'.")
    postanalytics_version: str
    ("Installer version of the postanalytics servers (as wallarmVersion); unset, wallarmVersion. Upgrade it before "
     "filteringVersion, also from 6.x to 7.x. Default: unset.")
    filtering_version: str
    ("Installer version of the filtering nodes (as wallarmVersion); unset, wallarmVersion. Never newer than "
     "postanalyticsVersion, across majors too. Default: unset.")
    installer_sha256: list[str]
    ("Pinned installer digests, entries VERSION/ARCH=SHA256 (such as 6.12.1/x86_64=<64 hex>); a host refuses a "
     "download that does not match. Default: [].")
    wallarm_mode: str
    """wallarm_mode of the filtering nodes, off, monitoring, safe_blocking or block. Default: 'monitoring'."""
    postanalytics_count: int
    """Number of postanalytics (wstore) servers; the filtering nodes' upstream lists them all. Default: 1."""
    postanalytics_instance_type: str
    ("EC2 type of the postanalytics servers; the CPU architecture (x86_64 or aarch64) follows from it. Default: "
     "'m6i.large'.")
    slab_alloc_arena: str
    ("wstore memory (SLAB_ALLOC_ARENA) in GB, an integer or a float with a dot; must fit the instance's memory "
     "with headroom. Default: '1.0'.")
    wstore_port: int
    """wstore plain listener port (bound to 127.0.0.1 when tls is on). Default: 3313."""
    wstore_tls_port: int
    """wstore TLS listener port. Default: 6388."""
    tls: bool
    """TLS between the filtering nodes and wstore. Default: true."""
    mutual_tls: bool
    """Client certificates on top of TLS (needs tls). Default: true."""
    cert_validity_hours: int
    ("Validity of the server and client certificates, in hours (the CA is valid three times as long, at least "
     "three years). Default: 720.")
    cert_early_renewal_hours: int
    ("A `pulumi up` this many hours or fewer before a leaf certificate expires re-issues it (the daily drift check "
     "reports it). Default: 240.")
    ca_generation: int
    ("The CA generation that signs the certificates; a CA rotation ends by raising it by one (docs/operations.md). "
     "Default: 1.")
    ca_rotation: str
    ("The step of a CA rotation: none, prepare (a new CA beside the old, both trusted), switch (certificates from "
     "the new CA); then caGeneration + 1 and none. Default: 'none'.")
    filtering_count: int
    """Number of filtering nodes. Default: 2."""
    filtering_instance_type: str
    """EC2 type of the filtering nodes; the CPU architecture follows from it. Default: 'c6i.large'."""
    protected_upstream: Required[str]
    """URL of the application the filtering nodes proxy to, http(s)://host[:port][/path]. Required."""
    protected_upstream_ca_certificate: str
    ("PEM CA certificate(s) that an https:// protectedUpstream's certificate must chain to; empty, the node's "
     "system trust store. Default: unset.")
    client_cidrs: list[str]
    ("IPv4 CIDRs of the clients, admitted on 80 (and 443) by the load balancer's security group; the filtering "
     "nodes admit only that group. Folded before they become rules (at most 60 rules per group by default). "
     "Default: [\"0.0.0.0/0\"].")
    external_filtering_cidrs: list[str]
    ("Filtering nodes outside this stack (IPv4 CIDRs, /16 or narrower; public ranges only with mutual TLS) that "
     "may reach wstore. Default: [].")
    ssh_allowed_cidrs: Required[list[str]]
    ("IPv4 CIDRs (/8 or narrower) that may reach SSH on the jump host (on the nodes themselves when jumpHost is "
     "false); must include the machine that runs pulumi. Required.")
    ssh_public_key: str
    ("OpenSSH public key of an existing key pair; unset, a key pair is generated (its private key is a secret "
     "output). Default: unset.")
    ssh_private_key: pulumi.Input[str]
    """Private key (PEM or OpenSSH) matching sshPublicKey. Set with `pulumi config set --secret`. Default: unset."""
    os: str
    """debian-12 or ubuntu-24.04. Default: 'debian-12'."""
    ami_id: str
    ("AMI of the postanalytics and filtering nodes (the jump host keeps the official image); unset, the newest "
     "official image of `os` per architecture. Default: unset.")
    vpc_id: str
    ("An existing VPC (with publicSubnetIds and privateSubnetIds); unset, the program creates one with "
     "pulumi-awsx. Default: unset.")
    public_subnet_ids: list[str]
    """With vpcId, the public subnets of the load balancer and the jump host (at least two zones). Default: []."""
    private_subnet_ids: list[str]
    """With vpcId, the private subnets (egress through NAT) the nodes are spread across. Default: []."""
    vpc_cidr: str
    ("CIDR of the VPC the program creates (without vpcId), a private range from /16 to /20. Default: "
     "'10.0.0.0/16'.")
    availability_zone_count: int
    ("Availability zones of the VPC the program creates (the region's first ones), 2 to 4; a node goes only to "
     "zones that offer its type. Default: 2.")
    nat_gateways: str
    ("NAT gateways of the VPC the program creates, single (one for the VPC) or perAz (one per zone, for "
     "production). Default: 'single'.")
    jump_host: bool
    ("A jump host in a public subnet through which every remote step reaches the nodes; false when pulumi runs "
     "inside the VPC (self-hosted runner, VPN). Default: true.")
    jump_host_instance_type: str
    """EC2 type of the jump host. Default: 't4g.nano'."""
    jump_host_ami_id: str
    ("Image of the jump host; unset, the newest official image of `os` when it is created, kept afterwards. "
     "Setting a new one replaces the jump host only (same address, same host key), no node step runs again. "
     "Default: unset.")
    tls_certificate_arn: str
    ("ACM certificate ARN; set, the load balancer also terminates TLS on 443 and forwards to the nodes' port 8443 "
     "with proxy protocol v2 (the client's address in the PROXY header). Default: unset.")
    health_check_port: int
    ("Port of the NGINX health server (HTTP /healthz, answered locally) the load balancer checks for the port 80 "
     "target group; admitted from the load balancer's group only. Default: 8081.")
    health_check_proxy_protocol_port: int
    ("With tlsCertificateArn, port of the NGINX health server that expects the PROXY v2 header, where the load "
     "balancer checks the 8443 (proxy protocol) target group; admitted from the load balancer's group only. "
     "Default: 8082.")
    load_balancer_internal: bool
    ("An internal load balancer in the private subnets, reached only from inside the VPC (and networks routed to "
     "it); false, internet-facing in the public subnets. Default: false.")
    deregistration_delay: int
    """Seconds the load balancer drains a filtering node it deregisters, 0 to 3600. Default: 30."""
    wait_for_target_health: bool
    ("Wait until the load balancer reports each new filtering node healthy, and each departing one drained before "
     "it is terminated (boto3 from the program's environment, with the stack's aws settings). Default: true.")
    root_volume_gb: int
    """Size of every node's encrypted gp3 root volume, in GiB. Default: 20."""
    log_retention_days: int
    ("Days CloudWatch Logs keeps the nodes' NGINX and Wallarm logs and the metric events (one of CloudWatch's "
     "values 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, ...). Default: 30.")
    alarm_emails: list[str]
    ("Addresses that get every alarm by email (an SNS topic; each address confirms its subscription once); empty, "
     "the alarms only show in the console. Default: [].")
    alarm_period_seconds: int
    """The period every Wallarm and host alarm judges, 60 to 3600 seconds (a multiple of 60). Default: 300."""
    alarm_errors_per_period: int
    ("A node's tnt_errors, or requests_lost plus api_errors, may grow by this much in one period before it alarms. "
     "Default: 0.")
    alarm_unhealthy_targets: int
    ("Unhealthy filtering nodes a target group tolerates (its minimum over two minutes) before it alarms. Default: "
     "0.")
    alarm_wstore_timeframe_seconds: int
    ("A postanalytics server alarms when wstore holds fewer seconds of requests than this (Wallarm sizes it for 15 "
     "minutes). Default: 900.")
    alarm_memory_percent: int
    """The fullest node of a fleet alarms above this share of memory used, 1 to 100. Default: 90."""
    alarm_disk_percent: int
    """The fullest node of a fleet alarms above this share of its root file system used, 1 to 100. Default: 85."""
    alarm_certificate_days: int
    ("With tlsCertificateArn, alarm when the load balancer's certificate expires in fewer days than this. Default: "
     "30.")
    alarm_internal_certificate_days: int
    ("With tls, a node alarms when a certificate of the stack's CA that it uses (its server or client certificate, "
     "the CA) expires in fewer days than this; below certValidityHours / 24 (left at its default with a shorter "
     "certValidityHours, half of it). Default: 7.")


SECRETS = {"wallarm_token": "wallarmToken", "ssh_private_key": "sshPrivateKey"}


def camel(field: str) -> str:
    """A field's Pulumi.yaml key (the analyzer's camel_case too): ssh_allowed_cidrs -> sshAllowedCidrs."""
    head, *rest = field.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def to_values(args: Mapping[str, Any]) -> tuple[dict[str, Any], Any, Any]:
    """settings.from_values' mapping (Pulumi.yaml keys; a key given as None is unset), the token and the SSH
    private key. An unknown field becomes an unknown key, which from_values refuses with the others."""
    values = {camel(k): v for k, v in args.items() if k not in SECRETS}
    return values, args.get("wallarm_token"), args.get("ssh_private_key")


def from_settings(s: Any) -> WallarmDeploymentArgs:
    """The arguments that validate to these Settings (settings.load()'s, for the stack's own program)."""
    m, jump = s.monitoring, s.jump_host
    args = WallarmDeploymentArgs(
        wallarm_cloud=s.wallarm_cloud, wallarm_token=s.wallarm_token, wallarm_token_type=s.wallarm_token_type,
        wallarm_version=s.postanalytics_version, postanalytics_version=s.postanalytics_version,
        filtering_version=s.filtering_version,
        installer_sha256=[f"{k}={v}" for k, v in s.installer_sha256.items()], wallarm_mode=s.wallarm_mode,
        postanalytics_count=s.postanalytics_count, postanalytics_instance_type=s.postanalytics.instance_type,
        slab_alloc_arena=s.slab_alloc_arena, wstore_port=s.wstore_port, wstore_tls_port=s.wstore_tls_port, tls=s.tls,
        mutual_tls=s.mutual_tls, cert_validity_hours=s.cert_validity_hours,
        cert_early_renewal_hours=s.cert_early_renewal_hours, ca_generation=s.ca_generation, ca_rotation=s.ca_rotation,
        filtering_count=s.filtering_count, filtering_instance_type=s.filtering.instance_type,
        protected_upstream=s.protected_upstream, client_cidrs=list(s.client_cidrs),
        external_filtering_cidrs=list(s.external_filtering_cidrs), ssh_allowed_cidrs=list(s.ssh_allowed_cidrs),
        os=s.os, public_subnet_ids=list(s.public_subnet_ids), private_subnet_ids=list(s.private_subnet_ids),
        vpc_cidr=s.vpc_cidr, availability_zone_count=s.availability_zone_count, nat_gateways=s.nat_gateways,
        jump_host=jump is not None, health_check_port=s.health_check_port,
        health_check_proxy_protocol_port=s.health_check_proxy_port, load_balancer_internal=s.load_balancer_internal,
        deregistration_delay=s.deregistration_delay, wait_for_target_health=s.wait_for_target_health,
        root_volume_gb=s.root_volume_gb, log_retention_days=m.log_retention_days, alarm_emails=list(m.alarm_emails),
        alarm_period_seconds=m.thresholds["period"], alarm_errors_per_period=m.thresholds["errors"],
        alarm_unhealthy_targets=m.thresholds["unhealthy"], alarm_wstore_timeframe_seconds=m.thresholds["timeframe"],
        alarm_memory_percent=m.thresholds["memory"], alarm_disk_percent=m.thresholds["disk"],
        alarm_certificate_days=m.thresholds["certificate_days"],
        # The settings' threshold may be the half-validity fallback, a fraction of a day: the args carry whole days.
        alarm_internal_certificate_days=max(1, round(m.thresholds["internal_certificate_days"])))
    optional = {"wallarm_node_group": s.wallarm_node_group,
                "protected_upstream_ca_certificate": s.protected_upstream_ca, "ssh_public_key": s.ssh_public_key,
                "ssh_private_key": s.ssh_private_key, "ami_id": s.ami_id, "jump_host_ami_id": s.jump_host_ami_id,
                "vpc_id": s.vpc_id, "tls_certificate_arn": s.tls_certificate_arn,
                "jump_host_instance_type": jump.instance_type if jump else None}
    args.update({k: v for k, v in optional.items() if v is not None})  # type: ignore[typeddict-item]
    return args
