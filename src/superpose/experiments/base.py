"""What every experiment shares: the config header, and the start of a run (folder, lock, resume rule).

An experiment (probe, sweep, scale, vectors) validates its config before anything is written, then
calls :func:`open_run`: a new run folder (locked, ``status.json`` "running" with the experiment's
kind), or -- resuming -- the existing folder and *its own* config, so a resumed run is the run that
was started. Records are appended one per unit of work (:meth:`RunFolder.append_record`), the units
already in ``records.jsonl`` are skipped, and the summary and figures are made from the records
alone, then :meth:`RunFolder.finish` writes ``summary.json`` last.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field

from superpose.backends.entry import Device, Dtype
from superpose.config import config_from_dict
from superpose.runs import RunFolder


class ExperimentConfig(BaseModel):
    """The header of every experiment's config: name, description, dtype, device, seed, user task files."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    dtype: Dtype = "float32"
    device: Device = None  # auto, cpu, cuda, cuda:N, mps; None: cpu
    seed: int = 0
    task_files: list[str] = Field(default_factory=list)  # user tasks, loaded before the config is checked


C = TypeVar("C", bound=ExperimentConfig)


def open_run(kind: str, model: type[C], config: C | None, root: str | Path, resume: str | Path | None,
             name: str | None = None) -> tuple[RunFolder, C]:
    """The run folder and the config to run: resuming, the folder (locked) and its own config; else a
    new folder ``root/<name or config.name>-<time>`` for ``config``."""
    if resume is not None:
        run = RunFolder.open(resume, resume=True, kind=kind)
        return run, config_from_dict(model, run.config, f"{run.path}/config.yaml")
    assert config is not None
    return RunFolder.create(name or config.name, config.model_dump(mode="json"), root, kind=kind), config
