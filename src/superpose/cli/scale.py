"""`superpose scale`: the scaling run (experiments/scale.py) from the command line."""

from __future__ import annotations

import argparse

from superpose.cli.flags import add_model_flags, add_run_flags, model_overrides, print_summary


def configure(s: argparse.ArgumentParser) -> None:
    """Arguments of ``superpose scale``."""
    s.description += (" For every model of the config (and a scratch family it trains itself), it "
                      "enumerates outputs after mixed prompts, counts the tasks whose answer is in the "
                      "top K, measures KL(in-context shares ‖ P), and plots both against parameter count.")
    s.add_argument("config", nargs="?", help="scale config YAML, e.g. configs/scale/embedded.yaml "
                   "(not needed with --resume)")
    add_model_flags(s, several=True)
    s.add_argument("--n-prompts", type=int, dest="n_prompts", help="prompts per mixture")
    add_run_flags(s, figures=True)
    s.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Run (or resume) a scaling run and print its summary."""
    from superpose.errors import SuperposeError
    from superpose.experiments.scale import copy_figures, load_scale_config, run_scale

    overrides = {"models": model_overrides(args), "n_prompts": args.n_prompts, "dtype": args.dtype,
                 "device": args.device, "seed": args.seed}
    if args.resume:
        from superpose.experiments.base import resume_config
        from superpose.experiments.scale import ScaleConfig

        given = load_scale_config(args.config, overrides) if args.config else None
        cfg = resume_config(ScaleConfig, args.resume, given, overrides)
    else:
        if not args.config:
            raise SuperposeError("give a scale config (e.g. configs/scale/embedded.yaml) or --resume RUN_FOLDER")
        cfg = load_scale_config(args.config, overrides)
    run, summary = run_scale(cfg, root=args.out, resume=args.resume, progress=not args.no_progress)
    if args.figures:  # scale_<figure_name>.png and its reliability diagram
        copy_figures(run, args.figures)
    print_summary(run.path)
    return 0
