"""Where the files the components read at run time are: beside components/ in this repository, or inside the
installed package.

- In the repository (the stack program, the tests, an editable install): `scripts/` and `Pulumi.yaml` beside
  `components/`.
- Installed (`pip install`, see pyproject.toml and setup.py): the package `wallarm_tier` is `components/`, with
  `scripts/` mapped to `wallarm_tier/scripts/` and `Pulumi.yaml` copied in when the wheel is built. So one file,
  the repository's Pulumi.yaml, declares the settings for both (settings.declared_keys reads whichever is here);
  a copy cannot drift because none is committed.
"""

from pathlib import Path

HERE = Path(__file__).resolve().parent
INSTALLED = (HERE / "Pulumi.yaml").is_file()
"""True inside an installed wheel (build_py put the declaration there); False in the repository."""
ROOT = HERE if INSTALLED else HERE.parent
SCRIPTS_DIR = ROOT / "scripts"
"""The host scripts (scripts/*.sh, scripts/*.py), uploaded as they are."""
PROJECT_FILE = ROOT / "Pulumi.yaml"
"""The settings declaration: Pulumi.yaml's `config:` block."""
