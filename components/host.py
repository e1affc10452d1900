"""Shared pieces of a host: the EC2 instance and the remote steps that run scripts/ on it.

- The instance's logical name carries a generation: a short hash of what needs a new machine (the installer
  version, the instance type, an explicit amiId (jumpHostAmiId for the jump host), the placement, the key pair).
  A new generation is a new resource, created with the inputs the settings name now (the image included),
  registered and checked before the old one is deleted.
  Within a generation `ignore_changes=["ami"]` keeps a running node when a newer image is published. (On a
  replacement the engine copies ignored inputs from the old resource, so a replaced instance of the same name
  would boot the old image: the generation makes every intended replacement a creation instead.)
- No node has a public address; the remote steps reach its private IP, through the jump host when there is one.
- Every remote step carries `triggers=[instance.id, <hash of the scripts it runs>]`: a replaced instance, or an
  edited script, runs the step again; nothing else does. Secrets reach the host only through a Command's stdin;
  stdout and stderr are secret outputs.
- Host keys: each machine boots with an ED25519 host key the program made (`<instance name>-hostkey`, one per
  generation, so a replaced node comes with its own new key) and every connection pins it, on the proxy hop too
  (`host_key`). pulumi-command then offers only that key's type and accepts only that key
  (provider/pkg/provider/remote/connection.go: `HostKeyAlgorithms = [publicKey.Type()]`, `ssh.FixedHostKey`).
- It also retries a failed handshake like a failed dial, with the same limit (`dialWithRetry`, 100 ms growing
  1.5x up to 5 s between tries, pulumi/sdk util/retry): so the first step (`<node>-sshd`) waits for the booting
  host's SSH banner without any key, and every step after it dials HANDSHAKE_TRIES times. A wrong host key fails
  the step `<node>-...` within a minute with pulumi-command's `ssh: handshake failed: ssh: host key mismatch`.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from typing import Any, Optional, Sequence

import pulumi
import pulumi_aws as aws
import pulumi_tls as tls
from pulumi_command import local, remote

from . import bundled, cloudinit, render
from .nodeargs import HostArgs, WallarmArgs
from .settings import InstanceShape

SCRIPTS_DIR = bundled.SCRIPTS_DIR
STAGE_DIR = "wallarm-deploy"
# Modules a script imports from its own directory: each role that uploads the script uploads them too (its SCRIPTS),
# and they count in the script's hash, so that an edit to one runs the script's step again on every host.
SCRIPT_MODULES = {"apply_spec.py": ("yamledit.py",)}
STEP_TIMEOUT = pulumi.CustomTimeouts(create="40m", update="40m")
# Dials of a step whose host already answered SSH (its `-sshd` wait): enough for an sshd restart at boot, few
# enough that a wrong host key fails fast (tests/runtime/test_hostkeys.py sums pulumi-command's delays: under a minute).
HANDSHAKE_TRIES = 12
PER_DIAL_TIMEOUT = 10
# How long the `-sshd` step waits for a booting machine's SSH server.
BOOT_WAIT_SECONDS = 900


@functools.cache
def script_text(name: str) -> str:
    return (SCRIPTS_DIR / name).read_text()


@functools.cache
def script_hash(name: str) -> str:
    """The hash of a script and of the modules it imports from beside it (SCRIPT_MODULES)."""
    digest = hashlib.sha256(script_text(name).encode())
    for module in SCRIPT_MODULES.get(name, ()):
        digest.update(hashlib.sha256(script_text(module).encode()).digest())
    return digest.hexdigest()


def generation(*parts: Optional[str]) -> str:
    """Eight hex digits naming one machine's identity."""
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:8]


def host_key(name: str, parent: pulumi.Resource) -> tls.PrivateKey:
    """An ED25519 SSH host key (its private half a secret in state, as pulumi-tls marks it)."""
    return tls.PrivateKey(name, algorithm="ED25519", opts=pulumi.ResourceOptions(parent=parent))


def create_instance(name: str, role: str, shape: InstanceShape, args: HostArgs, version: str,
                    parent: pulumi.Resource, public: bool = False,
                    key: Optional[tls.PrivateKey] = None) -> tuple[aws.ec2.Instance, tls.PrivateKey]:
    """The instance and its host key: `key` when given (the jump host keeps one across machines), else a new one
    for this generation."""
    # Everything that needs a new machine names it: a new type too (in place, AWS would stop every node of the
    # fleet at once; across architectures the replacement would keep the old image).
    gen = generation(role, version, shape.instance_type, args.chosen_ami, args.placement.key, args.ssh_public_key,
                     args.os)
    vm_name = f"{name}-{gen}"
    key = key or host_key(f"{vm_name}-hostkey", parent)
    # Secret: it carries the host's private key (docs/security.md says who can read user data).
    user_data: pulumi.Output[str] = pulumi.Output.secret(
        pulumi.Output.all(key.private_key_openssh, key.public_key_openssh).apply(
            lambda k: cloudinit.user_data(role, version, shape.arch, k[0], k[1])))
    instance = aws.ec2.Instance(
        vm_name,
        ami=args.ami_id,
        instance_type=shape.instance_type,
        subnet_id=args.placement.subnet_id,
        vpc_security_group_ids=list(args.security_group_ids),
        key_name=args.key_name,
        associate_public_ip_address=public,
        metadata_options=aws.ec2.InstanceMetadataOptionsArgs(
            http_tokens="required", http_endpoint="enabled", http_put_response_hop_limit=1),
        root_block_device=aws.ec2.InstanceRootBlockDeviceArgs(
            encrypted=True, volume_type="gp3", volume_size=args.root_volume_gb, delete_on_termination=True),
        user_data=user_data,
        user_data_replace_on_change=True,
        # Attached in place (EC2 AssociateIamInstanceProfile): a running node gets it without a new machine.
        iam_instance_profile=args.instance_profile,
        tags={"Name": vm_name, "Role": role, "Node": name},
        opts=pulumi.ResourceOptions(parent=parent, ignore_changes=["ami"]),
    )
    return instance, key


def connection(host: pulumi.Input[str], user: str, private_key: pulumi.Input[str], key: pulumi.Input[str],
               proxy: Optional[remote.ProxyConnectionArgs] = None) -> remote.ConnectionArgs:
    """A connection that pins `key` (an OpenSSH public key line) and dials HANDSHAKE_TRIES times."""
    return remote.ConnectionArgs(host=host, user=user, private_key=private_key, host_key=key, proxy=proxy,
                                 dial_error_limit=HANDSHAKE_TRIES, per_dial_timeout=PER_DIAL_TIMEOUT)


def wait_for_sshd(name: str, host: pulumi.Input[str], via: Optional[remote.ConnectionArgs],
                  triggers: Sequence[pulumi.Input], depends_on: Sequence[pulumi.Resource],
                  parent: pulumi.Resource) -> pulumi.Resource:
    """`<name>-sshd`: waits (scripts/wait-for-ssh.sh, on stdin) until `host` answers SSH, from the deployer or,
    with `via`, from the jump host. It exchanges no key, so a booting host costs no pinned dial."""
    create = pulumi.Output.concat("bash -s -- --host ", host, f" --timeout {BOOT_WAIT_SECONDS}")
    opts = pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on), custom_timeouts=STEP_TIMEOUT)
    common: dict[str, Any] = dict(create=create, stdin=script_text("wait-for-ssh.sh"),
                  triggers=[*triggers, script_hash("wait-for-ssh.sh")], add_previous_output_in_env=False)
    if via is None:
        return local.Command(f"{name}-sshd", **common, opts=opts)
    return remote.Command(f"{name}-sshd", connection=via, **common, opts=opts)


class HostSteps:
    """Builds the remote steps of one host, all parented to its component."""

    def __init__(self, name: str, instance: aws.ec2.Instance, key: tls.PrivateKey, args: HostArgs,
                 parent: pulumi.Resource):
        self.name = name
        self.user = args.ssh_user
        self.parent = parent
        self.instance_id = instance.id
        self.connection = connection(instance.private_ip, self.user, args.ssh_private_key, key.public_key_openssh,
                                     args.proxy)
        jump = args.jump
        self.sshd = wait_for_sshd(name, instance.private_ip, jump.connection if jump else None, [self.instance_id],
                                  [jump.ready] if jump else [], parent)

    def boot(self, scripts: Sequence[str], hostname: Optional[str] = None) -> remote.Command:
        """`<node>-wait`: stages `scripts` in ~/wallarm-deploy, waits for boot and (with `hostname`) names the host,
        before the installer registers it. One step: the scripts ride on its stdin (stage_script), so a host costs
        no upload resource (pulumi-command's CopyToRemote takes one file, or an archive only as a local path:
        provider/pkg/provider/remote/copyController.go, Check: "archive must be a path to a file or directory").
        Any edited script re-runs it on every host: it re-stages the files, finds the host booted and named, and
        restarts nothing. The name is a step, not user data: a running node takes it in place, with no new
        machine; Console shows it from its next registration (a new generation), see docs/monitoring.md."""
        then = [script_command("wait-for-boot.sh")]
        if hostname is not None:
            then.append(script_command("set-hostname.sh", "--name", hostname, sudo=True))
        return self.command("wait", "wait-for-boot.sh", "bash -s", [self.sshd],
                            stdin=stage_script({s: script_text(s) for s in scripts}, then))

    def agent(self, bundle: pulumi.Input[str], after: Sequence[pulumi.Resource]) -> remote.Command:
        """The CloudWatch agent: installed once, its configuration (on stdin) loaded whenever it changes."""
        return self.command("agent", "cloudwatch_agent.py",
                            script_command("cloudwatch_agent.py", sudo=True, python=True), after, stdin=bundle)

    def install(self, create: str, token: pulumi.Output[str], after: Sequence[pulumi.Resource]) -> remote.Command:
        """The installer step, the token on its stdin."""
        return self.command("install", "install-wallarm.sh", create, after, stdin=token.apply(lambda t: t + "\n"))

    def configure(self, spec: pulumi.Output[str], after: Sequence[pulumi.Resource]) -> remote.Command:
        """apply_spec.py with the spec (secret) on stdin."""
        return self.command("configure", "apply_spec.py", script_command("apply_spec.py", sudo=True, python=True),
                            after, stdin=spec)

    def command(self, step: str, script: str, create: str, depends_on: Sequence[pulumi.Resource],
                stdin: Optional[pulumi.Input[str]] = None,
                triggers: Sequence[pulumi.Input] = ()) -> remote.Command:
        return remote.Command(
            f"{self.name}-{step}",
            connection=self.connection,
            create=create,
            stdin=pulumi.Output.secret(stdin) if stdin is not None else None,
            # The script's hash: an edited script runs this step again on every existing host.
            triggers=[self.instance_id, script_hash(script), *triggers],
            logging=remote.Logging.STDOUT_AND_STDERR,
            # Stock sshd refuses PULUMI_COMMAND_STDOUT (no AcceptEnv): every update would warn.
            add_previous_output_in_env=False,
            opts=pulumi.ResourceOptions(
                parent=self.parent,
                depends_on=list(depends_on),
                additional_secret_outputs=["stdout", "stderr"],
                custom_timeouts=STEP_TIMEOUT,
            ),
        )


def host_name(stack: str, node: str) -> str:
    """`<stack>-<node>` as a host name: lowercase letters, digits and hyphens, at most 63 (the stack part is cut)."""
    clean = "-".join(w for w in "".join(c if c.isalnum() and c.isascii() else "-" for c in stack.lower()).split("-") if w)
    return f"{clean[:62 - len(node)].rstrip('-')}-{node}" if clean else node


def install_command(w: WallarmArgs, mode: str, version: str, arch: str, with_nginx: bool = False) -> str:
    """The installer step's command text: version, architecture, URL, mode, cloud, group, pinned digest (no token)."""
    args = ["--version", version, "--arch", arch, "--url", render.installer_url(version, arch),
            "--mode", mode, "--cloud", w.cloud]
    if w.token_type == "api" and w.node_group:  # the settings require a group with an api token
        args += ["--group", w.node_group]
    digest = w.installer_sha256.get(f"{version}/{arch}")
    if digest:
        args += ["--sha256", digest]
    if with_nginx:
        args.append("--with-nginx")
    return script_command("install-wallarm.sh", *args, sudo=True)


def script_command(script: str, *args: str, sudo: bool = False, python: bool = False) -> str:
    """The command text that runs a staged script. `~` is the SSH user's home, where boot() put it."""
    runner = "python3" if python else "bash"
    words = (["sudo"] if sudo else []) + [runner, f"~/{STAGE_DIR}/{script}", *args]
    return " ".join(words)


def stage_script(files: dict[str, str], then: Sequence[str]) -> str:
    """A bash script that writes `files` into ~/STAGE_DIR (each through a temporary file and a rename: a run killed
    at any line leaves the old or the new file, two at once never mix; an unchanged file is left as it is), then runs
    `then`, stopping at a failure."""
    lines = ["set -euo pipefail", f'stage="$HOME/{STAGE_DIR}"', 'mkdir -p "$stage"',
             'put() { local tmp; tmp=$(mktemp "$stage/.$1.XXXXXX"); base64 -d >"$tmp"; chmod 0644 "$tmp"; '
             'if cmp -s "$tmp" "$stage/$1"; then rm -f "$tmp"; else mv -f "$tmp" "$stage/$1"; fi; }']
    for name, text in files.items():
        lines += [f"put {name} <<'EOF'", base64.encodebytes(text.encode()).decode().rstrip("\n"), "EOF"]
    # </dev/null: `bash -s` reads this very script from stdin, which a command must not eat.
    return "\n".join([*lines, *(f"{{ {command}; }} </dev/null" for command in then)]) + "\n"
