"""Bad settings stop the program with one sentence naming the key, the value and what is allowed,
before any resource is registered."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.settings import SECRET_KEYS, SettingsError, declared_keys
from harness.mocks import ProviderMocks
from harness.program import PROJECT, run_program, stack_config

TLS_ARN = "arn:aws:acm:eu-central-1:123456789012:certificate/12345678-1234-1234-1234-123456789012"


def _scattered(n: int) -> list[str]:
    """n /32s no two of which fold together (every other address)."""
    return [f"198.51.{k // 100}.{2 * (k % 100) + 1}/32" for k in range(n)]


# (case id, overrides of the dev stack, words the message must contain)
BAD = [
    ("health-port-is-tls-target", {"healthCheckPort": 8443, "tlsCertificateArn": TLS_ARN},
     ["healthCheckPort", "8443", "TLS listener's target port"]),
    ("health-port-is-wstore", {"healthCheckPort": 3313}, ["healthCheckPort", "3313", "wstorePort"]),
    ("proxy-health-port-is-health-port", {"healthCheckProxyProtocolPort": 8081, "tlsCertificateArn": TLS_ARN},
     ["healthCheckProxyProtocolPort", "8081", "healthCheckPort"]),
    ("proxy-health-port-is-tls-target", {"healthCheckProxyProtocolPort": 8443, "tlsCertificateArn": TLS_ARN},
     ["healthCheckProxyProtocolPort", "8443", "TLS listener's target port"]),
    ("proxy-health-port-range", {"healthCheckProxyProtocolPort": 80}, ["healthCheckProxyProtocolPort", "1024 to 65535"]),
    ("internal-not-boolean", {"loadBalancerInternal": "private"}, ["loadBalancerInternal", "true or false"]),
    ("client-cidrs-over-rule-quota-with-tls", {"clientCidrs": _scattered(31), "tlsCertificateArn": TLS_ARN},
     ["clientCidrs", "31 ranges (31 after folding)", "loadbalancer security group 62 inbound rules", "quota of 60",
      "L-0EA8095F", "Service Quotas"]),
    ("client-cidrs-over-rule-quota", {"clientCidrs": _scattered(61)}, ["clientCidrs", "61 inbound rules"]),
    ("ssh-cidrs-over-rule-quota", {"sshAllowedCidrs": _scattered(61)},
     ["sshAllowedCidrs", "jumphost security group 61 inbound rules"]),
    ("unknown-cloud", {"wallarmCloud": "APAC"}, ["wallarmCloud", "'APAC'", "US, EU, ME"]),
    ("lowercase-cloud", {"wallarmCloud": "us"}, ["wallarmCloud", "'us'"]),
    ("missing-cloud", {"wallarmCloud": None}, ["wallarmCloud", "required"]),
    ("missing-token", {"wallarmToken": None}, ["wallarmToken", "required", "--secret"]),
    ("token-with-space", {"wallarmToken": "abc def ghi jkl mno pqr"}, ["wallarmToken", "(secret)"]),
    ("token-type", {"wallarmTokenType": "user"}, ["wallarmTokenType", "'user'", "api, node"]),
    ("api-token-without-group", {"wallarmNodeGroup": None}, ["wallarmNodeGroup", "api token needs a node group"]),
    ("group-with-quote", {"wallarmNodeGroup": "dev'; rm"}, ["wallarmNodeGroup", "letters, digits"]),
    ("version-two-parts", {"wallarmVersion": "6.12"}, ["wallarmVersion", "'6.12'", "X.Y.Z"]),
    ("version-5x", {"wallarmVersion": "5.3.0"}, ["wallarmVersion", "6.x"]),
    ("version-before-tls", {"wallarmVersion": "6.1.0"}, ["wallarmVersion", "6.2.0"]),
    ("mode", {"wallarmMode": "blocking"}, ["wallarmMode", "'blocking'", "safe_blocking"]),
    ("arena-comma", {"slabAllocArena": "2,0"}, ["slabAllocArena", "'2,0'", "float with a dot"]),
    ("arena-zero", {"slabAllocArena": "0"}, ["slabAllocArena", "positive"]),
    ("arena-too-big", {"slabAllocArena": "7.5"}, ["slabAllocArena", "'7.5'", "t3.large", "at most 6 GB"]),
    ("port-out-of-range", {"wstorePort": 70000}, ["wstorePort", "70000", "1 to 65535"]),
    ("port-not-a-number", {"wstoreTlsPort": "63a"}, ["wstoreTlsPort", "'63a'", "whole number"]),
    ("tls-port-equals-plain", {"wstoreTlsPort": 3313}, ["wstoreTlsPort", "3313", "differ"]),
    ("mtls-without-tls", {"tls": False, "mutualTls": True}, ["mutualTls", "needs tls"]),
    ("tls-not-boolean", {"tls": "yes"}, ["tls", "'yes'", "true or false"]),
    ("postanalytics-zero", {"postanalyticsCount": 0}, ["postanalyticsCount", "0", "1 to 50"]),
    ("filtering-zero", {"filteringCount": 0}, ["filteringCount", "0", "1 to 500"]),
    ("unknown-instance-type", {"postanalyticsInstanceType": "x9.mega"}, ["postanalyticsInstanceType", "'x9.mega'", "not an EC2 instance type"]),
    ("malformed-instance-type", {"filteringInstanceType": "large"}, ["filteringInstanceType", "'large'", "instance type"]),
    ("malformed-cidr", {"clientCidrs": ["10.0.0.300/24"]}, ["clientCidrs", "'10.0.0.300/24'", "IPv4 CIDR"]),
    ("cidr-host-bits", {"sshAllowedCidrs": ["10.0.0.5/24"]}, ["sshAllowedCidrs", "'10.0.0.5/24'", "host bits"]),
    ("ssh-from-world", {"sshAllowedCidrs": ["0.0.0.0/0"]}, ["sshAllowedCidrs", "'0.0.0.0/0'", "whole internet"]),
    ("ssh-empty", {"sshAllowedCidrs": []}, ["sshAllowedCidrs", "at least one"]),
    ("wstore-to-world", {"externalFilteringCidrs": ["0.0.0.0/0"]}, ["externalFilteringCidrs", "whole internet"]),
    ("cidrs-not-a-list", {"clientCidrs": "10.0.0.0/8"}, ["clientCidrs", "list of strings"]),
    ("upstream-scheme", {"protectedUpstream": "ftp://10.0.0.1"}, ["protectedUpstream", "'ftp://10.0.0.1'", "http://"]),
    ("upstream-injection", {"protectedUpstream": "http://a;b"}, ["protectedUpstream", "no spaces"]),
    ("missing-upstream", {"protectedUpstream": None}, ["protectedUpstream", "required"]),
    ("os", {"os": "centos-7"}, ["os", "'centos-7'", "debian-12, ubuntu-24.04"]),
    ("ami-format", {"amiId": "ami-xyz"}, ["amiId", "'ami-xyz'", "AMI ID"]),
    ("jump-ami-format", {"jumpHostAmiId": "ami-xyz;reboot"}, ["jumpHostAmiId", "'ami-xyz;reboot'", "AMI ID"]),
    ("ami-two-arches", {"amiId": "ami-0123456789abcdef0", "filteringInstanceType": "c7g.large"},
     ["amiId", "aarch64", "x86_64"]),
    ("subnets-without-vpc", {"privateSubnetIds": ["subnet-0123456789abcdef0"]}, ["privateSubnetIds", "vpcId"]),
    ("vpc-without-private-subnets", {"vpcId": "vpc-0a1b2c3d4e5f60718", "publicSubnetIds": ["subnet-0a1b2c3d4e5f60001"]},
     ["privateSubnetIds", "existing VPC"]),
    ("subnet-of-another-vpc", {"vpcId": "vpc-0a1b2c3d4e5f60718", "publicSubnetIds": ["subnet-0a1b2c3d4e5f60001"],
                               "privateSubnetIds": ["subnet-0fffffffffffff001"]}, ["privateSubnetIds", "is not in vpc-"]),
    ("public-subnets-in-one-zone", {"vpcId": "vpc-0a1b2c3d4e5f60718", "publicSubnetIds": ["subnet-0a1b2c3d4e5f60001",
     "subnet-0a1b2c3d4e5f60011"], "privateSubnetIds": ["subnet-0a1b2c3d4e5f60012"]},
     ["publicSubnetIds", "one public subnet in each of two zones or more"]),
    ("one-public-subnet", {"vpcId": "vpc-0a1b2c3d4e5f60718", "publicSubnetIds": ["subnet-0a1b2c3d4e5f60001"],
                           "privateSubnetIds": ["subnet-0a1b2c3d4e5f60011"]}, ["publicSubnetIds", "two zones or more"]),
    ("private-subnets-outside-the-load-balancer-zones",
     {"vpcId": "vpc-0a1b2c3d4e5f60718", "publicSubnetIds": ["subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60002"],
      "privateSubnetIds": ["subnet-0a1b2c3d4e5f60013"]}, ["privateSubnetIds", "where the load balancer sends traffic"]),
    ("certificate-of-another-region",
     {"tlsCertificateArn": "arn:aws:acm:us-east-1:123456789012:certificate/12345678-1234-1234-1234-123456789012"},
     ["tlsCertificateArn", "its own region (eu-central-1)"]),
    ("type-offered-in-no-zone", {"filteringInstanceType": "m8g.large"}, ["filteringInstanceType", "none of the zones"]),
    ("wstore-wider-than-16", {"externalFilteringCidrs": ["10.0.0.0/15"]}, ["externalFilteringCidrs", "wider than /16"]),
    ("wstore-half-of-the-world", {"externalFilteringCidrs": ["0.0.0.0/1"]}, ["externalFilteringCidrs", "'0.0.0.0/1'", "/16"]),
    ("wstore-public-without-mtls", {"externalFilteringCidrs": ["198.51.100.0/24"], "mutualTls": False},
     ["externalFilteringCidrs", "public range", "mutualTls"]),
    ("ssh-wider-than-8", {"sshAllowedCidrs": ["128.0.0.0/1"]}, ["sshAllowedCidrs", "wider than /8"]),
    ("upstream-loopback", {"protectedUpstream": "http://127.0.0.1:8080"}, ["protectedUpstream", "loopback"]),
    ("upstream-localhost", {"protectedUpstream": "http://localhost"}, ["protectedUpstream", "'http://localhost'"]),
    ("upstream-metadata", {"protectedUpstream": "http://169.254.169.254/latest"}, ["protectedUpstream", "metadata"]),
    ("upstream-unspecified", {"protectedUpstream": "http://0.0.0.0:80"}, ["protectedUpstream", "'http://0.0.0.0:80'"]),
    ("upstream-multicast", {"protectedUpstream": "http://224.0.0.1"}, ["protectedUpstream", "'http://224.0.0.1'"]),
    ("filtering-newer-than-postanalytics", {"filteringVersion": "6.13.0"},
     ["filteringVersion", "'6.13.0'", "postanalyticsVersion (6.12.1)"]),
    ("postanalytics-version-format", {"postanalyticsVersion": "6.x"}, ["postanalyticsVersion", "'6.x'"]),
    ("installer-digest-format", {"installerSha256": ["6.12.1/x86_64=abc"]}, ["installerSha256", "VERSION/ARCH=SHA256"]),
    ("installer-digest-twice", {"installerSha256": ["6.12.1/x86_64=" + "a" * 64, "6.12.1/x86_64=" + "b" * 64]},
     ["installerSha256", "pinned twice"]),
    ("nat-gateways", {"natGateways": "two"}, ["natGateways", "'two'", "single, perAz"]),
    ("zone-count", {"availabilityZoneCount": 1}, ["availabilityZoneCount", "2 to 4"]),
    ("zone-count-beyond-region", {"availabilityZoneCount": 4}, ["availabilityZoneCount", "the region has 3 zones"]),
    ("vpc-cidr-public", {"vpcCidr": "8.8.0.0/16"}, ["vpcCidr", "RFC 1918"]),
    ("health-port", {"healthCheckPort": 80}, ["healthCheckPort", "1024 to 65535"]),
    ("certificate-arn", {"tlsCertificateArn": "arn:aws:iam::123456789012:server-certificate/x"},
     ["tlsCertificateArn", "ACM certificate ARN"]),
    ("deregistration-delay", {"deregistrationDelay": 4000}, ["deregistrationDelay", "0 to 3600"]),
    ("jump-host-type", {"jumpHostInstanceType": "x1.nope"}, ["jumpHostInstanceType", "'x1.nope'", "x1 comes in 16xlarge, 32xlarge"]),
    ("public-without-private", {"sshPublicKey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample me@host"},
     ["sshPrivateKey", "go together"]),
    ("renewal-beyond-validity", {"certValidityHours": 100, "certEarlyRenewalHours": 200},
     ["certEarlyRenewalHours", "200", "0 to 99"]),
    ("unknown-key", {"wallarmmode": "block"}, ["wallarm-postanalytics:wallarmmode", "not a setting",
                                               "did you mean wallarm-postanalytics:wallarmMode?"]),
    ("unknown-key-far-from-any", {"colour": "blue"}, ["wallarm-postanalytics:colour", "keys under config:"]),
    ("key-under-another-namespace", {"wallarm:wallarmMode": "block"},
     ["wallarm:wallarmMode", "namespace 'wallarm'", "wallarm-postanalytics:wallarmMode"]),
    ("region-typo", {"aws:region": "eu-central1"}, ["aws:region is 'eu-central1'", "did you mean eu-central-1?"]),
    ("region-unknown", {"aws:region": "mars-1"}, ["aws:region is 'mars-1'", "not a region of AWS", "us-east-1"]),
    ("region-missing", {"aws:region": None}, ["aws:region is not set", "pulumi config set aws:region"]),
    ("region-of-another-partition", {"aws:region": "cn-north-1"}, ["aws:region is 'cn-north-1'", "aws-cn partition"]),
    ("instance-type-typo", {"filteringInstanceType": "c6i.xlage"},
     ["filteringInstanceType is 'c6i.xlage'", "did you mean c6i.xlarge?"]),
    ("instance-type-family-typo", {"postanalyticsInstanceType": "m6ii.large"},
     ["postanalyticsInstanceType is 'm6ii.large'", "did you mean m6i.large?"]),
    ("validity-shorter-than-default-renewal", {"certValidityHours": 100},
     ["certValidityHours is 100", "certEarlyRenewalHours (240, its default)"]),
    ("log-retention-31", {"logRetentionDays": 31}, ["logRetentionDays", "31", "one of 1, 3, 5"]),
    ("alarm-email-not-an-address", {"alarmEmails": ["ops at example.com"]}, ["alarmEmails", "email address"]),
    ("alarm-period-90", {"alarmPeriodSeconds": 90}, ["alarmPeriodSeconds", "90", "multiple of 60"]),
    ("alarm-memory-101", {"alarmMemoryPercent": 101}, ["alarmMemoryPercent", "101", "1 to 100"]),
    ("alarm-timeframe-0", {"alarmWstoreTimeframeSeconds": 0}, ["alarmWstoreTimeframeSeconds", "60 to 86400"]),
]


@pytest.mark.parametrize("overrides,words", [(o, w) for _, o, w in BAD], ids=[c for c, _, _ in BAD])
def test_bad_setting_stops_before_any_resource(overrides, words):
    """Guards against a wrong value reaching AWS, or failing later with a message that does not say why."""
    run = run_program(stack_config("dev", **overrides))
    assert isinstance(run.error, SettingsError), f"{overrides} was accepted (error: {run.error!r})"
    message = str(run.error)
    for word in words:
        assert word in message, f"message for {overrides} lacks {word!r}: {message}"
    assert message.count(". ") == 0 and message.endswith((".", "?")), f"not one sentence: {message}"
    assert "?." not in message, f"a question closed twice: {message}"
    assert run.mocks.resources == [], f"{len(run.mocks.resources)} resources were registered before the error"


def test_every_wrong_setting_is_reported_at_once():
    """Guards against a user fixing one setting per run: all of them come out together, one line each."""
    run = run_program(stack_config("dev", wallarmCloud="APAC", wstorePort=0, protectedUpstream="ftp://x",
                                   wallarmmode="block"))
    assert isinstance(run.error, SettingsError) and run.mocks.resources == []
    lines = str(run.error).splitlines()
    assert [line.split(" ", 1)[0] for line in lines] == [
        "wallarm-postanalytics:wallarmmode", "wallarmCloud", "wstorePort", "protectedUpstream"], lines
    assert all(line.endswith((".", "?")) and ". " not in line for line in lines), lines


def test_a_key_without_namespace_is_reported():
    """Guards against a stack file key written without the project prefix being silently ignored."""
    config = {**stack_config("dev"), "wallarmMode": "block"}
    run = run_program(config)
    assert isinstance(run.error, SettingsError), run.error
    assert "wallarmMode is without a namespace" in str(run.error) and "wallarm-postanalytics:wallarmMode" in str(run.error)


def test_mutual_tls_follows_tls_by_default():
    """Guards against an error about mutualTls when the user only turned tls off."""
    run = run_program(stack_config("dev", tls=False))
    assert run.error is None, run.error
    assert not run.mocks.of_type("tls:index/selfSignedCert:SelfSignedCert")


def test_repeated_cidrs_are_folded_with_a_warning():
    """Guards against two rules of one name (the engine refuses a duplicate URN) from a CIDR listed twice."""
    run = run_program(stack_config("dev", sshAllowedCidrs=["203.0.113.10/32", "203.0.113.10/32"],
                                   clientCidrs=["198.51.100.0/24", "198.51.100.0/24"]))
    assert run.error is None, run.error
    assert sorted(run.warnings) == ["clientCidrs lists 198.51.100.0/24 more than once; each range is used once.",
                                    "sshAllowedCidrs lists 203.0.113.10/32 more than once; each range is used once."]
    ssh = [r for r in run.mocks.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
           if r.inputs.get("cidrIpv4") == "203.0.113.10/32"]
    assert len(ssh) == 1


@pytest.mark.parametrize("overrides", [{"clientCidrs": _scattered(60)},
                                       {"clientCidrs": _scattered(30), "tlsCertificateArn": TLS_ARN},
                                       {"clientCidrs": [f"198.51.100.{k}/32" for k in range(64)],
                                        "tlsCertificateArn": TLS_ARN}],
                         ids=["60-plain", "30-tls", "64-that-fold-into-one"])
def test_client_ranges_up_to_the_quota_after_folding_pass(overrides):
    """Guards against a quota check that counts what it should not: 60 rules fill the group exactly, and 64
    adjacent /32s are one /26, so one rule per listener."""
    run = run_program(stack_config("dev", **overrides))
    assert run.error is None, run.error
    if len(overrides["clientCidrs"]) == 64:
        lb_group = run.mocks.named("firewall-loadbalancer").id
        cidrs = {r.inputs["cidrIpv4"] for r in run.mocks.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
                 if r.inputs["securityGroupId"] == lb_group}
        assert cidrs == {"198.51.100.0/26"}


def test_elastic_ips_that_fill_the_quota_are_warned_before_any_resource():
    """Guards against `pulumi up` failing half-way on the Elastic IP quota: perAz NAT in 4 zones plus the jump
    host is 5 addresses, the whole default quota, so the program warns (naming the quota and how to raise it);
    beyond the quota it refuses; a single NAT gateway says nothing."""
    from components.settings.cross import elastic_ips

    run = run_program(stack_config("dev", natGateways="perAz", availabilityZoneCount=4))
    assert any("5 Elastic IPs" in w and "quota of 5" in w and "L-0263D0A3" in w for w in run.warnings), run.warnings
    assert not [w for w in run_program(stack_config("dev", natGateways="perAz")).warnings if "Elastic IP" in w]
    with pytest.raises(SettingsError, match=r"natGateways is 'perAz': the stack needs 6 Elastic IPs .* L-0263D0A3"):
        elastic_ips("perAz", 5, True)


def test_a_failed_instance_type_lookup_is_not_called_unknown():
    """Guards against "AWS does not offer this type" when the lookup failed for credentials or permissions."""
    error = ("operation error EC2: DescribeInstanceTypes, https response error StatusCode: 403, "
             "api error UnauthorizedOperation: You are not authorized to perform this operation.")
    mocks = ProviderMocks(invoke_errors={"aws:ec2/getInstanceType:getInstanceType": error})
    run = run_program(stack_config("dev"), mocks=mocks)
    assert isinstance(run.error, SettingsError), run.error
    message = str(run.error)
    assert "postanalyticsInstanceType is 't3.large': AWS could not be asked about it" in message
    assert "UnauthorizedOperation" in message and "does not offer" not in message


def test_every_bad_case_has_its_own_message():
    """Guards against one generic message hiding which key is wrong."""
    messages = {str(run_program(stack_config("dev", **o)).error) for _, o, _ in BAD}
    assert len(messages) == len(BAD)


def test_secret_values_are_never_echoed():
    """Guards against a bad token being printed in an error message (and so in CI logs)."""
    token = "not a token but a secret"
    run = run_program(stack_config("dev", wallarmToken=token))
    assert isinstance(run.error, SettingsError)
    assert token not in str(run.error)


def test_every_key_is_declared_with_type_and_description():
    """Guards against a setting the program reads but Pulumi.yaml does not document."""
    for key, decl in declared_keys().items():
        assert decl.get("type") in ("string", "integer", "boolean", "array"), key
        assert decl.get("description"), key


def test_dev_stack_sets_only_declared_keys():
    """Guards against a typo in the stack file being silently ignored (the program refuses unknown keys)."""
    run = run_program(stack_config("dev"))
    assert run.error is None, run.error


@pytest.mark.parametrize("key,value", [
    ("wallarmToken", "PlaintextToken0123456789abcdef"),
    ("sshPrivateKey", "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n"),
])
def test_plaintext_secrets_are_refused(key, value):
    """Guards against a token or key committed in plaintext in Pulumi.<stack>.yaml."""
    overrides = {key: value}
    if key == "sshPrivateKey":
        overrides["sshPublicKey"] = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample me@host"
    others = [f"{PROJECT}:{k}" for k in SECRET_KEYS if k != key]
    run = run_program(stack_config("dev", **overrides), secret_keys=others)
    assert isinstance(run.error, SettingsError), run.error
    assert f"{key} is set in plaintext" in str(run.error) and "--secret" in str(run.error)
    assert value not in str(run.error) and run.mocks.resources == []


def test_example_stacks_are_valid():
    """Guards against an example that users copy and that the program refuses."""

    examples = sorted((Path(__file__).resolve().parents[2] / "examples").glob("Pulumi.*.yaml"))
    assert examples
    for path in examples:
        run = run_program(stack_config(str(path)))
        assert run.error is None, f"{path.name}: {run.error}"
        assert len(run.mocks.of_type("aws:lb/listener:Listener")) == 2, f"{path.name}: no TLS listener"
        assert not run.mocks.of_type("awsx:ec2:Vpc"), f"{path.name}: creates a VPC"


def test_a_plaintext_token_in_the_stack_file_is_refused_by_the_rehearsal_too(tmp_path):
    """Guards against the rehearsal accepting a stack file that `pulumi up` refuses (a token committed in clear)."""
    stack = tmp_path / "Pulumi.leaky.yaml"
    text = (Path(__file__).resolve().parents[2] / "Pulumi.dev.yaml").read_text()
    stack.write_text(text + "  wallarm-postanalytics:wallarmToken: PlaintextToken0123456789abcdef\n")
    run = run_program(stack_config(str(stack)))
    assert isinstance(run.error, SettingsError), run.error
    assert "wallarmToken is set in plaintext in the stack file" in str(run.error)
    assert "PlaintextToken0123456789abcdef" not in str(run.error)


def test_a_type_missing_from_the_offline_table_is_not_called_unknown_to_aws():
    """Guards against the rehearsal telling a user that AWS lacks a type it simply does not know."""
    run = run_program(stack_config("dev", filteringInstanceType="c6i.24xlarge"))
    assert isinstance(run.error, SettingsError), run.error
    message = str(run.error)
    assert "filteringInstanceType is 'c6i.24xlarge': size unknown offline" in message, message
    assert "does not offer" not in message and "credentials" not in message


@pytest.mark.parametrize("overrides,line", [
    ({"wallarmVersion": "6.1"}, "wallarmVersion is '6.1'"),
    ({"sshAllowedCidrs": None}, "sshAllowedCidrs is not set"),
    ({"clientCidrs": "10.0.0.0/8"}, "clientCidrs is '10.0.0.0/8'"),
])
def test_one_wrong_value_is_one_line(overrides, line):
    """Guards against echoes of one mistake: version errors for fleet versions the user never set (they follow
    wallarmVersion), or a missing list reported again as `is []`."""
    run = run_program(stack_config("dev", **overrides))
    assert isinstance(run.error, SettingsError), run.error
    lines = str(run.error).splitlines()
    assert len(lines) == 1 and lines[0].startswith(line), lines


def test_a_fleet_version_the_user_set_is_checked_on_its_own():
    """Guards against the one-line rule above hiding a wrong version the user did set."""
    run = run_program(stack_config("dev", wallarmVersion="6.1", filteringVersion="7"))
    lines = str(run.error).splitlines()
    assert [line.split(" is ")[0] for line in lines] == ["wallarmVersion", "filteringVersion"], lines


@pytest.mark.parametrize("instance_type", ["m7i-flex.large", "i4i.large"])
def test_a_real_type_the_offline_table_lacks_is_size_unknown_not_unoffered(instance_type):
    """Guards against a real EC2 type (botocore's list has it) called "not offered" because the mocks' size table
    lacks it."""
    run = run_program(stack_config("dev", postanalyticsInstanceType=instance_type))
    message = str(run.error)
    assert f"postanalyticsInstanceType is '{instance_type}': size unknown offline" in message, message
    assert "does not offer" not in message and "did you mean" not in message


def test_a_type_newer_than_the_sdk_is_a_warning_not_a_refusal():
    """Guards against a type launched after the locked SDK being refused as a typo: the settings warn and ask AWS
    (here the mocks, which then do not know its size)."""
    run = run_program(stack_config("dev", filteringInstanceType="c99g.large"))
    assert any("filteringInstanceType: c99g.large is not in botocore" in w for w in run.warnings), run.warnings
    assert "size unknown offline" in str(run.error) and "did you mean" not in str(run.error)


def test_a_yaml_error_names_the_stack_file_and_line(tmp_path):
    """Guards against `"<unicode string>", line 33`: the user must learn which file is broken, and where."""
    stack = tmp_path / "Pulumi.broken.yaml"
    stack.write_text("config:\n  aws:region: eu-central-1\n  wallarm-postanalytics:clientCidrs: [10.0.0.0/8\n")
    with pytest.raises(ValueError) as raised:
        stack_config(str(stack))
    message = str(raised.value)
    assert str(stack) in message and "line 4" in message and "<unicode string>" not in message, message


def test_a_stack_is_named_by_its_directory_too():
    """Guards against `--stack examples/prod` failing where `--stack examples/Pulumi.prod.yaml` works."""
    root = Path(__file__).resolve().parents[2]
    assert stack_config(str(root / "examples" / "prod")) == stack_config(str(root / "examples" / "Pulumi.prod.yaml"))
