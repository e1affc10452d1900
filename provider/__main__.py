"""The component provider of the tier: serves WallarmDeployment (wallarm:index:WallarmDeployment) to programs in
any language. Pulumi runs `python <this directory> <engine address>` from provider/venv (pulumi/pulumi
sdk/python/cmd/pulumi-language-python RunPlugin); component_provider_host (pulumi/provider/experimental/host.py)
infers the schema from the component's annotations (analyzer.py) and constructs it with the inputs as a dict
(component.py construct). tests/repo/test_package.py infers the same schema in-process and compares it with
provider/schema.json, and constructs the component through PROVIDER under the mocks."""

from typing import Any

import pulumi.provider.experimental.host as host
from pulumi.provider.experimental import component_provider_host
from pulumi.provider.experimental.analyzer import PropertyDefinition, PropertyType
from pulumi.provider.experimental.component import ComponentProvider

from wallarm_tier.deployment import WallarmDeployment

PACKAGE = "wallarm"
"""The package of the type token: wallarm:index:WallarmDeployment (the host refuses another prefix)."""
COMPONENTS = [WallarmDeployment]


class WallarmProvider(ComponentProvider):
    """The SDK's ComponentProvider with one fix. Numbers arrive as floats (a protobuf Struct has only doubles), and
    map_input_properties means to turn an integer property back into an int, but its next line stores the float
    again (pulumi 3.272 and pulumi/pulumi HEAD, sdk/python/lib/pulumi/provider/experimental/component.py, after
    "Integers are sent as floats over the write"): filteringCount 2 would reach the component as 2.0, which the
    settings refuse ("it must be a whole number")."""

    def map_input_properties(self, inputs: Any, properties: dict[str, PropertyDefinition], mapping: dict[str, str],
                             component_name: str, property_path: str) -> Any:
        mapped = super().map_input_properties(inputs, properties, mapping, component_name, property_path)
        for schema_name, prop in properties.items():
            value = mapped.get(mapping[schema_name]) if isinstance(mapped, dict) else None
            if prop.type == PropertyType.INTEGER and isinstance(value, float) and value.is_integer():
                mapped[mapping[schema_name]] = int(value)
        return mapped


PROVIDER = WallarmProvider

if __name__ == "__main__":
    host.ComponentProvider = WallarmProvider  # component_provider_host builds host.ComponentProvider(...)
    component_provider_host(COMPONENTS, PACKAGE)
