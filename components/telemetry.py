"""Pure renderers of what the fleet reports: plain values in, text or plain data out. No Pulumi types in here.

- `agent_config()`: the CloudWatch agent's JSON configuration for one node (validated in the tests against the
  agent's published schema, ../shared/reference/cloudwatch-agent/schema.json).
- `prometheus_config()`: the Prometheus scrape configuration the agent reads (`prometheus_config_path`): Wallarm's
  own loopback endpoints, nothing else. `scrape_targets()` lists them as (job, URL) for the rehearsal.
- `cert_check_files()`: the node's certificate check (scripts/cert_expiry.py) and its systemd service and timer,
  which send the fewest days left on the node's own certificates to the agent's StatsD listener.
The alarms and the dashboard built on these metrics are components/alarms.py's.

Where the numbers go. Prometheus scraping under `logs.metrics_collected.prometheus` reaches CloudWatch as
embedded-metric-format log events, through the `emf_processor`'s declarations (which metric, which dimensions);
under `metrics.metrics_collected.prometheus` it would go to Amazon Managed Service for Prometheus instead
(aws/amazon-cloudwatch-agent translator/translate/otel/pipeline/prometheus/translator.go).
The agent sends a Prometheus gauge as scraped and a counter as the delta since the previous scrape ("Prometheus
metric type conversion by the CloudWatch agent", AWS CloudWatch user guide). Wallarm's status service exports its
counters (requests, tnt_errors, ...) with `# TYPE ... gauge` (docs/6.x/admin-en/configure-statistics-service.md):
they arrive cumulative, reset by an NGINX restart, so alarms and graphs take DIFF() of them and count only growth.
wstore's drops and out-of-memory errors are real counters (docs/6.x/admin-en/wstore-metrics.md): they arrive as
deltas, and their sum over a period is what happened in it.
"""

from __future__ import annotations

import json
from typing import Any, Optional, Sequence

import yaml

from . import render, versions

NAMESPACE = "Wallarm"
AGENT_DIR = "/opt/aws/amazon-cloudwatch-agent/etc"
AGENT_CONFIG = f"{AGENT_DIR}/wallarm-agent.json"
PROMETHEUS_CONFIG = f"{AGENT_DIR}/wallarm-prometheus.yaml"
SCRAPE_SECONDS = 60
DEFAULT_VERSION = "6.12.1"
# The endpoints per Wallarm major are in components/versions.py, all on loopback as Wallarm advises
# (wallarm-facts.md, runtime-behaviour.md). 6.x: the status service, wstore and wcli each (wstore binds IPv4 only
# since 6.6.0: 127.0.0.1, not "localhost"); 7.x: wd's one aggregated endpoint, kept to wallarm_.* series.
# Per-node series (dimension Node): only what an alarm or a per-node graph needs. Counters exported as gauges must
# be per node anyway: a sum of cumulative counters across nodes says nothing once one of them restarts.
STATUS_METRICS = ("wallarm_requests", "wallarm_attacks", "wallarm_tnt_errors", "wallarm_requests_lost",
                  "wallarm_api_errors")
WSTORE_METRICS = ("wallarm_wstore_request_storage_timeframe_size", "wallarm_wstore_request_storage_drops",
                  "wallarm_wstore_kvstore_oom_errors_total")
# Host memory and disk: one series per fleet (no per-node dimension: omit_hostname), Maximum = the fullest node.
HOST_METRICS = ("mem_used_percent", "disk_used_percent")
# The node's own certificates (components/pki.py's leaves and CA, written by the configure step): the fewest days
# left, sent by scripts/cert_expiry.py every 15 minutes to the agent's StatsD listener (loopback only), which adds
# the dimension metric_type=gauge to every StatsD gauge (aws/amazon-cloudwatch-agent plugins/inputs/statsd/statsd.go).
STATSD_ADDRESS = "127.0.0.1:8125"
CERT_METRIC = "wallarm_certificate_days"
CERT_UNIT = "wallarm-cert-expiry"
CERT_CHECK = "/usr/local/lib/wallarm-deploy/cert_expiry.py"
CERT_SERVICE = f"/etc/systemd/system/{CERT_UNIT}.service"
CERT_TIMER = f"/etc/systemd/system/{CERT_UNIT}.timer"
CERT_FILES = (CERT_CHECK, CERT_SERVICE, CERT_TIMER)
# Sent every 15 minutes, judged per hour: 3 hours without a value is a dead timer, agent or node (see the alarm).
CERT_PERIOD = 3600
CERT_EVALUATION_PERIODS = 3
LOG_FILES = {
    "filtering": ("/var/log/nginx/access.log", "/var/log/nginx/error.log",
                  "/opt/wallarm/var/log/wallarm/wcli-out.log"),
    "postanalytics": ("/opt/wallarm/var/log/wallarm/wstore-out.log", "/opt/wallarm/var/log/wallarm/wcli-out.log"),
}


def log_group(stack: str, role: str) -> str:
    """The CloudWatch Logs group of one fleet's files (created by the program, with the retention setting)."""
    return f"/wallarm/{stack}/{role}"


def metrics_log_group(stack: str) -> str:
    """Where the agent writes the embedded-metric-format events its Prometheus scrapes become."""
    return f"/wallarm/{stack}/metrics"


def node_dimensions(stack: str, role: str, node: str) -> dict[str, str]:
    """The dimensions of a node's own series: `node` is its host name (host_name(), `dev-filtering-3`), the Node
    label of its scrapes and of its certificate check alike."""
    return {"Stack": stack, "Fleet": role, "Node": node}


def cert_dimensions(stack: str, role: str, node: str) -> dict[str, str]:
    """What CloudWatch stores the certificate check's gauge under: the tags it sends, plus the agent's own."""
    return {**node_dimensions(stack, role, node), "metric_type": "gauge"}


def node_certificates(role: str, tls: bool, mutual_tls: bool) -> tuple[str, ...]:
    """The certificate files a node of this fleet uses (components/render.py's specs write them): none without tls."""
    if not tls:
        return ()
    if role == "postanalytics":
        return (render.WSTORE_CERT, render.WSTORE_CA)
    return (render.NGINX_CLIENT_CERT, render.NGINX_CA) if mutual_tls else (render.NGINX_CA,)


def cert_check_files(stack: str, role: str, node: str, certificates: Sequence[str], script: str) -> dict[str, str]:
    """The check (scripts/cert_expiry.py's text as `script`) and its units; nothing when the node has no
    certificate. A oneshot service on a calendar timer: a failed run does not stop the next one."""
    if not certificates:
        return {}
    words = ["/usr/bin/python3", CERT_CHECK, "--metric", CERT_METRIC, "--statsd", STATSD_ADDRESS,
             *[w for k, v in node_dimensions(stack, role, node).items() for w in ("--tag", f"{k}={v}")],
             *[w for path in certificates for w in ("--cert", path)]]
    service = (f"{render.MANAGED}\n[Unit]\nDescription=Days left on this node's Wallarm certificates, to the "
               "CloudWatch agent\nAfter=amazon-cloudwatch-agent.service\n\n[Service]\nType=oneshot\n"
               f"ExecStart={' '.join(words)}\nNoNewPrivileges=yes\nProtectSystem=strict\nProtectHome=yes\n"
               "PrivateTmp=yes\n")
    timer = (f"{render.MANAGED}\n[Unit]\nDescription=Every 15 minutes: days left on this node's Wallarm "
             f"certificates\n\n[Timer]\nOnBootSec=2min\nOnCalendar=*:0/15\nRandomizedDelaySec=60\n\n"
             "[Install]\nWantedBy=timers.target\n")
    return {CERT_CHECK: script, CERT_SERVICE: service, CERT_TIMER: timer}


def prometheus_config(stack: str, role: str, node: str, version: str = DEFAULT_VERSION) -> str:
    """The scrape configuration: the node's own loopback endpoints for its Wallarm version, labelled with stack,
    fleet and node."""
    jobs = []
    for job, address, path, params, keep in versions.major(version).targets[role]:
        entry: dict[str, Any] = {"job_name": job, "metrics_path": path, "scrape_interval": f"{SCRAPE_SECONDS}s",
                                 "scrape_timeout": "10s",
                                 "static_configs": [{"targets": [address],
                                                     "labels": node_dimensions(stack, role, node)}]}
        if params:
            entry["params"] = params
        if keep:
            entry["metric_relabel_configs"] = [{"source_labels": ["__name__"], "regex": keep, "action": "keep"}]
        jobs.append(entry)
    return yaml.safe_dump({"global": {"scrape_interval": f"{SCRAPE_SECONDS}s"}, "scrape_configs": jobs},
                          sort_keys=False)


def scrape_targets(prometheus_yaml: str) -> list[tuple[str, str]]:
    """(job, URL) of every target a scrape configuration names: what the agent will request."""
    config = yaml.safe_load(prometheus_yaml)
    found = []
    for job in config["scrape_configs"]:
        query = "&".join(f"{k}={v}" for k, values in (job.get("params") or {}).items() for v in values)
        for static in job["static_configs"]:
            for address in static["targets"]:
                found.append((job["job_name"], f"http://{address}{job.get('metrics_path', '/metrics')}"
                                               + (f"?{query}" if query else "")))
    return found


def agent_config(stack: str, role: str, region: str, version: str = DEFAULT_VERSION) -> str:
    """The CloudWatch agent's configuration for a node of one fleet and Wallarm version (deterministic JSON)."""
    fleet = {"Stack": stack, "Fleet": role}
    major = versions.major(version)
    # 7.x: both groups come through wd's one job; each fleet declares only its own there, as its endpoint carries
    # only its own (a filtering node has no wstore).
    shared = major.status_job == major.wstore_job
    declarations = [
        {"source_labels": ["job"], "label_matcher": f"^{job}$",
         "dimensions": [["Stack", "Fleet", "Node"]], "metric_selectors": [f"^{m}$" for m in metrics]}
        for job, metrics, fleet in ((major.status_job, STATUS_METRICS, "filtering"),
                                    (major.wstore_job, WSTORE_METRICS, "postanalytics"))
        if not shared or fleet == role]
    config = {
        # root: NGINX's logs are root:adm 0640 and Wallarm's log owner is not documented.
        "agent": {"metrics_collection_interval": SCRAPE_SECONDS, "region": region, "omit_hostname": True,
                  "run_as_user": "root",
                  "logfile": "/opt/aws/amazon-cloudwatch-agent/logs/amazon-cloudwatch-agent.log"},
        "metrics": {
            "namespace": NAMESPACE,
            "metrics_collected": {
                "mem": {"measurement": ["mem_used_percent"], "append_dimensions": fleet},
                "disk": {"measurement": ["used_percent"], "resources": ["/"], "drop_device": True,
                         "ignore_file_system_types": ["tmpfs", "devtmpfs", "overlay"], "append_dimensions": fleet},
                # The certificate check's gauge; on loopback only. 60 s: standard resolution (under 60 the agent
                # stores high-resolution metrics).
                "statsd": {"service_address": STATSD_ADDRESS, "metrics_collection_interval": 60},
            },
            "aggregation_dimensions": [["Stack", "Fleet"]],
            # One PutMetricData call per node every 5 minutes, not every minute (500 nodes: $43, not $216 a month).
            "force_flush_interval": 300,
        },
        "logs": {
            "logs_collected": {"files": {"collect_list": [
                {"file_path": path, "log_group_name": log_group(stack, role), "log_stream_name": f"{{hostname}}{path}"}
                for path in LOG_FILES[role]]}},
            "metrics_collected": {"prometheus": {
                "log_group_name": metrics_log_group(stack),
                "prometheus_config_path": PROMETHEUS_CONFIG,
                "emf_processor": {"metric_declaration_dedup": True, "metric_namespace": NAMESPACE,
                                  "metric_unit": {"wallarm_wstore_request_storage_timeframe_size": "Seconds"},
                                  "metric_declaration": declarations},
            }},
            "force_flush_interval": 15,
        },
    }
    return json.dumps(config, sort_keys=True, indent=1) + "\n"


def agent_bundle(stack: str, role: str, node: str, region: str, package_url: str,
                 version: str = DEFAULT_VERSION, certificates: Sequence[str] = (), check_script: str = "") -> str:
    """The agent step's stdin: the package to install and the files to put in place (the agent's two, and the
    certificate check's three when the node has certificates)."""
    return json.dumps({"package_url": package_url,
                       "files": {AGENT_CONFIG: agent_config(stack, role, region, version),
                                 PROMETHEUS_CONFIG: prometheus_config(stack, role, node, version),
                                 **cert_check_files(stack, role, node, certificates, check_script)}},
                      sort_keys=True) + "\n"


def agent_package_url(region: str, arch: str) -> str:
    """Amazon's .deb of the agent from the region's own bucket (Debian and Ubuntu package no agent)."""
    deb_arch = {"x86_64": "amd64", "aarch64": "arm64"}[arch]
    return (f"https://amazoncloudwatch-agent-{region}.s3.{region}.amazonaws.com/debian/{deb_arch}/latest/"
            "amazon-cloudwatch-agent.deb")
