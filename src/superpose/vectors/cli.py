"""`superpose vectors [STEP] TARGET`: the task-vector experiment from the command line.

    superpose vectors configs/vectors/gemma_copy.yaml          # every step, new run folder
    superpose vectors runs/vectors-copy-2025...                # finish an interrupted run
    superpose vectors extract configs/vectors/gemma_copy.yaml  # one step (earlier ones run if missing)
    superpose vectors interpolate runs/vectors-copy-2025...    # redo one step on stored vectors
"""

from __future__ import annotations

import argparse
from pathlib import Path

from superpose.cli_args import add_model_flags
from superpose.errors import SuperposeError
from superpose.runs import DEFAULT_ROOT
from superpose.vectors.config import load_vectors_config
from superpose.vectors.experiment import STEPS, VectorsExperiment


def add_parser(subparsers) -> None:
    """Register `superpose vectors`."""
    p = subparsers.add_parser(
        "vectors", help="task vectors: extract, choose a layer, project, interpolate, steer",
        description="Task vectors (the study's Section 6). TARGET is a config YAML (starts a new run folder) "
                    "or a run folder (continues it). Without STEP every step runs in order; with STEP that "
                    "step runs, after any earlier step it needs that has not run yet.")
    p.add_argument("step", nargs="?", choices=STEPS + ("all",), help="one step (default: all)")
    p.add_argument("target", help="config YAML or run folder")
    add_model_flags(p)
    p.add_argument("--layer", type=int, help="use this layer instead of choosing one")
    p.add_argument("--out", default=str(DEFAULT_ROOT), help="root folder for new run folders (default: runs)")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    target = Path(args.target)
    if target.is_dir():
        if args.model or args.dtype or args.device:
            raise SuperposeError("--model/--dtype/--device apply to a new run; a run folder keeps its own model")
        exp = VectorsExperiment.open(target)
        if args.layer is not None:
            exp.set_layer(args.layer)
    else:
        if args.model_options:
            raise SuperposeError("--model-option: task vectors run on transformers, which takes no backend options")
        overrides = {"model": args.model, "dtype": args.dtype, "device": args.device}
        config = load_vectors_config(target, overrides)
        if args.layer is not None:
            config.layers.layer = args.layer
        exp = VectorsExperiment.create(config, args.out)
    if args.step in (None, "all"):
        exp.run_all()
    else:
        exp.step(args.step)
        exp.summarize()
    return 0
