"""SshKey: the key pair every node accepts, given or generated.

Creates: an aws.ec2.KeyPair; when no sshPublicKey is set, first an ED25519 tls.PrivateKey whose private half is
a secret output of the stack.
"""

from __future__ import annotations

from typing import Optional

import pulumi
import pulumi_aws as aws
import pulumi_tls as tls


class SshKey(pulumi.ComponentResource):
    key_name: pulumi.Output[str]
    """Name of the EC2 key pair."""
    private_key: pulumi.Output[str]
    """Private key for the remote steps (secret)."""
    generated: bool
    """True when this stack made the key (then it is exported, as a secret)."""

    def __init__(self, name: str, public_key: Optional[str], private_key: Optional[pulumi.Output[str]],
                 opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("wallarm:index:SshKey", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.generated = public_key is None
        public: pulumi.Input[str]
        if public_key is None:
            key = tls.PrivateKey(f"{name}-private", algorithm="ED25519", opts=child)
            public, private_key = key.public_key_openssh, key.private_key_openssh
        else:
            public = public_key
        if private_key is None:
            raise ValueError(f"{name}: a given public key needs its private key (sshPrivateKey) for the remote steps")
        pair = aws.ec2.KeyPair(f"{name}-pair", public_key=public, tags={"Name": f"{name}-pair"}, opts=child)
        self.key_name = pair.key_name
        self.private_key = pulumi.Output.secret(private_key)
        self.register_outputs({"keyName": self.key_name})
