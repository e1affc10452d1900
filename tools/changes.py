"""Change preview: what a change does to a deployed stack, from two runs of the program under the mocks.

    venv/bin/python -m tools.plan --stack dev --changes [--base REF] [--set wallarmMode=block ...]

Runs the program twice in one process: on the base (the program and the stack file as committed at REF, default
HEAD, unpacked with `git archive` into a temporary directory) and on the working tree with the --set overrides.
The harness (harness/) is today's for both, so only the program's and the stack's differences show. Within one
process the mocks keep a TLS resource's outputs for equal inputs, as state keeps them (harness/mocks.py), and give
addresses from names, so equal inputs give equal outputs: no certificate or address noise.

Then it compares the two runs resource by resource (URN), as the engine compares the program's inputs with the
state, and prints, in `pulumi preview`'s words:
- create (+), delete (-), update (~), replace (+-), and "update or replace" (~?) where neither the program nor the
  provider's documented schema settles it; under each changed resource the inputs that differ (a secret one as
  "changed (secret)", never its value; inputs under ignore_changes are left out, as the engine keeps the old ones);
- the remote steps that run again, host by host (a Command updated or replaced runs its command again);
- the changes that hurt: a new load balancer (a new DNS name), wstore replaced or restarted (its memory lost), a new CA.
Replace comes from what the program says (replace_on_changes, a machine's generation in its name: a new generation
is a new resource, created before the old one is deleted) and from REPLACED_ON below, the provider's own ForceNew.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator, Optional

import pulumi

from components import settings
from harness.mocks import SECRET_SIG, Recorded
from harness.program import PROJECT_DIR, Run, run_program, stack_config, stack_file
from tools import aliases

STEPS = ("command:remote:Command", "command:remote:CopyToRemote")
LOCAL_STEPS = ("command:local:Command",)
INSTANCE = "aws:ec2/instance:Instance"
GENERATION = re.compile(r"-[0-9a-f]{8}(?=(-[a-z]+)?$)")
"""A machine's logical name ends in its generation (components/host.py: generation()); what belongs to one machine
(its host key, `<node>-<generation>-hostkey`) carries the generation before its own suffix."""

TF_AWS = "hashicorp/terraform-provider-aws, which pulumi-aws bridges (ForceNew in the resource schema)"
TF_TLS = "hashicorp/terraform-provider-tls, which pulumi-tls bridges (RequiresReplace plan modifiers)"
# type -> (inputs whose change replaces, inputs whose change replaces in some cases, source). Every other input of a
# listed type is updated in place. A type not listed: "update or replace".
REPLACED_ON: dict[str, tuple[frozenset, frozenset, str]] = {
    "aws:lb/loadBalancer:LoadBalancer": (
        frozenset({"name", "namePrefix", "internal", "loadBalancerType", "customerOwnedIpv4Pool"}),
        # A network load balancer's security groups can be set only at creation, and its subnets only added
        # (CustomizeDiff); runtime-behaviour.md cites hashicorp/terraform-provider-aws#33813.
        frozenset({"securityGroups", "subnets", "subnetMappings"}),
        f"internal/service/elbv2/load_balancer.go of {TF_AWS}"),
    "aws:lb/targetGroup:TargetGroup": (
        frozenset({"name", "namePrefix", "port", "protocol", "protocolVersion", "targetType", "vpcId",
                   "ipAddressType", "connectionTermination"}), frozenset(),
        f"internal/service/elbv2/target_group.go of {TF_AWS}"),
    "aws:lb/listener:Listener": (frozenset({"loadBalancerArn"}), frozenset(),
                                 f"internal/service/elbv2/listener.go of {TF_AWS}"),
    "aws:lb/targetGroupAttachment:TargetGroupAttachment": (
        frozenset({"targetGroupArn", "targetId", "port", "availabilityZone"}), frozenset(),
        f"internal/service/elbv2/target_group_attachment.go of {TF_AWS}"),
    "aws:ec2/securityGroup:SecurityGroup": (frozenset({"name", "namePrefix", "description", "vpcId"}), frozenset(),
                                            f"internal/service/ec2/vpc_security_group.go of {TF_AWS}"),
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": (
        frozenset({"securityGroupId"}), frozenset(),
        f"internal/service/ec2/vpc_security_group_ingress_rule.go of {TF_AWS}"),
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": (
        frozenset({"securityGroupId"}), frozenset(),
        f"internal/service/ec2/vpc_security_group_egress_rule.go of {TF_AWS}"),
    "aws:ec2/keyPair:KeyPair": (frozenset({"keyName", "keyNamePrefix", "publicKey"}), frozenset(),
                                f"internal/service/ec2/ec2_key_pair.go of {TF_AWS}"),
    "aws:ec2/eip:Eip": (frozenset({"domain", "customerOwnedIpv4Pool", "publicIpv4Pool", "networkBorderGroup"}),
                        frozenset(), f"internal/service/ec2/ec2_eip.go of {TF_AWS}"),
    "aws:ec2/instance:Instance": (
        frozenset({"ami", "availabilityZone", "subnetId", "keyName", "associatePublicIpAddress", "privateIp",
                   "placementGroup", "ebsBlockDevices", "ephemeralBlockDevices", "networkInterfaces"}),
        # userData replaces only with userDataReplaceOnChange (else AWS stops and starts the instance).
        frozenset({"userData", "userDataBase64", "rootBlockDevice"}),
        f"internal/service/ec2/ec2_instance.go of {TF_AWS}"),
    "tls:index/privateKey:PrivateKey": (frozenset({"algorithm", "ecdsaCurve", "rsaBits"}), frozenset(),
                                        f"internal/provider/resource_private_key.go of {TF_TLS}"),
    "tls:index/certRequest:CertRequest": (frozenset({"*"}), frozenset(),
                                          f"internal/provider/resource_cert_request.go of {TF_TLS}"),
    # Every input but early_renewal_hours.
    "tls:index/selfSignedCert:SelfSignedCert": (frozenset({"*"}), frozenset(),
                                                f"internal/provider/resource_self_signed_cert.go of {TF_TLS}"),
    "tls:index/locallySignedCert:LocallySignedCert": (frozenset({"*"}), frozenset(),
                                                      f"internal/provider/resource_locally_signed_cert.go of {TF_TLS}"),
    # Only triggers replace (pulumi/pulumi-command's schema: "Trigger a resource replacement on changes to any of
    # these values"); the program also names them in replace_on_changes.
    "command:remote:Command": (frozenset({"triggers"}), frozenset(), "pulumi/pulumi-command's schema"),
    "command:remote:CopyToRemote": (frozenset({"triggers"}), frozenset(), "pulumi/pulumi-command's schema"),
    "command:local:Command": (frozenset({"triggers"}), frozenset(), "pulumi/pulumi-command's schema"),
}
UPDATED_IN_PLACE = {"tls:index/selfSignedCert:SelfSignedCert": {"earlyRenewalHours"},
                    "tls:index/locallySignedCert:LocallySignedCert": {"earlyRenewalHours"}}
SYMBOLS = {"create": "+", "delete": "-", "update": "~", "replace": "+-", "update or replace": "~?"}


# ---------------------------------------------------------------------------------------------------- comparing
def comparable(value: Any) -> Any:
    """Inputs as the engine compares them: an asset by its content (Asset objects have no equality)."""
    if isinstance(value, pulumi.Asset):
        return ("asset", getattr(value, "text", None) or getattr(value, "path", None))
    if isinstance(value, dict):
        return {k: comparable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [comparable(v) for v in value]
    return value


def by_urn(run: Run) -> dict[str, dict]:
    return {r.urn: comparable(r.inputs) for r in run.mocks.resources}


def changed(before: Run, after: Run) -> set[str]:
    """Names of the resources present in both runs whose inputs differ."""
    a, b = by_urn(before), by_urn(after)
    return {urn.rsplit("::", 1)[1] for urn in a.keys() & b.keys() if a[urn] != b[urn]}


def _secret(raw: Any) -> bool:
    if isinstance(raw, dict):
        return SECRET_SIG in raw or any(_secret(v) for v in raw.values())
    if isinstance(raw, list):
        return any(_secret(v) for v in raw)
    return False


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 and "\n" not in text else f"({len(str(value))} characters)"


def input_diff(old: Recorded, new: Recorded) -> dict[str, str]:
    """Top-level input -> what changed, for the inputs that differ (ignore_changes left out); secrets unshown."""
    ignored = set(new.options.get("ignoreChanges") or [])
    a, b = comparable(old.inputs), comparable(new.inputs)
    out = {}
    for key in sorted(set(a) | set(b)):
        if key in ignored or a.get(key) == b.get(key):
            continue
        if _secret(old.raw_inputs.get(key)) or _secret(new.raw_inputs.get(key)):
            out[key] = "changed (secret)"
        elif key not in a:
            out[key] = f"added: {_shown(b[key])}"
        elif key not in b:
            out[key] = f"removed (was {_shown(a[key])})"
        elif isinstance(a[key], str) and isinstance(b[key], str) and ("\n" in a[key] or "\n" in b[key]):
            lines_a, lines_b = a[key].splitlines(), b[key].splitlines()
            moved = sum(1 for x, y in zip(lines_a, lines_b) if x != y) + abs(len(lines_a) - len(lines_b))
            out[key] = f"changed ({moved} of {max(len(lines_a), len(lines_b))} lines)"
        elif isinstance(a[key], list) and isinstance(b[key], list) and len(a[key]) == len(b[key]):
            at = [str(i) for i, (x, y) in enumerate(zip(a[key], b[key])) if x != y]
            out[key] = f"changed at [{', '.join(at)}]" + (
                f": {_shown(a[key][int(at[0])])} => {_shown(b[key][int(at[0])])}" if len(at) == 1 else "")
        elif isinstance(a[key], str) and isinstance(b[key], str):
            out[key] = _string_change(a[key], b[key])
        else:
            out[key] = f"{_shown(a[key])} => {_shown(b[key])}"
    return out


def _string_change(a: str, b: str, context: int = 12) -> str:
    """Two long one-line strings by what differs, with a little context: '...mode monitoring...' => '...block...'."""
    if len(a) <= 60 and len(b) <= 60:
        return f"{a!r} => {b!r}"
    start = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    end = 0
    while end < min(len(a), len(b)) - start and a[len(a) - 1 - end] == b[len(b) - 1 - end]:
        end += 1
    cut = max(0, start - context)

    def part(text: str) -> str:
        middle = text[cut:len(text) - end + min(end, context)]
        return ("..." if cut else "") + middle + ("..." if end > context else "")

    return f"{part(a)!r} => {part(b)!r}"


def _matches(key: str, patterns: list[str]) -> bool:
    return any(p == "*" or p.split("[")[0].split(".")[0] == key for p in patterns)


def operation(old: Recorded, new: Recorded, keys: set[str]) -> tuple[str, str]:
    """(update | replace | update or replace, why) for a resource whose inputs `keys` changed."""
    program = [k for k in keys if _matches(k, new.options.get("replaceOnChanges") or [])]
    if program:
        return "replace", f"replace_on_changes: {', '.join(sorted(program))} (the program)"
    if new.typ not in REPLACED_ON:
        return "update or replace", f"{new.typ} is not in tools/changes.py's table of what its provider replaces"
    force, maybe, source = REPLACED_ON[new.typ]
    replaced = sorted(k for k in keys if (k in force or "*" in force) and k not in UPDATED_IN_PLACE.get(new.typ, ()))
    if replaced:
        return "replace", f"{', '.join(replaced)} (ForceNew: {source})"
    if new.typ == INSTANCE and new.inputs.get("userDataReplaceOnChange") and {"userData", "userDataBase64"} & keys:
        return "replace", "userData with userDataReplaceOnChange (the program)"
    conditional = sorted(keys & maybe)
    if conditional:
        return "update or replace", f"{', '.join(conditional)}: replaced in some cases ({source})"
    return "update", ""


# ---------------------------------------------------------------------------------------------------- the preview
@dataclasses.dataclass
class Change:
    op: str
    record: Recorded
    """The new registration (the old one for a delete)."""
    why: str = ""
    inputs: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def host(self) -> str:
        return self.record.parent.rsplit("::", 1)[-1]

    @property
    def step(self) -> str:
        return self.record.name[len(self.host) + 1:] if self.record.name.startswith(self.host + "-") else self.record.name


def _natural(text: str) -> list:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text)]


def taken_over(before: list[Recorded], after: list[Recorded]) -> dict[str, Recorded]:
    """old URN -> the new resource that takes it over, by its URN or an alias, as the engine matches them
    (tools/aliases.py): a resource moved under a component with the alias of its old place is the same resource."""
    old_urns = aliases.engine_urns(before)
    by_engine = {old_urns[r.urn]: r.urn for r in before}
    claimed = aliases.claims(set(by_engine), after)
    return {by_engine[claimed[r.urn]]: r for r in after if r.urn in claimed}


def compare(before: list[Recorded], after: list[Recorded]) -> list[Change]:
    """Every resource that the change creates, updates, replaces or deletes, in a stable order."""
    old = {r.urn: r for r in before}
    kept = taken_over(before, after)
    mine = {id(r) for r in kept.values()}
    # Keyed by the old URN a new resource takes over; a new one that takes over nothing cannot collide with one.
    new = {**kept, **{f"(new) {r.urn}": r for r in after if id(r) not in mine}}
    changes = []
    for urn in new.keys() & old.keys():
        diff = input_diff(old[urn], new[urn])
        if diff:
            op, why = operation(old[urn], new[urn], set(diff))
            changes.append(Change(op, new[urn], why, diff))
    created = [new[u] for u in new.keys() - old.keys()]
    deleted = [old[u] for u in old.keys() - new.keys()]

    def machine(r: Recorded) -> Optional[tuple]:
        return (r.typ, r.parent, GENERATION.sub("", r.name)) if GENERATION.search(r.name) else None

    generations = {machine(r): r for r in deleted if machine(r)}
    for r in created:
        previous = generations.pop(machine(r), None) if machine(r) else None
        if previous is not None:
            deleted.remove(previous)
            diff = input_diff(previous, r)
            what = ("a new machine, created and checked before the old one is deleted" if r.typ == INSTANCE
                    else "it belongs to the new machine")
            changes.append(Change("replace", r, f"a new generation ({previous.name} -> {r.name}): {what}", diff))
        else:
            changes.append(Change("create", r))
    changes += [Change("delete", r) for r in deleted]
    return sorted(changes, key=lambda c: (_natural(c.host), _natural(c.record.name), c.record.typ))


def hurts(changes: list[Change], before: list[Recorded]) -> list[str]:
    """The changes that cost something beyond the change itself."""
    found = []
    for c in changes:
        r = c.record
        if r.typ == "aws:lb/loadBalancer:LoadBalancer" and c.op in ("replace", "delete", "update or replace"):
            found.append(f"{r.name}: {c.op}: a new load balancer has a new DNS name; clients and DNS records that "
                         "point at the old one stop working")
        if r.typ == "aws:lb/loadBalancer:LoadBalancer" and c.op == "create" and any(
                b.typ == r.typ for b in before):
            found.append(f"{r.name}: a new load balancer beside the old one: a new DNS name for clients")
        role = (r.inputs.get("tags") or {}).get("Role")
        if r.typ == INSTANCE and role == "postanalytics" and c.op in ("replace", "delete", "update or replace"):
            found.append(f"{(r.inputs.get('tags') or {}).get('Node', r.name)}: wstore's machine {c.op}: what it "
                         "holds in memory (the requests not yet exported) is lost")
        if r.typ in STEPS and c.op != "create" and c.step == "configure" and c.host.startswith("postanalytics"):
            found.append(f"{c.host}: wstore's configuration runs again and restarts wstore if its files changed: "
                         "what it holds in memory is lost")
        if r.typ == "tls:index/selfSignedCert:SelfSignedCert" and r.inputs.get("isCaCertificate") and c.op == "delete":
            # The last step of a CA rotation (components/pki.py); any other delete of the CA is tls false.
            found.append(f"{r.name}: delete: this CA leaves every trust bundle, so a certificate it signed is refused "
                         "from now on: only after the `caRotation switch` step's `pulumi up` succeeded")
        elif r.typ == "tls:index/selfSignedCert:SelfSignedCert" and r.inputs.get("isCaCertificate") and c.op in (
                "replace", "update or replace"):
            found.append(f"{r.name}: {c.op}: a new CA: every certificate is issued again, and whoever trusts the "
                         "caCertificate output must take the new one")
    return list(dict.fromkeys(found))


def render(changes: list[Change], unchanged: int, before: list[Recorded]) -> list[str]:
    rows = [(SYMBOLS[c.op], c.record.typ, c.record.name, c.op) for c in changes]
    lines: list[str] = []
    if not changes:
        lines.append("No changes: every resource keeps its inputs.")
    else:
        type_w = max(len(r[1]) for r in rows) + 2
        name_w = max(len(r[2]) for r in rows) + 2
        lines.append(f"     {'Type':<{type_w}}{'Name':<{name_w}}Plan")
        for c, (symbol, typ, name, op) in zip(changes, rows):
            lines.append(f" {symbol:<3} {typ:<{type_w}}{name:<{name_w}}{op}")
            if c.why and c.op != "update":
                lines.append(f"       why: {c.why}")
            for key, what in c.inputs.items():
                lines.append(f"       ~ {key}: {what}")
    steps: dict[str, list[str]] = {}
    for c in changes:
        if c.record.typ in STEPS + LOCAL_STEPS and c.op != "delete":
            where = c.host if c.record.typ in STEPS else f"{c.host} (on the machine that runs pulumi)"
            verb = "first run, a new step" if c.op == "create" else "again"
            steps.setdefault(f"{where}: {{}} ({verb})", []).append(c.step)
    lines += ["", "Steps that run (a Command created, updated or replaced runs its command)"]
    lines += [f"  {where.format(', '.join(names))}" for where, names in sorted(steps.items(), key=lambda kv: _natural(kv[0]))] \
        or ["  none"]
    harm = hurts(changes, before)
    lines += ["", "Changes that hurt"] + ([f"  WARNING {h}" for h in harm] or ["  none"])
    counts = {op: sum(1 for c in changes if c.op == op) for op in SYMBOLS}
    said = [f"{n} to {op}" for op, n in counts.items() if n]
    lines += ["", f"Resources: {', '.join(said) or 'no change'}; {unchanged} unchanged"]
    return lines


# ---------------------------------------------------------------------------------------------------- the base
def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(PROJECT_DIR), *args], capture_output=True, text=True,
                          check=True).stdout.strip()


def unpack(ref: str, into: Path) -> str:
    """The tree at `ref` (the program and the stack files) into `into`; returns the commit's short ID."""
    try:
        commit = _git("rev-parse", "--verify", "--short", f"{ref}^{{commit}}")
    except subprocess.CalledProcessError:
        raise ValueError(f"--base {ref}: no such commit in {PROJECT_DIR}") from None
    archive = subprocess.run(["git", "-C", str(PROJECT_DIR), "archive", "--format=tar", commit],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return commit


@contextlib.contextmanager
def program_tree(root: Path) -> Iterator[None]:
    """Imports `components` from `root` while inside; today's modules again after."""
    def ours(name: str) -> bool:
        return name == "components" or name.startswith("components.")

    saved_path, saved = list(sys.path), {k: sys.modules.pop(k) for k in list(sys.modules) if ours(k)}
    sys.path.insert(0, str(root))
    try:
        yield
    finally:
        for name in [k for k in sys.modules if ours(k)]:
            del sys.modules[name]
        sys.modules.update(saved)
        sys.path[:] = saved_path


def _relative(stack: str) -> str:
    """A stack given as a path, relative to the repository (so that it names the base's file too)."""
    if "/" not in stack and not stack.endswith(".yaml"):
        return stack
    path = Path(stack).resolve()
    try:
        return str(path.relative_to(PROJECT_DIR.resolve()))
    except ValueError:
        return stack


def base_run(stack: str, ref: str) -> tuple[Optional[Run], str]:
    """The program at `ref` with the stack file at `ref` (None when that commit has no such stack file)."""
    with tempfile.TemporaryDirectory(prefix="wallarm-base-") as tmp:
        root = Path(tmp)
        commit = unpack(ref, root)
        name = _relative(stack)
        if name.endswith(".yaml"):
            path = root / name
        else:
            path = root / Path(name).parent / f"Pulumi.{Path(name).name}.yaml"
        if not path.exists():
            return None, commit
        with program_tree(root):
            run = run_program(stack_config(str(path)), stack=stack, project_dir=root)
        return run, commit


@dataclasses.dataclass
class Preview:
    base: Optional[Run]
    head: Run
    commit: str
    changes: list[Change]

    def lines(self) -> list[str]:
        before = self.base.mocks.resources if self.base else []
        kept = taken_over(before, self.head.mocks.resources)
        changed = {id(c.record) for c in self.changes if c.op in ("update", "replace", "update or replace")}
        unchanged = len(kept) - sum(1 for r in kept.values() if id(r) in changed)
        return render(self.changes, unchanged, before)


class ProgramFailed(Exception):
    """One of the two runs stopped; the text says which and why."""


def preview(stack: str, overrides: Optional[dict[str, Any]] = None, ref: str = "HEAD") -> Preview:
    base, commit = base_run(stack, ref)
    if base is not None and base.error is not None:
        raise ProgramFailed(f"the base ({ref}, {commit}) stops: {base.error}")
    head = run_program(stack_config(stack, **(overrides or {})), stack=stack)
    if head.error is not None:
        raise ProgramFailed(str(head.error))
    before = base.mocks.resources if base else []
    return Preview(base, head, commit, compare(before, head.mocks.resources))


def shown_sets(sets: list[str]) -> str:
    """--set KEY=VALUE items as a header may show them: a secret key's value as (secret)."""
    secret = set(settings.SECRET_KEYS)
    shown = [f"{item.partition('=')[0]}=(secret)" if item.partition("=")[0].rpartition(":")[2] in secret else item
             for item in sets]
    return f" with {', '.join(shown)}" if shown else ""


def describe(stack: str, ref: str, commit: str, sets: list[str]) -> str:
    return (f"Changes to stack {stack}: from {ref} ({commit}: the program and {stack_file(stack).name} as committed) "
            f"to the working tree{shown_sets(sets)}; the program under the mocks, nothing in AWS, inputs compared as "
            "the engine compares them with the state.")
