"""Run folders: ``runs/<name>-<YYYYmmdd-HHMMSS>/`` holding everything an experiment produced.

    config.yaml     the resolved config plus environment (package versions, git commit) and,
                    once models are loaded, their provenance (source, sha256 of weight files)
    status.json     "running" until the summary is written, then "complete"
    prompts.jsonl   the exact prompts (experiments that use prompts)
    records.jsonl   one JSON record per unit of work, appended and fsync'd as it finishes
    summary.json    aggregate numbers, written last and atomically
    figures/        PNG figures

Records are appended one line at a time, so an interrupted run keeps every finished record; a
truncated last line (killed mid-write) is dropped when the folder is read back. Resuming skips the
records already there.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterable

import yaml

from superpose.errors import SuperposeError

DEFAULT_ROOT = Path("runs")


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
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


class RunFolder:
    """One experiment's output folder (create a new one, or open one to resume)."""

    def __init__(self, path: Path):
        self.path = Path(path)

    @classmethod
    def create(cls, name: str, config: dict, root: str | Path = DEFAULT_ROOT) -> "RunFolder":
        """Make ``root/<name>-<time>/`` and write its config and environment."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = Path(root) / f"{name}-{stamp}"
        suffix = 1
        while path.exists():
            suffix += 1
            path = Path(root) / f"{name}-{stamp}-{suffix}"
        path.mkdir(parents=True)
        run = cls(path)
        run.write_yaml("config.yaml", {"config": config, "environment": environment()})
        run._set_status("running")
        return run

    @classmethod
    def open(cls, path: str | Path) -> "RunFolder":
        """Open an existing run folder (to resume or re-plot)."""
        path = Path(path)
        if not (path / "config.yaml").is_file():
            raise SuperposeError(f"{path} is not a run folder (no config.yaml)")
        return cls(path)

    def config_doc(self) -> dict:
        """All of config.yaml: the config, the environment and (once loaded) model provenance."""
        return yaml.safe_load((self.path / "config.yaml").read_text())

    @property
    def config(self) -> dict:
        """The config this run was started with."""
        return self.config_doc()["config"]

    @property
    def status(self) -> str:
        """'running' (or interrupted) until finish() is called, then 'complete'."""
        try:
            return json.loads((self.path / "status.json").read_text())["status"]
        except (OSError, ValueError, KeyError):
            return "unknown"

    def _set_status(self, status: str) -> None:
        self.write_json("status.json", {"status": status, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")})

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
        with open(self.path / name, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def read_records(self, name: str = "records.jsonl") -> list[dict]:
        """All complete records; a truncated last line from an interrupted write is dropped."""
        path = self.path / name
        if not path.exists():
            return []
        records = []
        lines = path.read_text(encoding="utf-8").split("\n")
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                if i >= len(lines) - 2:  # last line: a write cut short; drop it and rewrite the file
                    self.write_jsonl(name, records)
                    break
                raise SuperposeError(f"{path}, line {i + 1}: corrupt record (not JSON)") from None
        return records

    def figure_path(self, name: str) -> Path:
        """Path for a figure ``figures/<name>.png`` (folder created)."""
        folder = self.path / "figures"
        folder.mkdir(exist_ok=True)
        return folder / f"{name}.png"

    def finish(self, summary: dict) -> Path:
        """Write summary.json and mark the run complete (the last thing a run does)."""
        path = self.write_json("summary.json", summary)
        self._set_status("complete")
        return path
