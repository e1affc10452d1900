"""Reports the stack's certificates from its state, for the daily drift check: when each ends, which ones a
`pulumi up` would re-issue now (inside early_renewal_hours; pulumi-tls's readyForRenewal), and an alarm (exit 1)
when one ends within --alarm-hours: a deploy that is due but did not happen, before it becomes an outage.

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


def report(state: dict, now: datetime.datetime, alarm_hours: int) -> tuple[list[str], bool]:
    """(one line per certificate, True when one ends within alarm_hours or has ended)."""
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
        elif left <= renewal:
            state_ = "ready for renewal: the next pulumi up re-issues it"
        else:
            state_ = "ok"
        lines.append(f"{name}: ends {end.isoformat()} ({left / 24:.1f} days left): {state_}")
    return sorted(lines), alarm


def main(argv: Optional[list[str]] = None, stdin: TextIO = sys.stdin) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alarm-hours", type=int, default=72, help="fail when a certificate ends within this")
    args = parser.parse_args(argv)
    try:
        state = json.load(stdin)
    except json.JSONDecodeError as exc:
        print(f"certs: stdin is not a `pulumi stack export` document: {exc}", file=sys.stderr)
        return 2
    lines, alarm = report(state, datetime.datetime.now(datetime.timezone.utc), args.alarm_hours)
    print("\n".join(lines) if lines else "no certificates in this stack")
    return 1 if alarm else 0


if __name__ == "__main__":
    sys.exit(main())
