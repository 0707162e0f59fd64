"""`superpose tasks`: the registered tasks by family (imports no torch)."""

from __future__ import annotations

import argparse


def configure(p: argparse.ArgumentParser) -> None:
    """Arguments of `superpose tasks`."""
    p.add_argument("--task-file", action="append", dest="task_files", metavar="FILE",
                   help="also load user tasks from a CSV/JSONL/YAML file")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Print the task catalogue (after loading any --task-file)."""
    from superpose.tasks import load_task_files, render_catalogue

    load_task_files(args.task_files or [])
    print(render_catalogue())
    return 0
