"""Waits: the load balancer's view of a filtering node, asked of the account the AWS provider changes.

Creates, per filtering node (called from EntryPoint.register): `<node>-in-service`, whose create and update wait
until every target group reports the node healthy, and `<node>-drained`, whose delete waits until the load
balancer has drained the node (deregistrationDelay plus a margin). Both are dynamic resources
(`pulumi-python:dynamic:Resource`) that run boto3's ELBv2 waiters (`target_in_service`, `target_deregistered`).
With the wait off (waitForTargetHealth false, or an `aws:` key the waits cannot honour) both stay declared and do
nothing, so turning it off is an update that records "off" and never a delete that waits for a registered target.

Why a dynamic provider rather than a script run by local.Command (pulumi/pulumi sdk/python/lib/pulumi/dynamic):
- it runs as `python -m pulumi.dynamic` from the program's own virtualenv (sdk/python/dist/
  pulumi-resource-pulumi-python) in the project directory (the plugin's cwd is ctx.Pwd, sdk/go/common/resource/
  plugin/provider_plugin.go, which is the project root, pkg/engine/project.go getPwdMain), so boto3 is there and
  no command text holds a machine's path or the AWS CLI;
- the provider class pickles by reference (`components.waits.TargetWaits`, a module the project directory
  imports), so the state holds no code and no path, and `pulumi destroy` runs today's code;
- its `configure` receives the whole stack configuration, `aws:` keys included and secrets decrypted
  (pkg/resource/deploy/target.go, GetPackageConfig: "For dynamic providers, we always pass the full
  configuration"): the same settings pulumi-aws reads in the same operation, so the session below is built from
  them, static keys included, and no credential is ever an input, an argument or an output of these resources.
A WallarmDeployment given an AWS provider of its own (a consumer's `provider=` or `providers={"aws": ...}`) passes
that provider's region and profile as the `aws` input, and the waits ask with those instead of the stack's `aws:`
keys (which then configure another provider, or none). Only names travel, no credential: a provider given static
keys (`staticCredentials` true) cannot be followed, so its waits are off; the program warns (components/deployment.py).
The cost: that provider serves at most 4 calls at once (its gRPC server's ThreadPoolExecutor(max_workers=4)), so
many nodes replaced in one run are waited for 4 at a time (the engine's own default is 4 per CPU).
The dynamic provider ignores custom timeouts (its Create and Delete never read the request's timeout): the waiter's
Delay and MaxAttempts are the bound; the custom timeouts given here say the same for whoever reads the state.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Mapping, Optional, Sequence

import pulumi
from pulumi import dynamic

from .awsconfig import aws_settings, session, unhonoured

POLL_SECONDS = 15
"""How often the waiters ask (the AWS CLI's own delay)."""
IN_SERVICE_SECONDS = 900
"""How long a new node may take to pass the load balancer's health checks."""
DRAIN_MARGIN_SECONDS = 300
"""Added to deregistrationDelay: deregistration itself and the last health check take a few minutes."""
# A target still registered that is not draining is not leaving: the drain step has nothing to wait for.
STAYING = ("initial", "healthy", "unhealthy", "unavailable")


@dataclasses.dataclass(frozen=True)
class Target:
    target_group_arn: pulumi.Input[str]
    """The target group."""
    port: int
    """The port the node is registered on."""


def attempts(seconds: int) -> int:
    """Waiter attempts, POLL_SECONDS apart, that cover `seconds`."""
    return max(1, math.ceil(seconds / POLL_SECONDS))


def drain_seconds(deregistration_delay: int) -> int:
    return deregistration_delay + DRAIN_MARGIN_SECONDS


class TargetWaits(dynamic.ResourceProvider):
    """Create/update wait for in-service (kind "in-service"); delete waits for deregistered (kind "drain")."""

    # The pickle is `components.waits.TargetWaits` and nothing else (no captured value): nothing secret in it.
    serialize_as_secret_always = False
    FIELDS = ("kind", "node", "instanceId", "targets", "wait", "delay", "maxAttempts", "aws")

    def configure(self, req: dynamic.ConfigureRequest) -> None:
        self._aws = aws_settings(req.config._props)  # noqa: SLF001 - Config has no listing method

    def _client(self, props: Optional[Mapping[str, Any]] = None):
        """The ELBv2 client of the stack's account, or of the component's own provider (the `aws` input: its region
        and profile); None when an `aws:` key cannot be honoured (the program warned and declared the wait off; a
        destroy runs without the program, so it is checked here again): no wait then, rather than a wait that asks
        another account."""
        given = (props or {}).get("aws")
        if given:
            if given.get("staticCredentials"):
                return None
            aws = {k: v for k, v in given.items() if k in ("region", "profile") and v}
        else:
            aws = getattr(self, "_aws", {})
        return None if unhonoured(aws) else session(aws).client("elbv2")

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        changed = [k for k in self.FIELDS if olds.get(k) != news.get(k)]
        # A new instance is a new step (its drain runs when the old one goes); anything else is recorded in place.
        return dynamic.DiffResult(changes=bool(changed),
                                  replaces=[k for k in ("kind", "instanceId") if k in changed],
                                  delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        if props.get("kind") == "in-service" and props.get("wait") and (client := self._client(props)):
            wait_in_service(client, props)
        return dynamic.CreateResult(f"{props['node']}-{props['kind']}", {k: props.get(k) for k in self.FIELDS})

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        if news.get("kind") == "in-service" and news.get("wait") and (client := self._client(news)):
            wait_in_service(client, news)
        return dynamic.UpdateResult({k: news.get(k) for k in self.FIELDS})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        if props.get("kind") == "drain" and props.get("wait") and (client := self._client(props)):
            wait_drained(client, props)


def _config(props: Mapping[str, Any]) -> dict[str, int]:
    return {"Delay": int(props["delay"]), "MaxAttempts": int(props["maxAttempts"])}


def wait_in_service(client, props: Mapping[str, Any]) -> None:
    from botocore.exceptions import WaiterError
    waiter = client.get_waiter("target_in_service")
    for t in props["targets"]:
        try:
            waiter.wait(TargetGroupArn=t["targetGroupArn"], Targets=[{"Id": props["instanceId"], "Port": int(t["port"])}],
                        WaiterConfig=_config(props))
        except WaiterError as exc:
            raise RuntimeError(
                f"{props['node']} ({props['instanceId']}) is not in service in target group {t['targetGroupArn']} "
                f"port {t['port']} after {props['delay'] * props['maxAttempts']} s ({_reason(exc)}); see the health "
                "check troubleshooting in the docs") from None


def _state(client, arn: str, instance: str, port: int) -> Optional[str]:
    """The target's state, or None when the load balancer no longer knows it (or the group is gone)."""
    from botocore.exceptions import ClientError
    try:
        found = client.describe_target_health(TargetGroupArn=arn, Targets=[{"Id": instance, "Port": port}])
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("InvalidTarget", "TargetGroupNotFound"):
            return None
        raise
    states = [d["TargetHealth"]["State"] for d in found.get("TargetHealthDescriptions", [])]
    return states[0] if states else None


def wait_drained(client, props: Mapping[str, Any], settle: float = POLL_SECONDS) -> None:
    from botocore.exceptions import WaiterError
    waiter = client.get_waiter("target_deregistered")
    for t in props["targets"]:
        arn, port, instance = t["targetGroupArn"], int(t["port"]), props["instanceId"]
        state = _state(client, arn, instance, port)
        if state in STAYING:
            # The attachment was just deleted (it depends on this step) or was never deleted (the node stays).
            # DescribeTargetHealth is eventually consistent: ask once more before concluding that it stays.
            time.sleep(settle)
            state = _state(client, arn, instance, port)
        if state is None or state == "unused" or state in STAYING:
            continue  # gone (or its group is), or not leaving: nothing to drain
        try:
            waiter.wait(TargetGroupArn=arn, Targets=[{"Id": instance, "Port": port}], WaiterConfig=_config(props))
        except WaiterError as exc:
            raise RuntimeError(
                f"{props['node']} ({instance}) is still draining from target group {arn} port {port} after "
                f"{props['delay'] * props['maxAttempts']} s ({_reason(exc)})") from None


def _reason(exc) -> str:
    last = exc.last_response or {}
    if "Error" in last:
        return last["Error"].get("Message") or last["Error"].get("Code", "error")
    health = [d.get("TargetHealth", {}) for d in last.get("TargetHealthDescriptions", [])]
    return ", ".join(f"{h.get('State')}: {h.get('Reason', '')} {h.get('Description', '')}".strip() for h in health) \
        or str(exc)


class TargetWait(dynamic.Resource):
    """One wait step of one node: kind "in-service" or "drain"."""

    def __init__(self, name: str, kind: str, node: str, instance_id: pulumi.Input[str], targets: Sequence[Target],
                 wait: pulumi.Input[bool], seconds: int, opts: Optional[pulumi.ResourceOptions] = None,
                 aws: Optional[Mapping[str, Any]] = None):
        """aws: the region and profile of a component's own AWS provider (None: the stack's `aws:` keys); left out
        of the inputs when None, so that a stack's existing steps see no change."""
        timeout = f"{seconds + 60}s"
        timeouts = pulumi.CustomTimeouts(create=timeout, update=timeout) if kind == "in-service" else \
            pulumi.CustomTimeouts(delete=timeout)
        super().__init__(TargetWaits(), name, {
            "kind": kind, "node": node, "instanceId": instance_id,
            "targets": [{"targetGroupArn": t.target_group_arn, "port": t.port} for t in targets],
            "wait": wait, "delay": POLL_SECONDS, "maxAttempts": attempts(seconds),
            **({"aws": dict(aws)} if aws else {}),
        }, pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(custom_timeouts=timeouts)))


def retire_cli_drain(node: str, parent: pulumi.Resource) -> None:
    """Keeps the `<node>-drain` local command of stacks deployed before these waits, with its delete removed.

    Its state holds `aws elbv2 wait target-deregistered ...` as the command to run on delete. Were it dropped from
    the program, the engine would run that text for a target that stays registered (its attachment stays), fail
    after 600 s, and fail every later `pulumi up` the same way. Declared with no delete, it is updated (an update
    with no create or update text runs nothing) and its old text is gone. `ignore_changes=["triggers"]` keeps an
    old one from being replaced, which would run the old delete. It can go once every stack has run this version.
    """
    from pulumi_command import local
    local.Command(f"{node}-drain", add_previous_output_in_env=False,
                  opts=pulumi.ResourceOptions(parent=parent, ignore_changes=["triggers"]))
