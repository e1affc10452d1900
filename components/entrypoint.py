"""EntryPoint: the stable address clients use, whatever nodes come and go.

Creates: a Network Load Balancer (cross-zone) with the load balancer's security group attached from creation (AWS
cannot add one to an NLB later: adding it replaces the load balancer and its DNS name), internet-facing in the
public subnets or, with loadBalancerInternal, internal in the private subnets; a TCP target group of instance
targets on port 80 (client IPs preserved, so Wallarm sees real client addresses) and a TCP listener on 80; with
tlsCertificateArn, a TLS listener on 443 that terminates with that ACM certificate and forwards to a TCP target
group on 8443 with proxy protocol v2 (the client's address in the PROXY header).
Every target group is health-checked over HTTP on an NGINX server that answers /healthz itself: AWS sends the PROXY
header on health checks too when proxy protocol is on ("Health check connections", load-balancer-target-groups.md
of the NLB guide), so the 8443 group is checked on healthCheckProxyProtocolPort, whose NGINX `listen` expects the
header, and the plain group on healthCheckPort, whose `listen` does not (NGINX answers 400 to a header it does not
expect, and to a missing one it does).
`register()` adds, under a filtering node: its TargetGroupAttachment, declared after the node's health check,
and an "in-service" step that waits until the load balancer reports it healthy (components/waits.py: boto3, with
the stack's own AWS settings).
A replaced node is thus registered and healthy before the attachment of the node it replaces is deleted:
Pulumi deletes replaced and removed resources last. A "drained" step per node waits, when its node goes, until the
load balancer has drained it (deregistration delay) before the instance is terminated.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import pulumi
import pulumi_aws as aws

from . import waits
from .render import HEALTH_PATH

TRAFFIC_PORT = 80
TLS_LISTENER_PORT = 443
# What the TLS listener forwards to: its own NGINX server, so that the application hears https (X-Forwarded-Proto);
# the PROXY protocol carries the client's address, so the port is open to the load balancer's group only.
TLS_TARGET_PORT = 8443
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"


@dataclasses.dataclass(frozen=True)
class TargetGroupSpec:
    """One target group as declared: what a load balancer stand-in needs to behave like the NLB."""

    role: str
    """http or https: the target group's name suffix."""
    listener_port: int
    listener_protocol: str
    """TCP or TLS."""
    port: int
    """The port on the node that traffic goes to."""
    proxy_protocol_v2: bool
    health_port: int
    """HTTP health check port; its NGINX listener expects the PROXY header exactly when proxy_protocol_v2 is on."""


def target_groups(tls: bool, health_port: int, proxy_health_port: int) -> list[TargetGroupSpec]:
    """The listeners and target groups of the entry point: one table, read by the component, the firewall's rules
    and the settings' checks."""
    groups = [TargetGroupSpec("http", TRAFFIC_PORT, "TCP", TRAFFIC_PORT, False, health_port)]
    if tls:
        groups.append(TargetGroupSpec("https", TLS_LISTENER_PORT, "TLS", TLS_TARGET_PORT, True, proxy_health_port))
    return groups


@dataclasses.dataclass(frozen=True)
class EntryPointArgs:
    vpc_id: pulumi.Input[str]
    """VPC of the target group."""
    subnet_ids: pulumi.Input[Sequence[str]]
    """Subnets of the load balancer: the public ones, or the private ones when internal."""
    security_group_id: pulumi.Input[str]
    """The load balancer's own security group (clientCidrs in, the filtering nodes out)."""
    health_check_port: int
    """Port of the NGINX health server without PROXY protocol on every node."""
    health_check_proxy_port: int
    """Port of the NGINX health server that expects the PROXY header (checks of the proxy-protocol group)."""
    deregistration_delay: int
    """Seconds a deregistered node drains."""
    certificate_arn: Optional[str] = None
    """ACM certificate: adds the TLS listener on 443."""
    internal: bool = False
    """An internal load balancer: reached only from inside the VPC (and what is routed to it)."""
    wait_for_health: bool = True
    """Wait for each registered node to be in service, and for each departing one to drain."""
    region: Optional[str] = None
    """The stack's region, for the AWS CLI."""
    waits_aws: Optional[dict] = None
    """The region and profile of the deployment's own AWS provider, for the waits (components/waits.py); None: the
    stack's `aws:` keys."""


class EntryPoint(pulumi.ComponentResource):
    dns_name: pulumi.Output[str]
    """The load balancer's DNS name: the application's address."""
    target_group_arn: pulumi.Output[str]
    """The filtering nodes' target group."""

    def __init__(self, name: str, args: EntryPointArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("wallarm:index:EntryPoint", name, None, opts)
        self.args = args
        child = pulumi.ResourceOptions(parent=self)
        lb = aws.lb.LoadBalancer(
            f"{name}-nlb", load_balancer_type="network", internal=args.internal, subnets=args.subnet_ids,
            security_groups=[args.security_group_id], enable_cross_zone_load_balancing=True,
            tags={"Name": f"{name}-nlb"}, opts=child)
        self.groups = []
        for spec in target_groups(bool(args.certificate_arn), args.health_check_port, args.health_check_proxy_port):
            health = aws.lb.TargetGroupHealthCheckArgs(
                protocol="HTTP", port=str(spec.health_port), path=HEALTH_PATH, matcher="200",
                interval=10, healthy_threshold=2, unhealthy_threshold=2)
            # TLS terminates at the load balancer, so the node sees the load balancer's address on 8443: client IP
            # preservation off, the client's address in the PROXY header instead.
            group = aws.lb.TargetGroup(
                f"{name}-{spec.role}", port=spec.port, protocol="TCP", target_type="instance", vpc_id=args.vpc_id,
                preserve_client_ip="false" if spec.proxy_protocol_v2 else "true",
                proxy_protocol_v2=spec.proxy_protocol_v2, deregistration_delay=args.deregistration_delay,
                health_check=health, tags={"Name": f"{name}-{spec.role}"}, opts=child)
            certificate = args.certificate_arn if spec.listener_protocol == "TLS" else None
            listener = f"{name}-{spec.listener_protocol.lower()}{spec.listener_port}"
            aws.lb.Listener(
                listener, load_balancer_arn=lb.arn, port=spec.listener_port, protocol=spec.listener_protocol,
                certificate_arn=certificate, ssl_policy=TLS_POLICY if certificate else None,
                default_actions=[aws.lb.ListenerDefaultActionArgs(type="forward", target_group_arn=group.arn)],
                tags={"Name": listener},
                # An NLB's target group serves one load balancer at a time (CreateListener answers
                # TargetGroupAssociationLimit otherwise): when the load balancer is replaced (a stack created before it
                # had its security group), the old listener must go before the new one takes the target group.
                opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True))
            self.groups.append((group, spec.port))
        self.dns_name, self.target_group_arn = lb.dns_name, self.groups[0][0].arn
        self.load_balancer = lb  # its arn_suffix and the groups' name the CloudWatch metrics (components/monitoring.py)
        self.register_outputs({"dnsName": self.dns_name, "targetGroupArn": self.target_group_arn})

    def register(self, node: str, instance_id: pulumi.Output[str], after: Sequence[pulumi.Resource],
                 parent: pulumi.Resource) -> pulumi.Resource:
        """Registers a checked node in every target group; returns the last step, the in-service wait (declared
        whatever waitForTargetHealth says, so that turning it off is an update, never a stuck delete)."""
        targets = [waits.Target(group.arn, port) for group, port in self.groups]
        wait, delay = self.args.wait_for_health, self.args.deregistration_delay
        # Deleting an attachment deregisters the target and returns at once; the instance would be terminated with
        # connections still open. This step, deleted after the attachments and before the instance (it follows the
        # instance, the attachments follow it), waits for the draining to end.
        drained = waits.TargetWait(f"{node}-drained", "drain", node, instance_id, targets, wait,
                                   waits.drain_seconds(delay), pulumi.ResourceOptions(parent=parent),
                                   aws=self.args.waits_aws)
        waits.retire_cli_drain(node, parent)
        attachments = [aws.lb.TargetGroupAttachment(
            f"{node}-target" + ("" if port == TRAFFIC_PORT else f"-{port}"), target_group_arn=group.arn,
            target_id=instance_id, port=port, opts=pulumi.ResourceOptions(parent=parent, depends_on=[*after, drained]))
            for group, port in self.groups]
        return waits.TargetWait(f"{node}-in-service", "in-service", node, instance_id, targets, wait,
                                waits.IN_SERVICE_SECONDS, pulumi.ResourceOptions(parent=parent, depends_on=attachments),
                                aws=self.args.waits_aws)
