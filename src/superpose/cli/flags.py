"""Flags that mean the same on every command that loads a model: --model, --model-option, --dtype, --device."""

from __future__ import annotations

import argparse

import yaml

from superpose.backends.devices import DEVICE_HELP
from superpose.errors import SuperposeError
from superpose.models.loading import DTYPES

MODEL_HELP = ("embedded name (superpose models), GGUF file, Hugging Face folder or hub id; "
              "prefix 'vllm:' to run it on vLLM, 'openai:' for a model behind an API")


def add_model_flags(parser: argparse.ArgumentParser, several: bool = False) -> None:
    """Add ``--model`` (repeatable when ``several``), ``--model-option``, ``--dtype`` and ``--device``.

    An absent flag is None, meaning "the config's value".
    """
    if several:
        parser.add_argument("--model", action="append", dest="models", metavar="MODEL",
                            help=MODEL_HELP + "; repeat for several (replaces the config's)")
    else:
        parser.add_argument("--model", metavar="MODEL", help=MODEL_HELP)
    parser.add_argument("--model-option", action="append", dest="model_options", metavar="KEY=VALUE",
                        help="a backend option for the --model model(s), e.g. tensor_parallel_size=4 or "
                             "batch_size=16 (repeatable; VALUE is read as YAML)")
    parser.add_argument("--dtype", choices=DTYPES, help="weights' dtype (default float32, the reference)")
    parser.add_argument("--device", metavar="DEVICE", help=DEVICE_HELP + " (default cpu)")
    parser.add_argument("--verbose", action=Verbose, nargs=0, help=VERBOSE_HELP)


VERBOSE_HELP = ("let model engines (vLLM) print their own log lines here, not into the run folder; "
                "show the traceback of an unexpected error")


class Verbose(argparse.Action):
    """``--verbose``: engines (and main's error handler) read it from the environment (``SUPERPOSE_VERBOSE``)."""

    def __call__(self, parser, namespace, values, option_string=None):
        import os

        os.environ["SUPERPOSE_VERBOSE"] = "1"
        setattr(namespace, self.dest, True)


def parse_model_options(pairs: list[str] | None) -> dict:
    """``["tensor_parallel_size=4", ...]`` -> ``{"tensor_parallel_size": 4, ...}``."""
    options = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise SuperposeError(f"--model-option {pair!r}: expected KEY=VALUE, e.g. tensor_parallel_size=4")
        options[key.strip()] = yaml.safe_load(value) if value else None
    return options


def model_overrides(args: argparse.Namespace) -> list | str | dict | None:
    """The ``--model`` flag(s) as config values: strings, or entries carrying ``--model-option``s."""
    names = args.models if hasattr(args, "models") else args.model
    options = parse_model_options(args.model_options)
    if options and not names:
        raise SuperposeError("--model-option applies to the models given with --model; give --model too "
                             "(or put options in the config's model entry)")
    if names is None:
        return None
    if isinstance(names, str):
        return {"name": names, "options": options} if options else names
    return [{"name": n, "options": options} if options else n for n in names]


def add_run_flags(parser: argparse.ArgumentParser, resume: bool = True, seed: bool = True,
                  figures: bool = False) -> None:
    """``--out`` (where run folders go), and where they apply ``--resume``, ``--seed``, ``--figures``."""
    parser.add_argument("--out", metavar="DIR", default="runs",
                        help="folder that receives the run folder (default: runs)")
    if resume:
        parser.add_argument("--resume", metavar="RUN_FOLDER",
                            help="continue an interrupted run from its folder (its own config; no CONFIG needed)")
    if seed:
        parser.add_argument("--seed", type=int, help="random seed (default: the config's)")
    if figures:
        parser.add_argument("--figures", metavar="DIR", help="also copy the run's figures into DIR")


def print_run_folder(path) -> None:
    """The last line of a command that wrote a run folder, on stdout (``RUN=$(... | tail -1)``)."""
    print(f"run folder: {path}", flush=True)


def print_summary(path) -> None:
    """What every run command prints on stdout: the folder's summary.md (its kind's summariser wrote it),
    then the run folder line."""
    from pathlib import Path

    summary = Path(path) / "summary.md"
    if summary.is_file():
        print(summary.read_text(encoding="utf-8"))
    print_run_folder(path)
