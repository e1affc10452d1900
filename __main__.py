"""Wallarm filtering nodes and separate postanalytics servers on AWS. This file only wires components."""

import gc

import pulumi
import pulumi_aws as aws

from components import lookups, render, rollout, settings
from components.entrypoint import TLS_TARGET_PORT, EntryPoint, EntryPointArgs
from components.filtering import FilteringNode
from components.firewall import Firewall
from components.host import NodeArgs
from components.jumphost import JumpHost
from components.monitoring import AgentAccess, Monitoring, MonitoringArgs, install_agents
from components.network import Network, layout
from components.pki import Pki, PkiArgs
from components.postanalytics import Postanalytics
from components.sshkey import SshKey

# The SDK keeps every resource's Outputs and futures alive to the end, so with the default thresholds (a young
# collection every 700 allocations) the cycle collector rescans an ever larger heap: 40% of the program's CPU time
# at 200 nodes under the mocks, more at 500 (docs/testing.md, "The benchmark"). Rarer young collections keep
# memory bounded and the time per node flat. 1,000,000 rather than 100,000: 10% less CPU at 4x196 under the mocks,
# the same peak memory (most of the heap lives to the end anyway).
gc.set_threshold(1_000_000, 50, 10)

s = settings.load()  # raises, every wrong setting at once, before any resource is declared
plan = layout(s)  # zones, subnets and placements; raises before any resource too
images = {arch: lookups.ami(s, arch) for arch in {s.postanalytics.arch, s.filtering.arch}}

network = Network("network", s, plan)
pki = Pki("pki", PkiArgs(f"wallarm-postanalytics {s.stack} CA", s.cert_validity_hours,
                         s.cert_early_renewal_hours, generation=s.ca_generation,
                         rotation=s.ca_rotation)) if s.tls else None
ssh = SshKey("ssh", s.ssh_public_key, s.ssh_private_key)
vpc_cidr = plan.vpc_cidr or s.vpc_cidr
tls_target_port = TLS_TARGET_PORT if s.tls_certificate_arn else None
firewall = Firewall("firewall", settings.firewall_args(s, network.vpc_id))
sg = firewall.group_ids


region = aws.config.region
agent = AgentAccess("agent", s.stack, s.monitoring.log_retention_days)


def node_args(arch: str, placement, groups: list) -> NodeArgs:
    return NodeArgs(s, images[arch], placement, groups, ssh.key_name, ssh.private_key,
                    jump.proxy if jump else None, pki, jump=jump.bastion if jump else None,
                    instance_profile=agent.instance_profile)


jump = None
if s.jump_host:
    # amiId pins the nodes' image; the jump host runs jumpHostAmiId, or the official image of its own architecture.
    jump = JumpHost("jumphost", NodeArgs(s, s.jump_host_ami_id or lookups.ami(s, s.jump_host.arch, pinned=False),
                                         network.placements("jumphost")[0], [sg["jumphost"], sg["deployer"]],
                                         ssh.key_name, ssh.private_key), image=s.jump_host_ami_id)

postanalytics = [Postanalytics(f"postanalytics-{i}", node_args(s.postanalytics.arch, p,
                                                                [sg["postanalytics"]]))
                 for i, p in enumerate(network.placements("postanalytics"))]
upstream = pulumi.Output.all(*[p.private_ip for p in postanalytics]).apply(
    lambda ips: render.render_upstream(
        render.upstream_servers(ips, s.wstore_port, s.wstore_tls_port, s.tls), s.tls, s.mutual_tls))
nginx_conf = upstream.apply(
    lambda u: render.render_nginx_conf(u, s.protected_upstream, s.wallarm_mode, s.health_check_port,
                                       tls_target_port, vpc_cidr, s.health_check_proxy_port,
                                       upstream_ca=s.protected_upstream_ca is not None))
filtering = [FilteringNode(f"filtering-{i}", node_args(s.filtering.arch, p, [sg["filtering"]]), nginx_conf)
             for i, p in enumerate(network.placements("filtering"))]
entry = EntryPoint("entrypoint", EntryPointArgs(
    vpc_id=network.vpc_id, subnet_ids=network.load_balancer_subnet_ids(s.load_balancer_internal),
    security_group_id=sg["loadbalancer"], health_check_port=s.health_check_port,
    health_check_proxy_port=s.health_check_proxy_port, deregistration_delay=s.deregistration_delay,
    certificate_arn=s.tls_certificate_arn, internal=s.load_balancer_internal, wait_for_health=s.wait_for_target_health,
    region=aws.config.region))
rollout.wire(postanalytics, filtering, entry)
install_agents(s.stack, region, [*postanalytics, *filtering], agent)
monitoring = Monitoring("monitoring", MonitoringArgs(
    s.stack, region, s.monitoring, [(f.name, f.instance.id) for f in filtering],
    [(p.name, p.instance.id) for p in postanalytics],
    [(f"port{port}", group.arn_suffix) for group, port in entry.groups], entry.load_balancer.arn_suffix,
    s.tls_certificate_arn))

pulumi.export("url", entry.dns_name.apply(lambda d: f"http://{d}"))
pulumi.export("loadBalancerDnsName", entry.dns_name)
pulumi.export("postanalyticsPrivateIps", pulumi.Output.all(*[p.private_ip for p in postanalytics]))
pulumi.export("filteringPrivateIps", pulumi.Output.all(*[f.private_ip for f in filtering]))
pulumi.export("wstoreUpstream", upstream)
pulumi.export("caCertificate", pki.trust_bundle_pem if pki else None)
pulumi.export("dashboardUrl", monitoring.dashboard_url)
nodes = [(n.name, n.private_ip) for n in [*postanalytics, *filtering]]
if jump:
    pulumi.export("jumpHostPublicIp", jump.public_ip)
    pulumi.export("jumpHostHostKey", jump.host_key)
    pulumi.export("deployerSecurityGroupId", sg["deployer"])
pulumi.export("sshCommands", pulumi.Output.all(jump.public_ip if jump else None, *[ip for _, ip in nodes]).apply(
    lambda v: {name: (f"ssh -J {s.ssh_user}@{v[0]} " if v[0] else "ssh ") + f"{s.ssh_user}@{ip}"
               for (name, _), ip in zip(nodes, v[1:])}))
if ssh.generated:
    pulumi.export("sshPrivateKey", ssh.private_key)
