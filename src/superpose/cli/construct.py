"""``superpose construct``: build the hand-set transformer, run it on mixed prompts, report.

Examples::

    superpose construct --tasks plus_1,plus_3,times_3 --examples 16 --prompts 60
    superpose construct --k 4 --examples 32 --noise 4 --out runs
    superpose construct configs/construct/demo.yaml
"""

from __future__ import annotations

import argparse
from pathlib import Path

from superpose.cli.flags import add_run_flags, print_summary
from superpose.config import read_yaml
from superpose.display.console import console
from superpose.errors import ConfigError
from superpose.experiments.base import resume_config
from superpose.experiments.construct import ConstructConfig, load_config, run_construct

# Flags that override a config file's field of the same name when given.
_FIELDS = ("tasks", "k", "vocab", "examples", "noise", "prompts", "seed")


def configure(p: argparse.ArgumentParser) -> None:
    """Arguments of ``superpose construct``."""
    p.description += (" It builds the transformer of Section 5 by formula (no training), runs it on random "
                      "prompts mixing K tasks, and checks that the probability of each task's answer "
                      "equals the task's share of the examples.")
    p.add_argument("config", nargs="?", type=Path, help="YAML config (fields as the flags below)")
    p.add_argument("--tasks", help="comma-separated tasks: plus_k, minus_k, times_k, const_k, "
                                   "mirror, square (0 <= k < vocab); default plus_1..plus_K")
    p.add_argument("--k", type=int, help="number of tasks when --tasks is not given (default 3)")
    p.add_argument("--vocab", type=int, help="number of symbols V, the d of the bound (default 10)")
    p.add_argument("--examples", "-m", type=int, help="in-context examples per prompt m (default 16)")
    p.add_argument("--noise", type=int, help="examples per prompt that fit no task (default 0)")
    p.add_argument("--prompts", type=int, help="random prompts to run (default 60)")
    p.add_argument("--dims", help="comma-separated m values for the dimension table "
                                  "(default 1,4,16,64,256,1024,4096,65536)")
    add_run_flags(p)
    p.set_defaults(func=main)


def _config_from_args(args: argparse.Namespace) -> dict:
    data: dict = {}
    if getattr(args, "config", None):
        data = read_yaml(args.config)  # a packaged config's name works from any folder
    for name in _FIELDS:
        value = getattr(args, name, None)
        if value is not None:
            data[name] = [t for t in value.split(",") if t.strip()] if name == "tasks" else value
    dims = getattr(args, "dims", None)
    if dims:
        try:
            data["dimension_ms"] = [int(v) for v in dims.split(",")]
        except ValueError:
            raise ConfigError(f"--dims: expected comma-separated integers, got {dims!r}") from None
    return data


def main(args: argparse.Namespace) -> int:
    """Run the construction experiment and print its summary; 0 when every error is under tolerance."""
    data = _config_from_args(args)
    if args.resume and not args.config:  # the folder's own config, with the flags given
        config = resume_config(ConstructConfig, args.resume, None, data)
    else:
        config = load_config(data, source=str(getattr(args, "config", None) or "flags"))
    with console.status("building the transformer and running it on mixed prompts"):
        folder, summary = run_construct(config, root=args.out, resume=args.resume, progress=not args.no_progress)
    print_summary(folder.path)
    return 0 if summary["passed"] else 1
