"""Least privilege: the deploy role's policy (iam/deploy-policy.json) lists the AWS actions that the resource types
and data sources the program declares need (no service wildcard, so the deployer-group tag condition means
something), scoped by the Role tag where AWS evaluates tags; the preview role (iam/preview-policy.json) reads only.
The types come from the real program under the mocks, for every variant that adds a type, so a new resource type
without its actions in the table below, or without them in the policy, fails here.

Actions per type: AWS's Service Authorization Reference, Amazon EC2
(https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonec2.html) and Elastic Load
Balancing V2 (.../list_awselasticloadbalancingv2.html), CloudWatch (list_amazoncloudwatch.html), CloudWatch Logs
(list_amazoncloudwatchlogs.html), IAM (list_awsidentityandaccessmanagementiam.html) and SNS (list_amazonsns.html):
the API calls the provider makes to create, read, update
and delete each type (pulumi-aws wraps the Terraform AWS provider's resources of the same name)."""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path

import pytest

from components.monitoring import AGENT_BOUNDARY, IAM_PATH
from tests.conftest import VARIANTS, program_run

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = json.loads((ROOT / "iam" / "deploy-policy.json").read_text())
PREVIEW = json.loads((ROOT / "iam" / "preview-policy.json").read_text())

READ = ["ec2:Describe*"]
LB_READ = ["elasticloadbalancing:Describe*"]
# resource type or data source -> (actions a refresh reads, actions a deploy changes with)
TYPE_ACTIONS: dict[str, tuple[list[str], list[str]]] = {
    "aws:ec2/instance:Instance": (READ, [
        "ec2:RunInstances", "ec2:CreateTags", "ec2:TerminateInstances", "ec2:ModifyInstanceAttribute",
        "ec2:ModifyInstanceMetadataOptions", "ec2:StopInstances", "ec2:StartInstances", "ec2:ModifyVolume",
        # The CloudWatch agent's instance profile (components/monitoring.py): RunInstances with a profile and
        # AssociateIamInstanceProfile pass its role (iam:PassRole).
        "ec2:AssociateIamInstanceProfile", "ec2:DisassociateIamInstanceProfile",
        "ec2:ReplaceIamInstanceProfileAssociation", "iam:PassRole"]),
    "aws:ec2/keyPair:KeyPair": (READ, ["ec2:ImportKeyPair", "ec2:DeleteKeyPair", "ec2:CreateTags"]),
    # The provider revokes the group's default allow-all egress rule right after creating it.
    "aws:ec2/securityGroup:SecurityGroup": (READ, [
        "ec2:CreateSecurityGroup", "ec2:DeleteSecurityGroup", "ec2:RevokeSecurityGroupEgress", "ec2:CreateTags",
        "ec2:DeleteTags"]),
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": (READ, [
        "ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress", "ec2:ModifySecurityGroupRules",
        "ec2:UpdateSecurityGroupRuleDescriptionsIngress", "ec2:CreateTags"]),
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": (READ, [
        "ec2:AuthorizeSecurityGroupEgress", "ec2:RevokeSecurityGroupEgress", "ec2:ModifySecurityGroupRules",
        "ec2:UpdateSecurityGroupRuleDescriptionsEgress", "ec2:CreateTags"]),
    "aws:ec2/eip:Eip": (READ, [
        "ec2:AllocateAddress", "ec2:ReleaseAddress", "ec2:AssociateAddress", "ec2:DisassociateAddress",
        "ec2:CreateTags"]),
    # awsx's Vpc component (pulumi-awsx awsx/ec2/vpc.ts) creates the VPC, its subnets, route tables and routes,
    # the internet gateway, the NAT gateways and their Elastic IPs.
    "awsx:ec2:Vpc": (READ, [
        "ec2:CreateVpc", "ec2:DeleteVpc", "ec2:ModifyVpcAttribute", "ec2:CreateSubnet", "ec2:DeleteSubnet",
        "ec2:ModifySubnetAttribute", "ec2:CreateRouteTable", "ec2:DeleteRouteTable", "ec2:AssociateRouteTable",
        "ec2:DisassociateRouteTable", "ec2:CreateRoute", "ec2:DeleteRoute", "ec2:ReplaceRoute",
        "ec2:CreateInternetGateway", "ec2:DeleteInternetGateway", "ec2:AttachInternetGateway",
        "ec2:DetachInternetGateway", "ec2:CreateNatGateway", "ec2:DeleteNatGateway", "ec2:AllocateAddress",
        "ec2:ReleaseAddress", "ec2:DisassociateAddress", "ec2:CreateTags", "ec2:DeleteTags"]),
    "aws:lb/loadBalancer:LoadBalancer": (LB_READ, [
        "elasticloadbalancing:CreateLoadBalancer", "elasticloadbalancing:DeleteLoadBalancer",
        "elasticloadbalancing:ModifyLoadBalancerAttributes", "elasticloadbalancing:SetSubnets",
        "elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags"]),
    "aws:lb/targetGroup:TargetGroup": (LB_READ, [
        "elasticloadbalancing:CreateTargetGroup", "elasticloadbalancing:DeleteTargetGroup",
        "elasticloadbalancing:ModifyTargetGroup", "elasticloadbalancing:ModifyTargetGroupAttributes",
        "elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags"]),
    "aws:lb/listener:Listener": (LB_READ, [
        "elasticloadbalancing:CreateListener", "elasticloadbalancing:DeleteListener",
        "elasticloadbalancing:ModifyListener", "elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags"]),
    "aws:lb/targetGroupAttachment:TargetGroupAttachment": (LB_READ, [
        "elasticloadbalancing:RegisterTargets", "elasticloadbalancing:DeregisterTargets"]),
    # The load balancer waits (components/waits.py, a dynamic provider in the program's own environment): boto3's
    # target_in_service / target_deregistered waiters call DescribeTargetHealth. The local commands left are the
    # rollout's barrier and the former drain steps, which run nothing.
    "pulumi-python:dynamic:Resource": (LB_READ, []),
    "command:local:Command": ([], []),
    # Monitoring (components/monitoring.py).
    "aws:cloudwatch/metricAlarm:MetricAlarm": (["cloudwatch:DescribeAlarms", "cloudwatch:ListTagsForResource"], [
        "cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms", "cloudwatch:TagResource", "cloudwatch:UntagResource"]),
    "aws:cloudwatch/dashboard:Dashboard": (["cloudwatch:GetDashboard"], [
        "cloudwatch:PutDashboard", "cloudwatch:DeleteDashboards"]),
    "aws:cloudwatch/logGroup:LogGroup": (["logs:DescribeLogGroups", "logs:ListTagsForResource"], [
        "logs:CreateLogGroup", "logs:DeleteLogGroup", "logs:PutRetentionPolicy", "logs:DeleteRetentionPolicy",
        "logs:TagResource", "logs:UntagResource"]),
    "aws:sns/topic:Topic": (["sns:GetTopicAttributes", "sns:ListTagsForResource"], [
        "sns:CreateTopic", "sns:DeleteTopic", "sns:SetTopicAttributes", "sns:TagResource", "sns:UntagResource"]),
    "aws:sns/topicSubscription:TopicSubscription": (["sns:GetSubscriptionAttributes"], [
        "sns:Subscribe", "sns:Unsubscribe", "sns:SetSubscriptionAttributes"]),
    # The agent's role: deleting it first detaches it from its instance profiles (the Terraform provider's
    # resourceRoleDelete), creating it sets its permissions boundary.
    "aws:iam/role:Role": (["iam:GetRole", "iam:ListRolePolicies", "iam:ListAttachedRolePolicies"], [
        "iam:CreateRole", "iam:PutRolePermissionsBoundary", "iam:DeleteRole", "iam:UpdateRole",
        "iam:UpdateRoleDescription", "iam:UpdateAssumeRolePolicy", "iam:TagRole", "iam:UntagRole",
        "iam:ListInstanceProfilesForRole", "iam:RemoveRoleFromInstanceProfile"]),
    "aws:iam/rolePolicy:RolePolicy": (["iam:GetRolePolicy"], ["iam:PutRolePolicy", "iam:DeleteRolePolicy"]),
    # AddRoleToInstanceProfile passes the role.
    "aws:iam/instanceProfile:InstanceProfile": (["iam:GetInstanceProfile"], [
        "iam:CreateInstanceProfile", "iam:DeleteInstanceProfile", "iam:AddRoleToInstanceProfile",
        "iam:RemoveRoleFromInstanceProfile", "iam:TagInstanceProfile", "iam:UntagInstanceProfile", "iam:PassRole"]),
    # Data sources (invokes).
    "aws:ec2/getAmi:getAmi": (READ, []),
    "aws:index/getAvailabilityZones:getAvailabilityZones": (READ, []),
    "aws:ec2/getInstanceType:getInstanceType": (READ, []),
    "aws:ec2/getInstanceTypeOfferings:getInstanceTypeOfferings": (READ, []),
    "aws:ec2/getSubnet:getSubnet": (READ, []),
    "aws:ec2/getVpc:getVpc": (READ, []),
    # The provider's own region (components/deployment.py); ec2:DescribeRegions where the provider asks EC2 at all.
    "aws:index/getRegion:getRegion": (READ, []),
    # The provider checks its credentials first.
    "provider": (["sts:GetCallerIdentity"], []),
}
# Types that call no AWS API: the project's components, SSH steps, and pulumi-tls (local key material).
NO_AWS = ("wallarm:", "command:remote:", "tls:", "pulumi:")
# What the workflows do besides Pulumi: the deploy opens and closes the deployer group, the drift check reads it;
# both use the state bucket.
PIPELINE_DEPLOY = ["ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress",
                   "ec2:DescribeSecurityGroupRules", "s3:ListBucket", "s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
PIPELINE_PREVIEW = ["ec2:DescribeSecurityGroupRules", "s3:ListBucket", "s3:GetObject"]
# Variants that add a type or a data source (an ACM listener; no jump host; alarm emails; an existing VPC).
EXTRA_VARIANTS = [
    {"alarmEmails": ["ops@example.com"]},
    {"tlsCertificateArn": "arn:aws:acm:eu-central-1:123456789012:certificate/0b1c2d3e-aaaa-bbbb-cccc-0123456789ab"},
    {"jumpHost": False},
]


def _declared() -> set[str]:
    """Every resource type and data source the program declares, over the variants."""
    found = {"provider"}
    for overrides in [*VARIANTS.values(), *EXTRA_VARIANTS]:
        run = program_run(**overrides)
        found |= {r.typ for r in run.mocks.resources}
        found |= {token for token, _ in run.mocks.invokes}
    return found


def _allows(policy: dict, action: str) -> list[dict]:
    return [s for s in policy["Statement"] if s["Effect"] == "Allow"
            and any(fnmatch.fnmatchcase(action.lower(), pattern.lower()) for pattern in _list(s["Action"]))]


def _list(value) -> list:
    return value if isinstance(value, list) else [value]


def _actions(policy: dict) -> set[str]:
    return {a for s in policy["Statement"] for a in _list(s["Action"])}


@pytest.fixture(scope="module")
def declared() -> set[str]:
    return _declared()


def test_every_declared_type_has_its_actions_in_the_table(declared):
    """Guards against a new resource type or data source that the deploy role cannot create or read: add its
    actions (Service Authorization Reference) to TYPE_ACTIONS and to iam/deploy-policy.json."""
    unknown = sorted(t for t in declared if t not in TYPE_ACTIONS and not t.startswith(NO_AWS))
    assert not unknown, f"no IAM actions known for {unknown}"
    assert "awsx:ec2:Vpc" in declared and "aws:ec2/instance:Instance" in declared


def test_the_deploy_policy_allows_what_the_program_and_the_pipeline_do(declared):
    """Guards against a deploy that fails half-way on AccessDenied."""
    needed = {a for t in declared if t in TYPE_ACTIONS for part in TYPE_ACTIONS[t] for a in part}
    missing = sorted(a for a in needed | set(PIPELINE_DEPLOY) if not _allows(DEPLOY, a))
    assert not missing, f"iam/deploy-policy.json does not allow {missing}"


def test_the_deploy_policy_allows_nothing_else(declared):
    """Guards against `ec2:*` (which makes the deployer-group tag condition meaningless) or an action nobody needs:
    every action is named (wildcards only for read-only Describe*), each needed by a declared type or the pipeline
    (IAM actions only as test_iam_actions_reach_only_the_agent_role_under_its_boundary allows them)."""
    needed = {a.lower() for t in declared if t in TYPE_ACTIONS for part in TYPE_ACTIONS[t] for a in part}
    needed |= {a.lower() for a in PIPELINE_DEPLOY}
    for action in _actions(DEPLOY):
        assert "*" not in action or action.endswith(":Describe*"), f"wildcard {action}"
        assert action.lower() in needed, f"iam/deploy-policy.json allows {action}, which no declared type needs"


def test_changes_to_instances_and_groups_are_scoped_by_their_role_tag():
    """Guards against a deploy role that may terminate any instance or open any security group of the account:
    those changes need the Role tag the program sets, and that tag can be set only when a resource is created
    (never added to someone else's instance afterwards)."""
    for action, kind in [("ec2:TerminateInstances", "instance"), ("ec2:ModifyInstanceAttribute", "instance"),
                         ("ec2:AuthorizeSecurityGroupIngress", "security-group"),
                         ("ec2:DeleteSecurityGroup", "security-group")]:
        statements = [s for s in _allows(DEPLOY, action) if any(f":{kind}/" in r for r in _list(s["Resource"]))]
        assert statements, action
        for s in statements:
            assert "aws:ResourceTag/Role" in s["Condition"]["StringEquals"], f"{action} in {s['Sid']} is unscoped"
        unscoped = [s for s in _allows(DEPLOY, action) if s["Resource"] == "*" or s["Resource"] == ["*"]]
        assert not unscoped, f"{action} is also allowed on every resource by {[s['Sid'] for s in unscoped]}"
    for s in _allows(DEPLOY, "ec2:CreateTags"):
        condition = s.get("Condition", {})
        at_creation = "ec2:CreateAction" in condition.get("StringEquals", {})
        without_role = condition.get("ForAllValues:StringNotEquals", {}).get("aws:TagKeys") == ["Role"]
        assert at_creation or without_role, f"{s['Sid']} lets the deploy role tag any resource Role=..."
    deployer = [s for s in _allows(DEPLOY, "ec2:RevokeSecurityGroupIngress")
                if s.get("Condition", {}).get("StringEquals", {}).get("aws:ResourceTag/Role") == "deployer"]
    assert deployer, "the deploy workflow opens and closes only the group tagged Role=deployer"


def test_no_role_without_a_permissions_boundary(declared):
    """Guards against the program creating an IAM role that could hold more than the deploy role: any role it
    declares carries the permissions boundary and the path that the deploy policy requires of a role it creates."""
    roles = 0
    for overrides in [*VARIANTS.values(), *EXTRA_VARIANTS]:
        for r in program_run(**overrides).mocks.resources:
            if r.typ == "aws:iam/role:Role":
                roles += 1
                assert r.inputs.get("permissionsBoundary") == AGENT_BOUNDARY, f"{r.urn} has no permissions boundary"
            if r.typ in ("aws:iam/role:Role", "aws:iam/instanceProfile:InstanceProfile"):
                assert r.inputs.get("path") == IAM_PATH, f"{r.urn} is not under {IAM_PATH}"
    assert roles, "the CloudWatch agent's role is declared"


def test_iam_actions_reach_only_the_agent_role_under_its_boundary():
    """Guards against a deploy role that can widen itself: every iam: action names resources under /wallarm/ only
    (never "*"), a role can be created or given an inline policy only with the agent's boundary (so no role it makes
    holds more than CloudWatchAgentServerPolicy), and the role can be passed to EC2 only."""
    prefixes = (f"arn:aws:iam::*:role{IAM_PATH}", f"arn:aws:iam::*:instance-profile{IAM_PATH}")
    iam = [s for s in DEPLOY["Statement"] if any(a.startswith("iam:") for a in _list(s["Action"]))]
    assert iam
    for s in iam:
        assert all(a.startswith("iam:") for a in _list(s["Action"])), s["Sid"]
        assert all(r.startswith(prefixes) for r in _list(s["Resource"])), f"{s['Sid']} reaches beyond {IAM_PATH}"
    for action in ("iam:CreateRole", "iam:PutRolePolicy", "iam:PutRolePermissionsBoundary"):
        for s in _allows(DEPLOY, action):
            assert s["Condition"]["StringEquals"]["iam:PermissionsBoundary"] == AGENT_BOUNDARY, (action, s["Sid"])
    for s in _allows(DEPLOY, "iam:PassRole"):
        assert s["Condition"]["StringEquals"]["iam:PassedToService"] == "ec2.amazonaws.com", s["Sid"]
    assert not _allows(DEPLOY, "iam:AttachRolePolicy") and not _allows(DEPLOY, "iam:CreatePolicy")


def test_the_preview_role_only_reads(declared):
    """Guards against a preview role (used by pull-request code) that can change anything, or that is the broad
    ReadOnlyAccess (which reads every service, S3 objects and secrets included): Describe/Get/List of the
    services the program uses, and the state bucket read-only."""
    needed = {a for t in declared if t in TYPE_ACTIONS for a in TYPE_ACTIONS[t][0]} | set(PIPELINE_PREVIEW)
    missing = sorted(a for a in needed if not _allows(PREVIEW, a))
    assert not missing, f"iam/preview-policy.json does not allow {missing}"
    for action in _actions(PREVIEW):
        service, _, name = action.partition(":")
        assert service in ("ec2", "elasticloadbalancing", "sts", "s3", "cloudwatch", "logs", "sns", "iam"), action
        assert name.startswith(("Describe", "Get", "List")), f"{action} is not a read"
    assert not _allows(PREVIEW, "s3:PutObject") and not _allows(PREVIEW, "ec2:RunInstances")
    for s in PREVIEW["Statement"]:
        if any(a.startswith("iam:") for a in _list(s["Action"])):
            assert "*" not in _list(s["Resource"]), f"{s['Sid']} reads every role of the account"
