"""Reading user files: UTF-8 (a spreadsheet's byte-order mark accepted), YAML errors in one line naming the file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from superpose.errors import ConfigError


def read_utf8(path: Path, what: str) -> str:
    """The file's text; a byte that is not UTF-8 is a ConfigError naming ``what`` (e.g. "task file x.csv")."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{what}: not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset {e.start}); "
                          "save it as UTF-8") from None


class _Refused(yaml.MarkedYAMLError):
    """A YAML feature our files do not accept (an anchor, an alias, a repeated key), with its position."""


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader without anchors or aliases (a 400-byte alias chain expands to gigabytes) and without
    repeated keys (the later one would silently win)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _Refused(None, None, "anchors and aliases (&name, *name) are not accepted; write the value out",
                           event.start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, (str, int, float, bool)) or key is None:
                if key in seen:
                    raise _Refused(None, None, "a key appears twice in one mapping", key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_yaml(path: Path, what: str) -> Any:
    """Parsed YAML; a syntax error, an alias or a repeated key is one line with the file, line and column."""
    try:
        return yaml.load(read_utf8(path, what), Loader=_StrictLoader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{what}: not valid YAML{where} ({problem})") from None
    except ValueError as e:  # a value YAML parsed but Python cannot convert, e.g. an integer over 4300 digits
        raise ConfigError(f"{what}: not valid YAML ({str(e).split(':')[0]})") from None


def read_jsonl(path: Path) -> list[dict]:
    """The JSON objects of a log written line by line (``[]`` if there is none yet). A last line cut short
    by a kill is left out; a damaged line before it, or bytes that are not UTF-8, are a ConfigError."""
    if not path.exists():
        return []
    try:
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: damaged (byte 0x{e.object[e.start]:02x} at offset {e.start} is not UTF-8)") from None
    rows = []
    for i, line in enumerate(lines):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                break
            raise ConfigError(f"{path}, line {i + 1}: damaged (not JSON)") from None
        if not isinstance(row, dict):
            raise ConfigError(f"{path}, line {i + 1}: damaged (expected a JSON object)")
        rows.append(row)
    return rows
