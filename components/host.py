"""Shared pieces of a host: the EC2 instance and the remote steps that run scripts/ on it.

- The instance's logical name carries a generation: a short hash of what needs a new machine (the installer
  version, the instance type, an explicit amiId, the placement, the key pair). A new generation is a new resource, created with
  the inputs the settings name now (the image included), registered and checked before the old one is deleted.
  Within a generation `ignore_changes=["ami"]` keeps a running node when a newer image is published. (On a
  replacement the engine copies ignored inputs from the old resource, so a replaced instance of the same name
  would boot the old image: the generation makes every intended replacement a creation instead.)
- No node has a public address; the remote steps reach its private IP, through the jump host when there is one.
- Every remote step carries `triggers=[instance.id, <hash of the scripts it runs>]`: a replaced instance, or an
  edited script, runs the step again; nothing else does. Secrets reach the host only through a Command's stdin;
  stdout and stderr are secret outputs.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

import pulumi
import pulumi_aws as aws
from pulumi_command import remote

from components import render
from components.settings import InstanceShape, Settings

if TYPE_CHECKING:
    from components.pki import Pki

SCRIPTS_DIR = Path(__file__).resolve().parent.parent / "scripts"
STAGE_DIR = "wallarm-deploy"
STEP_TIMEOUT = pulumi.CustomTimeouts(create="40m", update="40m")


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where one node goes."""

    subnet_id: pulumi.Input[str]
    """A private subnet (an Output when the program creates the VPC)."""
    zone: str
    """Its availability zone."""
    key: str
    """A plain string naming the placement (subnet ID, or zone of a created VPC): part of the generation."""


@dataclasses.dataclass(frozen=True)
class NodeArgs:
    """What either kind of node needs; shared by Postanalytics and FilteringNode."""

    settings: Settings
    """The validated stack settings."""
    ami_id: pulumi.Input[str]
    """AMI for this node's architecture."""
    placement: Placement
    """Subnet and zone."""
    security_group_ids: Sequence[pulumi.Input[str]]
    """Its fleet's security group."""
    key_name: pulumi.Input[str]
    """EC2 key pair name."""
    ssh_private_key: pulumi.Output[str]
    """Private key for the remote steps (secret)."""
    proxy: Optional[remote.ProxyConnectionArgs] = None
    """The jump host to dial through; None dials the private IP directly."""
    pki: Optional["Pki"] = None
    """The CA; None when TLS is off."""
    instance_profile: Optional[pulumi.Input[str]] = None
    """The CloudWatch agent's instance profile (components/monitoring.py); None gives the instance no role."""


@functools.cache
def script_text(name: str) -> str:
    return (SCRIPTS_DIR / name).read_text()


@functools.cache
def script_hash(name: str) -> str:
    return hashlib.sha256(script_text(name).encode()).hexdigest()


def generation(*parts: Optional[str]) -> str:
    """Eight hex digits naming one machine's identity."""
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:8]


def create_instance(name: str, role: str, shape: InstanceShape, args: NodeArgs, version: str,
                    parent: pulumi.Resource, public: bool = False) -> aws.ec2.Instance:
    s = args.settings
    # Everything that needs a new machine names it: a new type too (in place, AWS would stop every node of the
    # fleet at once; across architectures the replacement would keep the old image).
    gen = generation(role, version, shape.instance_type, s.ami_id if role != "jumphost" else None,
                     args.placement.key, s.ssh_public_key, s.os)
    vm_name = f"{name}-{gen}"
    # The user data names role, version and architecture, for whoever reads the instance in the console.
    user_data = f"#cloud-config\n# wallarm-postanalytics role={role} version={version} arch={shape.arch}\n"
    return aws.ec2.Instance(
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
            encrypted=True, volume_type="gp3", volume_size=s.root_volume_gb, delete_on_termination=True),
        user_data=user_data,
        user_data_replace_on_change=True,
        # Attached in place (EC2 AssociateIamInstanceProfile): a running node gets it without a new machine.
        iam_instance_profile=args.instance_profile,
        tags={"Name": vm_name, "Role": role, "Node": name},
        opts=pulumi.ResourceOptions(parent=parent, ignore_changes=["ami"]),
    )


def connection(instance: aws.ec2.Instance, user: str, private_key: pulumi.Input[str],
               proxy: Optional[remote.ProxyConnectionArgs]) -> remote.ConnectionArgs:
    return remote.ConnectionArgs(
        host=instance.private_ip,
        user=user,
        private_key=private_key,
        proxy=proxy,
        # A new instance needs a minute or two before sshd takes our key: keep dialling.
        dial_error_limit=90,
        per_dial_timeout=10,
    )


class HostSteps:
    """Builds the remote steps of one host, all parented to its component."""

    def __init__(self, name: str, instance: aws.ec2.Instance, user: str, private_key: pulumi.Input[str],
                 proxy: Optional[remote.ProxyConnectionArgs], parent: pulumi.Resource):
        self.name = name
        self.user = user
        self.parent = parent
        self.instance_id = instance.id
        self.connection = connection(instance, user, private_key, proxy)

    def stage_path(self, script: str) -> str:
        return f"/home/{self.user}/{STAGE_DIR}/{script}"

    def upload(self, scripts: Sequence[str]) -> list[remote.CopyToRemote]:
        return [
            remote.CopyToRemote(
                f"{self.name}-upload-{script.split('.')[0]}",
                connection=self.connection,
                source=pulumi.StringAsset(script_text(script)),
                remote_path=self.stage_path(script),
                triggers=[self.instance_id],
                opts=pulumi.ResourceOptions(parent=self.parent),
            )
            for script in scripts
        ]

    def boot(self, scripts: Sequence[str], hostname: Optional[str] = None) -> remote.Command:
        """upload -> wait for boot (-> name the host, before the installer registers it)."""
        waited = self.command("wait", "wait-for-boot.sh", script_command("wait-for-boot.sh"), self.upload(scripts))
        if hostname is None:
            return waited
        # A step, not user data: a running node takes its name in place, with no new machine; Console shows the
        # new name from its next registration (a new generation), see docs/monitoring.md.
        return self.command("hostname", "set-hostname.sh",
                            script_command("set-hostname.sh", "--name", hostname, sudo=True), [waited])

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


def install_command(s: Settings, mode: str, version: str, arch: str, with_nginx: bool = False) -> str:
    """The installer step's command text: version, architecture, URL, mode, cloud, group, pinned digest (no token)."""
    args = ["--version", version, "--arch", arch, "--url", render.installer_url(version, arch),
            "--mode", mode, "--cloud", s.wallarm_cloud]
    if s.wallarm_token_type == "api":
        args += ["--group", s.wallarm_node_group]
    digest = s.installer_sha256.get(f"{version}/{arch}")
    if digest:
        args += ["--sha256", digest]
    if with_nginx:
        args.append("--with-nginx")
    return script_command("install-wallarm.sh", *args, sudo=True)


def script_command(script: str, *args: str, sudo: bool = False, python: bool = False) -> str:
    """The command text that runs a staged script. `~` is the SSH user's home, where upload() put it."""
    runner = "python3" if python else "bash"
    words = (["sudo"] if sudo else []) + [runner, f"~/{STAGE_DIR}/{script}", *args]
    return " ".join(words)
