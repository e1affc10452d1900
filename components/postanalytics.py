"""Postanalytics: one wstore server.

Creates: the EC2 instance (private subnet, no public IP) and its SSH host key; with TLS, its server key, CSR
(SANs: its private IP and private DNS name) and certificate; remote steps sshd (wait for its SSH banner) ->
wait (stage the scripts, boot, host name) -> install (all-in-one, mode postanalytics) -> configure (env.list arena, wstore.yaml and node.yaml keys, certificate files, restart when changed).
The configure step is declared by `configure()`, from components/rollout.py, which says when it runs.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import pulumi
from pulumi_command import remote

from . import render
from .host import HostSteps, create_instance, host_name, install_command
from .nodeargs import HostArgs, WallarmArgs
from .settings import InstanceShape

SCRIPTS = ("wait-for-boot.sh", "set-hostname.sh", "cloudwatch_agent.py", "install-wallarm.sh", "apply_spec.py",
           "yamledit.py")


@dataclasses.dataclass(frozen=True)
class PostanalyticsArgs:
    """What a postanalytics (wstore) server uses (the WallarmDeployment builds it from the settings)."""

    host: HostArgs
    """Its machine: image, placement, groups, SSH."""
    wallarm: WallarmArgs
    """Registration, installer digests and the TLS it serves."""
    shape: InstanceShape
    """postanalyticsInstanceType and its architecture."""
    version: str
    """postanalyticsVersion: the installer's."""
    slab_alloc_arena: str
    """slabAllocArena: wstore's memory, in GB."""
    wstore_port: int
    """wstorePort: the plain listener."""
    wstore_tls_port: int
    """wstoreTlsPort: the TLS listener (with tls)."""


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

    def __init__(self, name: str, args: PostanalyticsArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("wallarm:index:Postanalytics", name, None, opts)
        self.name, self.args = name, args
        self.instance, self.host_key = create_instance(name, "postanalytics", args.shape, args.host, args.version,
                                                       self)
        self.private_ip, self.private_dns = self.instance.private_ip, self.instance.private_dns
        self.steps = HostSteps(name, self.instance, self.host_key, args.host, self)
        booted = self.steps.boot(SCRIPTS, host_name(args.host.stack, name))
        self.installed = self.steps.install(
            install_command(args.wallarm, "postanalytics", args.version, args.shape.arch), args.wallarm.token,
            [booted])
        self.spec = self._render_spec()
        self.register_outputs({"privateIp": self.private_ip, "privateDns": self.private_dns})

    def _render_spec(self) -> pulumi.Output[str]:
        a, w, pki = self.args, self.args.wallarm, self.args.wallarm.pki
        key = cert = ca = None
        if pki is not None:
            key, cert = pki.issue_leaf(f"{self.name}-server", "server", self.name,
                                       [self.private_ip], [self.private_dns], parent=self)
            ca = pki.trust_bundle_pem
        return pulumi.Output.all(self.private_ip, cert, key, ca).apply(
            lambda v: render.spec_json(render.postanalytics_spec(
                self.name, v[0], a.slab_alloc_arena, a.wstore_port, a.wstore_tls_port, w.tls, w.mutual_tls,
                server_cert=v[1], server_key=v[2], ca_cert=v[3])))

    def configure(self, after: Sequence[pulumi.Resource] = ()) -> remote.Command:
        """Declares the configure step, after the install and `after`."""
        self.configured = self.steps.configure(self.spec, [self.installed, *after])
        return self.configured
