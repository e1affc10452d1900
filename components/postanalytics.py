"""Postanalytics: one wstore server.

Creates: the EC2 instance; with TLS, its server key, CSR (SANs: its private IP and private DNS name) and
certificate; remote steps upload -> wait (boot, cloud-init) -> install (all-in-one, mode postanalytics) ->
configure (env.list arena, wstore.yaml and node.yaml keys, certificate files, restart when changed).
The configure step is declared by `configure()`, after the filtering nodes exist: with mutual TLS, the client
certificates must be on NGINX before wstore starts asking for them.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import pulumi
from pulumi_command import remote

from components import render
from components.host import HostSteps, create_instance, script_command
from components.pki import Pki
from components.settings import Settings

SCRIPTS = ("wait-for-boot.sh", "install-wallarm.sh", "apply_spec.py")


@dataclasses.dataclass(frozen=True)
class NodeArgs:
    """What either kind of node needs; shared by Postanalytics and FilteringNode."""

    settings: Settings
    """The validated stack settings."""
    ami_id: pulumi.Input[str]
    """AMI for this node's architecture."""
    subnet_id: pulumi.Input[str]
    """Subnet the node goes in."""
    security_group_id: pulumi.Input[str]
    """Its fleet's security group."""
    key_name: pulumi.Input[str]
    """EC2 key pair name."""
    ssh_private_key: pulumi.Output[str]
    """Private key for the remote steps (secret)."""
    pki: Optional[Pki] = None
    """The CA; None when TLS is off."""


def install_command(s: Settings, mode: str, arch: str, with_nginx: bool = False) -> str:
    args = ["--version", s.wallarm_version, "--arch", arch, "--url", render.installer_url(s.wallarm_version, arch),
            "--mode", mode, "--cloud", s.wallarm_cloud]
    if s.wallarm_token_type == "api":
        args += ["--group", s.wallarm_node_group]
    if with_nginx:
        args.append("--with-nginx")
    return script_command("install-wallarm.sh", *args, sudo=True)


class Postanalytics(pulumi.ComponentResource):
    private_ip: pulumi.Output[str]
    """Private IPv4 address, where the filtering nodes reach wstore."""
    private_dns: pulumi.Output[str]
    """Private DNS name (in the server certificate too)."""
    spec: pulumi.Output[str]
    """The configure step's stdin (secret: it carries the server key)."""
    configured: Optional[remote.Command]
    """The configure step, once configure() has declared it."""

    def __init__(self, name: str, args: NodeArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("wallarm:index:Postanalytics", name, None, opts)
        self.name, self.args = name, args
        s = args.settings
        self.instance = create_instance(name, "postanalytics", s.postanalytics, args.ami_id, args.subnet_id,
                                        args.security_group_id, args.key_name, s.root_volume_gb,
                                        s.wallarm_version, self)
        self.private_ip, self.private_dns = self.instance.private_ip, self.instance.private_dns
        self.steps = HostSteps(name, self.instance, s.ssh_user, args.ssh_private_key, self)
        self.installed = self._install()
        self.spec = self._render_spec()
        self.configured = None
        self.register_outputs({"privateIp": self.private_ip, "privateDns": self.private_dns})

    def _install(self) -> remote.Command:
        s = self.args.settings
        uploads = self.steps.upload(SCRIPTS)
        wait = self.steps.command("wait", script_command("wait-for-boot.sh"), uploads)
        return self.steps.command("install", install_command(s, "postanalytics", s.postanalytics.arch), [wait],
                                  stdin=s.wallarm_token.apply(lambda t: t + "\n"))

    def _render_spec(self) -> pulumi.Output[str]:
        s, pki = self.args.settings, self.args.pki
        key = cert = ca = None
        if pki is not None:
            key, cert = pki.issue_leaf(f"{self.name}-server", "server", self.name,
                                       [self.private_ip], [self.private_dns], parent=self)
            ca = pki.ca_cert_pem
        return pulumi.Output.all(self.private_ip, cert, key, ca).apply(
            lambda v: render.spec_json(render.postanalytics_spec(
                self.name, v[0], s.slab_alloc_arena, s.wstore_port, s.wstore_tls_port, s.tls, s.mutual_tls,
                server_cert=v[1], server_key=v[2], ca_cert=v[3])))

    def configure(self, after: Sequence[pulumi.Resource] = ()) -> remote.Command:
        """Declares the configure step, after `after` (the filtering nodes' configure steps with mTLS)."""
        self.configured = self.steps.command("configure", script_command("apply_spec.py", sudo=True, python=True),
                                             [self.installed, *after], stdin=self.spec)
        return self.configured
