"""FilteringNode: one NGINX-Wallarm filtering node.

Creates: the EC2 instance (private subnet, no public IP) and its SSH host key; with mutual TLS, its client key,
CSR (SANs: its private IP and DNS name) and certificate; remote steps sshd (wait for its SSH banner) -> wait
(stage the scripts, boot, host name). components/rollout.py then declares, in order: install (the distribution's NGINX, then all-in-one mode filtering) -> configure (our NGINX file: the
wallarm_wstore upstream, CA and client certificate files, the proxying server, the health location; nginx -t,
reload) -> health (test attack counted, no new wstore write error) -> registration in the load balancer.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import pulumi
from pulumi_command import remote

from . import render, versions
from .host import HostSteps, create_instance, host_name, install_command, script_command
from .nodeargs import HostArgs, WallarmArgs
from .settings import InstanceShape

SCRIPTS = ("wait-for-boot.sh", "set-hostname.sh", "cloudwatch_agent.py", "install-wallarm.sh", "apply_spec.py",
           "health-check.sh", "yamledit.py")


@dataclasses.dataclass(frozen=True)
class FilteringNodeArgs:
    """What a filtering node uses (the WallarmDeployment builds it from the settings)."""

    host: HostArgs
    """Its machine: image, placement, groups, SSH."""
    wallarm: WallarmArgs
    """Registration, installer digests and the TLS to wstore."""
    shape: InstanceShape
    """filteringInstanceType and its architecture."""
    version: str
    """filteringVersion: the installer's."""
    mode: str
    """wallarmMode: NGINX's wallarm_mode and what the health check expects."""
    protected_upstream: str
    """protectedUpstream: where the node proxies the traffic it filtered."""
    protected_upstream_ca: Optional[str]
    """PEM CA certificates for an https:// protectedUpstream; None: the system trust store."""


class FilteringNode(pulumi.ComponentResource):
    private_ip: pulumi.Output[str]
    """Private IPv4 address: the source of its wstore traffic, and where operators reach it via the jump host."""
    spec: pulumi.Output[str]
    """The configure step's stdin (secret: it carries the client key)."""
    booted: remote.Command
    """The wait-for-boot step."""
    installed: Optional[remote.Command] = None
    """The install step, once install() has declared it."""
    configured: Optional[remote.Command] = None
    """The configure step, once install() has declared it."""
    health: Optional[remote.Command] = None
    """The health check, once check_health() has declared it."""
    in_service: Optional[pulumi.Resource] = None
    """The registration in the load balancer (its last step), once registered."""

    def __init__(self, name: str, args: FilteringNodeArgs, nginx_conf: pulumi.Output[str],
                 opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("wallarm:index:FilteringNode", name, None, opts)
        self.name, self.args = name, args
        self.instance, self.host_key = create_instance(name, "filtering", args.shape, args.host, args.version, self)
        self.private_ip = self.instance.private_ip
        self.steps = HostSteps(name, self.instance, self.host_key, args.host, self)
        self.booted = self.steps.boot(SCRIPTS, host_name(args.host.stack, name))
        self.spec = self._render_spec(nginx_conf)
        self.register_outputs({"privateIp": self.private_ip})

    def _render_spec(self, nginx_conf: pulumi.Output[str]) -> pulumi.Output[str]:
        a, w, pki = self.args, self.args.wallarm, self.args.wallarm.pki
        key = cert = ca = None
        if pki is not None:
            ca = pki.trust_bundle_pem
            if w.mutual_tls:
                key, cert = pki.issue_leaf(f"{self.name}-client", "client", self.name,
                                           [self.private_ip], [self.instance.private_dns], parent=self)
        return pulumi.Output.all(nginx_conf, ca, cert, key).apply(
            lambda v: render.spec_json(render.filtering_spec(
                self.name, v[0], w.tls, w.mutual_tls, ca_cert=v[1], client_cert=v[2], client_key=v[3],
                upstream_ca=a.protected_upstream_ca, protected_upstream=a.protected_upstream)))

    def install(self, configure_after: Sequence[pulumi.Resource]) -> remote.Command:
        """install (after boot) -> configure (after the install and `configure_after`)."""
        a = self.args
        self.installed = self.steps.install(
            install_command(a.wallarm, "filtering", a.version, a.shape.arch, with_nginx=True), a.wallarm.token,
            [self.booted])
        self.configured = self.steps.configure(self.spec, [self.installed, *configure_after])
        return self.configured

    def check_health(self, after: Sequence[pulumi.Resource], fingerprint: pulumi.Input[str]) -> remote.Command:
        """Test attack counted and no new wstore write error; runs again whenever `fingerprint` changes."""
        # With wallarm_mode off nothing is analysed: the check then judges the link to wstore only.
        # 7.x: also wd's readiness endpoint (components/versions.py); 6.x has none, and its command stays as it was.
        if self.configured is None:
            raise RuntimeError(f"{self.name}: check_health() before install(): nothing configured to check")
        ready = versions.major(self.args.version).ready_url
        create = script_command("health-check.sh", "--node", self.name, "--wallarm-mode", self.args.mode,
                                *(("--ready-url", ready) if ready else ()))
        self.health = self.steps.command("health", "health-check.sh", create, [self.configured, *after],
                                         triggers=[fingerprint])
        return self.health
