"""Small listing commands: `superpose tasks` and `superpose models`."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

from superpose.models import EMBEDDED_MODELS
from superpose.tasks import load_task_file, render_catalogue


def _tasks(args: argparse.Namespace) -> int:
    for f in args.task_files or []:
        load_task_file(f)
    print(render_catalogue())
    return 0


def _models(args: argparse.Namespace) -> int:
    table = Table(title="embedded models (any Hugging Face id, local folder or .gguf file also works; "
                        "'vllm:' runs a model on vLLM, 'openai:' reaches an API, see docs/backends.md)")
    for col in ("name", "installed", "description", "install with"):
        table.add_column(col)
    for m in EMBEDDED_MODELS.values():
        ok = m.installed()
        table.add_row(m.name, "yes" if ok else "no", m.description, "" if ok else m.install)
    Console().print(table)
    return 0


def add_parser(subparsers) -> None:
    """Register `superpose tasks` and `superpose models`."""
    p = subparsers.add_parser("tasks", help="list the registered tasks")
    p.add_argument("--task-file", action="append", dest="task_files", metavar="FILE",
                   help="also load user tasks from a CSV/JSONL/YAML file")
    p.set_defaults(func=_tasks)
    p = subparsers.add_parser("models", help="list the embedded models and whether they are installed")
    p.set_defaults(func=_models)
