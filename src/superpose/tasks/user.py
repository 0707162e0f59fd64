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
import re
from pathlib import Path

from superpose.errors import ConfigError, brief
from superpose.files import load_yaml, read_utf8
from superpose.tasks.base import _REGISTRY, InputSpace, Task, register, _ensure_builtins

DEFAULT_SEPARATOR = "->"


def load_task_file(path: str | Path) -> list[Task]:
    """Read a CSV/JSONL/YAML task file, register its tasks, and return them."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"task file {path}: no such file")
    # A symlink may point at any file (even /etc/shadow): its errors show no cell values, and column
    # names only when they look like names.
    reveal = not path.is_symlink()
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
    return _register_table(path, rows, separator, name, reveal)


def load_task_files(paths: list[str | Path]) -> list[Task]:
    """Load several task files; a task name defined by two of them is an error (neither may silently win)."""
    defined: dict[str, Path] = {}
    tasks = []
    for p in paths:
        for task in load_task_file(p):
            if task.name in defined:
                raise ConfigError(f"task file {p}: task '{task.name}' is also defined by {defined[task.name]}; "
                                  "rename one of them")
            defined[task.name] = Path(p)
            tasks.append(task)
    return tasks


Row = tuple[str, dict]  # (where in the file, e.g. "line 3", the row's fields)
_NAME_LIKE = re.compile(r"^[\w.+-][\w .+-]{0,39}$")


def _columns(names: list) -> str:
    """Column names for a message: shown when they look like names, else only counted (never file content)."""
    if all(isinstance(n, str) and _NAME_LIKE.match(n) for n in names):
        return ", ".join(names)
    return f"{len(names)} column(s) that are not names like 'input'"


def _read_csv(path: Path) -> list[Row]:
    reader = csv.reader(io.StringIO(read_utf8(path, f"task file {path}"), newline=""))
    rows: list[Row] = []
    start = 1  # the line the row being read starts at (a quoted field may span lines)
    try:
        header = next(reader, None)
        if not header:
            raise ConfigError(f"task file {path}: empty file; expected a header row like 'input,output'")
        repeated = sorted({c for c in header if header.count(c) > 1})
        if repeated:
            raise ConfigError(f"task file {path}, line 1: column {_columns(repeated)} appears twice in the header")
        start = reader.line_num + 1
        for fields in reader:
            if fields:  # csv.DictReader's rule: a blank line is no row
                end = reader.line_num  # a row is named by its last line (where a quoted field ends)
                if len(fields) != len(header):
                    raise ConfigError(f"task file {path}, line {end}: expected {len(header)} columns, "
                                      f"got {len(fields)}")
                rows.append((f"line {end}", dict(zip(header, fields))))
            start = reader.line_num + 1
    except csv.Error as e:  # e.g. a field over csv's size limit, or a stray quote: csv counts no line of that row
        raise ConfigError(f"task file {path}, line {start}: {e}") from None
    return rows


def _read_jsonl(path: Path) -> list[Row]:
    rows: list[Row] = []
    for line_no, line in enumerate(read_utf8(path, f"task file {path}").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as e:  # JSONDecodeError, or an integer over Python's 4300-digit limit
            raise ConfigError(f"task file {path}, line {line_no}: not valid JSON "
                              f"({getattr(e, 'msg', 'a number too long')})") from None
        if not isinstance(obj, dict):
            raise ConfigError(f"task file {path}, line {line_no}: expected a JSON object")
        rows.append((f"line {line_no}", obj))
    return rows


def _read_yaml(path: Path) -> tuple[list[Row], str, str]:
    doc = load_yaml(path, f"task file {path}")
    if not isinstance(doc, dict) or not isinstance(doc.get("rows"), list):
        raise ConfigError(f"task file {path}: expected a mapping with a list field 'rows'")
    separator = doc.get("separator", DEFAULT_SEPARATOR)
    if not isinstance(separator, str) or not separator.strip() or _breaks(separator):
        raise ConfigError(f"task file {path}: field 'separator' must be a non-empty string on one line")
    name = doc.get("name", path.stem)
    if not isinstance(name, str):
        raise ConfigError(f"task file {path}: field 'name' must be a string")
    rows: list[Row] = []
    for i, row in enumerate(doc["rows"]):
        if not isinstance(row, dict):
            raise ConfigError(f"task file {path}, rows[{i}]: expected a mapping like {{input: ..., output: ...}}")
        rows.append((f"rows[{i}]", row))
    return rows, separator, name


def _breaks(text: str) -> bool:
    return any(c in text for c in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029")  # str.splitlines' breaks


def _unicode(text: str) -> bool:
    """Whether ``text`` is valid Unicode: JSON's ``\\ud800`` escape gives a lone surrogate, which no file,
    tokenizer or page can encode."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_task_name(path: Path, task_name: str) -> None:
    if not task_name.strip() or _breaks(task_name) or not _unicode(task_name) or len(task_name) > 100:
        raise ConfigError(f"task file {path}: a task name must be non-empty text on one line (up to 100 "
                          f"characters); got {brief(task_name)}")


def _register_table(path: Path, rows: list[Row], separator: str, name: str, reveal: bool = True) -> list[Task]:
    if not rows:
        raise ConfigError(f"task file {path}: no rows")
    columns = list(rows[0][1])
    for c in columns:
        if not isinstance(c, str) or not _unicode(c):
            raise ConfigError(f"task file {path}, {rows[0][0]}: a column name is not valid Unicode text")
    if "input" not in columns:
        raise ConfigError(f"task file {path}: missing the 'input' column (found: {_columns(columns)})")
    outputs = [c for c in columns if c != "input"]
    if not outputs:
        raise ConfigError(f"task file {path}: needs at least one output column besides 'input'")
    table: dict[str, dict[str, str]] = {}
    for where, row in rows:
        keys = list(row)
        if sorted(map(str, keys)) != sorted(columns):
            raise ConfigError(f"task file {path}, {where}: expected fields {_columns(columns)}, "
                              f"got {_columns(keys)}")
        for k, v in row.items():
            if not isinstance(v, (str, int, float)) or isinstance(v, bool) or str(v).strip() == "":
                raise ConfigError(f"task file {path}, {where}: field '{k}' must be a non-empty string")
            if isinstance(v, str) and not _unicode(v):
                raise ConfigError(f"task file {path}, {where}: field '{k}' is not valid Unicode text "
                                  "(a lone surrogate such as \\ud800)")
            if _breaks(str(v)):  # one example per line: a line break would split it
                raise ConfigError(f"task file {path}, {where}: field '{k}' contains a line break")
        x = str(row["input"])
        if x in table:
            shown = f"input {brief(x)}" if reveal else "an input"
            raise ConfigError(f"task file {path}, {where}: {shown} appears twice")
        table[x] = {k: str(v) for k, v in row.items() if k != "input"}
    _ensure_builtins()
    space = InputSpace(name=f"file:{path.name}", items=tuple(table))
    tasks = []
    for col in outputs:
        task_name = name if outputs == ["output"] else col
        _check_task_name(path, task_name)
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
