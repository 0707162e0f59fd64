"""Flags that mean the same on every command that loads a model: --model, --dtype, --device."""

from __future__ import annotations

import argparse

from superpose.backends.devices import DEVICE_HELP
from superpose.models.loading import DTYPES

MODEL_HELP = ("embedded name (superpose models), GGUF file, Hugging Face folder or hub id; "
              "prefix 'vllm:' to run it on vLLM")


def add_model_flags(parser: argparse.ArgumentParser, several: bool = False, required: bool = False) -> None:
    """Add ``--model`` (repeatable when ``several``), ``--dtype`` and ``--device``; None means "the config's"."""
    if several:
        parser.add_argument("--model", action="append", dest="models", metavar="MODEL",
                            help=MODEL_HELP + "; repeat for several (replaces the config's)")
    else:
        parser.add_argument("--model", metavar="MODEL", required=required, help=MODEL_HELP)
    parser.add_argument("--dtype", choices=DTYPES, help="weights' dtype (default float32, the reference)")
    parser.add_argument("--device", metavar="DEVICE", help=DEVICE_HELP + " (default cpu)")
