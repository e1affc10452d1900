"""Wallarm filtering nodes and separate postanalytics servers on AWS: this stack's WallarmDeployment.

The settings come from the stack's config (Pulumi.yaml declares every key); components/deployment.py builds the tier.
"""

import gc

import pulumi

from components import settings
from components.deployment import WallarmDeployment
from components.deploymentargs import from_settings

# The SDK keeps every resource's Outputs and futures alive to the end, so with the default thresholds (a young
# collection every 700 allocations) the cycle collector rescans an ever larger heap: 40% of the program's CPU time
# at 200 nodes under the mocks, more at 500 (docs/testing.md, "The benchmark"). Rarer young collections keep
# memory bounded and the time per node flat; 1,000,000 rather than 100,000: 10% less CPU at 4x196, the same peak
# memory. Set here, by the stack's program, not on import of the component: a consumer's process is its own.
gc.set_threshold(1_000_000, 50, 10)

s = settings.load()  # raises, every wrong setting at once, before any resource is declared
deployment = WallarmDeployment("wallarm", from_settings(s), validated=s)
for name, value in deployment.outputs.items():
    pulumi.export(name, value)
