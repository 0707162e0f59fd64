"""`superpose train`: a small transformer from scratch (scratch/train.py) from the command line."""

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
    p.add_argument("--out", metavar="DIR", help="folder that receives the run folder DIR/<name> "
                   "(default: the recipe's out_dir)")
    p.add_argument("--resume", metavar="RUN_FOLDER", help="continue an interrupted training run from its folder")
    p.add_argument("--seed", type=int, help="random seed (default: the recipe's)")
    p.add_argument("--steps", type=int, help="override the number of steps")
    p.add_argument("--device", help="override the device (cpu, cuda, ...)")
    p.add_argument("--export", metavar="DIR", help="also copy the final model to DIR")
    p.add_argument("--time-limit", type=float, metavar="MINUTES", help="checkpoint and stop after "
                   "MINUTES of training (--resume continues)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Train (or resume training) and print the run's summary."""
    from superpose.errors import SuperposeError
    from superpose.scratch.summary import summarise_training
    from superpose.scratch.train import TrainConfig, load_train_config, read_run_config, train

    overrides = {"steps": args.steps, "seed": args.seed, "device": args.device}
    if args.resume:
        saved = Path(args.resume) / "config.json"
        if not saved.is_file():
            raise SuperposeError(f"--resume {args.resume}: not a training run folder (no config.json)")
        cfg = read_run_config(saved)
        if args.config:  # train() refuses a recipe that differs from the folder's
            cfg = load_train_config(args.config, **overrides)
        elif any(v is not None for v in overrides.values()):
            cfg = TrainConfig.model_validate({**cfg.model_dump(), **{k: v for k, v in overrides.items() if v is not None}})
        # Train exactly the folder given: config.json's out_dir is where the run started (relative to
        # the directory it started from), not where a copied or moved folder is now.
        cfg = cfg.model_copy(update={"out_dir": str(args.resume)})
    elif args.config:
        cfg = load_train_config(args.config, **overrides)
        if args.out:
            cfg = cfg.model_copy(update={"out_dir": str(Path(args.out) / cfg.name)})
    else:
        raise SuperposeError("give a training recipe (e.g. configs/scratch/plus_cpu.yaml) or --resume RUN_FOLDER")
    if args.time_limit is not None and args.time_limit <= 0:
        raise SuperposeError(f"--time-limit: expected a positive number of minutes, got {args.time_limit:g}")
    result = train(cfg, resume=bool(args.resume), progress=not args.no_progress, export_dir=args.export,
                   time_limit_s=None if args.time_limit is None else 60 * args.time_limit)
    summarise_training(cfg.out_dir)
    if args.export and result.model_dir is not None:
        print(f"model copied to {args.export}")
    print_summary(cfg.out_dir)
    return 0
