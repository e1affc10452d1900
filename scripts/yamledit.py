#!/usr/bin/env python3
"""Sets dotted keys of a YAML document by editing its text, so that everything else stays as written.

apply_spec.py imports it from its own directory (both are uploaded to ~/wallarm-deploy and run there as root);
the tests import it as scripts.yamledit. Python 3 and PyYAML only (both ship with the Debian 12 and Ubuntu 24.04
cloud images; wait-for-boot.sh checks for them).

PyYAML's composer gives every node's start and end marks; a managed scalar's span is replaced, a missing key is
inserted after the last entry of its mapping at that mapping's indentation (in a flow mapping, in flow style).
Comments, anchors, key order, quoting and every unmanaged value stay as written (`off`, `1:30`, `0640`, `1.10`
keep their YAML 1.1 meaning because their text is not touched). Both texts are then loaded with safe_load and the
edit is kept only if exactly the managed keys changed meaning; otherwise EditError says which other key would have.

    edit(text, {"a.b": 1}, "/etc/x.yaml")  ->  the new text, or None when every key already has its value
"""

from __future__ import annotations

import math
from typing import Any, Optional

try:
    import yaml
except ImportError:  # wait-for-boot.sh checks for it; say so rather than fail with a traceback
    yaml = None  # type: ignore[assignment]  # the module or None, checked before use (mypy docs: optional imports)


class EditError(ValueError):
    """The document cannot be edited as asked; one line that names the file (nothing was changed)."""


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


STR_TAG, NULL_TAG = "tag:yaml.org,2002:str", "tag:yaml.org,2002:null"


class _Alias:
    """An alias (*name) where it stands in the text; `node` is the anchored node it refers to."""

    def __init__(self, node: Any, start_mark: Any, end_mark: Any):
        self.node, self.start_mark, self.end_mark = node, start_mark, end_mark


def _compose(text: str) -> Any:
    """The node tree of `text` with marks, aliases kept as _Alias (so their own position is known)."""

    class Composer(yaml.SafeLoader):
        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                return _Alias(super().compose_node(parent, index), event.start_mark, event.end_mark)
            return super().compose_node(parent, index)

    loader = Composer(text)
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()


def _target(node: Any) -> Any:
    return node.node if isinstance(node, _Alias) else node


def _find(mapping: Any, key: str) -> Optional[tuple[Any, Any]]:
    """The last (key node, value node) whose key is the string `key` (the one safe_load keeps)."""
    found = None
    for k, v in mapping.value:
        if isinstance(k, yaml.ScalarNode) and k.tag == STR_TAG and k.value == key:
            found = (k, v)
    return found


def _leaf_end(node: Any) -> int:
    """Where the text of a node ends, through the last entries of block collections."""
    if isinstance(node, _Alias):
        return node.end_mark.index
    if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and not node.flow_style and node.value:
        last = node.value[-1]
        return _leaf_end(last[1] if isinstance(node, yaml.MappingNode) else last)
    return node.end_mark.index


def _line_after(text: str, index: int) -> int:
    if index > 0 and text[index - 1] == "\n":
        return index
    newline = text.find("\n", index)
    return len(text) if newline < 0 else newline + 1


def _indent_step(root: Any) -> int:
    """The file's indentation step: the column of a nested block mapping's keys minus its parent's (or 2)."""
    todo = [root]
    while todo:
        node = todo.pop(0)
        if isinstance(node, yaml.MappingNode) and not node.flow_style:
            for k, v in node.value:
                if isinstance(v, yaml.MappingNode) and not v.flow_style and v.value:
                    step = v.value[0][0].start_mark.column - k.start_mark.column
                    if step > 0:
                        return step
                todo.append(v)
    return 2


def _scalar(value: Any) -> str:
    """One YAML scalar, quoted only when it must be, that loads back as `value`."""
    out = yaml.safe_dump(value, default_flow_style=True, width=1 << 30, allow_unicode=True)
    for end in ("\n...\n", "\n"):
        if out.endswith(end):
            out = out[: -len(end)]
            break
    if "\n" in out or not _same(yaml.safe_load(out), value):
        raise EditError(f"cannot write {_short(value)} as one YAML scalar")
    return out


def _value_span(text: str, node: Any) -> tuple[int, int]:
    """Start and end of a scalar's own text: a node's marks include its anchor (`&name`, kept, as aliases elsewhere
    refer to it) and its tag (kept too: the final check refuses an edit whose tag changes the meaning)."""
    start, end = node.start_mark.index, node.end_mark.index
    while start < end and text[start] in "&!":
        while start < end and text[start] not in " \t\r\n":
            start += 1
        while start < end and text[start] in " \t":
            start += 1
    return start, end


def _block(parts: list[str], value: Any, column: int, step: int, newline: str) -> str:
    lines = [" " * (column + depth * step) + _scalar(part) + ":" for depth, part in enumerate(parts[:-1])]
    lines.append(" " * (column + (len(parts) - 1) * step) + _scalar(parts[-1]) + ": " + _scalar(value))
    return newline.join(lines) + newline


def _flow(parts: list[str], value: Any) -> str:
    text = _scalar(value)
    for part in reversed(parts[1:]):
        text = "{" + _scalar(part) + ": " + text + "}"
    return _scalar(parts[0]) + ": " + text


def _insert(text: str, mapping: Any, parts: list[str], value: Any, step: int, newline: str) -> str:
    """Adds parts (a key path missing from `mapping`) with `value`, in the mapping's own style."""
    if mapping.flow_style:
        close = mapping.end_mark.index - 1
        j = close
        while j > mapping.start_mark.index + 1 and text[j - 1] in " \t\r\n":
            j -= 1
        sep = "" if not mapping.value or text[j - 1] in ",{" else ", "
        return text[:j] + sep + _flow(parts, value) + text[j:]
    column = mapping.value[0][0].start_mark.column
    at = _line_after(text, _leaf_end(mapping))
    lead = newline if at == len(text) and text and not text.endswith("\n") else ""
    return text[:at] + lead + _block(parts, value, column, step, newline) + text[at:]


def _edit_once(text: str, path: str, dotted: str, value: Any, newline: str) -> str:
    parts = dotted.split(".")
    root = _compose(text)
    if root is None:  # empty, or only comments
        lead = newline if text and not text.endswith("\n") else ""
        return text + lead + _block(parts, value, 0, 2, newline)
    node = _target(root)
    if not isinstance(node, yaml.MappingNode):
        raise EditError(f"{path} is not a YAML mapping")
    step = _indent_step(node)
    for i, part in enumerate(parts):
        found = _find(node, part)
        if found is None:
            return _insert(text, node, parts[i:], value, step, newline)
        key, val = found
        here = ".".join(parts[: i + 1])
        tval = _target(val)
        if i == len(parts) - 1:
            if not isinstance(tval, yaml.ScalarNode):
                raise EditError(f"{path}: cannot set {dotted}, because {here} is a "
                                f"{'mapping' if isinstance(tval, yaml.MappingNode) else 'list'}, not one value")
            start, end = _value_span(text, val)
            return text[:start] + (" " if start == end else "") + _scalar(value) + text[end:]
        if isinstance(tval, yaml.MappingNode):
            node = tval
            continue
        if isinstance(val, yaml.ScalarNode) and val.tag == NULL_TAG:  # `key:` or `key: ~`: make it a mapping
            start, end = val.start_mark.index, val.end_mark.index
            if node.flow_style:
                rendered = "{" + _flow(parts[i + 1:], value) + "}"
                return text[:start] + (" " if start == end else "") + rendered + text[end:]
            text = text[:start] + text[end:]
            at = _line_after(text, start)
            lead = newline if at == len(text) and not text.endswith("\n") else ""
            return text[:at] + lead + _block(parts[i + 1:], value, key.start_mark.column + step, step, newline) + \
                text[at:]
        shown = tval.value if isinstance(tval, yaml.ScalarNode) else "a list"
        raise EditError(f"{path}: cannot set {dotted}, because {here} is {_short(shown)}, not a mapping")
    raise AssertionError("unreachable")


def _same(a: Any, b: Any) -> bool:
    """Equal in meaning, type included (True is not 1, '1.0' is not 1.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def _copy(data: Any) -> Any:
    """A deep copy that does not keep shared (anchored) objects shared."""
    if isinstance(data, dict):
        return {k: _copy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_copy(v) for v in data]
    return data


def _get(data: Any, dotted: str) -> tuple[bool, Any]:
    for part in dotted.split("."):
        if not isinstance(data, dict) or part not in data:
            return False, None
        data = data[part]
    return True, data


def _set(data: dict, dotted: str, value: Any, path: str) -> None:
    parts = dotted.split(".")
    for i, part in enumerate(parts[:-1]):
        child = data.get(part)
        if child is None:
            child = data[part] = {}
        if not isinstance(child, dict):
            raise EditError(f"{path}: cannot set {dotted}, because {'.'.join(parts[:i + 1])} is {_short(child)}, "
                            "not a mapping")
        data = child
    data[parts[-1]] = value


def _first_difference(a: Any, b: Any, where: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(a) + [k for k in b if k not in a]:
            if k not in a or k not in b or not _same(a[k], b[k]):
                return _first_difference(a.get(k), b.get(k), f"{where}.{k}" if where else str(k))
    return where or "the whole document"


def _load(text: str, path: str, edited: bool = False) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        what = "editing it gave text that does not load, so it was left as it is" if edited else \
            "it is not valid YAML, so its other keys cannot be kept"
        raise EditError(f"{path}: {what}: {' '.join(str(exc).split())[:300]}") from None


def edit(text: str, values: dict[str, Any], path: str) -> Optional[str]:
    """`text` with `values` (dotted key -> value) set, or None when every value already has its meaning. `path`
    names the file in errors."""
    if yaml is None:
        raise EditError("PyYAML is missing: install python3-yaml (the cloud images ship it)")
    try:
        before = _load(text, path)
        if before is None:
            before = {}
        if not isinstance(before, dict):
            raise EditError(f"{path} is not a YAML mapping")
        expected = _copy(before)
        for dotted, value in values.items():
            _set(expected, dotted, value, path)
        if all(_same(_get(before, d)[1], v) and _get(before, d)[0] for d, v in values.items()):
            return None  # same meaning: leave the file, comments and all, untouched
        newline = "\r\n" if "\r\n" in text else "\n"
        new = text
        for dotted, value in values.items():
            found, current = _get(_load(new, path, edited=True) or {}, dotted)
            if not (found and _same(current, value)):
                new = _edit_once(new, path, dotted, value, newline)
        after = _load(new, path, edited=True)
        if not _same(after, expected):
            raise EditError(f"{path}: setting {', '.join(values)} by editing the text would also change "
                            f"{_first_difference(after, expected)} (shared through an anchor or a merge key?), so "
                            "the file was left as it is")
    except RecursionError:
        raise EditError(f"{path} is nested too deeply (or recursively) to edit") from None
    except yaml.YAMLError as exc:
        raise EditError(f"{path} cannot be edited as YAML: {' '.join(str(exc).split())[:300]}") from None
    return new
