"""Wallarm filtering nodes and separate postanalytics servers on AWS. This file only wires components."""

import hashlib

import pulumi

from components import lookups, render, settings
from components.filtering import FilteringNode
from components.firewall import Firewall, FirewallArgs, wstore_listeners
from components.pki import Pki, PkiArgs
from components.host import NodeArgs
from components.postanalytics import Postanalytics
from components.sshkey import SshKey

s = settings.load()  # raises, one sentence, before any resource is declared
vpc_id, subnets = lookups.network(s)
pa_ami, f_ami = lookups.ami(s, s.postanalytics.arch), lookups.ami(s, s.filtering.arch)

pki = Pki("pki", PkiArgs(f"wallarm-postanalytics {s.stack} CA", s.cert_validity_hours,
                         s.cert_early_renewal_hours)) if s.tls else None
ssh = SshKey("ssh", s.ssh_public_key, s.ssh_private_key)
firewall = Firewall("firewall", FirewallArgs(
    vpc_id, s.ssh_allowed_cidrs, s.client_cidrs, s.external_filtering_cidrs,
    wstore_listeners(s.wstore_port, s.wstore_tls_port, s.tls), s.protected_upstream))


def node_args(ami_id, index, sg_id):
    return NodeArgs(s, ami_id, subnets[index % len(subnets)], sg_id, ssh.key_name, ssh.private_key, pki)


postanalytics = [Postanalytics(f"postanalytics-{i}", node_args(pa_ami, i, firewall.postanalytics_sg_id))
                 for i in range(s.postanalytics_count)]
upstream = pulumi.Output.all(*[p.private_ip for p in postanalytics]).apply(
    lambda ips: render.render_upstream(
        render.upstream_servers(ips, s.wstore_port, s.wstore_tls_port, s.tls), s.tls, s.mutual_tls))
nginx_conf = upstream.apply(lambda u: render.render_nginx_conf(u, s.protected_upstream, s.wallarm_mode))
filtering = [FilteringNode(f"filtering-{i}", node_args(f_ami, i, firewall.filtering_sg_id), firewall, nginx_conf)
             for i in range(s.filtering_count)]

# Order: every filtering node configured -> every postanalytics server configured -> each node's health check.
# wstore asks for client certificates only once every NGINX has one (mutual TLS), and each check runs after
# every node is configured, through N x M links rather than M x (N + M).
for p in postanalytics:
    p.configure(after=[f.configured for f in filtering])
wstore_specs = pulumi.Output.all(*[p.spec for p in postanalytics])
wstore_configured = [p.configured for p in postanalytics]
for f in filtering:
    # The check runs again whenever this node's or any wstore's configuration changes.
    fingerprint = pulumi.Output.unsecret(pulumi.Output.all(f.spec, wstore_specs).apply(
        lambda v: hashlib.sha256((v[0] + "".join(v[1])).encode()).hexdigest()))
    f.check_health(after=wstore_configured, fingerprint=fingerprint)

pulumi.export("postanalyticsPrivateIps", pulumi.Output.all(*[p.private_ip for p in postanalytics]))
pulumi.export("filteringPublicIps", pulumi.Output.all(*[f.public_ip for f in filtering]))
pulumi.export("wstoreUpstream", upstream)
pulumi.export("caCertificate", pki.ca_cert_pem if pki else None)
if ssh.generated:
    pulumi.export("sshPrivateKey", ssh.private_key)
