"""The settings' rule table and named cross-key checks as pure functions (components/settings/), and from_values, the
entry point of a program that gives the values rather than a stack file."""

from __future__ import annotations

import pulumi
import pytest

from components import settings
from components.settings import cross, rules, validate
from components.settings.model import Errors, InstanceShape, SettingsError, declared_keys
from components.settings.reader import parse
from harness.program import PROJECT, STAND_IN_TOKEN, run_program, stack_config

SHAPES = {"m6i.large": (8.0, ["x86_64"]), "c6i.large": (4.0, ["x86_64"]), "t4g.nano": (0.5, ["arm64"]),
          "t3.large": (8.0, ["x86_64"]), "t3.medium": (4.0, ["x86_64"]), "c7g.large": (4.0, ["arm64"])}
REQUIRED = {"wallarmCloud": "EU", "protectedUpstream": "http://10.0.0.10:8080", "sshAllowedCidrs": ["198.51.100.7/32"],
            "wallarmNodeGroup": "edge"}
TOKEN = "A" * 24
ARN = "arn:aws:acm:{}:123456789012:certificate/01234567-89ab-cdef-0123-456789abcdef"
SUBNET = "subnet-0123456789abcdef0"


def lookup(instance_type):
    return SHAPES.get(instance_type)


def checked(unset=(), given=(), **values) -> rules.Checked:
    """The checked values of the required ones plus `values` set by the user (as the cross-key checks see them),
    then the given values laid over as they are, so that a check sees a combination the rules alone would refuse."""
    e = Errors()
    base = {k: v for k, v in {**REQUIRED, "wallarmToken": TOKEN}.items() if k not in unset}
    c = validate.resolve(rules.apply(base, frozenset(base), e, declared_keys()), "eu-central-1", lookup, e)
    assert not e.messages, e.messages
    c.update(values)
    c.given = frozenset((set(c.given) | set(values) | set(given)) - set(unset))
    return c


def test_every_declared_key_has_one_rule_of_its_declared_type():
    """Guards against a key added to Pulumi.yaml that no rule checks, a rule left behind for a key removed from
    it, and a rule whose type is not the declared one."""
    decls = declared_keys()
    keys = [rule.key for rule in rules.RULES]
    assert len(keys) == len(set(keys)), f"a key has two rules: {sorted(k for k in keys if keys.count(k) > 1)}"
    assert not set(decls) - set(keys), f"declared in Pulumi.yaml without a rule: {sorted(set(decls) - set(keys))}"
    assert not set(keys) - set(decls), f"rules of undeclared keys: {sorted(set(keys) - set(decls))}"
    for rule in rules.RULES:
        assert rules.TYPES[decls[rule.key].get("type", "string")] is rule.type, rule.key
        assert rule.only_if is None or rules.BY_KEY[rule.only_if].type is bool, rule.key


def test_the_declared_defaults_pass_their_rules():
    """Guards against a default in Pulumi.yaml that its own rule refuses (every stack would fail on it)."""
    e = Errors()
    rules.apply(REQUIRED, frozenset(REQUIRED), e, declared_keys())
    assert e.messages == ["wallarmToken is not set: it is required, set it with `pulumi config set --secret "
                          "wallarmToken <token>`."]


# One wrong value per key that has checks, and a word of its sentence.
BAD = {
    "wallarmCloud": ("EX", "allowed values are US, EU, ME"), "wallarmToken": ("short", "(secret)"),
    "wallarmTokenType": ("root", "allowed values are api, node"), "wallarmNodeGroup": ("a b", "1 to 64"),
    "wallarmVersion": ("6.1.0", "6.2.0 or later"), "postanalyticsVersion": ("6.x", "X.Y.Z"),
    "filteringVersion": ("5.3.0", "X.Y.Z"), "installerSha256": (["6.12.1/x86_64=abc"], "VERSION/ARCH=SHA256"),
    "wallarmMode": ("on", "allowed values"), "postanalyticsCount": (0, "from 1 to 50"),
    "postanalyticsInstanceType": ("m6i.largest", "m6i comes in"), "slabAllocArena": ("2,0", "positive number of GB"),
    "wstorePort": (22, "belongs to SSH"), "wstoreTlsPort": (70000, "from 1 to 65535"),
    "certValidityHours": (12, "from 24 to 87600"), "caGeneration": (0, "from 1 to 9999"),
    "caRotation": ("rotate", "allowed values"), "filteringCount": (501, "from 1 to 500"),
    "filteringInstanceType": ("c6i", "an EC2 instance type"), "protectedUpstream": ("http://localhost", "this host"),
    "protectedUpstreamCaCertificate": ("not a pem", "not a readable PEM"),
    "clientCidrs": ([], "at least one IPv4 CIDR"), "externalFilteringCidrs": (["10.0.0.0/8"], "wider than /16"),
    "sshAllowedCidrs": (["0.0.0.0/0"], "whole internet"), "sshPublicKey": ("ssh-dss AAAA", "OpenSSH public key"),
    "sshPrivateKey": ("hunter2", "PEM or OpenSSH private key"), "os": ("debian-11", "allowed values"),
    "amiId": ("ami-1", "an AMI ID"), "vpcId": ("vpc1", "a VPC ID"), "publicSubnetIds": (["subnet-x"], "subnet ID"),
    "privateSubnetIds": (["sub-0123456789abcdef0"], "subnet ID"), "vpcCidr": ("10.0.0.0/24", "/16 to /20"),
    "availabilityZoneCount": (5, "from 2 to 4"), "natGateways": ("each", "allowed values are single, perAz"),
    "jumpHostInstanceType": ("t4g.huge", "t4g comes in"), "jumpHostAmiId": ("ami-XYZ", "an AMI ID"),
    "tlsCertificateArn": ("arn:aws:acm:eu-central-1:1:certificate/x", "an ACM certificate ARN"),
    "healthCheckPort": (80, "from 1024 to 65535"), "healthCheckProxyProtocolPort": (65536, "from 1024 to 65535"),
    "deregistrationDelay": (3601, "from 0 to 3600"), "rootVolumeGb": (4, "from 8 to 16384"),
    "logRetentionDays": (2, "CloudWatch Logs keeps logs for one of"), "alarmEmails": (["ops"], "one email address"),
    "alarmPeriodSeconds": (90, "a multiple of 60"), "alarmErrorsPerPeriod": (-1, "from 0 to 1000000000"),
    "alarmUnhealthyTargets": (501, "from 0 to 500"), "alarmWstoreTimeframeSeconds": (59, "from 60 to 86400"),
    "alarmMemoryPercent": (0, "from 1 to 100"), "alarmDiskPercent": (101, "from 1 to 100"),
    "alarmCertificateDays": (366, "from 1 to 365"),
    "alarmInternalCertificateDays": (0, "from 1 to 365"),
}


def test_every_rule_with_checks_has_a_bad_case_here():
    """Guards against a rule added without a test of what it refuses."""
    assert sorted(r.key for r in rules.RULES if r.checks) == sorted(BAD)


@pytest.mark.parametrize("key", sorted(BAD))
def test_a_rule_refuses_its_bad_value_naming_the_key(key):
    """Guards against a rule that lets a wrong value through, or says so without naming the key."""
    value, words = BAD[key]
    e = Errors()
    values = {**REQUIRED, "wallarmToken": TOKEN, key: value}
    c = rules.apply(values, frozenset(values), e, declared_keys())
    assert c[key] is None
    assert len(e.messages) == 1 and e.messages[0].startswith(f"{key} ") and words in e.messages[0], e.messages


def test_a_rule_only_if_its_switch_is_on():
    """Guards against the jump host's instance type refused (or looked up) for a stack without a jump host."""
    e = Errors()
    values = {**REQUIRED, "wallarmToken": TOKEN, "jumpHost": False, "jumpHostInstanceType": "t4g.huge"}
    assert rules.apply(values, frozenset(values), e, declared_keys())["jumpHostInstanceType"] is None
    assert not e.messages


# Each named cross-key check: the values that make it refuse (laid over the required ones), the keys unset, and a
# word of its sentence.
CROSS = {
    "api_token_needs_node_group": ({}, ("wallarmNodeGroup",), "an api token needs a node group"),
    "mutual_tls_needs_tls": ({"tls": False, "mutualTls": True}, (), "mutual TLS needs tls true"),
    "versions_support_tls": ({"wallarmVersion": "6.1.9"}, (), "TLS to wstore needs 6.2.0 or later"),
    "filtering_not_newer_than_postanalytics": ({"postanalyticsVersion": "6.10.0", "filteringVersion": "6.12.1"}, (),
                                               "must not be newer than postanalyticsVersion (6.10.0)"),
    "wstore_ports_differ": ({"wstorePort": 4000, "wstoreTlsPort": 4000}, (), "must differ from wstorePort (4000)"),
    "renewal_before_expiry": ({"certValidityHours": 100}, ("certEarlyRenewalHours",),
                              "longer than certEarlyRenewalHours (240, its default)"),
    "ca_rotation_needs_tls": ({"tls": False, "mutualTls": False, "caRotation": "prepare"}, (), "needs tls true"),
    "ssh_keys_go_together": ({"sshPublicKey": "ssh-ed25519 AAAA"}, (), "sshPrivateKey is not set"),
    "subnets_need_their_vpc": ({"publicSubnetIds": (SUBNET,)}, (),
                               "subnets need their VPC"),
    "certificate_in_region": ({"tlsCertificateArn": ARN.format("us-east-1")}, (), "of its own region (eu-central-1)"),
    "port_collisions": ({"healthCheckPort": 3313}, (), "collides with wstore's port (wstorePort), 3313"),
    "elastic_ips_within_quota": ({"natGateways": "perAz", "availabilityZoneCount": 5}, (), "needs 6 Elastic IPs"),
    "one_ami_one_arch": ({"amiId": "ami-0123456789abcdef0", "filteringInstanceType":
                          InstanceShape("c7g.large", 4.0, "aarch64")}, (), "cannot serve aarch64 and x86_64"),
    "arena_fits_memory": ({"slabAllocArena": "7.5"}, (), "at most 6 GB fits m6i.large"),
    "public_wstore_ranges_need_mutual_tls": ({"mutualTls": False, "externalFilteringCidrs": ("198.51.100.0/24",)},
                                             (), "a public range is allowed here only with mutualTls true"),
    "upstream_ca_needs_https": ({"protectedUpstreamCaCertificate": "-----BEGIN CERTIFICATE-----"}, (),
                                "used only for an https:// application"),
    "internal_certificate_alarm_can_clear": ({"alarmInternalCertificateDays": 30, "certValidityHours": 720}, (),
                                             "the alarm must fire below 30 days"),
}


def test_every_named_cross_check_has_a_bad_case_here():
    assert sorted(check.__name__ for check in cross.CROSS_CHECKS) == sorted(CROSS)


def test_no_cross_check_refuses_the_declared_defaults():
    """Guards against a cross-key check that fires on the values every stack starts from."""
    c = checked()
    assert {check.__name__: list(map(str, check(c))) for check in cross.CROSS_CHECKS if list(check(c))} == {}


@pytest.mark.parametrize("name", sorted(CROSS))
def test_a_cross_check_refuses_its_bad_case_and_passes_the_good(name):
    """Guards against a combination each key allows alone but the stack cannot run (and a check that refuses more
    than its case: the same check passes the required values with the defaults)."""
    check = getattr(cross, name)
    values, unset, words = CROSS[name]
    errors = [str(e) for e in check(checked(unset=unset, **values))]
    assert len(errors) == 1 and words in errors[0], errors
    assert not list(check(checked()))


def test_a_cross_check_says_nothing_of_a_value_refused_already():
    """Guards against two lines for one wrong value: a refused value (None) is its rule's line only."""
    assert not list(cross.arena_fits_memory(checked(postanalyticsInstanceType=None, slabAllocArena="99")))
    assert not list(cross.port_collisions(checked(wstorePort=None, healthCheckPort=None)))
    assert not list(cross.renewal_before_expiry(checked(certValidityHours=None, certEarlyRenewalHours=None)))


def test_renewal_set_by_the_user_is_what_is_wrong():
    errors = [str(e) for e in cross.renewal_before_expiry(checked(certEarlyRenewalHours=720))]
    assert errors == ["certEarlyRenewalHours is 720: it must be from 0 to 719."]


def test_rules_per_group_within_quota_refuses_seventy_client_ranges():
    """Guards against 70 client ranges that each pass but give a security group more rules than AWS allows."""
    many = [f"{i}.0.0.1/32" for i in range(11, 81)]
    with pytest.raises(SettingsError, match=r"clientCidrs lists 70 ranges .* beyond AWS's default quota of 60"):
        settings.from_values({**REQUIRED, "clientCidrs": many}, project=PROJECT, stack="t", region="eu-central-1",
                             wallarm_token=TOKEN, lookup=lookup)
    assert settings.from_values({**REQUIRED, "clientCidrs": many[:20]}, project=PROJECT, stack="t",
                                region="eu-central-1", wallarm_token=TOKEN, lookup=lookup).client_cidrs == tuple(many[:20])


def test_from_values_takes_the_declared_defaults():
    """Guards against a default repeated (and drifting) in code: a value not given is Pulumi.yaml's."""
    s = settings.from_values(REQUIRED, project=PROJECT, stack="t", region="eu-central-1", wallarm_token=TOKEN,
                             lookup=lookup)
    decls = declared_keys()
    assert (s.filtering_count, s.wstore_port, s.tls, s.mutual_tls, s.vpc_cidr, s.filtering.instance_type) == (
        decls["filteringCount"]["default"], decls["wstorePort"]["default"], decls["tls"]["default"], True,
        decls["vpcCidr"]["default"], decls["filteringInstanceType"]["default"])
    assert s.postanalytics_version == s.filtering_version == decls["wallarmVersion"]["default"]
    assert (s.project, s.stack, s.ssh_private_key, s.jump_host.arch) == (PROJECT, "t", None, "aarch64")


def test_from_values_takes_an_output_token_unread():
    """Guards against a token that is an Output (known only after resources) refused, or read, before them."""
    s = settings.from_values(REQUIRED, project=PROJECT, stack="t", region="eu-central-1",
                             wallarm_token=pulumi.Output.from_input("x"), lookup=lookup)
    assert isinstance(s.wallarm_token, pulumi.Output)


def test_from_values_reports_every_wrong_value_at_once():
    """Guards against the first error hiding the others, a value of the wrong type taken, and a secret passed
    among the plain values."""
    with pytest.raises(SettingsError) as raised:
        settings.from_values({**REQUIRED, "filteringCount": "3", "tls": "yes", "mutualTls": True, "wallarmCloud": "XX",
                              "filteringCuont": 2, "wallarmToken": TOKEN, "wstorePort": 80},
                             project=PROJECT, stack="t", region="eu-central-1", wallarm_token="short", lookup=lookup)
    lines = str(raised.value).splitlines()
    assert lines == [
        "filteringCount is '3': it must be a whole number.",
        "tls is 'yes': it must be true or false.",
        "filteringCuont is 2: it is not a setting of this program; did you mean filteringCount?",
        "wallarmToken is among the values (not shown): pass it as wallarm_token, a secret, instead.",
        "wallarmCloud is 'XX': allowed values are US, EU, ME.",
        "wallarmToken is (secret): a Wallarm token is one line of at least 16 letters, digits or +/=._:-.",
        "wstorePort is 80: port 80 belongs to the clients' HTTP on every node; choose another port than 22, 80, 443.",
        "mutualTls is True: mutual TLS needs tls true; set mutualTls false or tls true.",
    ], lines
    assert TOKEN not in str(raised.value)


OVERRIDES = {"wallarmMode": "on", "filteringVersion": "6.13.0", "wstoreTlsPort": 3313, "healthCheckPort": 22,
             "caRotation": "switch", "sshPublicKey": "ssh-ed25519 AAAA", "vpcId": "vpc-0123456789abcdef0",
             "slabAllocArena": "7", "externalFilteringCidrs": ["198.51.100.0/24"], "mutualTls": False}


def test_from_values_and_load_say_the_same():
    """Guards against two validations that drift apart: the dev stack with wrong values, given to from_values as
    typed values, is refused with the very lines the program (load) says."""
    config = stack_config("dev", **OVERRIDES)
    loaded = run_program(config).error
    assert isinstance(loaded, SettingsError), loaded
    decls, prefix = declared_keys(), f"{PROJECT}:"
    values = {k[len(prefix):]: parse(k[len(prefix):], decls[k[len(prefix):]], v) for k, v in config.items()
              if k.startswith(prefix) and k[len(prefix):] not in settings.SECRET_KEYS}
    with pytest.raises(SettingsError) as given:
        settings.from_values(values, project=PROJECT, stack="dev", region=config["aws:region"],
                             wallarm_token=STAND_IN_TOKEN, lookup=lookup)
    assert sorted(str(given.value).splitlines()) == sorted(str(loaded).splitlines())
    assert len(str(loaded).splitlines()) >= len(OVERRIDES) - 1
