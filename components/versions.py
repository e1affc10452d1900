"""What differs between the Wallarm majors this program deploys: one table keyed by major, nothing else.

Settings accept a version only if its major is here (and 6.x from 6.2.0); render, telemetry and the health check
read their URLs from the entry of the version they deploy. Checked for 7.x against Wallarm's documentation only
(wallarm/product-documentation, docs/latest, 2026-08), never against a running 7.x node:
- installer: admin-en/installation-postanalytics-en.md downloads
  `https://meganode.wallarm.com/7.1/wallarm-7.1.0.x86_64-glibc.sh`: the 6.x pattern;
- status: admin-en/configure-statistics-service.md keeps `http://127.0.0.8/wallarm-status` (JSON; the
  all-in-one installer's /etc/nginx/wallarm-status.conf) and names the fields the health check reads;
- metrics: admin-en/nginx-node-metrics.md: `wd` serves every group (traffic, wstore, wcli, its own) at
  `http://127.0.0.1:9445/metrics`, "the recommended way"; 9001 and 9003 stay; the same page says to keep only
  `wallarm_.*` (the endpoint also carries go_*, process_*, vm_*, scrape_*). traffic-attack-metrics.md and
  wstore-metrics.md keep the names the alarms use (wallarm_tnt_errors, wallarm_wstore_request_storage_*);
- health: the same page: `http://127.0.0.1:9446/health` (liveness) and `/ready` (200 once initialised, 503 while
  starting, degraded or failed);
- unchanged: `wallarm.service`, /opt/wallarm/env.list, /opt/wallarm/wstore/wstore.yaml,
  /opt/wallarm/etc/wallarm/node.yaml (admin-en/installation-postanalytics-en.md), and the separate-postanalytics
  procedure apart from the installer URL (updating-migrating/what-is-new.md).
"""

from __future__ import annotations

import dataclasses
from typing import Optional

# (job, address, path, query parameters, keep): what the CloudWatch agent scrapes; keep is a regular expression of
# the metric names kept (None: all).
Target = tuple[str, str, str, dict, Optional[str]]

STATUS_URL = "http://127.0.0.8/wallarm-status"
_STATUS: Target = ("wallarm-status", "127.0.0.8:80", "/wallarm-status", {"format": ["prometheus"]}, None)
_WSTORE: Target = ("wallarm-wstore", "127.0.0.1:9001", "/metrics", {}, None)
_WCLI: Target = ("wallarm-wcli", "127.0.0.1:9003", "/metrics", {}, None)
_WD: Target = ("wallarm", "127.0.0.1:9445", "/metrics", {}, "wallarm_.*")


@dataclasses.dataclass(frozen=True)
class Major:
    installer: str
    """The all-in-one installer's URL, with {major_minor}, {version} and {arch} to fill in."""
    status_url: str
    """The filtering node's status service (JSON), read by scripts/health-check.sh."""
    targets: dict[str, tuple[Target, ...]]
    """Per fleet (filtering, postanalytics), the loopback endpoints the agent scrapes."""
    status_job: str
    """The job whose series carry the filtering counters (wallarm_requests, wallarm_tnt_errors, ...)."""
    wstore_job: str
    """The job whose series carry wstore's (wallarm_wstore_*)."""
    ready_url: Optional[str]
    """A readiness endpoint the health check waits for (200), if the major has one."""
    live_url: Optional[str]
    """A liveness endpoint, if the major has one (documented here; nothing polls it yet)."""


_INSTALLER = "https://meganode.wallarm.com/{major_minor}/wallarm-{version}.{arch}-glibc.sh"
MAJORS = {
    6: Major(_INSTALLER, STATUS_URL, {"filtering": (_STATUS, _WCLI), "postanalytics": (_WSTORE, _WCLI)},
             status_job="wallarm-status", wstore_job="wallarm-wstore", ready_url=None, live_url=None),
    7: Major(_INSTALLER, STATUS_URL, {"filtering": (_WD,), "postanalytics": (_WD,)},
             status_job="wallarm", wstore_job="wallarm", ready_url="http://127.0.0.1:9446/ready",
             live_url="http://127.0.0.1:9446/health"),
}
MINIMUM = (6, 2, 0)
"""The oldest version accepted (TLS to wstore, the separate-postanalytics layout the program writes)."""


def major(version: str) -> Major:
    """The table's entry of an X.Y.Z version (settings have already refused any other)."""
    return MAJORS[int(version.split(".")[0])]
