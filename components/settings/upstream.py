"""The protected application's address (protectedUpstream) and the CA that signed its certificate: what the
filtering nodes may proxy to, read as the node's resolver and NGINX read it."""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import Optional
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .model import SettingsError, fail

# Names that mean this host (RFC 6761 `localhost` and its subdomains; the aliases of Debian's and Ubuntu's
# /etc/hosts) or the metadata service (EC2's DNS answers `instance-data` with 169.254.169.254).
LOCAL_NAMES = re.compile(r"(.+\.)?localhost|localhost\.localdomain|ip6-[a-z]+|instance-data(\..+)?")
# AWS's services on link-local addresses also answer on IPv6 at unique-local addresses (not link-local to Python):
# the instance metadata service (EC2 User Guide, "Instance metadata service endpoint"), the Route 53 Resolver and
# the time sync service.
AWS_IPV6_SERVICES = {ipaddress.IPv6Address("fd00:ec2::254"): "the instance metadata service",
                     ipaddress.IPv6Address("fd00:ec2::253"): "the Route 53 Resolver",
                     ipaddress.IPv6Address("fd00:ec2::123"): "the time sync service"}
METADATA_V4 = ipaddress.IPv4Address("169.254.169.254")
HOST_NAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*\.?")


def literal_address(host: str) -> Optional[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The address a URL's host part means when it is a literal, as the node's resolver reads it; None for a name.

    NGINX takes a dotted quad itself and hands anything else to getaddrinfo(), and glibc's getaddrinfo() reads
    every inet_aton() form as an address: 0x7f000001, 2130706433, 127.1, 0, octal (0177.0.0.1) and hex parts. An
    IPv4-mapped IPv6 address ([::ffff:127.0.0.1]) reaches the IPv4 address it maps, so it is judged as that."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        try:
            address = ipaddress.IPv4Address(socket.inet_aton(host))
        except (OSError, ValueError):
            return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def internal_reason(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> Optional[str]:
    """Why the filtering node must not proxy to this address (this host, or AWS's services), or None."""
    if address == METADATA_V4 or address in AWS_IPV6_SERVICES:
        what = AWS_IPV6_SERVICES.get(address, "the instance metadata service") \
            if isinstance(address, ipaddress.IPv6Address) else "the instance metadata service"
        return f"it is {what} ({address})"
    for attribute, what in (("is_loopback", "loopback"), ("is_link_local", "link-local"),
                            ("is_unspecified", "unspecified (this host)"), ("is_multicast", "multicast"),
                            ("is_reserved", "reserved (broadcast or class E)")):
        if getattr(address, attribute):
            return f"it is a {what} address ({address})"
    return None


def upstream(key: str, value: str) -> str:
    """protectedUpstream: an http(s) URL of the application, never this host or AWS's services."""
    allowed = "it must be an http:// or https:// URL with a host, such as http://10.0.0.10:8080"
    if re.search(r"[\s;{}'\"$\\]", value):
        raise fail(key, value, allowed + ", with no spaces, quotes, $, ;, { or }")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise fail(key, value, allowed) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise fail(key, value, allowed)
    if parts.query or parts.fragment or "?" in value or "#" in value or "@" in parts.netloc:
        raise fail(key, value, allowed + "; a query, a fragment or a user name has no place in it")
    host = parts.hostname
    internal = "it must be the application's address, not this host, its link-local range or AWS's metadata service"
    if host == "unix":
        raise fail(key, value, f"it names a Unix socket (NGINX reads http://unix: as a socket path); {internal}")
    address = literal_address(host)
    if address is None:
        if not HOST_NAME.fullmatch(host):
            raise fail(key, value, allowed + "; a host name has letters, digits, dots and hyphens")
        if LOCAL_NAMES.fullmatch(host.rstrip(".")):
            raise fail(key, value, f"the name {host.rstrip('.')} means this host or the metadata service; {internal}")
        return value
    reason = internal_reason(address)
    if reason is not None:
        raise fail(key, value, f"{reason}; {internal}")
    if address.version == 6:
        raise fail(key, value, "the VPC and its security groups are IPv4 only; give an IPv4 address or a host name")
    if parts.scheme == "https":
        # NGINX checks the upstream's certificate with X509_check_host() only: an IP address in it never matches.
        raise fail(key, value, "an https:// application is verified by name (NGINX never matches an address in "
                                "a certificate); give the host name its certificate names")
    return value


def upstream_ca(key: str, value: str) -> str:
    """PEM certificates NGINX trusts for an https:// protectedUpstream instead of the system trust store, as PEM
    again (whether the upstream is https:// is cross.upstream_ca_needs_https')."""
    allowed = ("it must be the PEM text of the CA that signed the application's certificate "
               "(-----BEGIN CERTIFICATE-----), set with `pulumi config set " + key + " -- \"$(cat ca.pem)\"`")
    if "PRIVATE KEY" in value:
        raise SettingsError(f"{key} holds a private key (not shown): {allowed}, and never a key.")
    try:
        certificates = x509.load_pem_x509_certificates(value.encode())
    except ValueError:
        raise SettingsError(f"{key} is not a readable PEM certificate (not shown): {allowed}.") from None
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certificates)
