"""`superpose train`: a small transformer from scratch (experiments/train.py) from the command line."""

from __future__ import annotations

import argparse
from pathlib import Path

from superpose.cli.flags import print_summary


def configure(p: argparse.ArgumentParser) -> None:
    """Arguments of ``superpose train``."""
    p.description += (" A YAML recipe (configs/scratch/) gives the model and the loop; interrupt it any "
                      "time, --resume continues exactly (same batches, same losses).")
    p.add_argument("config", nargs="?", help="YAML training recipe, e.g. configs/scratch/plus_cpu.yaml "
                   "(not needed with --resume)")
    p.add_argument("--out", metavar="DIR", help="make the run folder DIR/<name>-<time> (default: beside the "
                   "recipe's out_dir)")
    p.add_argument("--resume", metavar="RUN_FOLDER", help="continue an interrupted training run from its folder")
    p.add_argument("--seed", type=int, help="random seed (default: the recipe's)")
    p.add_argument("--steps", type=int, help="override the number of steps")
    p.add_argument("--device", help="override the device (cpu, cuda, ...)")
    p.add_argument("--export", metavar="DIR", help="also copy the final model to DIR")
    p.add_argument("--time-limit", type=float, metavar="MINUTES", help="checkpoint and stop after "
                   "MINUTES of training (--resume continues)")
    p.add_argument("--stop-at", type=int, metavar="STEP", help="checkpoint and stop after STEP steps, say at a "
                   "phase boundary (--resume continues)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Train (or resume training) and print the run's summary."""
    from superpose.errors import SuperposeError
    from superpose.experiments.base import resume_config
    from superpose.experiments.train import adopt_older_folder, run_train
    from superpose.scratch.recipe import TrainConfig, load_train_config

    if args.time_limit is not None and args.time_limit <= 0:
        raise SuperposeError(f"--time-limit: expected a positive number of minutes, got {args.time_limit:g}")
    overrides = {"steps": args.steps, "seed": args.seed, "device": args.device, "export_to": args.export,
                 "time_limit_minutes": args.time_limit, "stop_at": args.stop_at}
    if args.resume:
        adopt_older_folder(Path(args.resume))  # an older version's folder gets its config.yaml first
        given = load_train_config(args.config, **overrides) if args.config else None
        cfg = resume_config(TrainConfig, args.resume, given, overrides)
    elif args.config:
        cfg = load_train_config(args.config, **overrides)
    else:
        raise SuperposeError("give a training recipe (e.g. configs/scratch/plus_cpu.yaml) or --resume RUN_FOLDER")
    root = Path(args.out) if args.out else Path(cfg.out_dir).parent  # a new run's folder: root/<name>-<time>
    run, result = run_train(cfg, root=root, resume=args.resume, progress=not args.no_progress)
    if args.export and result.model_dir is not None:
        print(f"model copied to {args.export}")
    print_summary(run.path)
    return 0
