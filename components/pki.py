"""Pki: the private CA that signs the wstore server certificates and the filtering nodes' client certificates.

Creates: an ECDSA P-256 CA key (tls.PrivateKey) and a self-signed CA certificate (tls.SelfSignedCert), per CA
generation the stack holds. `issue_leaf` adds, under the component that owns the host: leaf key, CSR with the host's
SANs, leaf signed by the signing generation.

A CA rotation (settings caGeneration G and caRotation) never leaves a host that trusts only one CA talking to a
host whose certificate another CA signed, whatever order a rolling `pulumi up` configures the hosts in:
  none     CAs {G}        leaves from G      every bundle [G]
  prepare  CAs {G, G+1}   leaves from G      every bundle [G, G+1]   (only the bundles change)
  switch   CAs {G, G+1}   leaves from G+1    every bundle [G, G+1]   (only the leaves change)
  then caGeneration G+1, caRotation none: CA G leaves the bundles and is destroyed (only the bundles change).
Each step changes one side only, and both its before and its after trust every leaf in place.
"""

from __future__ import annotations

import dataclasses
from typing import Literal, Optional, Sequence

import pulumi
import pulumi_tls as tls

# The CA outlives its leaves: it is valid for three leaf lifetimes, at least three years, and renews while a whole
# leaf lifetime and its renewal window are still left (at least 9480 hours: a year and a month), so a leaf never
# outlives the CA that signed it (a new CA re-issues every leaf). The floors are what the CA got with the former
# defaults (a year's leaves, a month's renewal): short leaves re-issue often, the CA (a rotation) rarely, and a
# stack that upgrades keeps its CA.
# Constraints: pulumi-tls sets basicConstraints CA:TRUE and the key usages below; it has no field for a path length
# (pathLenConstraint 0, "signs leaves only"), so the CA could in principle sign an intermediate: its key is a
# secret of the stack and signs nothing but these leaves.
CA_LIFETIMES = 3
CA_MIN_VALIDITY_HOURS = 3 * 8760
CA_MIN_RENEWAL_HOURS = 8760 + 720


def ca_hours(leaf_validity: int, leaf_renewal: int) -> tuple[int, int]:
    """(validity, early renewal) of the CA, in hours, for leaves of this validity and renewal window."""
    return (max(leaf_validity * CA_LIFETIMES, CA_MIN_VALIDITY_HOURS),
            max(leaf_validity + leaf_renewal, CA_MIN_RENEWAL_HOURS))


ROTATIONS = ("none", "prepare", "switch")
"""The steps of a CA rotation (caRotation); the last step is caGeneration G+1 with caRotation none."""


def generations(generation: int, rotation: str) -> tuple[list[int], int]:
    """(the CA generations the stack holds, in bundle order, and the one that signs the leaves)."""
    if rotation == "none":
        return [generation], generation
    return [generation, generation + 1], generation + (rotation == "switch")


def ca_name(name: str, generation: int) -> str:
    """Generation 1 keeps the names a stack had before rotations existed (pki-ca, pki-ca-key): no replacement."""
    return f"{name}-ca" if generation == 1 else f"{name}-ca{generation}"


LEAF_USES = {
    "server": ["digital_signature", "key_encipherment", "server_auth"],
    "client": ["digital_signature", "key_encipherment", "client_auth"],
}


def _key(name: str, opts: pulumi.ResourceOptions) -> tls.PrivateKey:
    # pulumi-tls defaults ECDSA to P224, which is weak: name the curve.
    return tls.PrivateKey(name, algorithm="ECDSA", ecdsa_curve="P256", opts=opts)


@dataclasses.dataclass(frozen=True)
class PkiArgs:
    common_name: str
    """Subject CN of the CA, such as "wallarm-postanalytics dev CA"."""
    validity_hours: int
    """Validity of every leaf certificate."""
    early_renewal_hours: int
    """A plan this close to a leaf's end re-issues it."""
    generation: int = 1
    """The CA generation in use (caGeneration)."""
    rotation: str = "none"
    """The step of a CA rotation (caRotation): none, prepare or switch."""


class Pki(pulumi.ComponentResource):
    ca_cert_pem: pulumi.Output[str]
    """The certificate of the CA that signs the leaves (public)."""
    ca_private_key_pem: pulumi.Output[str]
    """The key of the CA that signs the leaves (secret)."""
    trust_bundle_pem: pulumi.Output[str]
    """Every CA certificate the hosts trust, concatenated (public): one CA, or two during a rotation."""

    def __init__(self, name: str, args: PkiArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("wallarm:index:Pki", name, None, opts)
        self.args = args
        child = pulumi.ResourceOptions(parent=self)
        held, signing = generations(args.generation, args.rotation)
        cas = {g: self._ca(ca_name(name, g), g, child) for g in held}
        self.ca_cert_pem = cas[signing][1].cert_pem
        self.ca_private_key_pem = pulumi.Output.secret(cas[signing][0].private_key_pem)
        self.trust_bundle_pem = pulumi.Output.all(*[cas[g][1].cert_pem for g in held]).apply(
            lambda pems: "".join(p if p.endswith("\n") else p + "\n" for p in pems))
        self.register_outputs({"caCertPem": self.ca_cert_pem, "trustBundlePem": self.trust_bundle_pem})

    def _ca(self, name: str, generation: int, child: pulumi.ResourceOptions
            ) -> tuple[tls.PrivateKey, tls.SelfSignedCert]:
        """One CA generation: its key and self-signed certificate. Generations differ in subject too: OpenSSL
        looks an issuer up in a bundle by subject name."""
        key = _key(f"{name}-key", child)
        ca_validity, ca_renewal = ca_hours(self.args.validity_hours, self.args.early_renewal_hours)
        suffix = "" if generation == 1 else f" (generation {generation})"
        ca = tls.SelfSignedCert(
            name,
            private_key_pem=key.private_key_pem,
            is_ca_certificate=True,
            subject=tls.SelfSignedCertSubjectArgs(common_name=self.args.common_name + suffix,
                                                  organization="wallarm-postanalytics"),
            validity_period_hours=ca_validity,
            early_renewal_hours=ca_renewal,
            allowed_uses=["cert_signing", "crl_signing", "digital_signature"],
            opts=child,
        )
        return key, ca

    def issue_leaf(
        self,
        name: str,
        usage: Literal["server", "client"],
        common_name: pulumi.Input[str],
        ip_addresses: Sequence[pulumi.Input[str]],
        dns_names: Sequence[pulumi.Input[str]],
        parent: pulumi.Resource,
    ) -> tuple[pulumi.Output[str], pulumi.Output[str]]:
        """Key, CSR with SANs and signed certificate, as children of `parent`. Returns (key_pem secret, cert_pem)."""
        child = pulumi.ResourceOptions(parent=parent)
        key = _key(f"{name}-key", child)
        csr = tls.CertRequest(
            f"{name}-csr",
            private_key_pem=key.private_key_pem,
            subject=tls.CertRequestSubjectArgs(common_name=common_name, organization="wallarm-postanalytics"),
            ip_addresses=list(ip_addresses),
            dns_names=list(dns_names),
            opts=child,
        )
        cert = tls.LocallySignedCert(
            f"{name}-cert",
            cert_request_pem=csr.cert_request_pem,
            ca_private_key_pem=self.ca_private_key_pem,
            ca_cert_pem=self.ca_cert_pem,
            validity_period_hours=self.args.validity_hours,
            early_renewal_hours=self.args.early_renewal_hours,
            allowed_uses=LEAF_USES[usage],
            opts=child,
        )
        return pulumi.Output.secret(key.private_key_pem), cert.cert_pem
