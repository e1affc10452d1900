"""The platform team's own components: a package named `components`, as in many Pulumi programs (and in the tier's
repository). The tier installs as `wallarm_tier`, so the two never collide."""
