"""The user data every instance boots with: a pure function from plain values to cloud-config text.

- SSH host key: cloud-init's `ssh` module deletes the image's host keys (`ssh_deletekeys`), generates none
  (`ssh_genkeytypes: []`) and installs the ED25519 pair the program made (`ssh_keys`), before sshd starts
  (cloud-init's network stage is ordered `Before=sshd.service`). So the only key sshd can ever offer is the one
  every connection pins (docs/security.md, "Host keys").
- Patching: the distribution's unattended-upgrades, installed and switched on (daily list update and security
  upgrade), through the egress on 80/443 that every group has (components/firewall.py).
Sources: cloud-init docs, modules "SSH" (ssh_keys, ssh_deletekeys, ssh_genkeytypes) and "Package Update Upgrade
Install" (packages); Debian wiki UnattendedUpgrades (the two APT::Periodic keys of 20auto-upgrades).
"""

from __future__ import annotations

import yaml

# The two keys `dpkg-reconfigure unattended-upgrades` writes to 20auto-upgrades: update the lists and run
# unattended-upgrade (security origins only, the package's default) every day. A file of our own, named after
# 20auto-upgrades (APT reads apt.conf.d in lexical order, a later value wins) and owned by no package, so the
# package's postinst neither asks about it nor switches it off.
AUTO_UPGRADES_PATH = "/etc/apt/apt.conf.d/52wallarm-auto-upgrades"
AUTO_UPGRADES = 'APT::Periodic::Update-Package-Lists "1";\nAPT::Periodic::Unattended-Upgrade "1";\n'


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the key, the file) as literal blocks, as a person would write them."""


_Dumper.add_representer(
    str, lambda d, v: d.represent_scalar("tag:yaml.org,2002:str", v, style="|" if "\n" in v else None))


def user_data(role: str, version: str, arch: str, host_key_private: str, host_key_public: str) -> str:
    """#cloud-config for one instance. host_key_private is the OpenSSH private key: the result is a secret."""
    config = {
        "ssh_deletekeys": True,
        "ssh_genkeytypes": [],
        "ssh_keys": {"ed25519_private": host_key_private, "ed25519_public": host_key_public.strip()},
        "packages": ["unattended-upgrades"],
        "write_files": [{"path": AUTO_UPGRADES_PATH, "owner": "root:root", "permissions": "0644",
                         "content": AUTO_UPGRADES}],
    }
    # The first comment names role, version and architecture, for whoever reads the instance in the console.
    header = f"#cloud-config\n# wallarm-postanalytics role={role} version={version} arch={arch}\n"
    return header + yaml.dump(config, Dumper=_Dumper, sort_keys=False, default_flow_style=False)
