"""EntryPoint: the stable address clients use, whatever nodes come and go.

Creates: an internet-facing Network Load Balancer in the public subnets (cross-zone), a TCP target group of
instance targets on port 80 (client IPs preserved, so Wallarm sees real client addresses; health check HTTP on
healthCheckPort, an NGINX location that answers locally), a TCP listener on 80 and, with tlsCertificateArn, a TLS
listener on 443 that terminates with that ACM certificate; both forward to the target group.
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

from components import waits

TRAFFIC_PORT = 80
# What the TLS listener forwards to: its own NGINX server, so that the application hears https (X-Forwarded-Proto);
# the PROXY protocol carries the client's address, so the port is open to the VPC only.
TLS_TARGET_PORT = 8443
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"


@dataclasses.dataclass(frozen=True)
class EntryPointArgs:
    vpc_id: pulumi.Input[str]
    """VPC of the target group."""
    public_subnet_ids: pulumi.Input[Sequence[str]]
    """Subnets of the load balancer."""
    health_check_port: int
    """Port of the NGINX health location on every node."""
    deregistration_delay: int
    """Seconds a deregistered node drains."""
    certificate_arn: Optional[str] = None
    """ACM certificate: adds the TLS listener on 443."""
    wait_for_health: bool = True
    """Wait for each registered node to be in service, and for each departing one to drain."""
    region: Optional[str] = None
    """The stack's region, for the AWS CLI."""


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
            f"{name}-nlb", load_balancer_type="network", internal=False, subnets=args.public_subnet_ids,
            enable_cross_zone_load_balancing=True, tags={"Name": f"{name}-nlb"}, opts=child)
        health = aws.lb.TargetGroupHealthCheckArgs(
            protocol="HTTP", port=str(args.health_check_port), path="/healthz", matcher="200",
            interval=10, healthy_threshold=2, unhealthy_threshold=2)
        group = aws.lb.TargetGroup(
            f"{name}-http", port=TRAFFIC_PORT, protocol="TCP", target_type="instance", vpc_id=args.vpc_id,
            preserve_client_ip="true", deregistration_delay=args.deregistration_delay, health_check=health,
            tags={"Name": f"{name}-http"}, opts=child)
        listeners = [(TRAFFIC_PORT, "TCP", None, group)]
        self.groups = [(group, TRAFFIC_PORT)]
        if args.certificate_arn:
            tls_group = aws.lb.TargetGroup(
                f"{name}-https", port=TLS_TARGET_PORT, protocol="TCP", target_type="instance", vpc_id=args.vpc_id,
                preserve_client_ip="false", proxy_protocol_v2=True, deregistration_delay=args.deregistration_delay,
                health_check=health, tags={"Name": f"{name}-https"}, opts=child)
            listeners.append((443, "TLS", args.certificate_arn, tls_group))
            self.groups.append((tls_group, TLS_TARGET_PORT))
        for port, protocol, certificate, target in listeners:
            aws.lb.Listener(
                f"{name}-{protocol.lower()}{port}", load_balancer_arn=lb.arn, port=port, protocol=protocol,
                certificate_arn=certificate, ssl_policy=TLS_POLICY if certificate else None,
                default_actions=[aws.lb.ListenerDefaultActionArgs(type="forward", target_group_arn=target.arn)],
                tags={"Name": f"{name}-{protocol.lower()}{port}"}, opts=child)
        self.dns_name, self.target_group_arn = lb.dns_name, group.arn
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
                                   waits.drain_seconds(delay), pulumi.ResourceOptions(parent=parent))
        waits.retire_cli_drain(node, parent)
        attachments = [aws.lb.TargetGroupAttachment(
            f"{node}-target" + ("" if port == TRAFFIC_PORT else f"-{port}"), target_group_arn=group.arn,
            target_id=instance_id, port=port, opts=pulumi.ResourceOptions(parent=parent, depends_on=[*after, drained]))
            for group, port in self.groups]
        return waits.TargetWait(f"{node}-in-service", "in-service", node, instance_id, targets, wait,
                                waits.IN_SERVICE_SECONDS, pulumi.ResourceOptions(parent=parent, depends_on=attachments))
