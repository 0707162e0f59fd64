"""Reading user files: UTF-8 (a spreadsheet's byte-order mark accepted), YAML errors in one line naming the file."""

from __future__ import annotations

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


def load_yaml(path: Path, what: str) -> Any:
    """Parsed YAML; a syntax error is one line with the file, line and column."""
    try:
        return yaml.safe_load(read_utf8(path, what))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{what}: not valid YAML{where} ({problem})") from None
