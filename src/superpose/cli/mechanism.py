"""`superpose mechanism`: layer lens, leave-one-out attribution and head ablation by task answer.

    superpose mechanism configs/paper/copy.yaml --model smollm2-135m --n-prompts 8
    superpose mechanism configs/paper/copy.yaml --analysis lens          # one analysis
    superpose mechanism --resume runs/mechanism-copy-<time>              # finish an interrupted run
"""

from __future__ import annotations

import argparse

from superpose.cli.flags import add_model_flags, add_run_flags, model_overrides, print_summary


def configure(p: argparse.ArgumentParser) -> None:
    """Arguments of `superpose mechanism`."""
    p.description += (" The config is a probe config (models, mixtures, n_prompts) with an optional "
                      "'mechanism:' section (analyses, batch_size, and lens/attribution/heads options). "
                      "Transformers models only.")
    p.add_argument("config", nargs="?", help="probe-style config YAML, e.g. configs/paper/copy.yaml "
                   "(not needed with --resume)")
    p.add_argument("--analysis", action="append", choices=("lens", "attribution", "heads"),
                   help="run only this analysis (repeatable; default: the config's, else all three)")
    add_model_flags(p, several=True)
    p.add_argument("--n-prompts", type=int, dest="n_prompts", help="prompts per mixture")
    add_run_flags(p)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Run (or resume) the mechanism analyses and print the summary."""
    from superpose.errors import SuperposeError
    from superpose.experiments.mechanism import load_mechanism_config, run_mechanism

    overrides = {"models": model_overrides(args), "n_prompts": args.n_prompts, "dtype": args.dtype,
                 "device": args.device, "seed": args.seed}
    if args.config:
        config = load_mechanism_config(args.config, overrides)
    elif args.resume:
        from superpose.experiments.base import resume_config
        from superpose.experiments.mechanism import MechanismConfig

        config = resume_config(MechanismConfig, args.resume, None, overrides)
    else:
        raise SuperposeError("give a probe-style config (e.g. configs/paper/copy.yaml) or --resume RUN_FOLDER")
    if args.analysis:
        config.mechanism.analyses = list(dict.fromkeys(args.analysis))
    run, _ = run_mechanism(config, root=args.out, resume=args.resume, progress=not args.no_progress)
    print_summary(run.path)
    return 0
