"""Sub-commands ``superpose train`` and ``superpose sweep`` (registered through ``add_parser``)."""

from __future__ import annotations

import argparse

from superpose.cli_args import add_model_flags, model_overrides
import json


def add_parser(subparsers) -> None:
    """Register ``train`` and ``sweep`` on the main parser's sub-parsers."""
    p = subparsers.add_parser(
        "train", help="train a small character-level transformer on one task per sequence",
        description="Train a small LlamaForCausalLM with a character tokenizer from a YAML recipe "
                    "(configs/scratch/). Interrupt it any time; --resume continues exactly.")
    p.add_argument("config", help="YAML training recipe, e.g. configs/scratch/plus_cpu.yaml")
    p.add_argument("--resume", action="store_true", help="continue the run in the config's out_dir")
    p.add_argument("--out-dir", help="override the config's out_dir")
    p.add_argument("--steps", type=int, help="override the number of steps")
    p.add_argument("--seed", type=int, help="override the seed")
    p.add_argument("--device", help="override the device (cpu, cuda, ...)")
    p.add_argument("--export", metavar="DIR", help="also copy the final model to DIR")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_train)

    s = subparsers.add_parser(
        "sweep", help="λ sweep: P(task 1), P(task 2) as the share of task 1 goes from 0 to 1",
        description="Score prompts mixing two tasks with share λ of task 1, for λ = 0 .. 1, on any "
                    "model (embedded name, folder or hub id). Writes a run folder with records, "
                    "summary.json and figures/sweep.png.")
    s.add_argument("config", nargs="?", help="YAML sweep config, e.g. configs/sweep/plus_scratch.yaml "
                   "(not needed with --resume)")
    s.add_argument("--resume", metavar="RUN_FOLDER", help="continue an interrupted sweep")
    add_model_flags(s)
    s.add_argument("--n-prompts", type=int, help="override prompts per λ")
    s.add_argument("--counts", choices=["exact", "iid"], help="override exact / i.i.d. task counts")
    s.add_argument("--out-root", help="where run folders go (default: runs/)")
    s.add_argument("--figure", metavar="PNG", help="also copy the figure here")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.set_defaults(func=_sweep)


def _train(args: argparse.Namespace) -> int:
    from superpose.scratch.train import load_train_config, train

    cfg = load_train_config(args.config, out_dir=args.out_dir, steps=args.steps, seed=args.seed,
                            device=args.device)
    result = train(cfg, resume=args.resume, progress=not args.no_progress, export_dir=args.export)
    tail = result.losses[-50:]
    print(f"trained {result.steps_done} steps in {result.seconds:.0f} s "
          f"({result.tokens_per_second:,.0f} tokens/s); mean loss of the last {len(tail)} steps "
          f"{sum(tail) / len(tail):.4f}")
    print(f"model: {result.model_dir}" + (f" (and {args.export})" if args.export else ""))
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from superpose.experiments.sweep import SweepConfig, load_sweep_config, run_sweep

    from superpose.errors import SuperposeError

    flags = {"model": model_overrides(args), "dtype": args.dtype, "device": args.device,
             "n_prompts": args.n_prompts, "counts": args.counts, "out_root": args.out_root}
    if args.config:
        cfg = load_sweep_config(args.config, **flags)
    elif args.resume:
        from superpose.config import check_resume_args

        cfg = None  # run_sweep takes the folder's own
        check_resume_args(SweepConfig, args.resume, None, flags, ignore=("out_root",))
    else:
        raise SuperposeError("give a sweep config (e.g. configs/sweep/plus_scratch.yaml) or --resume RUN_FOLDER")
    run, summary = run_sweep(cfg, resume=args.resume, progress=not args.no_progress,
                             figure_copy=args.figure)
    cfg = SweepConfig.model_validate(run.config)  # the folder's own, when resumed
    print(f"{'λ':>5} {'P(' + cfg.task1 + ')':>14} {'P(' + cfg.task2 + ')':>14} {'other':>8}")
    for c in summary["curve"]:
        print(f"{c['lambda']:>5.2f} {c['p1']:>14.3f} {c['p2']:>14.3f} {c['other']:>8.3f}")
    rho = summary["spearman_p1_vs_lambda"]  # None with fewer than three λ
    print(f"Spearman(P1, λ) = {'–' if rho is None else format(rho, '.3f')}; mean other = "
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
    print(f"run folder: {run.path}  (figure: {run.path / 'figures' / 'sweep.png'})")
    return 0


if __name__ == "__main__":  # python -m superpose.scratch.cli ... works before cli.py lists us
    import sys

    parser = argparse.ArgumentParser(prog="superpose")
    add_parser(parser.add_subparsers(dest="command"))
    ns = parser.parse_args()
    from superpose.errors import SuperposeError

    try:
        sys.exit(ns.func(ns))
    except SuperposeError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
