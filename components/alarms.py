"""Pure specifications of a stack's alarms and dashboard, on the metrics components/telemetry.py has the agent
send: plain values in, plain dictionaries and JSON text out. No Pulumi types in here.

- `alarm_specs()`: every alarm of a stack as plain dictionaries (components/monitoring.py turns each into a
  MetricAlarm).
- `dashboard_body()`: the stack's dashboard JSON.
Wallarm exports its counters as gauges (telemetry.py's docstring says how they arrive): alarms and graphs take
DIFF() of them and count only growth.
"""

from __future__ import annotations

import json
from typing import Any, Optional, Sequence

from .telemetry import CERT_EVALUATION_PERIODS, CERT_METRIC, CERT_PERIOD, HOST_METRICS, NAMESPACE, cert_dimensions, node_dimensions


def _metric(mid: str, name: str, dims: dict[str, str], stat: str, period: int, namespace: str = NAMESPACE,
            visible: bool = False) -> dict[str, Any]:
    return {"id": mid, "return_data": visible,
            "metric": {"namespace": namespace, "metric_name": name, "dimensions": dims, "stat": stat,
                       "period": period}}


def _growth(name: str, metrics: Sequence[str], dims: dict[str, str], period: int) -> list[dict[str, Any]]:
    """Metric math: how much cumulative gauges grew in a period (a reset to zero counts as no growth)."""
    queries = [_metric(f"m{i}", m, dims, "Maximum", period) for i, m in enumerate(metrics)]
    terms = ", ".join(f"DIFF(m{i})" for i in range(len(metrics)))
    expression = f"MAX([{terms}])" if len(metrics) > 1 else "DIFF(m0)"
    return queries + [{"id": "growth", "expression": expression, "label": f"{name} growth", "return_data": True}]


def alarm_specs(stack: str, region: str, thresholds: dict[str, float], filtering: Sequence[str],
                postanalytics: Sequence[str], instances: dict[str, str], target_groups: Sequence[tuple[str, str]],
                load_balancer: Optional[str], certificate_arn: Optional[str],
                hosts: Optional[dict[str, str]] = None, certificate_nodes: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Every alarm of a stack. `instances`: node -> instance ID; `target_groups`: (name, ARN suffix); `hosts`:
    node -> its host name, the Node dimension its agent sends (host_name()); `certificate_nodes`: the nodes that
    have certificates of the stack's CA (tls). Each spec: name, description, kind, and either metric (namespace,
    name, dims, stat) or queries."""
    host = (hosts or {}).get
    period = int(thresholds["period"])
    specs: list[dict[str, Any]] = []

    def add(kind: str, name: str, description: str, threshold: float, operator: str, **rest: Any) -> None:
        specs.append({"kind": kind, "name": f"{stack}-{name}", "description": description, "threshold": threshold,
                      "operator": operator, "period": rest.pop("period_override", period), "evaluation_periods": rest.pop("evaluation_periods", 1),
                      "treat_missing_data": rest.pop("treat_missing_data", "notBreaching"), **rest})

    for tg_name, tg in target_groups:
        add("unhealthy-targets", f"{tg_name}-unhealthy", f"Target group {tg_name}: more than "
            f"{thresholds['unhealthy']:g} filtering node(s) failed the load balancer's health check",
            thresholds["unhealthy"], "GreaterThanThreshold", evaluation_periods=2,
            metric={"namespace": "AWS/NetworkELB", "name": "UnHealthyHostCount", "stat": "Minimum",
                    "dims": {"TargetGroup": tg, "LoadBalancer": load_balancer or ""}})
    for node in filtering:
        dims = node_dimensions(stack, "filtering", host(node, node))
        add("tnt-errors", f"{node}-tnt-errors", f"{node}: tnt_errors grew (requests postanalytics never got)",
            thresholds["errors"], "GreaterThanThreshold",
            queries=_growth("tnt_errors", ["wallarm_tnt_errors"], dims, period))
        add("requests-lost", f"{node}-requests-lost", f"{node}: requests_lost or api_errors grew (requests not "
            "analysed, or not exported to the Wallarm Cloud)", thresholds["errors"], "GreaterThanThreshold",
            queries=_growth("lost", ["wallarm_requests_lost", "wallarm_api_errors"], dims, period))
    for node in postanalytics:
        dims = node_dimensions(stack, "postanalytics", host(node, node))
        add("wstore-timeframe", f"{node}-wstore-timeframe", f"{node}: wstore holds less than "
            f"{thresholds['timeframe']:g} s of requests (Wallarm sizes it for 15 minutes)",
            thresholds["timeframe"], "LessThanThreshold", evaluation_periods=3,
            metric={"namespace": NAMESPACE, "name": "wallarm_wstore_request_storage_timeframe_size",
                    "stat": "Minimum", "dims": dims})
        add("wstore-drops", f"{node}-wstore-drops", f"{node}: wstore dropped requests or hit out-of-memory errors",
            0, "GreaterThanThreshold", queries=[
                _metric("d", "wallarm_wstore_request_storage_drops", dims, "Sum", period),
                _metric("o", "wallarm_wstore_kvstore_oom_errors_total", dims, "Sum", period),
                {"id": "lost", "expression": "d + o", "label": "drops and OOM errors", "return_data": True}])
    for role in ("filtering", "postanalytics"):
        fleet = {"Stack": stack, "Fleet": role}
        add("memory", f"{role}-memory", f"The fullest {role} node uses more than {thresholds['memory']:g}% of "
            "its memory", thresholds["memory"], "GreaterThanThreshold", evaluation_periods=3,
            metric={"namespace": NAMESPACE, "name": "mem_used_percent", "stat": "Maximum", "dims": fleet})
        add("disk", f"{role}-disk", f"The fullest {role} node's root file system is more than "
            f"{thresholds['disk']:g}% full", thresholds["disk"], "GreaterThanThreshold",
            metric={"namespace": NAMESPACE, "name": "disk_used_percent", "stat": "Maximum", "dims": fleet})
    for node, instance in instances.items():
        # The recover action restarts the instance on healthy hardware, same ID, address and volume (EC2 user
        # guide, "Recover your instance"): only for the system check, which is AWS's side.
        add("status-check", f"{node}-status-check", f"{node}: EC2 system status check failed; the recover action "
            "moves it to healthy hardware", 0, "GreaterThanThreshold", evaluation_periods=2,
            treat_missing_data="missing", recover=f"arn:aws:automate:{region}:ec2:recover",
            metric={"namespace": "AWS/EC2", "name": "StatusCheckFailed_System", "stat": "Maximum",
                    "dims": {"InstanceId": instance}})
    for node in certificate_nodes:
        role = "filtering" if node in filtering else "postanalytics"
        # Missing data is breaching: the check sends every 15 minutes, so 3 hours without a value mean its timer,
        # the agent or the node died, and nothing would tell that a certificate runs out meanwhile. The price: on
        # a new stack (or a scale-out) the alarm is red from its creation until the node's agent step sends the
        # first value. Not alarmPeriodSeconds: days do not change by the minute.
        add("node-certificate", f"{node}-certificate-days", f"{node}: one of its certificates from the stack's CA "
            f"expires in less than {thresholds['internal_certificate_days']:g} days, or the check stopped sending; "
            "`pulumi up` renews leaves in their early-renewal window", thresholds["internal_certificate_days"],
            "LessThanThreshold", evaluation_periods=CERT_EVALUATION_PERIODS, treat_missing_data="breaching",
            period_override=CERT_PERIOD,
            metric={"namespace": NAMESPACE, "name": CERT_METRIC, "stat": "Minimum",
                    "dims": cert_dimensions(stack, role, host(node, node))})
    if certificate_arn:
        add("certificate", "certificate-expiry", f"The load balancer's ACM certificate expires in less than "
            f"{thresholds['certificate_days']:g} days (ACM renews the ones it issued; imported ones need you)",
            thresholds["certificate_days"], "LessThanThreshold", treat_missing_data="breaching",
            period_override=86400,
            metric={"namespace": "AWS/CertificateManager", "name": "DaysToExpiry", "stat": "Minimum",
                    "dims": {"CertificateArn": certificate_arn}})
    return specs


# ---------------------------------------------------------------------------------------------------- dashboard
def _search(stack: str, fleet: str, metric: str, stat: str, period: int) -> str:
    return (f"SEARCH('{{{NAMESPACE},Fleet,Node,Stack}} Stack=\"{stack}\" Fleet=\"{fleet}\" "
            f"MetricName=\"{metric}\"', '{stat}', {period})")


def dashboard_body(stack: str, region: str, target_groups: Sequence[tuple[str, str]],
                   load_balancer: Optional[str], period: int = 300) -> str:
    """Per fleet and per node, whatever the fleet's size: SEARCH() expands to every node's series at view time,
    so the widget count is fixed (a dashboard holds at most 500 widgets)."""
    widgets: list[dict[str, Any]] = []

    def graph(title: str, metrics: list, y: int, x: int) -> None:
        widgets.append({"type": "metric", "x": x, "y": y, "width": 12, "height": 6, "properties": {
            "title": title, "region": region, "view": "timeSeries", "stacked": False, "period": period,
            "metrics": metrics}})

    def growth(metric: str, fleet: str, label: str) -> list:
        # Counters exported as gauges: per node DIFF, and the fleet's total as their sum.
        return [[{"expression": _search(stack, fleet, metric, "Maximum", period), "id": "raw", "visible": False}],
                [{"expression": "DIFF(raw)", "id": "per_node", "label": f"{label} per node"}],
                [{"expression": "SUM(DIFF(raw))", "id": "fleet", "label": f"{label}, fleet"}]]

    graph("Requests (filtering)", growth("wallarm_requests", "filtering", "requests"), 0, 0)
    graph("Attacks (filtering)", growth("wallarm_attacks", "filtering", "attacks"), 0, 12)
    graph("tnt_errors: requests postanalytics never got", growth("wallarm_tnt_errors", "filtering", "tnt_errors"),
          6, 0)
    health = []
    for name, tg in target_groups:
        for metric, stat in (("HealthyHostCount", "Maximum"), ("UnHealthyHostCount", "Minimum")):
            health.append(["AWS/NetworkELB", metric, "TargetGroup", tg, "LoadBalancer", load_balancer or "",
                           {"stat": stat, "label": f"{name} {metric}"}])
    graph("Load balancer targets", health, 6, 12)
    graph("wstore timeframe (s; under 900 breaks the 15-minute rule)",
          [[{"expression": _search(stack, "postanalytics", "wallarm_wstore_request_storage_timeframe_size",
                                   "Minimum", period), "id": "timeframe"}]], 12, 0)
    graph("Memory and disk used (%, the fullest node of each fleet)",
          [[NAMESPACE, m, "Stack", stack, "Fleet", f, {"stat": "Maximum", "label": f"{f} {m}"}]
           for f in ("filtering", "postanalytics") for m in HOST_METRICS], 12, 12)
    return json.dumps({"widgets": widgets}, sort_keys=True)
