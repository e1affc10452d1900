"""The team's tagging convention, applied by its AWS provider to everything, the tier's resources included."""

TEAM = "platform"


def tags(service: str) -> dict[str, str]:
    return {"Team": TEAM, "Service": service, "ManagedBy": "pulumi"}
