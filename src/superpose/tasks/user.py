"""User tasks from a file: real-world input/output pairs, so anyone can probe their own tasks.

Three formats, one shape -- a table whose ``input`` column is shared and whose every other column is
a task over those inputs (tasks from one file can therefore be mixed in one prompt):

* CSV with a header: ``input,antonym,synonym`` (two columns ``input,output`` make one task named after
  the file).
* JSONL: one object per line, ``{"input": "hot", "antonym": "cold", "synonym": "warm"}``.
* YAML: ``{separator: "->", name: ..., rows: [{input: hot, antonym: cold}, ...]}``.

The separator is ``->`` unless a YAML file sets ``separator``.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from superpose.errors import ConfigError
from superpose.files import load_yaml, read_utf8
from superpose.tasks.base import _REGISTRY, InputSpace, Task, register, _ensure_builtins

DEFAULT_SEPARATOR = "->"


def load_task_file(path: str | Path) -> list[Task]:
    """Read a CSV/JSONL/YAML task file, register its tasks, and return them."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"task file {path}: no such file")
    suffix = path.suffix.lower()
    separator, name = DEFAULT_SEPARATOR, path.stem
    if suffix == ".csv":
        rows = _read_csv(path)
    elif suffix in (".jsonl", ".ndjson"):
        rows = _read_jsonl(path)
    elif suffix in (".yaml", ".yml"):
        rows, separator, name = _read_yaml(path)
    else:
        raise ConfigError(f"task file {path}: expected a .csv, .jsonl or .yaml file, got '{suffix}'")
    return _register_table(path, rows, separator, name)


def _read_csv(path: Path) -> list[dict]:
    reader = csv.DictReader(io.StringIO(read_utf8(path, f"task file {path}"), newline=""))
    try:
        if not reader.fieldnames:
            raise ConfigError(f"task file {path}: empty file; expected a header row like 'input,output'")
        rows = []
        for row in reader:
            line_no = reader.line_num
            if None in row or any(v is None for v in row.values()):
                raise ConfigError(
                    f"task file {path}, line {line_no}: expected {len(reader.fieldnames)} columns "
                    f"({','.join(reader.fieldnames)})"
                )
            rows.append({**row, "_where": f"line {line_no}"})
    except csv.Error as e:  # e.g. a field over csv's size limit, or a stray quote
        raise ConfigError(f"task file {path}, line {reader.line_num}: {e}") from None
    return rows


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    for line_no, line in enumerate(read_utf8(path, f"task file {path}").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise ConfigError(f"task file {path}, line {line_no}: not valid JSON ({e.msg})") from None
        if not isinstance(obj, dict):
            raise ConfigError(f"task file {path}, line {line_no}: expected a JSON object")
        rows.append({**obj, "_where": f"line {line_no}"})
    return rows


def _read_yaml(path: Path) -> tuple[list[dict], str, str]:
    doc = load_yaml(path, f"task file {path}")
    if not isinstance(doc, dict) or not isinstance(doc.get("rows"), list):
        raise ConfigError(f"task file {path}: expected a mapping with a list field 'rows'")
    separator = doc.get("separator", DEFAULT_SEPARATOR)
    if not isinstance(separator, str) or not separator:
        raise ConfigError(f"task file {path}: field 'separator' must be a non-empty string")
    rows = []
    for i, row in enumerate(doc["rows"]):
        if not isinstance(row, dict):
            raise ConfigError(f"task file {path}, rows[{i}]: expected a mapping like {{input: ..., output: ...}}")
        rows.append({**row, "_where": f"rows[{i}]"})
    return rows, separator, str(doc.get("name", path.stem))


def _register_table(path: Path, rows: list[dict], separator: str, name: str) -> list[Task]:
    if not rows:
        raise ConfigError(f"task file {path}: no rows")
    columns = [k for k in rows[0] if k != "_where"]
    if "input" not in columns:
        raise ConfigError(f"task file {path}: missing the 'input' column (found: {', '.join(columns)})")
    outputs = [c for c in columns if c != "input"]
    if not outputs:
        raise ConfigError(f"task file {path}: needs at least one output column besides 'input'")
    table: dict[str, dict[str, str]] = {}
    for row in rows:
        where = row["_where"]
        keys = [k for k in row if k != "_where"]
        if sorted(keys) != sorted(columns):
            raise ConfigError(f"task file {path}, {where}: expected fields {columns}, got {keys}")
        values = {k: row[k] for k in keys}
        for k, v in values.items():
            if not isinstance(v, (str, int, float)) or isinstance(v, bool) or str(v).strip() == "":
                raise ConfigError(f"task file {path}, {where}: field '{k}' must be a non-empty string")
            if "\n" in str(v) or "\r" in str(v):  # one example per line: a line break would split it
                raise ConfigError(f"task file {path}, {where}: field '{k}' contains a line break")
        x = str(values["input"])
        if x in table:
            raise ConfigError(f"task file {path}, {where}: input '{x}' appears twice")
        table[x] = {k: str(v) for k, v in values.items() if k != "input"}
    _ensure_builtins()
    space = InputSpace(name=f"file:{path.name}", items=tuple(table))
    tasks = []
    for col in outputs:
        task_name = name if outputs == ["output"] else col
        existing = _REGISTRY.get(task_name)
        if existing is not None and not existing.family.startswith("file:"):
            raise ConfigError(
                f"task file {path}: task name '{task_name}' clashes with a built-in task; rename the column"
            )
        tasks.append(register(
            Task(task_name, space, separator, lambda x, col=col: table[x][col],
                 f"from {path.name}", family=f"file:{path.name}"),
            replace=True,
        ))
    return tasks
