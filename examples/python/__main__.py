"""The platform team's program: its own AWS provider (region and default tags), its alert topic, and the Wallarm
tier in front of its application, every argument in code. The tier reads none of this stack's config; only the
team's own secret (the Wallarm token) comes from it."""

import pulumi
import pulumi_aws as aws

from components.naming import tags
from wallarm_tier.deployment import WallarmDeployment
from wallarm_tier.deploymentargs import WallarmDeploymentArgs

config = pulumi.Config()
aws_eu = aws.Provider("platform-eu", region="eu-central-1", default_tags={"tags": tags("edge")})
alerts = aws.sns.Topic("platform-alerts", opts=pulumi.ResourceOptions(provider=aws_eu))

edge = WallarmDeployment(
    "edge",
    WallarmDeploymentArgs(
        wallarm_cloud="EU",
        wallarm_token=config.require_secret("wallarmToken"),
        wallarm_node_group="platform-edge",
        protected_upstream="http://10.0.0.10:8080",
        ssh_allowed_cidrs=["203.0.113.10/32"],
        filtering_count=2,
        postanalytics_count=1,
        alarm_emails=["oncall@example.com"],
    ),
    # The tier's AWS resources, look-ups and load balancer waits use the team's provider.
    opts=pulumi.ResourceOptions(provider=aws_eu),
)

pulumi.export("url", edge.url)
pulumi.export("loadBalancerDnsName", edge.load_balancer_dns_name)
pulumi.export("filteringPrivateIps", edge.filtering_private_ips)
pulumi.export("alertTopicArn", alerts.arn)
