"""Shared pieces of a host: the EC2 instance and the remote steps that run scripts/ on it.

Every remote step carries `triggers=[instance.id]`, so a replaced instance gets every step again (an update
would only re-run on the new host by chance). Scripts reach the host as StringAssets copied to the SSH user's
home; secrets reach it only through a Command's stdin; stdout and stderr are secret outputs.
"""

from __future__ import annotations

import dataclasses
import functools
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
class NodeArgs:
    """What either kind of node needs; shared by Postanalytics and FilteringNode."""

    settings: Settings
    """The validated stack settings."""
    ami_id: pulumi.Input[str]
    """AMI for this node's architecture."""
    subnet_id: pulumi.Input[str]
    """Subnet the node goes in."""
    security_group_id: pulumi.Input[str]
    """Its fleet's security group."""
    key_name: pulumi.Input[str]
    """EC2 key pair name."""
    ssh_private_key: pulumi.Output[str]
    """Private key for the remote steps (secret)."""
    pki: Optional["Pki"] = None
    """The CA; None when TLS is off."""


@functools.cache
def script_text(name: str) -> str:
    return (SCRIPTS_DIR / name).read_text()


def create_instance(
    name: str,
    role: str,
    shape: InstanceShape,
    ami_id: pulumi.Input[str],
    subnet_id: pulumi.Input[str],
    security_group_id: pulumi.Input[str],
    key_name: pulumi.Input[str],
    root_volume_gb: int,
    version: str,
    parent: pulumi.Resource,
) -> aws.ec2.Instance:
    # The user data names the installer version, so a new version replaces the instance: Wallarm advises a
    # clean machine over re-running the installer in place.
    user_data = f"#cloud-config\n# wallarm-postanalytics role={role} version={version} arch={shape.arch}\n"
    return aws.ec2.Instance(
        name,
        ami=ami_id,
        instance_type=shape.instance_type,
        subnet_id=subnet_id,
        vpc_security_group_ids=[security_group_id],
        key_name=key_name,
        associate_public_ip_address=True,
        metadata_options=aws.ec2.InstanceMetadataOptionsArgs(
            http_tokens="required", http_endpoint="enabled", http_put_response_hop_limit=1),
        root_block_device=aws.ec2.InstanceRootBlockDeviceArgs(
            encrypted=True, volume_type="gp3", volume_size=root_volume_gb, delete_on_termination=True),
        user_data=user_data,
        user_data_replace_on_change=True,
        tags={"Name": name, "Role": role},
        # A looked-up AMI moves when a newer image is published; only new instances take it.
        opts=pulumi.ResourceOptions(parent=parent, ignore_changes=["ami"]),
    )


class HostSteps:
    """Builds the remote steps of one host, all parented to its component."""

    def __init__(self, name: str, instance: aws.ec2.Instance, user: str,
                 private_key: pulumi.Input[str], parent: pulumi.Resource):
        self.name = name
        self.user = user
        self.parent = parent
        self.instance_id = instance.id
        self.connection = remote.ConnectionArgs(
            host=instance.public_ip,
            user=user,
            private_key=private_key,
            # A new instance needs a minute or two before sshd takes our key: keep dialling.
            dial_error_limit=90,
            per_dial_timeout=10,
        )

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

    def install(self, scripts: Sequence[str], install_create: str, token: pulumi.Output[str]) -> remote.Command:
        """upload -> wait for boot -> install, the token on the install step's stdin."""
        uploads = self.upload(scripts)
        wait = self.command("wait", script_command("wait-for-boot.sh"), uploads)
        return self.command("install", install_create, [wait], stdin=token.apply(lambda t: t + "\n"))

    def configure(self, spec: pulumi.Output[str], after: Sequence[pulumi.Resource]) -> remote.Command:
        """apply_spec.py with the spec (secret) on stdin."""
        return self.command("configure", script_command("apply_spec.py", sudo=True, python=True), after, stdin=spec)

    def command(self, step: str, create: str, depends_on: Sequence[pulumi.Resource],
                stdin: Optional[pulumi.Input[str]] = None,
                triggers: Sequence[pulumi.Input] = ()) -> remote.Command:
        return remote.Command(
            f"{self.name}-{step}",
            connection=self.connection,
            create=create,
            stdin=pulumi.Output.secret(stdin) if stdin is not None else None,
            triggers=[self.instance_id, *triggers],
            logging=remote.Logging.STDOUT_AND_STDERR,
            opts=pulumi.ResourceOptions(
                parent=self.parent,
                depends_on=list(depends_on),
                additional_secret_outputs=["stdout", "stderr"],
                custom_timeouts=STEP_TIMEOUT,
            ),
        )


def install_command(s: Settings, mode: str, arch: str, with_nginx: bool = False) -> str:
    """The installer step's command text: version, architecture, URL, mode, cloud and group (no token)."""
    args = ["--version", s.wallarm_version, "--arch", arch, "--url", render.installer_url(s.wallarm_version, arch),
            "--mode", mode, "--cloud", s.wallarm_cloud]
    if s.wallarm_token_type == "api":
        args += ["--group", s.wallarm_node_group]
    if with_nginx:
        args.append("--with-nginx")
    return script_command("install-wallarm.sh", *args, sudo=True)


def script_command(script: str, *args: str, sudo: bool = False, python: bool = False) -> str:
    """The command text that runs a staged script. `~` is the SSH user's home, where upload() put it."""
    runner = "python3" if python else "bash"
    words = (["sudo"] if sudo else []) + [runner, f"~/{STAGE_DIR}/{script}", *args]
    return " ".join(words)
