"""Pki: the private CA that signs the wstore server certificates and the filtering nodes' client certificates.

Creates: an ECDSA P-256 CA key (tls.PrivateKey) and a self-signed CA certificate (tls.SelfSignedCert).
`issue_leaf` adds, under the component that owns the host: leaf key, CSR with the host's SANs, signed leaf.
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


class Pki(pulumi.ComponentResource):
    ca_cert_pem: pulumi.Output[str]
    """The CA certificate (public)."""
    ca_private_key_pem: pulumi.Output[str]
    """The CA key (secret)."""

    def __init__(self, name: str, args: PkiArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("wallarm:index:Pki", name, None, opts)
        self.args = args
        child = pulumi.ResourceOptions(parent=self)
        key = _key(f"{name}-ca-key", child)
        ca_validity, ca_renewal = ca_hours(args.validity_hours, args.early_renewal_hours)
        ca = tls.SelfSignedCert(
            f"{name}-ca",
            private_key_pem=key.private_key_pem,
            is_ca_certificate=True,
            subject=tls.SelfSignedCertSubjectArgs(common_name=args.common_name, organization="wallarm-postanalytics"),
            validity_period_hours=ca_validity,
            early_renewal_hours=ca_renewal,
            allowed_uses=["cert_signing", "crl_signing", "digital_signature"],
            opts=child,
        )
        self.ca_cert_pem = ca.cert_pem
        self.ca_private_key_pem = pulumi.Output.secret(key.private_key_pem)
        self.register_outputs({"caCertPem": self.ca_cert_pem})

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
