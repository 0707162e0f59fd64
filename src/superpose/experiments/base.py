"""What every kind of run shares: the config header, and the start of a run (folder, lock, resume rule).

Every kind has one entry point of one shape (docs/architecture.md, "The run contract")::

    run_<kind>(config | None, *, root, resume=None, backend=None, progress=True) -> (RunFolder, summary)

It validates its config before anything is written, then calls :func:`open_run`: a new run folder
(locked, ``status.json`` "running" with the kind), or -- resuming -- the existing folder and *its own*
config, so a resumed run is the run that was started; a config given with the resume may change only
the fields its class lists in ``resume_may_change``. Records are appended one per unit of work
(:meth:`RunFolder.append_record`), the units already in ``records.jsonl`` are skipped, and the
summary and figures are made from the records alone, then :meth:`RunFolder.finish` writes
``summary.json`` last.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from superpose.backends.entry import Device, Dtype
from superpose.config import check_resume_unchanged, config_from_dict
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

    # The fields a resume may change: those that change how a run goes, never its numbers. Every other
    # field given with --resume must equal the folder's own (the one resume rule, in open_run).
    resume_may_change: ClassVar[frozenset[str]] = frozenset()


C = TypeVar("C", bound=ExperimentConfig)


def open_run(kind: str, model: type[C], config: C | None, root: str | Path, resume: str | Path | None,
             name: str | None = None) -> tuple[RunFolder, C]:
    """The run folder and the config to run: resuming, the folder (locked) and its own config, with the
    fields ``model.resume_may_change`` taken from ``config`` when one is given (any other field it
    changes is a ConfigError naming it, before the folder is touched); else a new folder
    ``root/<name or config.name>-<time>`` for ``config``."""
    if resume is None:
        assert config is not None
        return RunFolder.create(name or config.name, config.model_dump(mode="json"), root, kind=kind), config
    stored = config_from_dict(model, RunFolder.open(resume, kind=kind).config, f"{resume}/config.yaml")
    changed: dict = {}
    if config is not None:
        given, before = config.model_dump(mode="json"), stored.model_dump(mode="json")
        check_resume_unchanged(resume, before, given, ignore=tuple(model.resume_may_change))
        changed = {k: getattr(config, k) for k in model.resume_may_change if given.get(k) != before.get(k)}
    run = RunFolder.open(resume, resume=True, kind=kind)
    if changed:  # config.yaml says what the run goes on with
        stored = stored.model_copy(update=changed)
        run.update_config("config", stored.model_dump(mode="json"))
    return run, stored
