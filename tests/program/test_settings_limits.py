"""Settings that each pass a per-value check but still reach something dangerous are refused by name, in one
sentence, before any resource: the aggregate width of a CIDR list, ports that belong to other services, integers
too long to convert, booleans that are not true or false, and the value of a mistyped secret key."""

from __future__ import annotations

import pytest

from components.settings import SettingsError
from harness.program import run_program, stack_config

SIXTY_SLASH_8 = [f"{i}.0.0.0/8" for i in range(11, 71)]

BAD = [
    ("sixty-slash-8-for-ssh", {"sshAllowedCidrs": SIXTY_SLASH_8},
     ["sshAllowedCidrs", "60 ranges", "1,006,632,960 addresses", "23.4% of IPv4", "one /8"]),
    ("three-slash-9-for-ssh", {"sshAllowedCidrs": ["11.0.0.0/9", "12.0.0.0/9", "13.0.0.0/9"]},
     ["sshAllowedCidrs", "3 ranges", "25,165,824 addresses", "16,777,216 (one /8)"]),
    ("two-slash-16-for-wstore", {"externalFilteringCidrs": ["10.1.0.0/16", "10.2.0.0/16"]},
     ["externalFilteringCidrs", "131,072 addresses", "one /16"]),
    ("wstore-tls-on-ssh", {"wstoreTlsPort": 22}, ["wstoreTlsPort is 22", "SSH", "22, 80, 443"]),
    ("wstore-on-http", {"wstorePort": 80}, ["wstorePort is 80", "the clients' HTTP"]),
    ("health-on-https", {"healthCheckPort": 443}, ["healthCheckPort", "443"]),
    ("health-on-wstore", {"healthCheckPort": 6388}, ["healthCheckPort is 6388", "collides with wstore's port (wstoreTlsPort)"]),
    ("integer-5000-digits", {"filteringCount": "9" * 5000}, ["filteringCount is a 5000-digit number", "at most 9 digits"]),
    ("integer-10-digits", {"rootVolumeGb": "1" * 10}, ["rootVolumeGb is a 10-digit number"]),
    ("boolean-yes-please", {"waitForTargetHealth": "yes-please"}, ["waitForTargetHealth is 'yes-please'", "true or false"]),
    ("boolean-yes", {"jumpHost": "yes"}, ["jumpHost is 'yes'", "true or false"]),
]


@pytest.mark.parametrize("overrides,words", [(o, w) for _, o, w in BAD], ids=[c for c, _, _ in BAD])
def test_a_dangerous_combination_stops_before_any_resource(overrides, words):
    """Guards against 60 /8s opening SSH to a quarter of IPv4, wstore TLS on port 22 opening SSH between the
    fleets, a bare traceback for a huge integer, and `yes-please` silently read as false."""
    run = run_program(stack_config("dev", **overrides))
    assert isinstance(run.error, SettingsError), f"{overrides} was accepted (error: {run.error!r})"
    message = str(run.error)
    for word in words:
        assert word in message, f"message for {overrides} lacks {word!r}: {message}"
    assert "\n" not in message and message.count(". ") == 0 and message.endswith("."), message
    assert run.mocks.resources == [], f"{len(run.mocks.resources)} resources were registered before the error"


@pytest.mark.parametrize("overrides", [
    {"sshAllowedCidrs": ["11.0.0.0/9", "11.128.0.0/9"]},   # together exactly one /8
    {"externalFilteringCidrs": ["10.1.0.0/17", "10.1.128.0/17"]},
    {"waitForTargetHealth": "false"}, {"waitForTargetHealth": "TRUE"},
    {"filteringCount": "3"}, {"wstoreTlsPort": 8443},
])
def test_near_misses_pass(overrides):
    """Guards against limits that refuse what is allowed: adjacent ranges that add up to the widest single range."""
    run = run_program(stack_config("dev", **overrides))
    assert run.error is None, run.error


@pytest.mark.parametrize("key", ["sshPrivatekey", "sshprivatekey", "wallarmtoken", "wallarmTokn", "myPassword"])
def test_a_mistyped_secret_key_never_prints_its_value(key):
    """Guards against a secret under a mistyped key (which the CLI does not know to mask) printed in the error."""
    value = "-----BEGIN OPENSSH PRIVATE KEY----- b3BlbnNzaC1rZXktdjEAAAAA" if "ssh" in key.lower() \
        else "SUPERSECRETVALUE0123456789abcdef"
    run = run_program(stack_config("dev", **{key: value}))
    assert isinstance(run.error, SettingsError), run.error
    message = str(run.error)
    assert f"wallarm-postanalytics:{key} is (secret)" in message
    assert value not in message and value[:12] not in message and "b3BlbnNzaC1" not in message
    assert run.mocks.resources == []
