"""Sub-commands ``superpose train`` and ``superpose sweep`` (registered through ``add_parser``)."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from superpose.cli_args import add_model_flags, add_run_flags, model_overrides, print_run_folder


def configure_train(p) -> None:
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
    p.set_defaults(func=_train)


def configure_sweep(s) -> None:
    """Arguments of ``superpose sweep``."""
    s.description += (" Works on any model; writes a run folder with records, summary.json and "
                      "figures/sweep.png.")
    s.add_argument("config", nargs="?", help="YAML sweep config, e.g. configs/sweep/plus_scratch.yaml "
                   "(not needed with --resume)")
    add_model_flags(s)
    s.add_argument("--n-prompts", type=int, help="override prompts per λ")
    s.add_argument("--counts", choices=["exact", "iid"], help="override exact / i.i.d. task counts")
    add_run_flags(s, figures=True)
    s.set_defaults(func=_sweep)


def _train(args: argparse.Namespace) -> int:
    from superpose.errors import SuperposeError
    from superpose.scratch.train import TrainConfig, load_train_config, train

    overrides = {"steps": args.steps, "seed": args.seed, "device": args.device}
    if args.resume:
        saved = Path(args.resume) / "config.json"
        if not saved.is_file():
            raise SuperposeError(f"--resume {args.resume}: not a training run folder (no config.json)")
        cfg = TrainConfig.model_validate_json(saved.read_text())
        if args.config:  # train() refuses a recipe that differs from the folder's
            cfg = load_train_config(args.config, out_dir=str(args.resume), **overrides)
        elif any(v is not None for v in overrides.values()):
            cfg = TrainConfig.model_validate({**cfg.model_dump(), **{k: v for k, v in overrides.items() if v is not None}})
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
    tail = result.losses[-50:]
    print(f"trained {result.steps_done} steps in {result.seconds:.0f} s "
          f"({result.tokens_per_second:,.0f} tokens/s); mean loss of the last {len(tail)} steps "
          f"{sum(tail) / len(tail):.4f}")
    if result.model_dir is None:
        print(f"stopped at step {result.steps_done} of {cfg.steps}: continue with "
              f"superpose train --resume {cfg.out_dir}")
    else:
        print(f"model: {result.model_dir}" + (f" (and {args.export})" if args.export else ""))
    print_run_folder(cfg.out_dir)
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from superpose.experiments.sweep import SweepConfig, load_sweep_config, run_sweep, spearman_caveat

    from superpose.errors import SuperposeError

    flags = {"model": model_overrides(args), "dtype": args.dtype, "device": args.device,
             "n_prompts": args.n_prompts, "counts": args.counts, "seed": args.seed, "out_root": args.out}
    if args.config:
        cfg = load_sweep_config(args.config, **flags)
    elif args.resume:
        from superpose.config import check_resume_args

        cfg = None  # run_sweep takes the folder's own
        check_resume_args(SweepConfig, args.resume, None, flags, ignore=("out_root",))
    else:
        raise SuperposeError("give a sweep config (e.g. configs/sweep/plus_scratch.yaml) or --resume RUN_FOLDER")
    run, summary = run_sweep(cfg, resume=args.resume, progress=not args.no_progress)
    cfg = SweepConfig.model_validate(run.config)  # the folder's own, when resumed
    print(f"{'λ':>5} {'P(' + cfg.task1 + ')':>14} {'P(' + cfg.task2 + ')':>14} {'other':>8}")
    for c in summary["curve"]:
        print(f"{c['lambda']:>5.2f} {c['p1']:>14.3f} {c['p2']:>14.3f} {c['other']:>8.3f}")
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
