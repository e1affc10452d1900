"""The component provider of the tier: serves WallarmDeployment (wallarm:index:WallarmDeployment) to programs in
any language. Pulumi runs `python <this directory> <engine address>` from provider/venv (pulumi/pulumi
sdk/python/cmd/pulumi-language-python RunPlugin); component_provider_host (pulumi/provider/experimental/host.py)
infers the schema from the component's annotations (analyzer.py) and constructs it with the inputs as a dict
(component.py construct). tests/test_package.py infers the same schema in-process and compares it with
provider/schema.json."""

from pulumi.provider.experimental import component_provider_host

from wallarm_tier.deployment import WallarmDeployment

PACKAGE = "wallarm"
"""The package of the type token: wallarm:index:WallarmDeployment (the host refuses another prefix)."""
COMPONENTS = [WallarmDeployment]

if __name__ == "__main__":
    component_provider_host(COMPONENTS, PACKAGE)
