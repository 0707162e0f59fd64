"""`superpose sweep`: the λ sweep (experiments/sweep.py) from the command line."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from superpose.cli.flags import add_model_flags, add_run_flags, model_overrides, print_run_folder
from superpose.stats import fmt_key


def configure(s: argparse.ArgumentParser) -> None:
    """Arguments of ``superpose sweep``."""
    s.description += (" Works on any model; writes a run folder with records, summary.json and "
                      "figures/sweep.png.")
    s.add_argument("config", nargs="?", help="YAML sweep config, e.g. configs/sweep/plus_scratch.yaml "
                   "(not needed with --resume)")
    add_model_flags(s)
    s.add_argument("--n-prompts", type=int, help="override prompts per λ")
    s.add_argument("--counts", choices=["exact", "iid"], help="override exact / i.i.d. task counts")
    add_run_flags(s, figures=True)
    s.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Run (or resume) a sweep, print its curve and name its folder."""
    from superpose.errors import SuperposeError
    from superpose.experiments.sweep import SweepConfig, load_sweep_config, run_sweep, spearman_caveat

    flags = {"model": model_overrides(args), "dtype": args.dtype, "device": args.device,
             "n_prompts": args.n_prompts, "counts": args.counts, "seed": args.seed}
    if args.config:
        cfg = load_sweep_config(args.config, flags)
    elif args.resume:
        from superpose.config import resume_config

        cfg = resume_config(SweepConfig, args.resume, None, flags)
    else:
        raise SuperposeError("give a sweep config (e.g. configs/sweep/plus_scratch.yaml) or --resume RUN_FOLDER")
    run, summary = run_sweep(cfg, root=args.out, resume=args.resume, progress=not args.no_progress)
    cfg = SweepConfig.model_validate(run.config)  # the folder's own, when resumed
    print(f"{'λ':>5} {'P(' + cfg.task1 + ') [CI]':>22} {'P(' + cfg.task2 + ') [CI]':>22} {'other':>8}")
    for c in summary["curve"]:
        print(f"{c['lambda']:>5.2f} {fmt_key(c, 'p1'):>22} {fmt_key(c, 'p2'):>22} {c['other']:>8.3f}")
    rho = summary["spearman_p1_vs_lambda"]  # None with fewer than three λ
    print(f"Spearman(P1, λ) = {'–' if rho is None else format(rho, '.3f')}{spearman_caveat(summary)}; mean other = "
          f"{summary['mean_other']:.3f}" + (
              f"; mean |P1 - study| = {summary['reference']['mean_abs_diff']:.3f}"
              if "reference" in summary else ""))
    if "split_within_prompt" in summary:
        print(f"per mixed prompt: split {summary['split_within_prompt']:.3f} (1 = even, 0 = all on one "
              f"answer); both answers >= 0.1 in {summary['prompts_splitting_10pct']:.0%}"
              + (f"; favours the last example's task in {summary['follows_last_example']:.0%}"
                 if "follows_last_example" in summary else ""))
    for block in summary["position"]["by_fixed_last"][1:]:  # position control (fixed_last > 0)
        fixed = cfg.task1 if cfg.fixed_task == 1 else cfg.task2
        print(f"last {block['fixed_last']} examples {fixed}: P({cfg.task1}) "
              + " ".join(f"{c['p1']:.3f}" for c in block["curve"])
              + f" over λ; slope {block['slope']:.3f} (0 = recency)")
    for line in summary.get("warnings", []):
        print(f"warning: {line}")
    figures = [run.figure_path("sweep")] + ([run.figure_path("position")] if len(cfg.fixed_last) > 1 else [])
    if args.figures:  # <name>.png and, with position control, <name>_position.png
        stem = cfg.name.replace("-", "_")
        copies = [Path(args.figures) / f"{stem}{'' if f.stem == 'sweep' else '_' + f.stem}.png" for f in figures]
        copies[0].parent.mkdir(parents=True, exist_ok=True)
        for f, copy in zip(figures, copies):
            shutil.copyfile(f, copy)
        figures = copies
    print("figures: " + ", ".join(map(str, figures)))
    print_run_folder(run.path)
    return 0
