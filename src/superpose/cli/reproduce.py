"""`superpose reproduce`: run every step of a plan (experiments/reproduce.py) as a command line, then the report.

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

from superpose.cli import build_parser
from superpose.cli.flags import add_run_flags, print_run_folder
from superpose.config import find_config
from superpose.errors import SuperposeError
from superpose.experiments.reproduce import NOT_RESUMABLE, PLAN_FILE, Plan, is_complete, load_plan, step_folder
from superpose.display.console import console
from superpose.progress import progress_enabled, set_progress
from superpose.runs import write_status


def _run_command(argv: list[str], log: Path) -> None:
    """Run one step's command line in this process; its stdout (tables) goes to ``log``."""
    args = build_parser(argv).parse_args(argv)
    args.no_progress = not progress_enabled()
    with open(log, "a", encoding="utf-8") as out, contextlib.redirect_stdout(out):
        print(f"$ superpose {shlex.join(argv)}", flush=True)
        code = int(args.func(args) or 0)
    if code != 0:
        raise SuperposeError(f"superpose {shlex.join(argv)} exited with status {code} (its output: {log})")


def check_steps(plan: Plan) -> None:
    """Parse every step's command line before anything runs: a typo fails at once, not an hour in."""
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
    write_status(parent, "running", kind="reproduce")
    if not resume:
        (parent / PLAN_FILE).write_text(json.dumps({"plan": plan.model_dump(mode="json")}, indent=1) + "\n")
        console.print(f"reproduce folder: [bold]{parent}[/bold] (resume with --resume {parent})")
    show = progress_enabled()
    folders = []
    try:
        for i, step in enumerate(plan.steps, 1):
            root = parent / step.name
            root.mkdir(exist_ok=True)
            folder = step_folder(root)
            head = f"[{i}/{len(plan.steps)}] {step.name} · {step.study}"
            if folder is not None and is_complete(folder):
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
            folder = step_folder(root)
            assert folder is not None
            folders.append(folder)
            console.print(f"{head}: done in {time.monotonic() - start:.0f} s", highlight=False)
    finally:
        set_progress(show)
    write_status(parent, "complete", kind="reproduce")
    return folders


def configure(p: argparse.ArgumentParser) -> None:
    """Arguments of `superpose reproduce`."""
    p.add_argument("--scale", choices=["cpu", "paper"], default="cpu",
                   help="cpu: embedded models and CPU recipes (default); paper: the study's models, prompt "
                        "counts and recipes, for a GPU machine")
    p.add_argument("--plan", metavar="FILE", help="your own plan YAML instead of --scale's (configs/reproduce/)")
    p.add_argument("--models", metavar="M1,M2", help="comma-separated models replacing the plan's")
    p.add_argument("--dry-run", action="store_true", help="print every step's command line and stop")
    add_run_flags(p, seed=False)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Run (or resume) a reproduction and write its report."""
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
