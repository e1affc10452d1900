"""The reader of a stack's config: what only a stack file can get wrong (a key this program does not have, with the
closest one it has; a secret in plaintext; a key under another namespace) and the parsing of the stack's text into
the declared types. What the values may be is the rule table's (rules.py), the same for a stack and for values
another program gives (validate.from_values).
"""

from __future__ import annotations

import difflib
import json
import re
from typing import Any

import pulumi

from .model import MAX_INT_DIGITS, OTHER_NAMESPACES, SECRET_KEYS, Errors, SettingsError, fail


def parse(key: str, decl: dict, raw: Any) -> Any:
    """Turns a stack value (a string, or JSON for arrays) into the declared type."""
    kind = decl.get("type", "string")
    if kind == "string":
        return str(raw)
    if kind == "integer":
        if isinstance(raw, int) and not isinstance(raw, bool) and abs(raw) >= 10 ** MAX_INT_DIGITS:
            raise SettingsError(f"{key} is a number of more than {MAX_INT_DIGITS} digits: it must be a whole number "
                                f"of at most {MAX_INT_DIGITS} digits.")
        text = raw.strip() if isinstance(raw, str) else ""
        if re.fullmatch(r"-?\d+", text) and len(text.lstrip("-")) > MAX_INT_DIGITS:
            raise SettingsError(f"{key} is a {len(text.lstrip('-'))}-digit number: it must be a whole number of at "
                                f"most {MAX_INT_DIGITS} digits.")
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and re.fullmatch(r"-?\d+", raw.strip()):
            return int(raw)
        raise fail(key, raw, "it must be a whole number")
    if kind == "boolean":
        if isinstance(raw, bool):
            return raw
        if str(raw).lower() in ("true", "false"):
            return str(raw).lower() == "true"
        raise fail(key, raw, "it must be true or false")
    if kind == "array":
        value = raw
        if isinstance(raw, str):
            try:
                value = json.loads(raw)
            except json.JSONDecodeError:
                raise fail(key, raw, "it must be a list of strings, such as [\"10.0.0.0/16\"]") from None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise fail(key, raw, "it must be a list of strings, such as [\"10.0.0.0/16\"]")
        return value
    raise SettingsError(f"Pulumi.yaml declares {key} with type {kind!r}, which this program cannot read.")


class Reader:
    """Reads raw values for one project namespace, from the stack or the declared defaults."""

    def __init__(self, project: str, decls: dict[str, dict], stack_config: dict[str, Any], errors: Errors):
        self.project, self.decls = project, decls
        prefix = f"{project}:"
        self.raw = {k[len(prefix):]: v for k, v in stack_config.items() if k.startswith(prefix)}
        secret_env = set(pulumi.runtime.get_config_secret_keys_env())
        for key in SECRET_KEYS:
            full = f"{prefix}{key}"
            if self.raw.get(key) and not (pulumi.runtime.is_config_secret(full) or full in secret_env):
                errors.add(SettingsError(
                    f"{key} is set in plaintext in the stack file: it must be encrypted, set it with "
                    f"`pulumi config set --secret {key} ...` (and remove the plaintext value from git history)."))
        for key in sorted(set(self.raw) - set(decls)):
            errors.add(fail(f"{prefix}{key}", "(secret)" if maybe_secret(key, self.raw[key], prefix) else self.raw[key],
                             "it is not a setting of this program" + did_you_mean(key, decls, prefix)))
        for full in sorted(k for k in stack_config if not k.startswith(prefix)):
            namespace, _, name = full.rpartition(":")
            if namespace in OTHER_NAMESPACES:
                continue
            ours = [name] if name in decls else difflib.get_close_matches(name, decls, n=1, cutoff=0.8)
            if ours:
                where = f"under the namespace {namespace!r}" if namespace else "without a namespace"
                errors.add(SettingsError(
                    f"{full} is {where}, so this program would ignore it: write it as {prefix}{ours[0]}."))

    def given(self, key: str) -> bool:
        return key in self.raw and self.raw[key] not in (None, "")

    def typed(self, errors: Errors) -> tuple[dict[str, Any], set[str]]:
        """The stack's values of declared keys, parsed by their declared type, and the keys the stack sets (a key
        set but missing from the values has its error recorded). The secrets are the caller's to pass apart."""
        values: dict[str, Any] = {}
        given = {key for key in self.decls if self.given(key) and key not in SECRET_KEYS}
        for key in sorted(given, key=list(self.decls).index):
            try:
                values[key] = parse(key, self.decls[key], self.raw[key])
            except SettingsError as exc:
                errors.add(exc)
        return values, given


def maybe_secret(key: str, value: Any, prefix: str) -> bool:
    """An unknown key whose value must not be printed: encrypted in the stack file, a near miss of a secret key
    (sshPrivatekey), or a value that looks like key material. The CLI masks only the values it knows are secret."""
    near = difflib.get_close_matches(key.lower(), [k.lower() for k in SECRET_KEYS], n=1, cutoff=0.6)
    secret_env = set(pulumi.runtime.get_config_secret_keys_env())
    return bool(near) or pulumi.runtime.is_config_secret(f"{prefix}{key}") or f"{prefix}{key}" in secret_env \
        or "PRIVATE KEY" in str(value) or re.search(r"(?i)(token|secret|private|passw)", key) is not None


def did_you_mean(key: str, decls: dict, prefix: str) -> str:
    close = difflib.get_close_matches(key, decls, n=1, cutoff=0.6) or \
        [k for k in decls if k.lower() == key.lower()]
    return f"; did you mean {prefix}{close[0]}?" if close else f" (the settings are the keys under config: in Pulumi.yaml)"
