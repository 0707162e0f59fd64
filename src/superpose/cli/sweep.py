"""`superpose sweep`: the λ sweep (experiments/sweep.py) from the command line."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from superpose.cli.flags import add_model_flags, add_run_flags, model_overrides, print_summary


def configure(s: argparse.ArgumentParser) -> None:
    """Arguments of ``superpose sweep``."""
    s.description += (" Works on any model; writes a run folder with records, summary.json, summary.md and "
                      "figures/sweep.png.")
    s.add_argument("config", nargs="?", help="YAML sweep config, e.g. configs/sweep/plus_scratch.yaml "
                   "(not needed with --resume)")
    add_model_flags(s)
    s.add_argument("--n-prompts", type=int, help="override prompts per λ")
    s.add_argument("--counts", choices=["exact", "iid"], help="override exact / i.i.d. task counts")
    add_run_flags(s, figures=True)
    s.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Run (or resume) a sweep and print its summary."""
    from superpose.errors import SuperposeError
    from superpose.experiments.sweep import SweepConfig, load_sweep_config, run_sweep

    flags = {"model": model_overrides(args), "dtype": args.dtype, "device": args.device,
             "n_prompts": args.n_prompts, "counts": args.counts, "seed": args.seed}
    if args.config:
        cfg = load_sweep_config(args.config, flags)
    elif args.resume:
        from superpose.experiments.base import resume_config

        cfg = resume_config(SweepConfig, args.resume, None, flags)
    else:
        raise SuperposeError("give a sweep config (e.g. configs/sweep/plus_scratch.yaml) or --resume RUN_FOLDER")
    run, summary = run_sweep(cfg, root=args.out, resume=args.resume, progress=not args.no_progress)
    cfg = SweepConfig.model_validate(run.config)  # the folder's own, when resumed
    figures = [run.figure_path("sweep")] + ([run.figure_path("position")] if len(cfg.fixed_last) > 1 else [])
    if args.figures:  # <name>.png and, with position control, <name>_position.png
        stem = cfg.name.replace("-", "_")
        copies = [Path(args.figures) / f"{stem}{'' if f.stem == 'sweep' else '_' + f.stem}.png" for f in figures]
        copies[0].parent.mkdir(parents=True, exist_ok=True)
        for f, copy in zip(figures, copies):
            shutil.copyfile(f, copy)
        figures = copies
    print("figures: " + ", ".join(map(str, figures)))
    print_summary(run.path)
    return 0
