"""Reports the stack's certificates from its state, for the daily drift check: when each ends, which ones a
`pulumi up` would re-issue now (inside early_renewal_hours; pulumi-tls's readyForRenewal), and an alarm (exit 1)
when one ends within --alarm-hours: a deploy that is due but did not happen, before it becomes an outage. A CA
also alarms --ca-notice-days before its own renewal window opens: in it, a plain `pulumi up` replaces the CA at
once, which fails wstore writes for a moment; the CA rotation (docs/operations.md) must run before.

    pulumi stack export --stack prod | venv/bin/python -m tools.certs --alarm-hours 72

Reads only public fields (type, name, validityEndTime, earlyRenewalHours); no secret is decrypted or printed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from typing import Optional, TextIO

CERT_TYPES = ("tls:index/locallySignedCert:LocallySignedCert", "tls:index/selfSignedCert:SelfSignedCert")


CA_TYPE = "tls:index/selfSignedCert:SelfSignedCert"
CA_NOTICE_DAYS = 30


def report(state: dict, now: datetime.datetime, alarm_hours: int,
           ca_notice_days: int = CA_NOTICE_DAYS) -> tuple[list[str], bool]:
    """(one line per certificate, True when one ends within alarm_hours or has ended, or when a CA's renewal window
    opens within ca_notice_days: in it, a plain `pulumi up` replaces the CA at once, and between NGINX's and
    wstore's configure steps the writes fail; the CA rotation (docs/operations.md) must run before)."""
    lines, alarm = [], False
    for r in state.get("deployment", {}).get("resources", []) or []:
        if r.get("type") not in CERT_TYPES:
            continue
        out, name = r.get("outputs") or {}, r.get("urn", "").rsplit("::", 1)[-1]
        end = datetime.datetime.fromisoformat(str(out["validityEndTime"]).replace("Z", "+00:00"))
        left = (end - now).total_seconds() / 3600
        renewal = int(out.get("earlyRenewalHours") or 0)
        if left <= alarm_hours:
            alarm = True
            state_ = "EXPIRED" if left <= 0 else f"ALARM: ends within {alarm_hours} h, run pulumi up"
        elif r.get("type") == CA_TYPE and left <= renewal:
            alarm = True
            state_ = "ALARM: in its renewal window, the next pulumi up replaces this CA at once (failed wstore writes)"
        elif left <= renewal:
            state_ = "ready for renewal: the next pulumi up re-issues it"
        elif r.get("type") == CA_TYPE:
            opens = end - datetime.timedelta(hours=renewal)
            due = (opens - now).total_seconds() <= ca_notice_days * 86400
            alarm = alarm or due
            state_ = (f"{'ALARM: rotate now' if due else 'ok; rotate it'} (docs/operations.md, Rotate the CA) "
                      f"before {opens:%Y-%m-%d}, when its renewal window opens")
        else:
            state_ = "ok"
        lines.append(f"{name}: ends {end.isoformat()} ({left / 24:.1f} days left): {state_}")
    return sorted(lines), alarm


def main(argv: Optional[list[str]] = None, stdin: TextIO = sys.stdin) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alarm-hours", type=int, default=72, help="fail when a certificate ends within this")
    parser.add_argument("--ca-notice-days", type=int, default=CA_NOTICE_DAYS,
                        help="fail when a CA's renewal window opens within this many days (rotate it before)")
    args = parser.parse_args(argv)
    try:
        state = json.load(stdin)
    except json.JSONDecodeError as exc:
        print(f"certs: stdin is not a `pulumi stack export` document: {exc}", file=sys.stderr)
        return 2
    lines, alarm = report(state, datetime.datetime.now(datetime.timezone.utc), args.alarm_hours,
                         args.ca_notice_days)
    print("\n".join(lines) if lines else "no certificates in this stack")
    return 1 if alarm else 0


if __name__ == "__main__":
    sys.exit(main())
