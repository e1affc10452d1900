"""Postanalytics: one wstore server.

Creates: the EC2 instance (private subnet, no public IP) and its SSH host key; with TLS, its server key, CSR
(SANs: its private IP and private DNS name) and certificate; remote steps sshd (wait for its SSH banner) ->
wait (stage the scripts, boot, host name) -> install (all-in-one, mode postanalytics) -> configure (env.list arena, wstore.yaml and node.yaml keys, certificate files, restart when changed).
The configure step is declared by `configure()`, from components/rollout.py, which says when it runs.
"""

from __future__ import annotations

from typing import Optional, Sequence

import pulumi
from pulumi_command import remote

from . import render
from .host import HostSteps, NodeArgs, create_instance, host_name, install_command

SCRIPTS = ("wait-for-boot.sh", "set-hostname.sh", "cloudwatch_agent.py", "install-wallarm.sh", "apply_spec.py",
           "yamledit.py")


class Postanalytics(pulumi.ComponentResource):
    private_ip: pulumi.Output[str]
    """Private IPv4 address, where the filtering nodes reach wstore."""
    private_dns: pulumi.Output[str]
    """Private DNS name (in the server certificate too)."""
    spec: pulumi.Output[str]
    """The configure step's stdin (secret: it carries the server key)."""
    installed: remote.Command
    """The install step."""
    configured: Optional[remote.Command] = None
    """The configure step, once configure() has declared it."""

    def __init__(self, name: str, args: NodeArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("wallarm:index:Postanalytics", name, None, opts)
        self.name, self.args = name, args
        s = args.settings
        self.instance, self.host_key = create_instance(name, "postanalytics", s.postanalytics, args,
                                                       s.postanalytics_version, self)
        self.private_ip, self.private_dns = self.instance.private_ip, self.instance.private_dns
        self.steps = HostSteps(name, self.instance, self.host_key, args, self)
        booted = self.steps.boot(SCRIPTS, host_name(s.stack, name))
        self.installed = self.steps.install(
            install_command(s, "postanalytics", s.postanalytics_version, s.postanalytics.arch), s.wallarm_token,
            [booted])
        self.spec = self._render_spec()
        self.register_outputs({"privateIp": self.private_ip, "privateDns": self.private_dns})

    def _render_spec(self) -> pulumi.Output[str]:
        s, pki = self.args.settings, self.args.pki
        key = cert = ca = None
        if pki is not None:
            key, cert = pki.issue_leaf(f"{self.name}-server", "server", self.name,
                                       [self.private_ip], [self.private_dns], parent=self)
            ca = pki.trust_bundle_pem
        return pulumi.Output.all(self.private_ip, cert, key, ca).apply(
            lambda v: render.spec_json(render.postanalytics_spec(
                self.name, v[0], s.slab_alloc_arena, s.wstore_port, s.wstore_tls_port, s.tls, s.mutual_tls,
                server_cert=v[1], server_key=v[2], ca_cert=v[3])))

    def configure(self, after: Sequence[pulumi.Resource] = ()) -> remote.Command:
        """Declares the configure step, after the install and `after`."""
        self.configured = self.steps.configure(self.spec, [self.installed, *after])
        return self.configured
