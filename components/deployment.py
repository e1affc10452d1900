"""WallarmDeployment: one Wallarm tier on AWS (filtering nodes, separate postanalytics servers) as one component.

Creates, every resource a descendant of the component: `network` (Network), `pki` (Pki, with tls), `ssh` (SshKey),
`firewall` (Firewall), `agent` (AgentAccess), `jumphost` (JumpHost, with jumpHost), `postanalytics-<i>`
(Postanalytics), `filtering-<i>` (FilteringNode), `entrypoint` (EntryPoint), the rollout barriers of
components/rollout.py and `monitoring` (Monitoring). Its outputs are typed attributes, registered under the names
the stack exports (url, loadBalancerDnsName, ...).

Arguments: WallarmDeploymentArgs (components/deploymentargs.py says why a TypedDict). The component reads no stack
config: it turns its arguments into settings.from_values' mapping and validates them, every error at once in one
SettingsError, before it declares anything (itself included). A wallarm_token given as an Output whose value is
unknown yet cannot be format-checked then: only its presence is. The stack's own program (__main__.py) hands over
the Settings that settings.load() validated from the config (`validated=`), so nothing is checked twice.

AWS provider: the one the component is given (`opts.provider`, `opts.providers["aws"]`, or its parent's) or the
default one. Every look-up before the resources (region, instance types, zones, subnets, images) is an invoke with
that provider; every AWS resource inherits it as a descendant; the load balancer waits (components/waits.py) are
handed its region and profile as inputs. The region is the provider's own (aws:index/getRegion), never `aws:region`.

Aliases: before this component the same resources were children of the stack. Each direct child carries
`Alias(parent=ROOT_STACK_RESOURCE)`, its old URN; the engine derives every grandchild's old URN from the alias its
parent matched (pulumi/pulumi pkg/resource/deploy/step_generator.go, generateAliases and inheritedChildAlias; the
SDK sends alias specs, not URNs, when the monitor supports "aliasSpecs": sdk/python/lib/pulumi/runtime/resource.py
prepare_aliases). So an existing stack's next `pulumi up` moves its resources, it replaces none (tests/program/test_aliases.py).
The children keep the names they had at the top level: one WallarmDeployment per stack (its AWS names derive from
the stack's name too).
"""

from typing import Any, Mapping, Optional

import pulumi
import pulumi_aws as aws

from . import lookups, render, rollout, settings
from .deploymentargs import WallarmDeploymentArgs, to_values
from .entrypoint import TLS_TARGET_PORT, EntryPoint, EntryPointArgs
from .filtering import FilteringNode, FilteringNodeArgs
from .firewall import Firewall
from .jumphost import JumpHost, JumpHostArgs
from .monitoring import AgentAccess, Monitoring, MonitoringArgs, install_agents
from .network import Network, NetworkArgs, layout
from .nodeargs import HostArgs, WallarmArgs
from .pki import Pki, PkiArgs
from .postanalytics import Postanalytics, PostanalyticsArgs
from .sshkey import SshKey

TYPE = "wallarm:index:WallarmDeployment"


def aws_provider(opts: Optional[pulumi.ResourceOptions]) -> Optional[pulumi.ProviderResource]:
    """The AWS provider a component with these options would hand its children, as the SDK picks it
    (sdk/python/lib/pulumi/resource.py, Resource._get_providers): `provider`, then `providers`, then the parent's.
    None: the default provider (the stack's `aws:` config)."""
    if opts is None:
        return None
    if opts.provider is not None and opts.provider.package == "aws":
        return opts.provider
    given = opts.providers
    if isinstance(given, Mapping) and given.get("aws") is not None:
        return given["aws"]
    if isinstance(given, (list, tuple)):
        found = next((p for p in given if p.package == "aws"), None)
        if found is not None:
            return found
    return opts.parent.get_provider("aws::") if opts.parent is not None else None


class WallarmDeployment(pulumi.ComponentResource):
    """Wallarm filtering nodes behind a network load balancer, with separate postanalytics (wstore) servers, over
    mutual TLS, in a VPC of their own or a given one; monitored with CloudWatch."""

    url: pulumi.Output[str]
    """The application's address through the filtering nodes (http://<load balancer>)."""
    load_balancer_dns_name: pulumi.Output[str]
    """The network load balancer's DNS name."""
    postanalytics_private_ips: pulumi.Output[list[str]]
    """Private addresses of the postanalytics (wstore) servers."""
    filtering_private_ips: pulumi.Output[list[str]]
    """Private addresses of the filtering nodes."""
    wstore_upstream: pulumi.Output[str]
    """The NGINX upstream block the filtering nodes use to reach wstore."""
    ca_certificate: pulumi.Output[Optional[str]]
    """The CA certificate(s) wstore and the nodes trust (PEM); unset with tls false."""
    dashboard_url: pulumi.Output[str]
    """The CloudWatch dashboard of the tier."""
    jump_host_public_ip: pulumi.Output[Optional[str]]
    """The jump host's Elastic IP; unset with jumpHost false."""
    jump_host_host_key: pulumi.Output[Optional[str]]
    """The jump host's SSH host key (OpenSSH public key line), to pin it; unset with jumpHost false."""
    deployer_security_group_id: pulumi.Output[Optional[str]]
    """The security group a CI runner joins to reach the jump host; unset with jumpHost false."""
    ssh_commands: pulumi.Output[dict[str, str]]
    """node name -> the ssh command that reaches it (through the jump host when there is one)."""
    ssh_private_key: pulumi.Output[Optional[str]]
    """The generated SSH private key (secret); unset when sshPublicKey and sshPrivateKey were given."""

    def __init__(self, name: str, args: WallarmDeploymentArgs, opts: Optional[pulumi.ResourceOptions] = None,
                 *, validated: Optional[settings.Settings] = None):
        """validated: the Settings settings.load() read from this stack's config (the stack's program only); then
        `args` are its rendering and are not validated again."""
        provider = aws_provider(opts)
        invoke = pulumi.InvokeOptions(provider=provider) if provider is not None else None
        region = region_of(invoke)
        s = validated or self._validate(args, invoke, region)
        plan = layout(network_args(s), invoke)  # zones, subnets and placements: raises before any resource too
        images = {arch: lookups.ami(s.os, arch, s.ami_id, opts=invoke)
                  for arch in {s.postanalytics.arch, s.filtering.arch}}
        jump_image = s.jump_host_ami_id or (lookups.ami(s.os, s.jump_host.arch, opts=invoke)
                                            if s.jump_host else None)
        super().__init__(TYPE, name, None, opts)
        self.settings, self.region = s, region
        self._waits_aws = self._waits_settings(provider)
        # Each direct child was a child of the stack before this component: its old URN is its alias.
        child = pulumi.ResourceOptions(parent=self, aliases=[pulumi.Alias(parent=pulumi.ROOT_STACK_RESOURCE)])
        self._create(s, plan, images, jump_image, child)
        self._export(s)

    @staticmethod
    def _validate(args: Mapping[str, Any], invoke: Optional[pulumi.InvokeOptions], region: str) -> settings.Settings:
        values, token, private_key = to_values(args)
        return settings.from_values(
            values, project=pulumi.get_project(), stack=pulumi.get_stack(), region=region,
            wallarm_token=token, ssh_private_key=private_key,
            lookup=lambda instance_type: lookups.aws_instance_shape(instance_type, invoke))

    def _waits_settings(self, provider: Optional[pulumi.ProviderResource]) -> Optional[dict]:
        """What the waits need of a provider given to the component: its region and profile, and whether it holds
        static keys (never the keys: the waits then stay off, with a warning). A provider known by reference only
        (the component provider host hands one over) shows neither: its region, and the environment's credentials."""
        if provider is None:
            return None

        def static(access_key: Optional[str]) -> bool:
            if access_key and self.settings.wait_for_target_health:
                pulumi.log.warn("the AWS provider given to the WallarmDeployment holds static keys, which the load "
                                "balancer waits cannot be handed: they are off for its nodes.", resource=self)
            return bool(access_key)

        access_key = getattr(provider, "access_key", None)
        return {"region": self.region, "profile": getattr(provider, "profile", None),
                "staticCredentials": pulumi.Output.from_input(access_key).apply(static) if access_key is not None
                else False}

    def _create(self, s: settings.Settings, plan, images: dict, jump_image, child: pulumi.ResourceOptions) -> None:
        self.network = network = Network("network", network_args(s), plan, child)
        self.pki = pki = Pki("pki", PkiArgs(f"wallarm-postanalytics {s.stack} CA", s.cert_validity_hours,
                                            s.cert_early_renewal_hours, generation=s.ca_generation,
                                            rotation=s.ca_rotation), child) if s.tls else None
        self.ssh = ssh = SshKey("ssh", s.ssh_public_key, s.ssh_private_key, child)
        self.firewall = Firewall("firewall", settings.firewall_args(s, network.vpc_id), child)
        sg = self.firewall.group_ids
        assert s.monitoring is not None  # validated settings always have it (settings.Settings says when not)
        self.agent = agent = AgentAccess("agent", s.stack, s.monitoring.log_retention_days, child)

        def host(chosen_ami: Optional[str], ami_id, placement, groups: list, via: Optional[JumpHost] = None,
                 profile: Optional[pulumi.Output[str]] = None) -> HostArgs:
            """A machine's HostArgs; a node's dials through the jump host `via` and has the agent's `profile`."""
            return HostArgs(s.stack, s.os, s.ssh_user, s.root_volume_gb, s.ssh_public_key, chosen_ami, ami_id,
                            placement, groups, ssh.key_name, ssh.private_key, via.proxy if via else None,
                            via.bastion if via else None, profile)

        self.jump = jump = JumpHost("jumphost", JumpHostArgs(
            host(s.jump_host_ami_id, jump_image, network.placements("jumphost")[0], [sg["jumphost"], sg["deployer"]]),
            s.jump_host), opts=child) if s.jump_host else None
        wallarm = WallarmArgs(s.wallarm_cloud, s.wallarm_token, s.wallarm_token_type, s.wallarm_node_group,
                              s.installer_sha256, s.tls, s.mutual_tls, pki)

        def node_args(arch: str, placement, groups: list) -> HostArgs:
            return host(s.ami_id, images[arch], placement, groups, jump, agent.instance_profile)

        self.postanalytics = [Postanalytics(f"postanalytics-{i}", PostanalyticsArgs(
            node_args(s.postanalytics.arch, p, [sg["postanalytics"]]), wallarm, s.postanalytics,
            s.postanalytics_version, s.slab_alloc_arena, s.wstore_port, s.wstore_tls_port), child)
                              for i, p in enumerate(network.placements("postanalytics"))]
        self.upstream = pulumi.Output.all(*[p.private_ip for p in self.postanalytics]).apply(
            lambda ips: render.render_upstream(
                render.upstream_servers(ips, s.wstore_port, s.wstore_tls_port, s.tls), s.tls, s.mutual_tls))
        tls_target_port = TLS_TARGET_PORT if s.tls_certificate_arn else None
        vpc_cidr = plan.vpc_cidr or s.vpc_cidr
        nginx_conf = self.upstream.apply(
            lambda u: render.render_nginx_conf(u, s.protected_upstream, s.wallarm_mode, s.health_check_port,
                                               tls_target_port, vpc_cidr, s.health_check_proxy_port,
                                               upstream_ca=s.protected_upstream_ca is not None))
        self.filtering = [FilteringNode(f"filtering-{i}", FilteringNodeArgs(
            node_args(s.filtering.arch, p, [sg["filtering"]]), wallarm, s.filtering, s.filtering_version,
            s.wallarm_mode, s.protected_upstream, s.protected_upstream_ca), nginx_conf, child)
                          for i, p in enumerate(network.placements("filtering"))]
        self.entry = entry = EntryPoint("entrypoint", EntryPointArgs(
            vpc_id=network.vpc_id, subnet_ids=network.load_balancer_subnet_ids(s.load_balancer_internal),
            security_group_id=sg["loadbalancer"], health_check_port=s.health_check_port,
            health_check_proxy_port=s.health_check_proxy_port, deregistration_delay=s.deregistration_delay,
            certificate_arn=s.tls_certificate_arn, internal=s.load_balancer_internal,
            wait_for_health=s.wait_for_target_health, region=self.region, waits_aws=self._waits_aws), child)
        rollout.wire(self.postanalytics, self.filtering, entry, child)
        install_agents(s.stack, self.region, [*self.postanalytics, *self.filtering], agent)
        self.monitoring = Monitoring("monitoring", MonitoringArgs(
            s.stack, self.region, s.monitoring, [(f.name, f.instance.id) for f in self.filtering],
            [(p.name, p.instance.id) for p in self.postanalytics],
            [(f"port{port}", group.arn_suffix) for group, port in entry.groups], entry.load_balancer.arn_suffix,
            s.tls_certificate_arn, node_certificates=s.tls), child)

    def _export(self, s: settings.Settings) -> None:
        jump = self.jump
        nodes = [(p.name, p.private_ip) for p in self.postanalytics] + [(f.name, f.private_ip) for f in self.filtering]
        self.url = self.entry.dns_name.apply(lambda d: f"http://{d}")
        self.load_balancer_dns_name = self.entry.dns_name
        self.postanalytics_private_ips = pulumi.Output.all(*[p.private_ip for p in self.postanalytics])
        self.filtering_private_ips = pulumi.Output.all(*[f.private_ip for f in self.filtering])
        self.wstore_upstream = self.upstream
        self.ca_certificate = pulumi.Output.from_input(self.pki.trust_bundle_pem if self.pki else None)
        self.dashboard_url = self.monitoring.dashboard_url
        self.jump_host_public_ip = pulumi.Output.from_input(jump.public_ip if jump else None)
        self.jump_host_host_key = pulumi.Output.from_input(jump.host_key if jump else None)
        self.deployer_security_group_id = pulumi.Output.from_input(
            self.firewall.group_ids["deployer"] if jump else None)
        self.ssh_commands = pulumi.Output.all(jump.public_ip if jump else None, *[ip for _, ip in nodes]).apply(
            lambda v: {name: (f"ssh -J {s.ssh_user}@{v[0]} " if v[0] else "ssh ") + f"{s.ssh_user}@{ip}"
                       for (name, _), ip in zip(nodes, v[1:])})
        self.ssh_private_key = pulumi.Output.from_input(self.ssh.private_key if self.ssh.generated else None)
        self.outputs: dict[str, pulumi.Output[Any]] = {
            "url": self.url, "loadBalancerDnsName": self.load_balancer_dns_name,
            "postanalyticsPrivateIps": self.postanalytics_private_ips,
            "filteringPrivateIps": self.filtering_private_ips,
            "wstoreUpstream": self.wstore_upstream, "caCertificate": self.ca_certificate,
            "dashboardUrl": self.dashboard_url}
        """The stack's outputs, as __main__.py exports them: the keys of register_outputs."""
        if jump:
            self.outputs.update(jumpHostPublicIp=self.jump_host_public_ip, jumpHostHostKey=self.jump_host_host_key,
                                deployerSecurityGroupId=self.deployer_security_group_id)
        self.outputs["sshCommands"] = self.ssh_commands
        if self.ssh.generated:
            self.outputs["sshPrivateKey"] = self.ssh_private_key
        self.parts = {"s": s, "network": self.network, "pki": self.pki, "ssh": self.ssh, "firewall": self.firewall,
                      "agent": self.agent, "jump": self.jump, "postanalytics": self.postanalytics,
                      "filtering": self.filtering, "entry": self.entry, "monitoring": self.monitoring}
        """The components, by the names __main__.py gave them before this component (tests read the graph)."""
        self.register_outputs(self.outputs)


def network_args(s: settings.Settings) -> NetworkArgs:
    """The network's arguments: the VPC keys, and each fleet's instance type and size for the placement."""
    return NetworkArgs(s.vpc_id, s.public_subnet_ids, s.private_subnet_ids, s.vpc_cidr, s.availability_zone_count,
                       s.nat_gateways, s.postanalytics.instance_type, s.postanalytics_count, s.filtering.instance_type,
                       s.filtering_count, s.jump_host.instance_type if s.jump_host else None)


def region_of(invoke: Optional[pulumi.InvokeOptions]) -> str:
    """The region of the provider the invoke options name (the default provider's without), as that provider
    says it: aws:index/getRegion answers with the provider's configured region."""
    return aws.get_region(opts=invoke).region or ""
