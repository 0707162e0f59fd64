"""Run folders: ``runs/<name>-<YYYYmmdd-HHMMSS>/`` holding everything an experiment produced.

    config.yaml     the resolved config plus environment (package versions, git commit) and,
                    once models are loaded, their provenance (source, sha256 of weight files)
    status.json     "running" until the summary is written, then "complete"; "failed" with the
                    reason when an error stopped the run (resuming sets it back to "running");
                    "stopped" with the step for a training run that a time limit ended; also
                    the folder's ``kind`` (KINDS) and ``format`` (FORMAT_VERSION), so a reader knows
                    what it holds without guessing from its files (folders of older versions lack both)
    lock            while a process writes the folder: its pid (a second writer is refused; a lock
                    whose process is gone is taken over)
    prompts.jsonl   the exact prompts (experiments that use prompts)
    records.jsonl   one JSON record per unit of work, appended and fsync'd as it finishes
    summary.json    aggregate numbers, written last and atomically
    figures/        PNG figures

Records are appended one line at a time, so an interrupted run keeps every finished record; a
truncated last line (killed mid-write) is dropped when the folder is read back. Resuming skips the
records already there.
"""

from __future__ import annotations

import atexit
import importlib.metadata
import itertools
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterable

import yaml

from superpose.errors import SuperposeError

DEFAULT_ROOT = Path("runs")
# What a run folder can hold: one kind per experiment (a training run and a reproduce parent folder too).
KINDS = ("probe", "sweep", "scale", "vectors", "construct", "train", "reproduce", "mechanism")
FORMAT_VERSION = 2  # 1: the folders written before status.json said their kind
RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=-]*$")


def environment() -> dict:
    """Versions and machine facts that a reader needs to reproduce a number."""
    versions = {}
    for pkg in ("superpose", "torch", "transformers", "accelerate", "gguf", "numpy", "tokenizers"):
        try:
            versions[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            versions[pkg] = None
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "versions": versions,
        "git_commit": _git_commit(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join(sys.argv),
    }


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except BaseException:  # a full disk, say: leave the old file, and no half-written copy beside it
        tmp.unlink(missing_ok=True)
        raise


def write_status(folder: str | Path, status: str, kind: str | None, **extra) -> None:
    """Write ``folder/status.json``: the status, when, the folder's kind and format version."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"run folder kind {kind!r}: expected one of {', '.join(KINDS)}")
    doc = {"status": status, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
           **({"kind": kind, "format": FORMAT_VERSION} if kind is not None else {}), **extra}
    text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    path = Path(folder) / "status.json"
    try:
        _write_atomic(path, text)
    except OSError:  # a full disk has no room for a second copy; rewriting in place reuses the old one's
        path.write_text(text, encoding="utf-8")


def read_status(folder: str | Path) -> dict:
    """``folder/status.json`` as a dict (empty when missing or unreadable); ``format`` 1 when absent."""
    try:
        doc = json.loads((Path(folder) / "status.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {"format": 1, **doc} if isinstance(doc, dict) else {}


class RunFolder:
    """One experiment's output folder (create a new one, or open one to resume)."""

    def __init__(self, path: Path, kind: str | None = None):
        self.path = Path(path)
        self.kind = kind if kind is not None else read_status(self.path).get("kind")
        self.status_before: dict = {}  # status.json when this process took the folder (hold)

    @classmethod
    def create(cls, name: str, config: dict, root: str | Path = DEFAULT_ROOT, kind: str | None = None) -> "RunFolder":
        """Make ``root/<name>-<time>/`` (locked by this process) and write its config and environment;
        ``kind`` (one of KINDS) goes into status.json."""
        if not RUN_NAME.match(name or ""):
            raise SuperposeError(f"name {name!r}: a run name is letters, digits and . _ + = -, starting with a "
                                 "letter or digit (it becomes a folder inside the output root)")
        root = Path(root)
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as e:  # a file of that name, a read-only place
            why = "a file, not a folder" if root.is_file() else e.strerror or str(e)
            raise SuperposeError(f"output folder {root}: cannot make run folders there ({why})") from None
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for suffix in itertools.count(1):
            path = root / (f"{name}-{stamp}" if suffix == 1 else f"{name}-{stamp}-{suffix}")
            try:
                path.mkdir()  # atomic: of runs started in the same second, each gets its own name
                break
            except FileExistsError:
                continue
            except OSError as e:
                raise SuperposeError(f"output folder {root}: cannot make a run folder there ({e.strerror})") from None
        run = cls(path, kind)
        run.lock()
        run._set_status("running")  # first: a folder that has its config.yaml always has a status
        run.write_yaml("config.yaml", {"config": config, "environment": environment()})
        return run

    @classmethod
    def open(cls, path: str | Path, resume: bool = False, kind: str | None = None) -> "RunFolder":
        """Open an existing run folder: to read it, or (``resume``) to write it, locked. With ``kind``,
        a folder of another kind is refused, and a folder of an older version learns its kind."""
        path = Path(path)
        if not (path / "config.yaml").is_file():
            raise SuperposeError(f"{path} is not a run folder (no config.yaml)")
        recorded = read_status(path).get("kind")
        if kind is not None and recorded is not None and recorded != kind:
            raise SuperposeError(f"{path} holds a {recorded} run, not a {kind} run")
        run = cls(path, kind or recorded)
        doc = run.config_doc()
        if not isinstance(doc.get("config"), dict):
            raise SuperposeError(f"{path}/config.yaml: no 'config' mapping; this folder cannot be resumed")
        if resume:
            run.lock()
            run._set_status("running")
        return run

    def lock(self) -> None:
        """Claim the folder for this process; a live other holder is a clear error, a dead one is replaced."""
        path = self.path / "lock"
        for _ in range(2):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                if _pid_in(path) == os.getpid():
                    return
                self.refuse_if_written()
                path.unlink(missing_ok=True)  # stale: its process is gone
                continue
            with os.fdopen(fd, "w") as f:
                f.write(str(os.getpid()))
            atexit.register(self.unlock)
            self.hold()
            return
        raise SuperposeError(f"{self.path}: could not take the lock file {path}")

    def refuse_if_written(self) -> None:
        """A clear error if another live process holds the folder's lock (checked without taking it)."""
        path = self.path / "lock"
        holder = _pid_in(path)
        if holder is not None and holder != os.getpid() and _alive(holder):
            raise SuperposeError(f"{self.path} is being written by process {holder} (its lock file "
                                 f"{path}); wait for it to finish or stop it") from None

    def hold(self) -> None:
        """Count the folder as written by this process: an error that stops the process marks it failed
        (:func:`fail_held_runs`). :meth:`lock` holds."""
        if self not in _HELD:
            self.status_before = read_status(self.path)
            _HELD.append(self)

    def unlock(self) -> None:
        """Release the folder if this process holds it."""
        path = self.path / "lock"
        if _pid_in(path) == os.getpid():
            path.unlink(missing_ok=True)
        if self in _HELD:
            _HELD.remove(self)

    def config_doc(self) -> dict:
        """All of config.yaml: the config, the environment and (once loaded) model provenance."""
        path = self.path / "config.yaml"
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError):
            doc = None
        if not isinstance(doc, dict):
            raise SuperposeError(f"{path}: empty or not valid YAML; this run folder cannot be read or resumed")
        return doc

    @property
    def config(self) -> dict:
        """The config this run was started with."""
        return self.config_doc()["config"]

    @property
    def status(self) -> str:
        """'running' (or interrupted) until finish() is called, then 'complete'."""
        return read_status(self.path).get("status", "unknown")

    def _set_status(self, status: str, **extra: str) -> None:
        write_status(self.path, status, self.kind, **extra)

    def update_config(self, key: str, value: Any) -> None:
        """Add a top-level entry to config.yaml (e.g. model provenance once models are loaded)."""
        doc = self.config_doc()
        doc[key] = value
        self.write_yaml("config.yaml", doc)

    def write_yaml(self, name: str, obj: Any) -> Path:
        """Write YAML atomically."""
        path = self.path / name
        _write_atomic(path, yaml.safe_dump(obj, sort_keys=False, allow_unicode=True))
        return path

    def write_json(self, name: str, obj: Any) -> Path:
        """Write JSON atomically (never a half-written file)."""
        path = self.path / name
        _write_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")
        return path

    def write_text(self, name: str, text: str) -> Path:
        """Write a text file atomically."""
        path = self.path / name
        _write_atomic(path, text)
        return path

    def write_jsonl(self, name: str, rows: Iterable[dict]) -> Path:
        """Write a whole JSONL file atomically."""
        return self.write_text(name, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))

    def append_record(self, record: dict, name: str = "records.jsonl") -> None:
        """Append one record and make it durable before returning."""
        path = self.path / name
        glued = path.exists() and path.stat().st_size > 0 and _last_byte(path) != b"\n"
        with open(path, "a", encoding="utf-8") as f:
            f.write(("\n" if glued else "") + json.dumps(record, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def read_records(self, name: str = "records.jsonl") -> list[dict]:
        """All complete records; a truncated last line from an interrupted write is dropped, and a record
        written twice (two writers before locks existed) is kept once. Only the process writing the
        folder (:meth:`hold`) rewrites the file without them; a reader never writes."""
        path = self.path / name
        if not path.exists():
            return []
        try:
            lines = path.read_text(encoding="utf-8").split("\n")
        except UnicodeDecodeError as e:
            line = e.object[:e.start].count(b"\n") + 1
            raise SuperposeError(f"{path}, line {line}: damaged record (byte 0x{e.object[e.start]:02x} is not "
                                 "UTF-8); remove that line to resume") from None
        records, cut = [], False
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                if i >= len(lines) - 2:  # last line: a write cut short; drop it
                    cut = True
                    break
                raise SuperposeError(f"{path}, line {i + 1}: corrupt record (not JSON)") from None
            if not isinstance(record, dict):
                raise SuperposeError(f"{path}, line {i + 1}: not a record (expected a JSON object, got a "
                                     f"{type(record).__name__})")
            records.append(record)
        unique = list({json.dumps(r, sort_keys=True): r for r in records}.values())
        if self in _HELD and (cut or len(unique) < len(records)):  # the writer repairs; a reader never writes
            self.write_jsonl(name, unique)
        return unique

    def figure_path(self, name: str) -> Path:
        """Path for a figure ``figures/<name>.png`` (folder created)."""
        folder = self.path / "figures"
        folder.mkdir(exist_ok=True)
        return folder / f"{name}.png"

    def finish(self, summary: dict) -> Path:
        """Write summary.json and mark the run complete (the last thing a run does)."""
        path = self.write_json("summary.json", summary)
        self._set_status("complete")
        self.unlock()
        return path


_HELD: list[RunFolder] = []  # folders this process has locked and not finished


def fail_held_runs(reason: str) -> list[Path]:
    """Mark every folder this process is writing "failed" with ``reason`` (an error stopped the run);
    returns them. A folder that was complete before this process took it (a resume that re-read it)
    stays complete: its results are whole, only the resume failed."""
    failed = []
    for run in list(_HELD):
        before = run.status_before
        try:
            if before.get("status") == "complete":
                write_status(run.path, "complete", before.get("kind", run.kind),  # as it was, its time too
                             **{k: v for k, v in before.items() if k not in ("status", "kind", "format")})
            else:
                run._set_status("failed", reason=reason)
                failed.append(run.path)
        except OSError:  # nowhere to write (a read-only or vanished folder): the error itself still prints
            pass
        run.unlock()
    return failed


TRAINING_LOGS = ("records.jsonl", "log.jsonl")  # a training run's log; log.jsonl in folders of older versions


def training_log(folder: str | Path) -> Path:
    """The training log of a run folder: ``records.jsonl``, or ``log.jsonl`` in a folder of an older version."""
    folder = Path(folder)
    return next((folder / n for n in TRAINING_LOGS if (folder / n).exists()), folder / TRAINING_LOGS[0])


def _pid_in(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _last_byte(path: Path) -> bytes:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1)
