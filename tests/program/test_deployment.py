"""WallarmDeployment as another program uses it: its arguments (one documented field per Pulumi.yaml key, keyword
only, a type the component provider host's analyzer accepts), its validation (every error at once, before any
resource, whatever the source of the arguments), and the AWS provider it is given (every AWS call goes there)."""

from __future__ import annotations

import json
import typing

import pulumi
import pulumi_aws as aws
import pytest
import yaml

from components import settings
from components.deployment import WallarmDeployment
from components.deploymentargs import WallarmDeploymentArgs, camel, from_settings, to_values
from tests.conftest import ROOT, program_run
from harness.mocks import ProviderMocks, StrictMonitor
from harness.program import STAND_IN_TOKEN

DECLARED = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
DEV = dict(wallarm_cloud="EU", wallarm_token=STAND_IN_TOKEN, wallarm_node_group="dev",
           postanalytics_instance_type="t3.large", filtering_instance_type="t3.medium",
           protected_upstream="http://10.0.0.10:8080", ssh_allowed_cidrs=["203.0.113.10/32"])


def test_one_documented_field_per_declared_key_with_its_default():
    """Guards against arguments that drift from Pulumi.yaml: a key without a field, a field of no key, a default in
    the docstring that is not the declared one, a required key marked optional."""
    from pulumi.provider.experimental.analyzer import Analyzer

    props, mapping = Analyzer("wallarm").analyze_type(WallarmDeploymentArgs, is_component_output=False)
    assert set(props) == set(DECLARED), set(props) ^ set(DECLARED)
    assert all(camel(field) == key for key, field in mapping.items())
    for key, prop in props.items():
        decl = DECLARED[key]
        assert prop.description and prop.description.startswith(decl["description"].strip()), key
        assert prop.optional == ("default" in decl), f"{key}: optional is {prop.optional}"
        if "default" not in decl:
            assert prop.description.endswith("Required."), key
        elif decl["default"] in ("", []):
            assert prop.description.endswith(("Default: unset.", "Default: [].")), key
        else:
            default = decl["default"]
            shown = json.dumps(default) if isinstance(default, (bool, list)) else str(default)
            assert shown in prop.description.rpartition("Default: ")[2], (key, prop.description)
    # Only the secrets may be Outputs; everything else shapes the graph or is validated before it: plain.
    assert {k for k, p in props.items() if not p.plain} == {"wallarmToken", "sshPrivateKey"}


def test_the_arguments_are_keyword_only_and_the_host_can_build_them():
    """Guards against positional construction (a field added in the middle would shift every value) and against an
    args type the component provider host cannot fill: it hands the component a dict of the given inputs."""
    with pytest.raises(TypeError):
        WallarmDeploymentArgs("EU", STAND_IN_TOKEN)  # type: ignore[call-arg]
    args = WallarmDeploymentArgs(**DEV)
    assert isinstance(args, dict) and typing.is_typeddict(WallarmDeploymentArgs)
    # The analyzer reads annotations as objects: postponed (string) annotations would not analyze.
    text = (ROOT / "components" / "deploymentargs.py").read_text()
    assert not [line for line in text.splitlines() if line.startswith("from __future__")]
    values, token, key = to_values(args)
    assert token == STAND_IN_TOKEN and key is None and "wallarmToken" not in values
    assert values["sshAllowedCidrs"] == ["203.0.113.10/32"] and values["wallarmCloud"] == "EU"


def test_the_stack_path_renders_the_same_settings():
    """Guards against __main__.py's arguments saying something else than the stack's config: from_settings(load())
    validates, through from_values, to the very settings load() read."""
    s = program_run().namespace["s"]
    values, token, key = to_values(from_settings(s))
    again = settings.from_values(values, project=s.project, stack=s.stack, region="eu-central-1",
                                 wallarm_token=token, ssh_private_key=key,
                                 lookup=lambda t: {"t3.large": (8.0, ["x86_64"]), "t3.medium": (4.0, ["x86_64"]),
                                                   "t4g.nano": (0.5, ["arm64"])}[t])
    plain = lambda x: {k: v for k, v in vars(x).items() if not isinstance(v, pulumi.Output)}  # noqa: E731
    assert plain(again) == plain(s)


def run_consumer(make, region: str = "us-west-2", **args):
    """A consumer program under the mocks: its own project, an explicit AWS provider of another region than the
    stack's (eu-central-1), a WallarmDeployment under it (`make(provider)` gives the component's options)."""
    mocks = ProviderMocks()
    mocks.learn({"aws:region": "eu-central-1"})
    pulumi.runtime.set_mocks(mocks, project="consumer", stack="prod", preview=False, monitor=StrictMonitor(mocks))
    pulumi.runtime.set_all_config({"aws:region": "eu-central-1"})
    seen: dict = {}

    @pulumi.runtime.test
    def program():
        provider = aws.Provider("other-region", region=region)
        tier = WallarmDeployment("tier", WallarmDeploymentArgs(**{**DEV, **args}), opts=make(provider))
        return pulumi.Output.all(provider.urn, tier.dashboard_url, tier.url).apply(
            lambda v: seen.update(provider=v[0], dashboard=v[1], url=v[2]))

    error = None
    try:
        program()
    except Exception as exc:  # noqa: BLE001 - returned for the test to read
        error = exc
    return mocks, seen, error


@pytest.mark.parametrize("how", ["provider", "providers", "parent"])
def test_every_aws_call_goes_to_the_provider_the_component_is_given(how):
    """Guards against a component that deploys with the consumer's provider but looks up, places and waits with the
    stack's default one (another region, another account): every AWS resource, the VPC component included, names
    the given provider; the zones, the monitoring and the load balancer waits are that provider's region."""
    def make(p):
        if how == "provider":
            return pulumi.ResourceOptions(provider=p)
        if how == "providers":
            return pulumi.ResourceOptions(providers={"aws": p})
        return pulumi.ResourceOptions(parent=pulumi.ComponentResource("consumer:index:Tier", "outer", None,
                                                                       pulumi.ResourceOptions(providers=[p])))

    mocks, seen, error = run_consumer(make)
    assert error is None, error
    ref = seen["provider"] + "::"
    aws_resources = [r for r in mocks.resources if r.typ.startswith("aws:")]
    assert len(aws_resources) > 30
    wrong = [r.urn for r in aws_resources if not r.options["provider"].startswith(ref)]
    assert not wrong, f"{len(wrong)} AWS resources use another provider: {wrong[:3]}"
    vpc = mocks.of_type("awsx:ec2:Vpc")[0]
    assert vpc.options["providers"].get("aws", "").startswith(ref), vpc.options["providers"]
    assert all(z.startswith("us-west-2") for z in vpc.inputs["availabilityZoneNames"]), vpc.inputs
    assert "region=us-west-2" in seen["dashboard"]
    waits = mocks.of_type("pulumi-python:dynamic:Resource")
    assert waits and all(w.inputs["aws"]["region"] == "us-west-2" for w in waits), [w.inputs.get("aws") for w in waits]
    assert all(not w.inputs["aws"]["staticCredentials"] for w in waits)


def test_the_default_provider_keeps_the_stacks_region_and_no_waits_input():
    """Guards against the stack's own program changing its steps: without a provider of its own the component uses
    the stack's region and the waits keep their inputs of 549b0eb (no `aws` input)."""
    run = program_run()
    assert all("aws" not in w.inputs for w in run.mocks.of_type("pulumi-python:dynamic:Resource"))
    assert "region=eu-central-1" in run.exports["dashboardUrl"]


def test_wrong_arguments_are_refused_all_at_once_before_any_resource():
    """Guards against a consumer learning its mistakes one `pulumi up` at a time, or half a tier declared: every
    wrong argument in one SettingsError, a sentence each, and nothing registered but the consumer's provider."""
    mocks, _, error = run_consumer(lambda p: pulumi.ResourceOptions(provider=p), wallarm_mode="blocking",
                                   filtering_count=0, ssh_allowed_cidrs=["0.0.0.0/0"], wstore_prt=1)
    assert isinstance(error, settings.SettingsError), error
    text = str(error)
    for key in ("wallarmMode", "filteringCount", "sshAllowedCidrs", "wstorePrt"):
        assert key in text, (key, text)
    assert [r.typ for r in mocks.resources] == ["pulumi:providers:aws"]


def test_a_token_given_as_an_output_is_taken_unread():
    """An Output token cannot be format-checked before resources (its value may be unknown): it is accepted, kept
    secret, and a plain malformed one is still refused."""
    mocks, seen, error = run_consumer(lambda p: pulumi.ResourceOptions(provider=p),
                                      wallarm_token=pulumi.Output.secret("x"))
    assert error is None and seen["url"].startswith("http://"), error
    _, _, error = run_consumer(lambda p: pulumi.ResourceOptions(provider=p), wallarm_token="x")
    assert isinstance(error, settings.SettingsError) and "wallarmToken" in str(error)


def test_the_outputs_are_the_stacks_exports():
    """Guards against a consumer in another language seeing other outputs than the stack exports: the outputs the
    provider host infers from the component's typed attributes are the export names, and the stack exports them."""
    from pulumi.provider.experimental.analyzer import Analyzer

    component = Analyzer("wallarm").analyze([WallarmDeployment])["component_definitions"]["WallarmDeployment"]
    exported = set(program_run().exports)
    assert set(component.outputs) == exported, (sorted(component.outputs), sorted(exported))  # dev exports all
    assert {k for k, p in component.outputs.items() if p.optional} == {
        "caCertificate", "jumpHostPublicIp", "jumpHostHostKey", "deployerSecurityGroupId", "sshPrivateKey"}


def test_the_waits_ask_with_the_given_providers_region_and_profile(monkeypatch):
    """Guards against waits that ask the stack's account and region while the component deploys with a consumer's
    provider: the `aws` input (that provider's region and profile) wins over the stack's `aws:` keys; a provider
    with static keys, which cannot be handed to the waits, turns them off rather than asking someone else."""
    from pulumi.dynamic import ConfigureRequest
    from pulumi.dynamic.config import Config

    from components import waits

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAAMBIENTAMBIENT01")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "ambient")
    provider = waits.TargetWaits()
    provider.configure(ConfigureRequest(Config({"aws:region": "eu-central-1"}, "wallarm-postanalytics")))
    assert provider._client().meta.region_name == "eu-central-1"  # noqa: SLF001 - which client the waits build
    given = {"aws": {"region": "us-west-2", "profile": None, "staticCredentials": False}}
    assert provider._client(given).meta.region_name == "us-west-2"  # noqa: SLF001
    assert provider._client({"aws": {**given["aws"], "staticCredentials": True}}) is None  # noqa: SLF001


def test_a_provider_with_static_keys_turns_the_waits_off():
    """Guards against waits that would ask with the environment's credentials while the provider deploys with
    static keys of another account: the waits learn only that the keys exist (never the keys) and stay off."""
    def make(p):
        return pulumi.ResourceOptions(provider=p)

    mocks = ProviderMocks()
    mocks.learn({"aws:region": "eu-central-1"})
    pulumi.runtime.set_mocks(mocks, project="consumer", stack="prod", preview=False, monitor=StrictMonitor(mocks))
    pulumi.runtime.set_all_config({"aws:region": "eu-central-1"})

    @pulumi.runtime.test
    def program():
        p = aws.Provider("keys", region="us-west-2", access_key="AKIAEXAMPLEEXAMPLE01",
                         secret_key=pulumi.Output.secret("example"))
        tier = WallarmDeployment("tier", WallarmDeploymentArgs(**DEV), opts=make(p))
        return tier.url

    program()
    waits = mocks.of_type("pulumi-python:dynamic:Resource")
    assert waits and all(w.inputs["aws"]["staticCredentials"] is True for w in waits)
    assert not [w.urn for w in waits if "AKIAEXAMPLE" in str(w.raw_inputs)]
