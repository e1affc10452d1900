#!/usr/bin/env python3
"""Sends the fewest days left on this node's own certificates to the CloudWatch agent's StatsD listener.

Run by the systemd timer wallarm-cert-expiry.timer (units rendered by components/telemetry.py, put in place by
scripts/cloudwatch_agent.py). Reads every PEM certificate in each --cert file (a CA bundle may hold two CAs during
a rotation), takes the earliest notAfter, and sends one StatsD gauge datagram:
    <metric>:<days>|g|#<tag>:<value>,...
the format the CloudWatch agent accepts (AWS CloudWatch user guide, "Retrieve custom metrics with StatsD":
`MetricName:value|type|@sample_rate|#tag1:value,...`; the agent turns the tags into dimensions and adds
metric_type=gauge, aws/amazon-cloudwatch-agent plugins/inputs/statsd/statsd.go).
The value is never below 0: a leading minus sign makes a StatsD gauge a decrement of its previous value, not a
value (the same plugin's README, "additive" gauges), so an expired certificate is sent as 0.
Assumes the worst: a missing, unreadable or corrupt file is one line on standard error naming the file (never its
content: a key put there by mistake is not printed), and 0 days is sent, so the alarm fires rather than going quiet.
Standard library only; tested on Python 3.11 (Debian 12 has 3.11, Ubuntu 24.04 has 3.12).
Exit codes: 0 sent, all files good; 1 sent 0 because a file is bad, or the datagram could not be sent; 2 bad
arguments (nothing sent).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import datetime as dt
import re
import socket
import sys

PEM = re.compile(rb"-----BEGIN CERTIFICATE-----\s+(.*?)-----END CERTIFICATE-----", re.S)
# What the agent's StatsD parser splits on (statsd.go parseStatsdLine): none of it may be in a name or tag.
FORBIDDEN = re.compile(r"[:|,#@\s]")


def log(message: str) -> None:
    print(f"cert-expiry: {message}", file=sys.stderr, flush=True)


class Bad(Exception):
    pass


def _tlv(der: bytes, at: int) -> tuple[int, int, int]:
    """(tag, start of content, end of content) of the DER element at `at`."""
    if at + 2 > len(der):
        raise Bad("truncated DER")
    tag, length, at = der[at], der[at + 1], at + 2
    if length & 0x80:
        count = length & 0x7F
        if not 1 <= count <= 4 or at + count > len(der):
            raise Bad("bad DER length")
        length, at = int.from_bytes(der[at:at + count], "big"), at + count
    if at + length > len(der):
        raise Bad("truncated DER")
    return tag, at, at + length


def not_after(der: bytes) -> dt.datetime:
    """The notAfter of one X.509 certificate (RFC 5280 4.1: Certificate -> tbsCertificate -> validity)."""
    tag, start, _ = _tlv(der, 0)
    if tag != 0x30:
        raise Bad("not an X.509 certificate")
    tag, at, _ = _tlv(der, start)  # tbsCertificate
    if tag != 0x30:
        raise Bad("not an X.509 certificate")
    fields: list[tuple[int, int, int]] = []
    while len(fields) < 5:
        tag, content, end = _tlv(der, at)
        fields.append((tag, content, end))
        at = end
    if fields[0][0] == 0xA0:  # [0] version: validity is the fifth field, else the fourth
        fields.pop(0)
    tag, content, end = fields[3]
    if tag != 0x30:
        raise Bad("no validity in the certificate")
    _, _, after = _tlv(der, content)  # notBefore
    tag, start, end = _tlv(der, after)  # notAfter
    text = der[start:end].decode("ascii", "replace")
    formats = {0x17: "%y%m%d%H%M%SZ", 0x18: "%Y%m%d%H%M%SZ"}  # UTCTime, GeneralizedTime
    if tag not in formats:
        raise Bad("no notAfter time in the certificate")
    try:
        return dt.datetime.strptime(text, formats[tag]).replace(tzinfo=dt.timezone.utc)
    except ValueError:
        raise Bad("unreadable notAfter time") from None


def earliest_end(path: str) -> dt.datetime:
    """The earliest notAfter of the PEM certificates in one file."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(1 << 20)
    except FileNotFoundError:
        raise Bad("missing") from None
    except OSError as exc:
        raise Bad(f"unreadable ({exc.strerror})") from None
    blocks = PEM.findall(data)
    if not blocks:
        raise Bad("no PEM certificate in it")
    ends = []
    for block in blocks:
        try:
            der = base64.b64decode(b"".join(block.split()), validate=True)
        except (binascii.Error, ValueError):
            raise Bad("a certificate block is not valid base64") from None
        ends.append(not_after(der))
    return min(ends)


def days_left(paths: list[str], now: dt.datetime) -> tuple[float, list[str]]:
    """(fewest days left, never below 0; one error line per bad file)."""
    errors, fewest = [], None
    for path in paths:
        try:
            left = (earliest_end(path) - now).total_seconds() / 86400
        except Bad as exc:
            errors.append(f"{path}: {exc}")
            left = 0.0
        fewest = left if fewest is None else min(fewest, left)
    return max(0.0, fewest or 0.0), errors


def datagram(metric: str, value: float, tags: list[tuple[str, str]]) -> bytes:
    text = f"{metric}:{value:.2f}|g"
    if tags:
        text += "|#" + ",".join(f"{k}:{v}" for k, v in tags)
    return text.encode("ascii")


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="cert_expiry.py", description=__doc__.split("\n")[0])
    parser.add_argument("--metric", required=True, help="the metric's name")
    parser.add_argument("--tag", action="append", default=[], help="a dimension, Name=value (repeatable)")
    parser.add_argument("--statsd", default="127.0.0.1:8125", help="the agent's StatsD address, host:port")
    parser.add_argument("--cert", action="append", required=True, help="a PEM certificate file (repeatable)")
    args = parser.parse_args(argv)
    args.tags = []
    for tag in args.tag:
        name, _, value = tag.partition("=")
        if not name or not value or FORBIDDEN.search(name) or FORBIDDEN.search(value):
            parser.error(f"--tag {tag!r} must be Name=value without : | , # @ or spaces")
        args.tags.append((name, value))
    if FORBIDDEN.search(args.metric) or not args.metric:
        parser.error(f"--metric {args.metric!r} must be a name without : | , # @ or spaces")
    host, _, port = args.statsd.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        parser.error(f"--statsd {args.statsd!r} must be host:port")
    args.address = (host, int(port))
    return args


def main(argv: list[str]) -> int:
    args = parse(argv)
    value, errors = days_left(args.cert, dt.datetime.now(dt.timezone.utc))
    for error in errors:
        log(f"ERROR: {error}; sending 0 days so that the alarm fires")
    payload = datagram(args.metric, value, args.tags)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(payload, args.address)
    except OSError as exc:
        log(f"ERROR: could not send to the agent at {args.statsd}: {exc.strerror or exc}")
        return 1
    print(payload.decode())
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
