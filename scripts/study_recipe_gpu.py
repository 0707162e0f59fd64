"""The study's from-scratch recipe on a GPU in a fixed time, then the λ-sweep diagnostics (issue #12).

    python scripts/study_recipe_gpu.py plus --minutes 5 --work /tmp/study --out results/
    python scripts/study_recipe_gpu.py ret  --minutes 5 --work /tmp/study --out results/

Trains ``configs/scratch/<kind>_paper.yaml`` (6 layers, width 384, 6 heads, 100 examples per
sequence, the study's batch and learning rate) for as many steps as fit in ``--minutes``: a few
timed steps measure the step time first, and the warmup-stable-decay schedule is shortened in the
study's proportions (warmup 5 %, decay 20 % of the steps), so the run ends decayed rather than cut
off. Then it runs ``configs/sweep/<kind>_paper.yaml`` on the model (plain λ sweep and the position
control) and writes into ``--out``:

    <kind>_results.json     device, steps, minutes, loss, and the sweep's summary
    <kind>_run.tar.gz       training log and config, the model folder without weights, the sweep folder
    <kind>_weights.bf16.N   the weights as one bf16 safetensors file, cut into pieces under 15 MiB

``join_weights`` (below) puts a model folder back together from those pieces, in float32.
"""

from __future__ import annotations

import argparse
import json
import math
import tarfile
import time
from pathlib import Path

import torch

RECIPES = {"plus": ("configs/scratch/plus_paper.yaml", "configs/sweep/plus_paper.yaml"),
           "ret": ("configs/scratch/ret_paper.yaml", "configs/sweep/ret_paper.yaml")}
PIECE_BYTES = 15 * 2**20


def seconds_per_step(cfg, timed: int = 6, warmup: int = 2) -> float:
    """Median time of one optimizer step of ``cfg``'s model on one fixed batch (data excluded)."""
    from superpose.scratch.data import make_batch
    from superpose.scratch.model import build_model
    from superpose.scratch.tokenizer import char_vocab
    from superpose.scratch.step import answer_loss, autocast_for, make_optimizer, train_step
    from superpose.tasks import get_task

    device = torch.device(cfg.device)
    model = build_model(cfg.model, torch.Generator().manual_seed(cfg.seed)).to(device)
    optimizer = make_optimizer(model, cfg, device)
    ids, mask = make_batch([get_task(n) for n in cfg.tasks], cfg.n_examples, cfg.seed, 0,
                           cfg.batch_size, char_vocab())
    ids, mask = ids.to(device), mask.to(device)
    autocast = autocast_for(cfg, device)
    times = []
    for i in range(warmup + timed):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        train_step(model, optimizer, ids, mask, cfg, autocast, answer_loss)  # .item() syncs
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    del model, optimizer
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return sorted(times)[len(times) // 2]


def shortened(cfg, steps: int):
    """``cfg`` with ``steps`` steps and warmup/decay in the recipe's proportions."""
    from superpose.scratch.train import TrainConfig

    steps = max(10, min(cfg.steps, steps))
    return TrainConfig.model_validate({
        **cfg.model_dump(), "steps": steps,
        "warmup_steps": max(1, round(steps * cfg.warmup_steps / cfg.steps)),
        "decay_steps": max(1, round(steps * cfg.decay_steps / cfg.steps)),
        "checkpoint_every": max(1, steps // 4)})


def split_weights(model_dir: Path, out: Path, kind: str) -> list[str]:
    """The model's weights in bf16 as pieces ``<kind>_weights.bf16.N`` under PIECE_BYTES each."""
    from safetensors.torch import load_file, save

    state = load_file(model_dir / "model.safetensors")
    blob = save({k: v.to(torch.bfloat16).contiguous() for k, v in state.items()})
    names = []
    for i in range(math.ceil(len(blob) / PIECE_BYTES)):
        name = f"{kind}_weights.bf16.{i}"
        (out / name).write_bytes(blob[i * PIECE_BYTES:(i + 1) * PIECE_BYTES])
        names.append(name)
    return names


def join_weights(pieces: list[Path], model_dir: Path) -> None:
    """Write ``model_dir/model.safetensors`` (float32) from the bf16 pieces, in order."""
    from safetensors.torch import load, save_file

    state = load(b"".join(p.read_bytes() for p in sorted(pieces, key=lambda p: int(p.suffix[1:]))))
    save_file({k: v.float().contiguous() for k, v in state.items()}, model_dir / "model.safetensors",
              metadata={"format": "pt"})


def main() -> None:
    from superpose.experiments.sweep import load_sweep_config, run_sweep
    from superpose.runs import RunFolder
    from superpose.scratch.train import load_train_config, train

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("kind", choices=sorted(RECIPES))
    ap.add_argument("--minutes", type=float, required=True, help="training time (the sweep comes after)")
    ap.add_argument("--work", type=Path, required=True, help="folder for the run folders")
    ap.add_argument("--out", type=Path, required=True, help="folder for the few files that come back")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--data-workers", type=int, default=6)
    ap.add_argument("--n-prompts", type=int, default=100, help="sweep prompts per λ and position block")
    ap.add_argument("--dry-run", action="store_true", help="a 2-layer model, batch 8, at most 12 steps: "
                    "checks the script end to end on a CPU")
    args = ap.parse_args()
    recipe, sweep_config = RECIPES[args.kind]
    args.out.mkdir(parents=True, exist_ok=True)
    train_dir = args.work / f"{args.kind}_paper"
    t_start = time.time()

    cfg = load_train_config(recipe, device=args.device, out_dir=str(train_dir), data_workers=args.data_workers)
    if args.dry_run:
        cfg = cfg.model_copy(update={"batch_size": 8, "model": cfg.model.model_copy(
            update={"n_layers": 2, "d_model": 64, "n_heads": 2, "d_mlp": 128})})
    step_s = seconds_per_step(cfg)
    steps = int(60 * args.minutes / (1.1 * step_s))  # 10 % for checkpoints and the data stream
    cfg = shortened(cfg, min(steps, 12) if args.dry_run else steps)
    print(f"[{args.kind}] {step_s:.3f} s/step on {args.device} -> {cfg.steps} steps "
          f"(warmup {cfg.warmup_steps}, decay {cfg.decay_steps}, batch {cfg.batch_size})", flush=True)
    train_dir.mkdir(parents=True, exist_ok=True)
    result = train(cfg.model_copy(update={"time_limit_minutes": args.minutes * 1.15}), RunFolder(train_dir, kind="train"),
                   progress=False)
    model_dir = result.model_dir or train_dir / "checkpoint"  # the checkpoint is a model folder too
    tail = result.losses[-50:]
    print(f"[{args.kind}] trained {result.steps_done}/{cfg.steps} steps in {result.seconds:.0f} s, "
          f"loss (mean of last {len(tail)}) {sum(tail) / len(tail):.4f}", flush=True)

    results = {
        "kind": args.kind, "device": torch.cuda.get_device_name() if args.device.startswith("cuda") else args.device,
        "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"), "seconds_per_step": step_s,
        "steps_planned": cfg.steps, "steps_done": result.steps_done, "train_seconds": result.seconds,
        "tokens_per_second": result.tokens_per_second, "final_loss_last_50": sum(tail) / len(tail),
        "losses_every_10": result.losses[::10], "config": cfg.model_dump(mode="json")}
    results_path = args.out / f"{args.kind}_results.json"
    results_path.write_text(json.dumps(results, indent=1) + "\n")  # first without the sweep: it may run out of time
    pieces = split_weights(model_dir, args.out, args.kind)
    print(f"[{args.kind}] wrote {len(pieces)} weight pieces", flush=True)

    sweep_cfg = load_sweep_config(sweep_config, {"model": str(model_dir), "device": args.device,
                                                 "n_prompts": args.n_prompts})
    run, summary = run_sweep(sweep_cfg, root=args.work / "sweeps", progress=False)
    print(f"[{args.kind}] sweep: Spearman {summary['spearman_p1_vs_lambda']:.3f}, leftover "
          f"{summary['mean_other']:.3f}, |P1 - study| {summary['reference']['mean_abs_diff']:.3f}, "
          f"split {summary.get('split_within_prompt', float('nan')):.3f}, follows last "
          f"{summary.get('follows_last_example', float('nan')):.2f}; slopes "
          + " ".join(f"m={b['fixed_last']}:{b['slope']:.2f}" for b in summary["position"]["by_fixed_last"]),
          flush=True)
    results.update(sweep=summary, wall_seconds=time.time() - t_start)
    results_path.write_text(json.dumps(results, indent=1) + "\n")
    from superpose.runs import training_log

    with tarfile.open(args.out / f"{args.kind}_run.tar.gz", "w:gz") as tar:
        for path in (training_log(train_dir), train_dir / "config.json"):
            tar.add(path, arcname=f"{args.kind}_paper/{path.name}")
        for path in model_dir.iterdir():
            if path.suffix != ".safetensors" and path.is_file() and path.name != "state.pt":
                tar.add(path, arcname=f"{args.kind}_paper/model/{path.name}")
        tar.add(run.path, arcname=f"{args.kind}_paper/sweep")
    print(f"[{args.kind}] done in {time.time() - t_start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
