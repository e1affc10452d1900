"""protectedUpstream as the node's resolver and NGINX read it: every spelling of an internal address is refused by
name before any resource, and the egress rule opens the address NGINX will connect to."""

from __future__ import annotations

import ipaddress
import socket

import pytest
from hypothesis import given, strategies as st

from components.firewall import WORLD, upstream_target
from components.settings import SettingsError, literal_address
from components.settings.upstream import upstream
from harness.program import run_program, stack_config


def _upstream(value):
    return upstream("protectedUpstream", value)

# (value, words the refusal must contain): every spelling from issue 12, and the IPv6 metadata address.
INTERNAL = [
    ("http://0x7f000001", ["loopback", "127.0.0.1"]),
    ("http://2130706433:8080", ["loopback", "127.0.0.1"]),
    ("http://127.1", ["loopback", "127.0.0.1"]),
    ("http://0177.0.0.1", ["loopback", "127.0.0.1"]),
    ("http://0", ["unspecified", "0.0.0.0"]),
    ("http://0.0.0.0:80", ["unspecified", "0.0.0.0"]),
    ("http://[::1]:8080", ["loopback", "::1"]),
    ("http://[::]", ["unspecified", "::"]),
    ("http://[::ffff:127.0.0.1]", ["loopback", "127.0.0.1"]),
    ("http://[::ffff:7f00:1]/", ["loopback", "127.0.0.1"]),
    ("http://169.254.169.254/latest", ["instance metadata service", "169.254.169.254"]),
    ("http://0251.0376.0251.0376", ["instance metadata service", "169.254.169.254"]),
    ("http://0xa9.0xfe.0xa9.0xfe", ["instance metadata service", "169.254.169.254"]),
    ("http://0xa9fea9fe", ["instance metadata service", "169.254.169.254"]),
    ("http://2852039166", ["instance metadata service", "169.254.169.254"]),
    ("http://[::ffff:169.254.169.254]", ["instance metadata service", "169.254.169.254"]),
    ("http://[::ffff:a9fe:a9fe]", ["instance metadata service", "169.254.169.254"]),
    ("http://[fd00:ec2::254]/latest", ["instance metadata service", "fd00:ec2::254"]),
    ("http://169.254.10.1:8080", ["link-local", "169.254.10.1"]),
    ("https://[fe80::1]", ["link-local", "fe80::1"]),
    ("http://224.0.0.1", ["multicast", "224.0.0.1"]),
    ("http://255.255.255.255", ["reserved", "255.255.255.255"]),
    ("http://4294967295", ["reserved", "255.255.255.255"]),
    ("http://localhost", ["localhost", "means this host"]),
    ("http://LOCALHOST.:8080", ["localhost", "means this host"]),
    ("http://app.localhost", ["app.localhost", "means this host"]),
    ("http://ip6-localhost/", ["ip6-localhost", "means this host"]),
    ("http://ip6-loopback", ["ip6-loopback", "means this host"]),
    ("http://instance-data/latest", ["instance-data", "metadata service"]),
    ("http://unix:/var/run/app.sock", ["Unix socket"]),
    ("http://unix:/var/run/app.sock:/path", ["Unix socket"]),
]
MALFORMED = [
    ("http://app:8080/base?x=1", "query"),
    ("http://app/#top", "fragment"),
    ("http://user@app", "user name"),
    ("http://app_1.internal", "letters, digits, dots and hyphens"),
    ("http://%31%32%37.0.0.1", "letters, digits, dots and hyphens"),
    ("http://[2001:db8::10]:8080", "IPv4 only"),
    ("https://10.0.0.10:8443", "verified by name"),
    ("https://0x0a00000a", "verified by name"),
]
ALLOWED = ["http://10.0.0.10:8080", "http://app.internal:8080/base", "https://app.example.com/base/",
           "http://0x0a00000a", "http://[::ffff:10.0.0.10]:8080", "http://10.1", "https://APP.internal"]


@pytest.mark.parametrize("value,words", INTERNAL, ids=[v for v, _ in INTERNAL])
def test_internal_spellings_are_refused_by_name(value, words):
    """Guards against an internal address in a spelling the resolver accepts (inet_aton's forms, IPv6, IPv4-mapped,
    a local name, a Unix socket) passing the guard: a real NGINX proxied each of them to loopback or the metadata
    service (issue 12)."""
    with pytest.raises(SettingsError) as caught:
        _upstream(value)
    message = str(caught.value)
    assert message.startswith(f"protectedUpstream is {value!r}: "), message
    for word in words:
        assert word in message, f"refusal of {value} lacks {word!r}: {message}"
    assert message.count(". ") == 0 and message.endswith("."), f"not one sentence: {message}"


@pytest.mark.parametrize("value,word", MALFORMED, ids=[v for v, _ in MALFORMED])
def test_malformed_upstreams_are_refused(value, word):
    """Guards against a URL part NGINX would misread (a query, a user name, an odd host) reaching proxy_pass."""
    with pytest.raises(SettingsError, match=word):
        _upstream(value)


@pytest.mark.parametrize("value", ALLOWED)
def test_application_addresses_are_allowed(value):
    """Guards against the guard refusing ordinary private addresses and names in any spelling."""
    assert _upstream(value) == value


@pytest.mark.parametrize("value", ["http://0x7f000001", "http://[::ffff:169.254.169.254]", "http://[fd00:ec2::254]",
                                   "http://ip6-localhost/", "http://unix:/run/app.sock"])
def test_refused_before_any_resource(value):
    """Guards against an internal upstream being refused only after resources were declared."""
    run = run_program(stack_config("dev", protectedUpstream=value))
    assert isinstance(run.error, SettingsError), f"{value} was accepted (error: {run.error!r})"
    assert "protectedUpstream" in str(run.error)
    assert run.mocks.resources == [], f"{len(run.mocks.resources)} resources were registered before the error"


def _spellings(address: ipaddress.IPv4Address) -> list[str]:
    """inet_aton's spellings of one IPv4 address: one number (decimal, hex, octal), a.b.c.d in hex and octal parts,
    a.b.16bits, a.24bits, and the IPv4-mapped IPv6 forms."""
    n, p = int(address), address.packed
    return [str(n), hex(n), "0" + oct(n)[2:], ".".join(hex(b) for b in p), ".".join("0" + oct(b)[2:] for b in p),
            f"{p[0]}.{p[1]}.{n & 0xFFFF}", f"{p[0]}.{n & 0xFFFFFF}", f"[::ffff:{address}]",
            f"[::ffff:{n >> 16:x}:{n & 0xFFFF:x}]"]


INTERNAL_NETS = st.sampled_from([ipaddress.IPv4Network(n) for n in ("127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4",
                                                                     "240.0.0.0/4")])


@given(net=INTERNAL_NETS, offset=st.integers(min_value=0, max_value=2**28 - 1))
def test_every_spelling_of_an_internal_address_is_refused(net, offset):
    """Property: whatever spelling the resolver accepts for a loopback, link-local, multicast or reserved address,
    the guard refuses it, and names the address the resolver would connect to."""
    address = net[offset % net.num_addresses]
    for spelling in _spellings(address):
        host = spelling.strip("[]")
        if not spelling.startswith("["):
            assert ipaddress.IPv4Address(socket.inet_aton(host)) == address, f"bad test spelling {spelling}"
        with pytest.raises(SettingsError, match=str(address).replace(".", r"\.")):
            _upstream(f"http://{spelling}:8080/")


@given(address=st.ip_addresses(v=4).filter(lambda a: a.is_private and not (a.is_loopback or a.is_link_local
                                                                            or a.is_unspecified or a.is_multicast
                                                                            or a.is_reserved)))
def test_egress_rule_opens_what_the_resolver_connects_to(address):
    """Property: for every spelling of an application address, the filtering nodes' egress rule is that address's
    /32 as inet_aton reads it (never 0.0.0.0/0 for a literal, never another address)."""
    for spelling in _spellings(address):
        url = f"http://{spelling}:8080/base"
        _upstream(url)
        assert upstream_target(url) == (f"{address}/32", 8080), url


def test_egress_rule_for_a_name_is_any_address():
    """Guards against a host name being mistaken for a literal (security groups cannot filter by name)."""
    assert upstream_target("https://app.internal/base") == (WORLD, 443)
    assert literal_address("app.internal") is None


# ---------------------------------------------------------------- protectedUpstreamCaCertificate

from tests.conftest import program_run  # noqa: E402
from tests.helpers import rogue_pair, spec, spec_file  # noqa: E402
from components import render  # noqa: E402


def test_upstream_ca_is_shipped_and_trusted():
    """Guards against protectedUpstreamCaCertificate being accepted but never reaching NGINX: the filtering spec
    carries it as a file, and the proxying server trusts that file (and only it)."""
    ca_pem = rogue_pair("app CA")[0].decode()
    run = program_run(protectedUpstream="https://app.internal:8443/base", protectedUpstreamCaCertificate=ca_pem)
    s = spec(run.mocks, "filtering-0")
    shipped = spec_file(s, render.NGINX_UPSTREAM_CA)
    assert shipped["content"] == ca_pem and shipped["mode"] == "0644", shipped
    conf = spec_file(s, render.NGINX_CONF)["content"]
    assert f"proxy_ssl_trusted_certificate {render.NGINX_UPSTREAM_CA};" in conf, conf
    assert "proxy_ssl_verify on;" in conf and "proxy_ssl_name app.internal;" in conf, conf
    assert render.SYSTEM_TRUST_STORE not in conf


def test_without_upstream_ca_the_file_is_absent_and_the_system_store_trusted():
    """Guards against a CA file left on the node after the setting is removed still being trusted."""
    run = program_run(protectedUpstream="https://app.internal:8443")
    s = spec(run.mocks, "filtering-0")
    assert render.NGINX_UPSTREAM_CA in s["absent"], s["absent"]
    conf = spec_file(s, render.NGINX_CONF)["content"]
    assert f"proxy_ssl_trusted_certificate {render.SYSTEM_TRUST_STORE};" in conf, conf


@pytest.mark.parametrize("overrides,words", [
    ({"protectedUpstreamCaCertificate": "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"},
     ["not a readable PEM certificate"]),
    ({"protectedUpstreamCaCertificate": "hello"}, ["not a readable PEM certificate"]),
    ({"protectedUpstreamCaCertificate": rogue_pair("x")[1].decode()}, ["private key", "not shown"]),
    ({"protectedUpstream": "http://10.0.0.10:8080", "protectedUpstreamCaCertificate": rogue_pair("x")[0].decode()},
     ["only for an https://"]),
], ids=["garbled", "not-pem", "private-key", "with-http"])
def test_bad_upstream_ca_is_refused_before_any_resource(overrides, words):
    """Guards against an unreadable CA failing `nginx -t` on every node, or a pasted key landing in a 0644 file."""
    overrides = {"protectedUpstream": "https://app.internal", **overrides}
    run = run_program(stack_config("dev", **overrides))
    assert isinstance(run.error, SettingsError), f"accepted (error: {run.error!r})"
    message = str(run.error)
    assert message.startswith("protectedUpstreamCaCertificate "), message
    for word in words:
        assert word in message, message
    pem = overrides["protectedUpstreamCaCertificate"]
    assert not [line for line in pem.splitlines() if "-----" not in line and line in message], "the value is echoed"
    assert run.mocks.resources == []
