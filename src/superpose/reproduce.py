"""`superpose reproduce`: every experiment of the study, in order, as run folders under one parent.

A plan (``configs/reproduce/cpu.yaml``, ``paper.yaml``, or your own with ``--plan``) lists the
steps; each step is one ordinary command line (``run``, ``sweep``, ``construct``, ``vectors``,
``scale``, ``train``), so anything reproduce does, a user can do or redo by hand. Step ``name``
writes its run folder inside ``PARENT/name/``. Resuming the parent (``--resume PARENT``) skips a
step whose folder is complete, resumes one that was interrupted, and starts the rest; at the end
``report.html`` covers every step.

    superpose reproduce                                  # --scale cpu: embedded models, CPU recipes
    superpose reproduce --scale paper --models vllm:Qwen/Qwen1.5-14B,vllm:Qwen/Qwen1.5-7B
    superpose reproduce --resume runs/reproduce-cpu-<time>
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shlex
import shutil
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from superpose.cli_args import add_run_flags, print_run_folder
from superpose.config import find_config, read_yaml, validate
from superpose.errors import SuperposeError
from superpose.report.console import console, progress_enabled, set_progress

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
        names = [s.name for s in v]
        if len(set(names)) != len(names):
            raise ValueError(f"step names must differ: {names}")
        return v

    def argv(self, step: Step, parent: Path | str = "PARENT") -> list[str]:
        """The step's command line: ``{parent}`` filled in, the plan's models added where the step takes them."""
        chosen = {"none": [], "all": self.models, "first": self.models[:1]}[step.models]
        command = [a.replace("{parent}", str(parent)) for a in step.command]
        return [*command, *[a for m in chosen for a in ("--model", m)]]


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


def _step_folder(root: Path) -> Path | None:
    """The one run folder a step made inside its root, if any."""
    if not root.is_dir():
        return None
    found = sorted(p for p in root.iterdir()
                   if p.is_dir() and ((p / "config.yaml").exists() or (p / "log.jsonl").exists()))
    if len(found) > 1:
        raise SuperposeError(f"{root}: holds {len(found)} run folders; a reproduce step keeps one (remove the extra)")
    return found[0] if found else None


def _complete(folder: Path) -> bool:
    if (folder / "status.json").exists():
        return json.loads((folder / "status.json").read_text()).get("status") == "complete"
    return (folder / "model").is_dir()  # a training run is complete once its final model is saved


def expand_run_folders(folders: list[str | Path]) -> list[Path]:
    """Run folders, with a reproduce parent folder replaced by its steps' folders in plan order."""
    out: list[Path] = []
    for f in folders:
        f = Path(f)
        if (f / PLAN_FILE).is_file():
            plan = Plan.model_validate(json.loads((f / PLAN_FILE).read_text())["plan"])
            out += [folder for s in plan.steps if (folder := _step_folder(f / s.name)) is not None]
        else:
            out.append(f)
    return out


def _run_command(argv: list[str], log: Path) -> None:
    """Run one step's command line in this process; its stdout (tables) goes to ``log``."""
    from superpose.cli import build_parser

    args = build_parser(argv).parse_args(argv)
    args.no_progress = not progress_enabled()
    with open(log, "a", encoding="utf-8") as out, contextlib.redirect_stdout(out):
        print(f"$ superpose {shlex.join(argv)}", flush=True)
        code = int(args.func(args) or 0)
    if code != 0:
        raise SuperposeError(f"superpose {shlex.join(argv)} exited with status {code} (its output: {log})")


def check_steps(plan: Plan) -> None:
    """Parse every step's command line before anything runs: a typo fails at once, not an hour in."""
    from superpose.cli import build_parser

    for step in plan.steps:
        argv = plan.argv(step)
        try:
            with contextlib.redirect_stderr(io.StringIO()) as message:  # argparse's usage + error lines
                build_parser(argv).parse_args(argv)
        except SystemExit:
            why = message.getvalue().strip().splitlines()[-1]
            raise SuperposeError(f"plan step '{step.name}': `superpose {shlex.join(argv)}` is not a valid "
                                 f"command line ({why})") from None
        for config in (a for a in step.command[1:] if a.endswith((".yaml", ".yml"))):
            if not find_config(config).is_file():
                raise SuperposeError(f"plan step '{step.name}': config {config}: no such file")


def reproduce(plan: Plan, parent: Path, resume: bool = False) -> list[Path]:
    """Run (or resume) every step of ``plan`` under ``parent``; returns the steps' run folders."""
    check_steps(plan)
    parent.mkdir(parents=True, exist_ok=True)
    if not resume:
        (parent / PLAN_FILE).write_text(json.dumps({"plan": plan.model_dump(mode="json")}, indent=1) + "\n")
        console.print(f"reproduce folder: [bold]{parent}[/bold] (resume with --resume {parent})")
    show = progress_enabled()
    folders = []
    try:
        for i, step in enumerate(plan.steps, 1):
            root = parent / step.name
            root.mkdir(exist_ok=True)
            folder = _step_folder(root)
            head = f"[{i}/{len(plan.steps)}] {step.name} · {step.study}"
            if folder is not None and _complete(folder):
                console.print(f"{head}: complete, skipped", highlight=False)
                folders.append(folder)
                continue
            if folder is not None and step.command[0] in NOT_RESUMABLE:
                shutil.rmtree(folder)
                folder = None
            if folder is not None:
                argv = [step.command[0], "--resume", str(folder)]
            else:
                argv = [*plan.argv(step, parent), "--out", str(root)]
            console.print(f"{head}: {'resuming' if folder else 'running'} superpose {shlex.join(argv)}", highlight=False)
            start = time.monotonic()
            set_progress(show, prefix=f"[{i}/{len(plan.steps)}] ")  # the step's own bars, labelled
            _run_command(argv, root / "output.txt")
            folder = _step_folder(root)
            assert folder is not None
            folders.append(folder)
            console.print(f"{head}: done in {time.monotonic() - start:.0f} s", highlight=False)
    finally:
        set_progress(show)
    return folders


def configure(p) -> None:
    """Arguments of `superpose reproduce`."""
    p.add_argument("--scale", choices=["cpu", "paper"], default="cpu",
                   help="cpu: embedded models and CPU recipes (default); paper: the study's models, prompt "
                        "counts and recipes, for a GPU machine")
    p.add_argument("--plan", metavar="FILE", help="your own plan YAML instead of --scale's (configs/reproduce/)")
    p.add_argument("--models", metavar="M1,M2", help="comma-separated models replacing the plan's")
    p.add_argument("--dry-run", action="store_true", help="print every step's command line and stop")
    add_run_flags(p, seed=False)
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from superpose.report.html import write_report

    if args.resume:
        parent = Path(args.resume)
        if not (parent / PLAN_FILE).is_file():
            raise SuperposeError(f"--resume {parent}: not a reproduce folder (no {PLAN_FILE})")
        if args.plan or args.models:
            raise SuperposeError("--resume continues the folder's own plan; drop --plan and --models")
        plan = Plan.model_validate(json.loads((parent / PLAN_FILE).read_text())["plan"])
    else:
        plan = load_plan(args.scale, args.plan, args.models)
        parent = Path(args.out) / f"{plan.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    if args.dry_run:
        check_steps(plan)
        for step in plan.steps:
            print(f"{step.name:<16} {step.study:<28} superpose {shlex.join(plan.argv(step))}")
        return 0
    folders = reproduce(plan, parent, resume=bool(args.resume))
    report = write_report(folders, parent / "report.html", title=f"superpose reproduce: {plan.name}")
    print(f"report: {report}")
    print_run_folder(parent)
    return 0
