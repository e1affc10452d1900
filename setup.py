"""What pyproject.toml cannot say on its own:
- the package list: `wallarm_tier` is components/ (package-dir), so setuptools' find cannot name its subpackages;
  every directory under components/ with an __init__.py is one;
- the wheel carries the repository's Pulumi.yaml (the settings declaration, read by
  wallarm_tier.settings.declared_keys through wallarm_tier.bundled), copied when the wheel is built, so the
  declaration has one source and no committed copy to keep equal."""

import os
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


def packages() -> list[str]:
    inner = sorted(init.parent.relative_to(HERE / "components") for init in (HERE / "components").rglob("__init__.py"))
    return ["wallarm_tier." + ".".join(p.parts) if p.parts else "wallarm_tier" for p in inner] + ["wallarm_tier.scripts"]


class BuildWithDeclaration(build_py):
    def run(self) -> None:
        super().run()
        if not self.editable_mode:  # an editable install reads ../Pulumi.yaml in place
            self.copy_file("Pulumi.yaml", os.path.join(self.build_lib, "wallarm_tier", "Pulumi.yaml"))


setup(packages=packages(), cmdclass={"build_py": BuildWithDeclaration})
