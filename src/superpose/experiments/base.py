"""What every kind of run shares: the config header, and the start of a run (folder, lock, resume rule).

Every kind has one entry point of one shape (docs/architecture.md, "The run contract")::

    run_<kind>(config | None, *, root, resume=None, backend=None, progress=True) -> (RunFolder, summary)

It validates its config before anything is written, then calls :func:`open_run`: a new run folder
(locked, ``status.json`` "running" with the kind), or -- resuming -- the existing folder and *its own*
config, so a resumed run is the run that was started; a config given with the resume may change only
the fields its class lists in ``resume_may_change`` (its ``per_call`` limits are not inherited).
Records are appended one per unit of work (:meth:`RunFolder.append_record`), the units already in
``records.jsonl`` are skipped, and the summary and figures are made from the records alone, then
:meth:`RunFolder.finish` writes ``summary.json`` last.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from superpose.backends.entry import Device, Dtype
from superpose.config import check_resume_unchanged, config_from_dict
from superpose.runs import RunFolder


class ExperimentConfig(BaseModel):
    """The header of every run's config: name, description, dtype, device, seed, user task files."""

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
    # Limits of one call (where it stops, where it copies its result), a subset of resume_may_change:
    # a resume does not inherit them from the call before; it takes them from the config given, or
    # their defaults.
    per_call: ClassVar[frozenset[str]] = frozenset()


C = TypeVar("C", bound=ExperimentConfig)


def stored_config(model: type[C], folder: RunFolder) -> C:
    """The config a run folder was started with (its config.yaml), its per-call limits back at their defaults."""
    stored = config_from_dict(model, folder.config, f"{folder.path}/config.yaml")
    return stored.model_copy(update={k: model.model_fields[k].get_default(call_default_factory=True)
                                     for k in model.per_call})


def resume_config(model: type[C], folder: str | Path, given_config: C | None, flags: dict) -> C:
    """The config given with ``--resume``: a config file's (its flags applied), else the folder's own with
    the flags given applied. ``open_run`` checks what it may change."""
    given = {k: v for k, v in flags.items() if v is not None}
    if given_config is not None:
        return given_config
    stored = stored_config(model, RunFolder.open(folder))
    return config_from_dict(model, {**stored.model_dump(mode="json"), **given}, "--resume flags")


def resumed_config(kind: str, model: type[C], config: C | None, resume: str | Path) -> C:
    """The config a resume of the folder ``resume`` runs: its own, with the fields
    ``model.resume_may_change`` taken from ``config`` when one is given. A change to any other field is
    a ConfigError naming it; a folder another process writes is refused. Touches nothing."""
    folder = RunFolder.open(resume, kind=kind)
    folder.refuse_if_written()
    stored = stored_config(model, folder)
    if config is None:
        return stored
    check_resume_unchanged(resume, stored.model_dump(mode="json"), config.model_dump(mode="json"),
                           model.resume_may_change)
    return stored.model_copy(update={k: getattr(config, k) for k in model.resume_may_change})


def open_run(kind: str, model: type[C], config: C | None, root: str | Path, resume: str | Path | None,
             name: str | None = None) -> tuple[RunFolder, C]:
    """The run folder and the config to run: resuming, the folder (locked) and :func:`resumed_config`
    (config.yaml then says what the run goes on with); else a new folder
    ``root/<name or config.name>-<time>`` for ``config``."""
    if resume is None:
        assert config is not None
        return RunFolder.create(name or config.name, config.model_dump(mode="json"), root, kind=kind), config
    config = resumed_config(kind, model, config, resume)
    run = RunFolder.open(resume, resume=True, kind=kind)
    if config.model_dump(mode="json") != run.config:
        run.update_config("config", config.model_dump(mode="json"))
    return run, config
