"""The checks of one value, which the rule table (rules.py) names per key.

Each factory returns a check: `check(key, value)` gives the value back (perhaps normalised: a tuple, a dict, stripped
text) or raises a SettingsError whose one sentence names the key, the value and what is allowed. A check knows
nothing of other keys; what depends on two keys is a named cross-key check (cross.py).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Callable

import pulumi

from .. import lookups, versions
from .model import RESERVED_PORTS, RFC1918, SettingsError, fail

Check = Callable[[str, Any], Any]


def one_of(*allowed: str) -> Check:
    def check(key: str, value: str) -> str:
        if value not in allowed:
            raise fail(key, value, "allowed values are " + ", ".join(allowed))
        return value
    return check


def member(allowed: tuple[int, ...], sentence: str) -> Check:
    """One of `allowed`, said in the caller's own words."""
    def check(key: str, value: int) -> int:
        if value not in allowed:
            raise fail(key, value, sentence)
        return value
    return check


def in_range(low: int, high: int) -> Check:
    def check(key: str, value: int) -> int:
        if not low <= value <= high:
            raise fail(key, value, f"it must be from {low} to {high}")
        return value
    return check


def multiple_of(step: int, sentence: str) -> Check:
    def check(key: str, value: int) -> int:
        if value % step:
            raise fail(key, value, sentence)
        return value
    return check


def matching(pattern: str, allowed: str) -> Check:
    def check(key: str, value: str) -> str:
        if not re.fullmatch(pattern, value):
            raise fail(key, value, allowed)
        return value
    return check


def each(inner: Check) -> Check:
    """`inner` on every entry of a list; every wrong entry is reported (one line each)."""
    def check(key: str, values: list[str]) -> list[str]:
        wrong = []
        for value in values:
            try:
                inner(key, value)
            except SettingsError as exc:
                wrong.append(str(exc))
        if wrong:
            raise SettingsError("\n".join(dict.fromkeys(wrong)))
        return values
    return check


def ids(kind: str) -> Check:
    """AWS IDs of one kind (subnet-...), in their order, each once."""
    entry = matching(rf"{kind}-[0-9a-f]{{8,17}}", f"each entry must be a {kind} ID such as {kind}-0123456789abcdef0")

    def check(key: str, values: list[str]) -> tuple[str, ...]:
        for value in values:
            entry(key, value)
        return tuple(dict.fromkeys(values))
    return check


def not_reserved(key: str, port: int) -> int:
    """A port that belongs to no other service on every node (SSH, the clients' listeners)."""
    if port in RESERVED_PORTS:
        raise fail(key, port, f"port {port} belongs to {RESERVED_PORTS[port]} on every node; choose another "
                              f"port than {', '.join(map(str, RESERVED_PORTS))}")
    return port


def network(key: str, value: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(value, strict=True)
    except ValueError:
        raise fail(key, value, "each entry must be an IPv4 CIDR with no host bits set, such as 198.51.100.7/32") from None


def rfc1918(net: ipaddress.IPv4Network) -> bool:
    return any(net.subnet_of(private) for private in RFC1918)


def private_range(low: int, high: int) -> Check:
    """A private (RFC 1918) network from /low to /high, kept as its text."""
    def check(key: str, value: str) -> str:
        net = network(key, value)
        if not (low <= net.prefixlen <= high and rfc1918(net)):
            raise fail(key, value, f"it must be a private (RFC 1918) range from /{low} to /{high}")
        return value
    return check


def cidrs(*, widest: int, at_least_one: bool) -> Check:
    """Validated CIDRs in their order, a repeated one folded (with a warning): two rules of one name cannot exist.
    None wider than /widest, and together no more addresses than one /widest (widest 0: any range)."""
    def check(key: str, values: list[str]) -> tuple[str, ...]:
        if at_least_one and not values:
            raise fail(key, values, "list at least one IPv4 CIDR, such as 198.51.100.7/32")
        for value in values:
            net = network(key, value)
            if net.prefixlen == 0 and widest > 0:
                raise fail(key, value, "it must not open the port to the whole internet; list the addresses that need it")
            if net.prefixlen < widest:
                raise fail(key, value, f"it is wider than /{widest}, the widest range allowed here; list narrower ranges")
        unique = tuple(dict.fromkeys(values))
        nets = list(ipaddress.collapse_addresses(ipaddress.IPv4Network(v) for v in unique))
        total, most = sum(n.num_addresses for n in nets), 2 ** (32 - widest)
        if widest > 0 and total > most:
            raise SettingsError(f"{key} lists {len(unique)} ranges that together span {total:,} addresses "
                                f"({100 * total / 2 ** 32:.1f}% of IPv4): at most {most:,} (one /{widest}) are allowed "
                                "here, so list narrower ranges.")
        if len(unique) != len(values):
            repeated = sorted({v for v in values if values.count(v) > 1})
            pulumi.log.warn(f"{key} lists {', '.join(repeated)} more than once; each range is used once.")
        return unique
    return check


def numbers(version_text: str) -> tuple[int, ...]:
    """"6.12.1" -> (6, 12, 1); () for anything else."""
    match = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", version_text)
    return tuple(int(p) for p in match.groups()) if match else ()


def version(key: str, value: str) -> str:
    """An installer version Wallarm publishes."""
    parts = numbers(value)
    if not parts or parts[0] not in versions.MAJORS or parts < versions.MINIMUM:
        raise fail(key, value, "it must be an X.Y.Z version of Wallarm's all-in-one installer, 6.2.0 or later "
                               f"in 6.x, or {' or '.join(f'{m}.x' for m in sorted(versions.MAJORS) if m > 6)}, "
                               "such as 6.12.1 or 7.1.0")
    return value


def digests(key: str, values: list[str]) -> dict[str, str]:
    """installerSha256: "VERSION/ARCH" -> SHA-256, each pinned once."""
    pinned: dict[str, str] = {}
    for entry in values:
        match = re.fullmatch(r"(6\.\d+\.\d+/(?:x86_64|aarch64))=([0-9a-f]{64})", entry)
        if not match:
            raise fail(key, entry, "each entry must be VERSION/ARCH=SHA256, such as 6.12.1/x86_64= and 64 lowercase "
                                   "hex digits")
        if pinned.get(match.group(1), match.group(2)) != match.group(2):
            raise fail(key, entry, f"{match.group(1)} is pinned twice with different digests")
        pinned[match.group(1)] = match.group(2)
    return pinned


def gigabytes(key: str, value: str) -> str:
    """A positive number of GB as text (slabAllocArena); whether it fits the type is cross.arena_fits_memory's."""
    if not re.fullmatch(r"\d+(\.\d+)?", value) or float(value) <= 0:
        raise fail(key, value, "it must be a positive number of GB, an integer or a float with a dot, such as 2.0")
    return value


def instance_type(key: str, value: str) -> str:
    """A name EC2 knows (the AWS SDK's list, offline); what AWS offers in the region is asked later (lookups)."""
    matching(r"[a-z][a-z0-9-]*\.[a-z0-9-]+", "it must be an EC2 instance type, such as m6i.large")(key, value)
    try:
        newer = lookups.check_instance_type(value)
    except lookups.UnknownName as exc:
        raise fail(key, value, str(exc)) from None
    if newer:
        pulumi.log.warn(f"{key}: {newer}.")
    return value


def region(key: str, value: str) -> str:
    try:
        return lookups.check_region(value)
    except lookups.UnknownName as exc:
        raise fail(key, value or None, str(exc)) from None


def token(key: str, value: Any) -> Any:
    """A Wallarm token given as text is one line of token characters; an Output cannot be read before resources."""
    if isinstance(value, str) and not re.fullmatch(r"[A-Za-z0-9+/=._:-]{16,}", value):
        raise fail(key, "(secret)", "a Wallarm token is one line of at least 16 letters, digits or +/=._:-")
    return value


def private_key(key: str, value: Any) -> Any:
    """An SSH private key given as text is PEM or OpenSSH key material (never echoed); an Output is taken as it is."""
    if isinstance(value, str) and "PRIVATE KEY" not in value:
        raise fail(key, "(secret)", "it must be a PEM or OpenSSH private key")
    return value


def public_key(key: str, value: str) -> str:
    """One OpenSSH public key line, its surrounding blanks dropped."""
    return matching(r"(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/=]+( .*)?",
                    "it must be one OpenSSH public key line, such as 'ssh-ed25519 AAAA... me@host'")(key, value.strip())
