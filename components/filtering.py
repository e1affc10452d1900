"""FilteringNode: one NGINX-Wallarm filtering node.

Creates: the EC2 instance; the wstore ingress rules for its private IP (/32) on the postanalytics group; with
mutual TLS, its client key, CSR (SANs: its private IP and DNS name) and certificate; remote steps upload ->
wait -> install (the distribution's NGINX, then all-in-one mode filtering) -> configure (our NGINX file with
the wallarm_wstore upstream, CA and client certificate files, nginx -t, reload). `check_health()` declares the
health check, once every node on both sides is configured.
"""

from __future__ import annotations

from typing import Optional, Sequence

import pulumi
from pulumi_command import remote

from components import render
from components.firewall import Firewall
from components.host import HostSteps, NodeArgs, create_instance, install_command, script_command

SCRIPTS = ("wait-for-boot.sh", "install-wallarm.sh", "apply_spec.py", "health-check.sh")


class FilteringNode(pulumi.ComponentResource):
    public_ip: pulumi.Output[str]
    """Public IPv4 address that clients reach on port 80."""
    private_ip: pulumi.Output[str]
    """Private IPv4 address, the source of its wstore traffic."""
    spec: pulumi.Output[str]
    """The configure step's stdin (secret: it carries the client key)."""
    configured: remote.Command
    """The configure step."""
    health: Optional[remote.Command] = None
    """The health check, once check_health() has declared it."""

    def __init__(self, name: str, args: NodeArgs, firewall: Firewall, nginx_conf: pulumi.Output[str],
                 opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("wallarm:index:FilteringNode", name, None, opts)
        self.name, self.args = name, args
        s = args.settings
        self.instance = create_instance(name, "filtering", s.filtering, args.ami_id, args.subnet_id,
                                        args.security_group_id, args.key_name, s.root_volume_gb,
                                        s.wallarm_version, self)
        self.public_ip, self.private_ip = self.instance.public_ip, self.instance.private_ip
        firewall.allow_wstore_from(name, self.private_ip, self)
        self.steps = HostSteps(name, self.instance, s.ssh_user, args.ssh_private_key, self)
        installed = self._install()
        self.spec = self._render_spec(nginx_conf)
        self.configured = self.steps.configure(self.spec, [installed])
        self.register_outputs({"publicIp": self.public_ip, "privateIp": self.private_ip})

    def _install(self) -> remote.Command:
        s = self.args.settings
        return self.steps.install(SCRIPTS, install_command(s, "filtering", s.filtering.arch, with_nginx=True),
                                  s.wallarm_token)

    def _render_spec(self, nginx_conf: pulumi.Output[str]) -> pulumi.Output[str]:
        s, pki = self.args.settings, self.args.pki
        key = cert = ca = None
        if pki is not None:
            ca = pki.ca_cert_pem
            if s.mutual_tls:
                key, cert = pki.issue_leaf(f"{self.name}-client", "client", self.name,
                                           [self.private_ip], [self.instance.private_dns], parent=self)
        return pulumi.Output.all(nginx_conf, ca, cert, key).apply(
            lambda v: render.spec_json(render.filtering_spec(
                self.name, v[0], s.tls, s.mutual_tls, ca_cert=v[1], client_cert=v[2], client_key=v[3])))

    def check_health(self, after: Sequence[pulumi.Resource], fingerprint: pulumi.Input[str]) -> remote.Command:
        """Test attack, then wallarm-status with tnt_errors 0; runs again whenever `fingerprint` changes."""
        create = script_command("health-check.sh", "--node", self.name)
        self.health = self.steps.command("health", create, [self.configured, *after], triggers=[fingerprint])
        return self.health
