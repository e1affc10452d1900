"""Wallarm filtering nodes and separate postanalytics servers on AWS: this stack's WallarmDeployment.

The settings come from the stack's config (Pulumi.yaml declares every key); components/deployment.py builds the tier.
"""

import pulumi

from components import settings
from components.deployment import WallarmDeployment
from components.deploymentargs import from_settings

s = settings.load()  # raises, every wrong setting at once, before any resource is declared
deployment = WallarmDeployment("wallarm", from_settings(s), validated=s)
for name, value in deployment.outputs.items():
    pulumi.export(name, value)
