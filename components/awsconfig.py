"""The stack's `aws:` settings read as pulumi-aws reads them, and a boto3 session for the same account.

The keys are pulumi-aws 7's provider configuration (pulumi_aws/config/vars.py). Each is either honoured by the
session below, harmless to a read-only ELB query (it neither picks the account nor the endpoint), or not honoured:
then the load balancer waits are turned off with a warning naming the key, never run with other credentials.
Values arrive as the engine stores config: strings, with lists and objects as JSON.
"""

from __future__ import annotations

import json
import re
from typing import Any, Mapping

HONOURED = ("region", "profile", "sharedConfigFiles", "sharedCredentialsFiles", "accessKey", "secretKey", "token",
            "assumeRoles", "stsRegion", "customCaBundle", "insecure", "httpProxy", "httpsProxy", "useFipsEndpoint",
            "useDualstackEndpoint", "maxRetries", "retryMode")
# Keys that restrict or decorate what the provider does, but do not change whom a read-only query asks.
HARMLESS = ("allowedAccountIds", "forbiddenAccountIds", "defaultTags", "ignoreTags", "skipCredentialsValidation",
            "skipMetadataApiCheck", "skipRegionValidation", "skipRequestingAccountId", "tagPolicyCompliance",
            "tokenBucketRateLimiterCapacity", "userAgents", "version")
WHY_NOT = {
    "endpoints": "it sends the provider's calls to other endpoints, which a wait would not ask",
    "assumeRoleWithWebIdentity": "a web identity token is not something the waits can present",
    "noProxy": "boto3 takes its proxy exceptions from the environment only (NO_PROXY)",
}
ROLE_KEYS = {"roleArn": "RoleArn", "sessionName": "RoleSessionName", "externalId": "ExternalId",
             "duration": "DurationSeconds", "policy": "Policy", "policyArns": "PolicyArns", "tags": "Tags",
             "transitiveTagKeys": "TransitiveTagKeys", "sourceIdentity": "SourceIdentity"}
SESSION_NAME = "wallarm-target-waits"


def aws_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The `aws:` keys of a stack's configuration (full keys such as `aws:region`), JSON values decoded."""
    out = {}
    for full, raw in config.items():
        if not full.startswith("aws:") or raw in (None, ""):
            continue
        value = raw
        if isinstance(raw, str) and raw[:1] in "[{":
            try:
                value = json.loads(raw)
            except ValueError:
                pass
        out[full[4:]] = value
    return out


def _seconds(duration: Any) -> int:
    """A Go duration as pulumi-aws takes it ("1h", "15m30s") in seconds; ValueError otherwise."""
    parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", str(duration))
    if not parts or not any(parts.groups()):
        raise ValueError(duration)
    h, m, s = (int(p or 0) for p in parts.groups())
    return 3600 * h + 60 * m + s


def unhonoured(aws: Mapping[str, Any]) -> list[str]:
    """One sentence per `aws:` setting the waits cannot honour; empty when they ask what the provider changes."""
    problems = []
    for key in sorted(aws):
        value = aws[key]
        if key in HONOURED or key in HARMLESS:
            if key in ("sharedConfigFiles", "sharedCredentialsFiles") and isinstance(value, list) and len(value) > 1:
                problems.append(f"aws:{key} lists {len(value)} files: boto3 reads one, so the waits could ask "
                                "another account than the provider")
            if key == "assumeRoles":
                roles = value if isinstance(value, list) else [value]
                for n, role in enumerate(roles):
                    if not isinstance(role, dict) or not role.get("roleArn"):
                        problems.append(f"aws:assumeRoles[{n}] has no roleArn")
                        continue
                    for extra in sorted(set(role) - set(ROLE_KEYS)):
                        problems.append(f"aws:assumeRoles[{n}].{extra} is not a setting the waits know")
                    if role.get("duration"):
                        try:
                            _seconds(role["duration"])
                        except ValueError:
                            problems.append(f"aws:assumeRoles[{n}].duration is {role['duration']!r}, not a duration "
                                            "such as 1h or 15m")
            continue
        problems.append(f"aws:{key} is set: {WHY_NOT.get(key, 'the waits do not know this key')}")
    return problems


def _role_args(role: Mapping[str, Any]) -> dict[str, Any]:
    args: dict[str, Any] = {"RoleSessionName": SESSION_NAME}
    for key, arg in ROLE_KEYS.items():
        value: Any = role.get(key)
        if value in (None, "", [], {}):
            continue
        if key == "duration":
            value = _seconds(value)
        elif key == "policyArns":
            value = [{"arn": arn} for arn in value]
        elif key == "tags":
            value = [{"Key": k, "Value": v} for k, v in sorted(value.items())]
        args[arg] = value
    return args


def _flag(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def session(aws: Mapping[str, Any]):
    """A boto3 Session for the account the stack's AWS provider uses: profile and shared files, static keys, then
    each role of `assumeRoles` in turn (pulumi-aws assumes them in order, each with the previous credentials).
    Callers must have checked `unhonoured(aws)` first."""
    import boto3
    import botocore.session

    if unhonoured(aws):
        raise ValueError("; ".join(unhonoured(aws)))
    core = botocore.session.Session()
    for key, variable in (("sharedConfigFiles", "config_file"), ("sharedCredentialsFiles", "credentials_file")):
        files = aws.get(key)
        if files:
            core.set_config_variable(variable, files[0] if isinstance(files, list) else files)
    region = aws.get("region")
    keys = {}
    if aws.get("accessKey") and aws.get("secretKey"):
        keys = {"aws_access_key_id": aws["accessKey"], "aws_secret_access_key": aws["secretKey"],
                "aws_session_token": aws.get("token") or None}
    current = boto3.Session(botocore_session=core, profile_name=aws.get("profile") or None, region_name=region, **keys)
    options = client_options(aws)
    for role in aws.get("assumeRoles") or []:
        sts = current.client("sts", region_name=aws.get("stsRegion") or current.region_name, **options)
        creds = sts.assume_role(**_role_args(role))["Credentials"]
        current = boto3.Session(aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                                aws_session_token=creds["SessionToken"], region_name=current.region_name)
    return _Bound(current, options)


def client_options(aws: Mapping[str, Any]) -> dict[str, Any]:
    """What pulumi-aws's transport settings become for a boto3 client."""
    import botocore.config

    config: dict[str, Any] = {}
    proxies = {scheme: aws[key] for scheme, key in (("http", "httpProxy"), ("https", "httpsProxy")) if aws.get(key)}
    if proxies:
        config["proxies"] = proxies
    if _flag(aws.get("useFipsEndpoint")):
        config["use_fips_endpoint"] = True
    if _flag(aws.get("useDualstackEndpoint")):
        config["use_dualstack_endpoint"] = True
    retries: dict[str, Any] = {}
    if aws.get("maxRetries") not in (None, ""):
        retries["max_attempts"] = int(aws["maxRetries"])
    if aws.get("retryMode"):
        retries["mode"] = str(aws["retryMode"])
    if retries:
        config["retries"] = retries
    options: dict[str, Any] = {"config": botocore.config.Config(**config)} if config else {}
    if _flag(aws.get("insecure")):
        options["verify"] = False
    elif aws.get("customCaBundle"):
        options["verify"] = aws["customCaBundle"]
    return options


class _Bound:
    """A session whose clients carry the transport options (proxies, CA bundle, FIPS) the provider uses."""

    def __init__(self, boto_session, options: dict[str, Any]):
        self.session, self.options = boto_session, options

    @property
    def region_name(self):
        return self.session.region_name

    def client(self, service: str):
        return self.session.client(service, **self.options)
