"""`superpose vectors`: the task-vector experiment from the command line.

    superpose vectors configs/vectors/gemma_copy.yaml                  # every step, new run folder
    superpose vectors --resume runs/vectors-gemma-copy-<time>          # finish an interrupted run
    superpose vectors configs/vectors/gemma_copy.yaml --step extract   # one step (earlier ones run if missing)
    superpose vectors --resume runs/vectors-gemma-copy-<time> --step interpolate   # redo one step
"""

from __future__ import annotations

import argparse

from superpose.cli.flags import add_model_flags, add_run_flags, print_summary
from superpose.errors import SuperposeError
from superpose.experiments.base import resume_config
from superpose.experiments.vectors import STEPS, open_vectors, run_vectors
from superpose.vectors.config import VectorsConfig, load_vectors_config


def configure(p: argparse.ArgumentParser) -> None:
    """Arguments of `superpose vectors`."""
    p.description += (" Every step runs in order; with --step only that step runs, after any earlier "
                      "step it needs that has not run yet.")
    p.add_argument("config", nargs="?", help="vectors config YAML (not needed with --resume)")
    p.add_argument("--step", choices=STEPS + ("all",), help="one step (default: all)")
    add_model_flags(p)
    p.add_argument("--layer", type=int, help="use this layer instead of choosing one")
    add_run_flags(p)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Run (or resume) the task-vector experiment, or one step of it, and print its summary."""
    if args.model_options:
        raise SuperposeError("--model-option: task vectors run on transformers, which takes no backend options")
    overrides = {"model": args.model, "dtype": args.dtype, "device": args.device, "seed": args.seed}
    if args.config:
        config = load_vectors_config(args.config, overrides)
    elif args.resume:
        config = resume_config(VectorsConfig, args.resume, None, overrides)
    else:
        raise SuperposeError("give a vectors config (e.g. configs/vectors/gemma_copy.yaml) or --resume RUN_FOLDER")
    if args.layer is not None:
        config.layers.layer = args.layer
    if args.step in (None, "all"):
        run, _ = run_vectors(config, root=args.out, resume=args.resume, progress=not args.no_progress)
    else:
        exp = open_vectors(config, root=args.out, resume=args.resume)
        exp.step(args.step)
        exp.write_summary()
        run = exp.run
    print_summary(run.path)
    return 0
