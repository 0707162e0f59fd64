"""Small listing commands: `superpose tasks` and `superpose models` (neither imports torch)."""

from __future__ import annotations

import argparse

from rich.console import Console


def configure_tasks(p) -> None:
    """Arguments of `superpose tasks`."""
    p.add_argument("--task-file", action="append", dest="task_files", metavar="FILE",
                   help="also load user tasks from a CSV/JSONL/YAML file")
    p.set_defaults(func=_tasks)


def configure_models(p) -> None:
    """Arguments of `superpose models`."""
    p.set_defaults(func=_models)


def _tasks(args: argparse.Namespace) -> int:
    from superpose.tasks import load_task_file, render_catalogue

    for f in args.task_files or []:
        load_task_file(f)
    print(render_catalogue())
    return 0


def _models(args: argparse.Namespace) -> int:
    from superpose.models import EMBEDDED_MODELS

    out = Console(soft_wrap=True, highlight=False)
    out.print("embedded models (any Hugging Face id, local folder or .gguf file also works; 'vllm:' runs a "
              "model on vLLM, 'openai:' reaches an API; see docs/backends.md)\n", markup=False)
    for m in EMBEDDED_MODELS.values():
        ok = m.installed()
        out.print(f"{m.name}  [{'installed' if ok else 'not installed'}]", markup=False)
        out.print(f"    {m.description}", markup=False)
        if not ok:
            out.print(f"    install: {m.install}", markup=False)
    return 0
