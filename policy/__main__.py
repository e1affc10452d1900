"""The policy pack run by `pulumi preview --policy-pack policy` and `pulumi up --policy-pack policy` (all three
workflows). The checks live in rules.py, where tests import them without starting the pack."""

from pulumi_policy import EnforcementLevel, PolicyPack

from rules import POLICIES

# PolicyPack(...) serves the engine over gRPC and blocks: it is constructed here only.
PolicyPack(name="wallarm-postanalytics", policies=POLICIES, enforcement_level=EnforcementLevel.MANDATORY)
