"""Which old resource each new one takes over, as the engine decides it from URNs and aliases; the dev stack's
resources at a commit, as a fixture.

    venv/bin/python -m tools.aliases --base 549b0eb --stack dev > tests/fixtures/dev-stack-549b0eb.json

The engine (pulumi/pulumi pkg/resource/deploy/step_generator.go: generateSteps, generateAliases,
collapseAliasToUrn, inheritedChildAlias) looks a registered resource up in the old state by its URN first, then by
each alias: the alias specs it was given (a name, type, parent or noParent; empty parts are the resource's own),
then, when its parent was found through an alias, the same name and type under that old parent URN. The SDK sends
specs, not URNs, when the monitor supports "aliasSpecs" (sdk/python/lib/pulumi/runtime/resource.py,
prepare_aliases), as the mock monitor does: so the children of an aliased component carry no alias of their own
and inherit it here as in the engine. harness/mocks.py records each registration's specs (options["aliases"]).

The fixture lists each resource's URN, type and a digest of its inputs: secrets masked, and what the mocks make
anew on every run (keys, certificates, their validity) masked too, so that the digest says whether the program
asks for the same resource, not whether the mocks drew the same random key.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import re
import sys
from typing import Any, Iterable, Mapping, Optional

from harness.mocks import SECRET_SIG, Recorded  # noqa: F401 - Recorded: what claims() reads

ROOT_STACK = "pulumi:pulumi:Stack"
# Made anew by the mocks on each run (harness/mocks.py: real keys and certificates): masked in the digest.
_PEM = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----.*?-----END \1-----", re.S)
_OPENSSH_KEY = re.compile(r"(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp\d+) [A-Za-z0-9+/=]{40,}")
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(\+00:00|Z)")
_HEX_DIGEST = re.compile(r"\b[0-9a-f]{64}\b")


def _masked(value: Any) -> Any:
    if isinstance(value, dict):
        if SECRET_SIG in value:
            return "(secret)"
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    if isinstance(value, str):
        value = _PEM.sub(lambda m: f"({m.group(1)})", value)
        value = _OPENSSH_KEY.sub(lambda m: f"({m.group(1)} key)", value)
        value = _TIMESTAMP.sub("(time)", value)
        return _HEX_DIGEST.sub("(sha256)", value)
    if hasattr(value, "text") or hasattr(value, "path"):  # an asset: by its content
        return _masked(getattr(value, "text", None) or str(getattr(value, "path", "")))
    return value


def digest(raw_inputs: Mapping[str, Any]) -> str:
    """A digest of a resource's inputs as the engine would compare them, less secrets and the mocks' random keys."""
    text = json.dumps(_masked(dict(raw_inputs)), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def fixture(resources: Iterable[Recorded]) -> list[dict[str, str]]:
    """URN (the engine's, engine_urns), type and input digest of each resource."""
    resources = list(resources)
    urns = engine_urns(resources)
    return [{"urn": urns[r.urn], "type": r.typ, "digest": digest(r.raw_inputs)} for r in resources]


# ------------------------------------------------------------------------------------------------ URNs, as the engine
def _qualified_type(urn: str) -> str:
    return urn.split("::")[2]


def _name(urn: str) -> str:
    return urn.split("::", 3)[3]


def _stack_project(urn: str) -> tuple[str, str]:
    head = urn.split("::")
    return head[0][len("urn:pulumi:"):], head[1]


def engine_urns(records: Iterable[Recorded]) -> dict[str, str]:
    """mock URN -> the URN the engine gives the same registration. The engine qualifies a type with its parent's
    whole qualified type, and not with the stack's (pkg/resource/deploy/deployment.go, generateURN: "don't use the
    root stack type; otherwise, use the full qualified type"); the SDK's mock monitor (runtime/mocks.py, make_urn)
    takes the parent's last type only, the stack's included."""
    records = list(records)
    by_urn = {r.urn: r for r in records}
    out: dict[str, str] = {}

    def qualified(r: Recorded) -> str:
        parent = by_urn.get(r.parent)
        return f"{qualified(parent)}${r.typ}" if parent is not None else r.typ

    for r in records:
        stack, project = _stack_project(r.urn)
        out[r.urn] = f"urn:pulumi:{stack}::{project}::{qualified(r)}::{r.name}"
    return out


def create_urn(name: str, typ: str, parent: str, project: str, stack: str) -> str:
    """resource.CreateURN: a child's type is qualified by its parent's (parent$type); no parent, the type alone."""
    qualified = f"{_qualified_type(parent)}${typ}" if parent else typ
    return f"urn:pulumi:{stack}::{project}::{qualified}::{name}"


def claims(old_urns: set[str], new_records: list[Recorded]) -> dict[str, str]:
    """new URN -> the old URN it takes over (its own, or one of its aliases), in registration order as the engine
    walks them. old_urns: as the engine writes them (the fixture's); new_records: as the mocks recorded them,
    turned into the engine's URNs here (engine_urns)."""
    olds = {u: u for u in old_urns}
    urns = engine_urns(new_records)
    new = [dataclasses.replace(r, urn=urns[r.urn], parent=urns.get(r.parent, ""),
                               options={**r.options, "aliases": [
                                   {**a, "parentUrn": urns.get(a.get("parentUrn", ""), a.get("parentUrn", ""))}
                                   for a in (r.options or {}).get("aliases") or []]})
           for r in new_records]
    originals = {urns[r.urn]: r.urn for r in new_records}
    found: dict[str, str] = {}
    via_alias: dict[str, str] = {}  # the engine's sg.aliases: the URN a resource was found under, when an alias
    by_urn = {r.urn: r for r in new}

    def collapse(r: Recorded, spec: Mapping[str, Any]) -> str:
        if spec.get("urn"):
            return spec["urn"]
        stack, project = _stack_project(r.urn)
        parent = r.parent
        if spec.get("parentUrn"):
            parent = via_alias.get(spec["parentUrn"], spec["parentUrn"])
        if spec.get("noParent") or not parent or _qualified_type(parent) == ROOT_STACK:
            parent = ""
        return create_urn(spec.get("name") or r.name, spec.get("type") or r.typ, parent,
                          spec.get("project") or project, spec.get("stack") or stack)

    def inherited(typ: str, name: str, parent_name: str, parent_alias: str) -> str:
        stack, project = _stack_project(parent_alias)
        if name.startswith(parent_name):
            name = _name(parent_alias) + name[len(parent_name):]
        return create_urn(name, typ, parent_alias, project, stack)

    def visit(r: Recorded) -> None:
        if r.urn in found or r.urn in via_alias:
            return
        parent = by_urn.get(r.parent)
        if parent is not None:
            visit(parent)
        specs = (r.options or {}).get("aliases") or []
        aliases = [collapse(r, spec) for spec in specs]
        if r.parent in via_alias:
            parent_alias = via_alias[r.parent]
            aliases.append(inherited(r.typ, r.name, _name(r.parent), parent_alias))
            aliases += [inherited(a.split("::")[2].split("$")[-1], _name(a), _name(r.parent), parent_alias)
                        for a in aliases[: len(specs)]]
        for candidate in [r.urn, *aliases]:
            if candidate in olds:
                found[r.urn] = candidate
                if candidate != r.urn:
                    via_alias[r.urn] = candidate
                return

    for r in new:
        visit(r)
    return {originals[n]: olds[o] for n, o in found.items()}


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="The resources of a stack at a commit, under the mocks, as JSON.")
    parser.add_argument("--base", required=True, help="the commit (the program and the stack file as committed)")
    parser.add_argument("--stack", default="dev")
    args = parser.parse_args(argv)
    from tools.changes import base_run

    run, commit = base_run(args.stack, args.base)
    if run is None or run.error is not None:
        print(f"the program at {args.base} did not run: {run.error if run else 'no stack file'}", file=sys.stderr)
        return 1
    json.dump({"regenerate": f"venv/bin/python -m tools.aliases --base {args.base} --stack {args.stack} "
                             f"> tests/fixtures/{args.stack}-stack-{args.base}.json",
               "commit": commit, "stack": args.stack,
               "resources": sorted(fixture(run.mocks.resources), key=lambda r: r["urn"])},
              sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
