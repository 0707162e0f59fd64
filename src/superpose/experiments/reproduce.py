"""The plan of `superpose reproduce`: every experiment of the study, in order, as run folders under one parent.

A plan (``configs/reproduce/cpu.yaml``, ``paper.yaml``, or your own with ``--plan``) lists the
steps; each step is one ordinary command line (``run``, ``sweep``, ``construct``, ``vectors``,
``scale``, ``train``), so anything reproduce does, a user can do or redo by hand. Step ``name``
writes its run folder inside ``PARENT/name/``; a later step names it ``{run:name}`` (the folder's
name has its start time in it), e.g. ``--model "{run:train-plus}/model"``. Resuming the parent
(``--resume PARENT``) skips a step whose folder is complete, resumes one that was interrupted, and
starts the rest; at the end ``report.html`` covers every step. Running the steps is the command
layer's job (:mod:`superpose.cli.reproduce`): each step is a command line.

    superpose reproduce                                  # --scale cpu: embedded models, CPU recipes
    superpose reproduce --scale paper --models vllm:Qwen/Qwen1.5-14B,vllm:Qwen/Qwen1.5-7B
    superpose reproduce --resume runs/reproduce-cpu-<time>
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from superpose.config import check_unique, find_config, read_yaml, validate
from superpose.errors import SuperposeError
from superpose.runs import read_status, training_log

STEP_COMMANDS = ("run", "sweep", "construct", "vectors", "scale", "train")
NOT_RESUMABLE = ("construct",)  # seconds long: an interrupted one starts again
PLAN_FILE = "reproduce.json"  # the parent folder's record of its plan and model list


class Step(BaseModel):
    """One step: a command line, and which of the plan's models it takes."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    study: str  # the part of the study it reproduces, e.g. "Figure 3 (plus_k)"
    command: list[str] = Field(min_length=1)  # e.g. [sweep, configs/sweep/plus_scratch.yaml, --n-prompts, "40"]
    models: Literal["none", "all", "first"] = "none"  # --model for every plan model, the first, or none

    @field_validator("command")
    @classmethod
    def _known_command(cls, v: list[str]) -> list[str]:
        if v[0] not in STEP_COMMANDS:
            raise ValueError(f"starts with {v[0]!r}; expected one of {', '.join(STEP_COMMANDS)}")
        return [str(a) for a in v]


class Plan(BaseModel):
    """The steps of a reproduction and the pretrained models they run on."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    models: list[str] = Field(min_length=1)
    steps: list[Step] = Field(min_length=1)

    @field_validator("steps")
    @classmethod
    def _unique(cls, v: list[Step]) -> list[Step]:
        check_unique([s.name for s in v], "step names")
        return v

    @field_validator("steps")
    @classmethod
    def _runs_of_earlier_steps(cls, v: list[Step]) -> list[Step]:
        for i, step in enumerate(v):
            earlier = {s.name for s in v[:i]}
            for name in (m for a in step.command for m in _RUN.findall(a)):
                if name not in earlier:
                    raise ValueError(f"step {step.name!r}: {{run:{name}}} names no earlier step")
        return v

    def argv(self, step: Step, parent: Path | str = "PARENT") -> list[str]:
        """The step's command line: ``{parent}`` and ``{run:STEP}`` (that step's run folder) filled in,
        the plan's models added where the step takes them."""
        def run_folder(match: re.Match) -> str:
            root = Path(parent) / match[1]
            return str(step_folder(root) or root / "<its run folder>")  # a dry run: not made yet

        chosen = {"none": [], "all": self.models, "first": self.models[:1]}[step.models]
        command = [_RUN.sub(run_folder, a.replace("{parent}", str(parent))) for a in step.command]
        return [*command, *[a for m in chosen for a in ("--model", m)]]


_RUN = re.compile(r"\{run:([^}]+)\}")  # {run:STEP} in a step's command: that earlier step's run folder


def load_plan(scale: str | None, plan_file: str | None, models: str | None) -> Plan:
    """The packaged plan of ``scale`` (or ``plan_file``), with ``models`` (comma-separated) replacing its list."""
    path = find_config(plan_file) if plan_file else find_config(f"configs/reproduce/{scale}.yaml")
    plan = validate(Plan, read_yaml(path), str(path))
    if models is not None:
        names = [m.strip() for m in models.split(",") if m.strip()]
        if not names:
            raise SuperposeError("--models: expected a comma-separated list of models, e.g. gemma-3-270m,smollm2-135m")
        plan = plan.model_copy(update={"models": names})
    return plan


def step_folder(root: Path) -> Path | None:
    """The one run folder a step made inside its root, if any."""
    if not root.is_dir():
        return None
    found = sorted(p for p in root.iterdir()
                   if p.is_dir() and ((p / "config.yaml").exists() or training_log(p).exists()))
    if len(found) > 1:
        raise SuperposeError(f"{root}: holds {len(found)} run folders; a reproduce step keeps one (remove the extra)")
    return found[0] if found else None


def is_complete(folder: Path) -> bool:
    """Whether a step's run folder finished (a training run of an older version: once its model is saved)."""
    if (folder / "status.json").exists():
        return read_status(folder).get("status") == "complete"
    return (folder / "model").is_dir()


def expand_run_folders(folders: list[str | Path]) -> list[Path]:
    """Run folders, with a reproduce parent folder replaced by its steps' folders in plan order."""
    out: list[Path] = []
    for f in folders:
        f = Path(f)
        if (f / PLAN_FILE).is_file():
            plan = Plan.model_validate(json.loads((f / PLAN_FILE).read_text())["plan"])
            out += [folder for s in plan.steps if (folder := step_folder(f / s.name)) is not None]
        else:
            out.append(f)
    return out
