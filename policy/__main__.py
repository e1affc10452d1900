"""The policy pack run by `pulumi preview --policy-pack policy` (and by the PR workflow)."""

from pulumi_policy import PolicyPack

from rules import POLICIES

# PolicyPack(...) serves the engine and blocks: keep it here, and the checks in rules.py where tests import them.
PolicyPack(name="wallarm-postanalytics", policies=POLICIES)
