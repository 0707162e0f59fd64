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
    p.add_argument("--out", metavar="DIR", help="train in exactly DIR/<name> (default: a new folder "
                   "<name>-<time> beside the recipe's out_dir)")
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
    from superpose.scratch.train import load_train_config, read_run_config, run_train, train

    overrides = {"steps": args.steps, "seed": args.seed, "device": args.device}
    if args.time_limit is not None and args.time_limit <= 0:
        raise SuperposeError(f"--time-limit: expected a positive number of minutes, got {args.time_limit:g}")
    limits = dict(progress=not args.no_progress, export_dir=args.export,
                  time_limit_s=None if args.time_limit is None else 60 * args.time_limit)
    if args.resume:
        cfg = None
        if args.config:  # run_train refuses a recipe that differs from the folder's
            cfg = load_train_config(args.config, **overrides)
        elif any(v is not None for v in overrides.values()):
            saved = Path(args.resume) / "config.json"
            cfg = read_run_config(saved) if saved.is_file() else None
            if cfg is not None:
                cfg = cfg.model_copy(update={k: v for k, v in overrides.items() if v is not None})
                cfg = type(cfg).model_validate(cfg.model_dump())
        _, result = run_train(cfg, resume=args.resume, **limits)
    elif args.config:
        cfg = load_train_config(args.config, **overrides)
        if args.out:  # exactly the folder named
            result = train(cfg.model_copy(update={"out_dir": str(Path(args.out) / cfg.name)}), **limits)
        else:  # a new folder <name>-<time> beside the recipe's out_dir
            _, result = run_train(cfg, root=Path(cfg.out_dir).parent, **limits)
    else:
        raise SuperposeError("give a training recipe (e.g. configs/scratch/plus_cpu.yaml) or --resume RUN_FOLDER")
    if args.export and result.model_dir is not None:
        print(f"model copied to {args.export}")
    print_summary(result.out_dir)
    return 0
