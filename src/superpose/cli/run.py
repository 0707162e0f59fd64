"""`superpose run`: the probe (experiments/probe.py) from the command line."""

from __future__ import annotations

import argparse

from superpose.cli.flags import add_model_flags, add_run_flags, model_overrides, print_summary
from superpose.experiments.base import resume_config
from superpose.experiments.probe import DEFAULT_CONFIG_NAME, ProbeConfig, load_probe_config, run_probe


def configure(p: argparse.ArgumentParser) -> None:
    """Arguments of `superpose run`."""
    p.add_argument("config", nargs="?", help=f"probe config YAML (default: {DEFAULT_CONFIG_NAME})")
    add_model_flags(p, several=True)
    p.add_argument("--n-prompts", type=int, dest="n_prompts", help="prompts per mixture (default: the config's)")
    p.add_argument("--controls", action="store_const", const=True, default=None,
                   help="also score leave-one-task-out and single-task prompts: each task's in-context effect "
                        "((2K+1)x the prompts; default: the config's `controls`)")
    p.add_argument("--ci-level", type=float, dest="ci_level", help="confidence level of every interval (default 0.95)")
    add_run_flags(p)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Run (or resume) a probe and print its summary."""
    overrides = {"models": model_overrides(args), "dtype": args.dtype, "device": args.device, "n_prompts": args.n_prompts,
                 "seed": args.seed, "controls": args.controls, "ci_level": args.ci_level}
    if args.resume:
        config = resume_config(ProbeConfig, args.resume, load_probe_config(args.config, overrides) if args.config
                               else None, overrides)
    else:
        config = load_probe_config(args.config or DEFAULT_CONFIG_NAME, overrides)
    run, _ = run_probe(config, root=args.out, resume=args.resume, progress=not args.no_progress)
    print_summary(run.path)
    return 0
