"""The tier as a package for other programs (docs/consuming.md): installed with pip as `wallarm_tier`, and served
to any language by the component provider host in provider/.

Guards against: a package that imports the consumer's own `components/` instead of itself, that misses a host script
or the settings declaration, that uploads other scripts than the repository's; a schema that drifts from the args
unnoticed (provider/schema.json is the golden: regenerate it with
`UPDATE_SCHEMA=1 venv/bin/python -m pytest -p no:xdist tests/repo/test_package.py -k schema` and commit the diff).
"""

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from components import deployment, deploymentargs

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "provider" / "schema.json"
TYPE = "wallarm:index:WallarmDeployment"


def _files_of_the_repository() -> list[str]:
    """What a clone holds (tracked files, and new ones not ignored): pip builds the package from these."""
    out = subprocess.run(["git", "-C", str(ROOT), "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                         capture_output=True, check=True).stdout.decode()
    return [f for f in out.split("\0") if f and (ROOT / f).is_file()]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """`pip install --target` of a copy of the repository (as `pip install git+https://...` builds a clone),
    offline, outside the repository: the directory that holds wallarm_tier."""
    base = tmp_path_factory.mktemp("package")
    clone, site = base / "clone", base / "site"
    for name in _files_of_the_repository():
        (clone / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, clone / name)
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                           "--no-index", "--target", str(site), str(clone)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return site


def _run(code: str, cwd: Path, path: list[Path], timeout: int = 600) -> dict:
    """Runs `code` in a fresh interpreter with exactly `path` in front of sys.path (no repository), from `cwd`;
    the code prints one JSON document last."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    boot = f"import sys; sys.path[:0] = {[str(p) for p in path]!r}; sys.path.remove({str(ROOT)!r}) " \
           f"if {str(ROOT)!r} in sys.path else None\n"
    done = subprocess.run([sys.executable, "-c", boot + code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_components_import_themselves_relatively():
    """An absolute `components` import inside components/ would, once installed as wallarm_tier, import the
    consumer's own components/ package (or fail)."""
    found = []
    for path in sorted((ROOT / "components").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else \
                [a.name for a in node.names] if isinstance(node, ast.Import) else []
            found += [f"{path.relative_to(ROOT)}:{node.lineno}: {n}" for n in names
                      if n == "components" or n.startswith("components.")]
    assert not found, "absolute imports of components inside components/ (use `from . import`):\n" + "\n".join(found)


def test_package_requires_what_the_components_import():
    """A consumer's `pip install` brings every third-party module components/ imports, with requirements.in's
    ranges (the stack program's), not other ones."""
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    ranges = {re.split(r"[<>=!~ ]", line, 1)[0].lower(): line.strip()
              for line in (ROOT / "requirements.in").read_text().splitlines() if line.strip() and line[0] != "#"}
    for requirement in declared:
        name = re.split(r"[<>=!~ ]", requirement, 1)[0].lower()
        assert ranges.get(name) == requirement, f"pyproject.toml {requirement!r}; requirements.in: {ranges.get(name)!r}"
    distribution = {"pulumi": "pulumi", "pulumi_aws": "pulumi-aws", "pulumi_awsx": "pulumi-awsx",
                    "pulumi_command": "pulumi-command", "pulumi_tls": "pulumi-tls", "yaml": "pyyaml",
                    "boto3": "boto3", "botocore": "boto3", "cryptography": "cryptography"}
    names = {re.split(r"[<>=!~ ]", r, 1)[0].lower() for r in declared}
    for path in sorted((ROOT / "components").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            modules = [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else \
                [a.name for a in node.names] if isinstance(node, ast.Import) else []
            for module in modules:
                top = module.split(".")[0]
                if top in sys.stdlib_module_names or top == "__future__":
                    continue
                assert distribution.get(top) in names, f"{path.relative_to(ROOT)} imports {top}: not in pyproject.toml"


def test_installed_package_carries_the_scripts_and_the_declaration(installed):
    """The wheel holds every host script byte for byte and Pulumi.yaml (copied at build time), and
    declared_keys() reads the installed declaration."""
    package = installed / "wallarm_tier"
    scripts = sorted(p.name for p in (ROOT / "scripts").iterdir() if p.suffix in (".sh", ".py"))
    assert scripts, "no scripts in the repository?"
    for name in scripts:
        shipped = package / "scripts" / name
        assert shipped.is_file(), f"the package lacks scripts/{name}"
        assert shipped.read_bytes() == (ROOT / "scripts" / name).read_bytes(), f"scripts/{name} differs in the package"
    assert (package / "Pulumi.yaml").read_bytes() == (ROOT / "Pulumi.yaml").read_bytes()
    seen = _run("import json, wallarm_tier.settings as s, wallarm_tier.host as h, wallarm_tier.bundled as b\n"
                "print(json.dumps({'keys': s.declared_keys(), 'file': str(s.PROJECT_FILE), 'scripts': str(h.SCRIPTS_DIR),"
                " 'installed': b.INSTALLED}))", cwd=installed.parent, path=[installed])
    assert seen["installed"] is True
    assert seen["file"] == str(package / "Pulumi.yaml") and seen["scripts"] == str(package / "scripts"), seen
    assert seen["keys"] == yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]


# Runs examples/python from a copy outside the repository, with only the installed package and the harness's
# mocks: the harness (harness.mocks, which imports this repository's `components`) is imported first, then the
# repository leaves sys.path and sys.modules, so the consumer's `components` is its own and the tier is
# wallarm_tier from the install.
CONSUMER = r"""
import json, runpy, sys
sys.path.insert(0, HARNESS)
import pulumi
from harness.mocks import ProviderMocks, StrictMonitor
from harness.sandbox import staged
sys.path.remove(HARNESS)
for name in [n for n in sys.modules if n == "components" or n.startswith("components.")]:
    del sys.modules[name]
sys.path.insert(0, EXAMPLE)

mocks = ProviderMocks()
config = {"aws:region": "eu-central-1", "platform-edge:wallarmToken": TOKEN}
mocks.learn(config)
pulumi.runtime.set_mocks(mocks, project="platform-edge", stack="dev", preview=False, monitor=StrictMonitor(mocks))
pulumi.runtime.set_all_config(config, secret_keys=["platform-edge:wallarmToken"])
exports = {}

@pulumi.runtime.test
def program():
    real = pulumi.export
    pulumi.export = lambda name, value: exports.__setitem__(name, value)
    try:
        runpy.run_path(EXAMPLE + "/__main__.py", run_name="__main__")
    finally:
        pulumi.export = real
    names = list(exports)
    return pulumi.Output.all(*[pulumi.Output.from_input(exports[n]) for n in names]).apply(
        lambda values: exports.update(zip(names, values)))

program()

print(json.dumps({
    "resources": [{"type": r.typ, "name": r.name, "urn": r.urn, "parent": r.parent} for r in mocks.resources],
    # The scripts each host gets: staged by its -wait step from stdin (components/host.py stage_script).
    "uploads": {f"{r.name}:{path}": body for r in mocks.of_type("command:remote:Command") if r.name.endswith("-wait")
                for path, body in staged(r.inputs.get("stdin") or "")},
    "exports": exports,
    "tier": sys.modules["wallarm_tier"].__file__,
    "consumerComponents": sys.modules["components"].__file__,
}, default=str))
"""


def test_example_consumer_runs_from_outside_the_repository(installed, tmp_path):
    """examples/python, a platform team's program with its own components/ package, runs with the tier installed
    from the repository: every resource of the tier under its WallarmDeployment, its own resources beside, the
    component's outputs resolved, and the scripts uploaded to the hosts the repository's byte for byte."""
    example = tmp_path / "platform-edge"
    shutil.copytree(ROOT / "examples" / "python", example)
    token = "ExampleWallarmToken0123456789abcdefXYZ=="
    code = f"HARNESS, EXAMPLE, TOKEN = {str(ROOT)!r}, {str(example)!r}, {token!r}\n" + CONSUMER
    seen = _run(code, cwd=example, path=[installed])

    assert seen["tier"].startswith(str(installed / "wallarm_tier")), seen["tier"]
    assert seen["consumerComponents"].startswith(str(example / "components")), seen["consumerComponents"]
    resources = seen["resources"]
    by_urn = {r["urn"]: r for r in resources}
    tier = [r for r in resources if r["type"] == TYPE]
    assert [r["name"] for r in tier] == ["edge"], tier
    own = {(r["type"], r["name"]) for r in resources if r["parent"] not in by_urn and r["type"] != TYPE}
    assert ("aws:sns/topic:Topic", "platform-alerts") in own and ("pulumi:providers:aws", "platform-eu") in own, own

    def under_tier(r) -> bool:
        while r is not None:
            if r["type"] == TYPE:
                return True
            r = by_urn.get(r["parent"])
        return False
    tier_resources = [r for r in resources if r["type"] != TYPE and under_tier(r)]
    strays = [r["urn"] for r in resources if r["type"] != TYPE and not under_tier(r)
              and (r["type"], r["name"]) not in own]
    assert not strays, f"resources of the tier outside WallarmDeployment: {strays}"
    assert sum(r["type"] == "aws:ec2/instance:Instance" for r in tier_resources) >= 3, "2 filtering + 1 wstore"

    assert seen["exports"]["url"].startswith("http://") and seen["exports"]["loadBalancerDnsName"], seen["exports"]
    assert len(seen["exports"]["filteringPrivateIps"]) == 2, seen["exports"]
    assert seen["exports"]["alertTopicArn"].startswith("arn:aws:sns:eu-central-1:"), seen["exports"]

    uploads = seen["uploads"]
    assert uploads, "no script uploaded"
    for name, text in uploads.items():
        script = Path(name.split(":", 1)[1]).name
        assert text == (ROOT / "scripts" / script).read_text(), f"{name}: another {script} than scripts/"


def _inferred_schema(installed: Path) -> dict:
    """The schema provider/__main__.py's host would serve: the SDK's ComponentProvider (analyzer + schema, what
    component_provider_host builds before it serves) over the entry point's own COMPONENTS and PACKAGE."""
    code = ("import json, runpy\n"
            "from pulumi.provider.experimental.component import ComponentProvider\n"
            f"entry = runpy.run_path({str(ROOT / 'provider' / '__main__.py')!r}, run_name='provider')\n"
            "assert issubclass(entry['PROVIDER'], ComponentProvider)\n"
            "print(json.dumps(json.loads(entry['PROVIDER'](entry['COMPONENTS'], entry['PACKAGE']).schema)))")
    return _run(code, cwd=installed.parent, path=[installed])


def test_schema_as_the_provider_host_infers_it(installed):
    """The package, the component's token, every argument with its type (plain, or an Input for the two secrets),
    the required ones, every output; and the committed provider/schema.json is that schema."""
    schema = _inferred_schema(installed)
    if os.environ.get("UPDATE_SCHEMA") == "1":
        SCHEMA.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
    assert schema["name"] == "wallarm", schema["name"]
    assert list(schema["resources"]) == [TYPE], list(schema["resources"])
    resource = schema["resources"][TYPE]
    assert resource["isComponent"] is True
    inputs = resource["inputProperties"]

    annotations = deploymentargs.WallarmDeploymentArgs.__annotations__
    expected = {deploymentargs.camel(k) for k in annotations}
    assert set(inputs) == expected, f"missing {expected - set(inputs)}, unexpected {set(inputs) - expected}"
    declared = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    kinds = {"string": "string", "integer": "integer", "boolean": "boolean", "array": "array"}
    for key, prop in inputs.items():
        if key in declared:  # the same type as the stack's key
            assert prop.get("type") == kinds[declared[key].get("type", "string")], (key, prop, declared[key])
        assert prop.get("description"), f"{key} has no description in the schema"
        secret = key in ("wallarmToken", "sshPrivateKey")
        assert prop.get("plain") is (None if secret else True), (key, prop)
    required = sorted(deploymentargs.camel(k) for k in deploymentargs.WallarmDeploymentArgs.__required_keys__)
    assert resource["requiredInputs"] == required, resource["requiredInputs"]
    outputs = {deploymentargs.camel(k) for k in deployment.WallarmDeployment.__annotations__ if not k.startswith("_")}
    assert set(resource["properties"]) == outputs, set(resource["properties"]) ^ outputs
    # The analyzer has no notion of a secret property (pulumi/provider/experimental/schema.py Property has no
    # `secret`): a consumer's secret stays secret because the two are Inputs (an Output keeps its secrecy).
    assert all("secret" not in prop for prop in inputs.values())

    assert SCHEMA.is_file(), f"no {SCHEMA.relative_to(ROOT)}: write it with UPDATE_SCHEMA=1 (module docstring)"
    assert json.loads(SCHEMA.read_text()) == schema, (
        "provider/schema.json is not the schema the host infers today: rerun with UPDATE_SCHEMA=1 and commit it")


def test_the_provider_entry_point_serves_that_schema(installed, tmp_path):
    """`python provider <engine address>`, as the Python language host starts a plugin (RunPlugin), prints its port
    and answers GetSchema with the committed schema: the entry point runs as Pulumi runs it, not only in-process."""
    code = ("import json, subprocess, sys, grpc\n"
            "from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc\n"
            f"proc = subprocess.Popen([sys.executable, {str(ROOT / 'provider')!r}, '127.0.0.1:1'],"
            " stdout=subprocess.PIPE, text=True, env={'PYTHONPATH': sys.path[0]})\n"
            "try:\n"
            "    port = proc.stdout.readline().strip()\n"
            "    stub = provider_pb2_grpc.ResourceProviderStub(grpc.insecure_channel(f'127.0.0.1:{port}'))\n"
            "    print(stub.GetSchema(provider_pb2.GetSchemaRequest(version=0), timeout=120).schema)\n"
            "finally:\n"
            "    proc.kill(); proc.wait()\n")
    served = _run(code, cwd=tmp_path, path=[installed])
    assert served == json.loads(SCHEMA.read_text()), "the running provider serves another schema than provider/schema.json"


# What the host does with a construct request from a TypeScript or YAML program, under the mocks: the inputs by
# their schema names (camelCase), the token a secret Output as the engine sends a secret; ComponentProvider maps
# them to WallarmDeploymentArgs' keys, builds the component and returns its outputs by schema name.
CONSTRUCT = r"""
import json, runpy, sys
sys.path.insert(0, HARNESS)
import pulumi
from harness.mocks import ProviderMocks, StrictMonitor
from harness.sandbox import staged
sys.path.remove(HARNESS)
entry = runpy.run_path(ENTRY, run_name="provider")
host = entry["PROVIDER"](entry["COMPONENTS"], entry["PACKAGE"])
mocks = ProviderMocks()
config = {"aws:region": "eu-central-1"}
mocks.learn(config)
pulumi.runtime.set_mocks(mocks, project="platform-edge-yaml", stack="dev", preview=False, monitor=StrictMonitor(mocks))
pulumi.runtime.set_all_config(config)
inputs = {"wallarmCloud": "EU", "wallarmToken": pulumi.Output.secret(TOKEN), "wallarmNodeGroup": "platform-edge",
          "protectedUpstream": "http://10.0.0.10:8080", "sshAllowedCidrs": ["203.0.113.10/32"],
          "filteringCount": 2.0, "postanalyticsCount": 1.0}
state = {}

@pulumi.runtime.test
def construct():
    result = host.construct("edge", TYPE, inputs, pulumi.ResourceOptions())
    names = sorted(result.state)
    return pulumi.Output.all(*[pulumi.Output.from_input(result.state[n]) for n in names]).apply(
        lambda values: state.update(zip(names, values)))

construct()
print(json.dumps({"state": state, "types": sorted({r.typ for r in mocks.resources}),
                  "instances": len(mocks.of_type("aws:ec2/instance:Instance"))}, default=str))
"""


def test_the_provider_host_constructs_the_component_from_schema_inputs(installed, tmp_path):
    """A non-Python program's request (camelCase inputs, integers as floats, a secret token) builds the whole tier
    through the host's own construct, and its outputs come back by their schema names."""
    token = "ExampleWallarmToken0123456789abcdefXYZ=="
    code = (f"HARNESS, ENTRY, TOKEN, TYPE = {str(ROOT)!r}, {str(ROOT / 'provider' / '__main__.py')!r}, {token!r}, "
            f"{TYPE!r}\n" + CONSTRUCT)
    seen = _run(code, cwd=tmp_path, path=[installed])
    assert seen["instances"] >= 4, seen  # 2 filtering, 1 postanalytics, the jump host
    assert seen["state"]["url"].startswith("http://"), seen["state"]
    assert len(seen["state"]["filteringPrivateIps"]) == 2, seen["state"]
    assert set(seen["state"]) <= set(json.loads(SCHEMA.read_text())["resources"][TYPE]["properties"])


def test_installed_waits_pickle_by_reference_to_the_package(installed, tmp_path):
    """The load balancer waits' dynamic provider, created by the installed package (in a consumer's program or in
    provider/venv), is pickled as wallarm_tier.waits.TargetWaits, and an interpreter with only the install loads it
    (what `python -m pulumi.dynamic` does with PULUMI_PYTHON_CMD, docs/consuming.md): no repository path, no
    `components` module."""
    pickled = _run("import base64, json\n"
                   "from pulumi.dynamic.dynamic import serialize_provider\n"
                   "from wallarm_tier import waits\n"
                   "print(json.dumps(serialize_provider(waits.TargetWaits())))", cwd=tmp_path, path=[installed])
    assert b"wallarm_tier.waits" in __import__("base64").b64decode(pickled)
    loaded = _run("import base64, dill, json, sys\n"
                  f"p = dill.loads(base64.b64decode({pickled!r}))\n"
                  "print(json.dumps([type(p).__module__, type(p).__name__, sys.modules['wallarm_tier'].__file__,"
                  " 'components' in sys.modules]))", cwd=tmp_path, path=[installed])
    assert loaded[:2] == ["wallarm_tier.waits", "TargetWaits"], loaded
    assert loaded[2].startswith(str(installed)) and loaded[3] is False, loaded


def test_yaml_example_uses_only_inputs_of_the_schema():
    """examples/yaml (not runnable here: no Pulumi CLI) sets only properties the committed schema declares, and
    every required one."""
    program = yaml.safe_load((ROOT / "examples" / "yaml" / "Pulumi.yaml").read_text())
    resource = json.loads(SCHEMA.read_text())["resources"][TYPE]
    edge = program["resources"]["edge"]
    assert edge["type"] == TYPE
    assert set(edge["properties"]) <= set(resource["inputProperties"]), set(edge["properties"]) - set(resource["inputProperties"])
    assert set(resource["requiredInputs"]) <= set(edge["properties"])
    assert program["packages"]["wallarm"].endswith("/provider@v0.1.0")
    used = {m.group(1).split(".")[1] for m in re.finditer(r"\$\{(edge\.[A-Za-z]+)\}", json.dumps(program["outputs"]))}
    assert used <= set(resource["properties"]), used - set(resource["properties"])
