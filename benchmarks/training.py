"""Training throughput: today's scratch trainer against the fast one, as ratios measured in one run.

    python benchmarks/training.py                                   # CPU recipe, this machine
    python benchmarks/training.py --compile                         # also the compiled fast step
    python benchmarks/training.py --profile                         # where each step's time goes
    python benchmarks/training.py --compile --bf16 --grid           # bfloat16 and the attention kernels
    python benchmarks/training.py --config configs/scratch/ret_paper.yaml --device cuda --compile --mfu
    python benchmarks/training.py --config configs/scratch/ret_switches/ret_warm_kret.yaml --observatory

Same model (same init), same batches, same thread count, loops interleaved step by step so that
both see the same load on a shared machine (the load average is printed):

* data: today's string generator (:func:`make_batch`) against the tensor generator
  (:class:`TensorBatches`), batches of the config and of the study's two recipes;
* step: today's :func:`train_step` (answer logits by boolean selection, ``.item()`` every step)
  against :func:`fast_train_step` (fixed-shape masked loss, no host sync; eager, and compiled
  with ``--compile``) on one prepared batch;
* trainer: data and step together, as ``superpose train`` runs them -- today's loop against the
  fast loop (tensor batches on the device, the loss read every ``log_every`` steps).

``--observatory`` times only the training observatory (issue #32) against the training step of the
config, interleaved: its overhead is one evaluation per ``eval_every`` steps, as a share of the steps.

``--mfu`` adds model FLOP utilisation: training FLOPs per token 6 N + 12 L d S (N the weights
outside the embedding, L layers, d width, S sequence length) against a bf16 matrix-product peak
measured here (and the H200's 790 TFLOP/s, as measured in an earlier lease).
"""

from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path

import torch
from timing import sync, timed


def fresh_model(cfg, device: torch.device, attention: str | None = None):
    """(model, optimizer) as ``superpose train`` starts them: the config's init, on ``device``."""
    from superpose.scratch.model import build_model
    from superpose.scratch.step import make_optimizer

    model = build_model(cfg.model, torch.Generator().manual_seed(cfg.seed)).to(device)
    model.set_attn_implementation(attention or cfg.attention)
    return model, make_optimizer(model, cfg, device)


def training_flops_per_token(cfg, seq: int) -> float:
    """6 N + 12 L d S: N the weights outside the embedding (the output layer included)."""
    m = cfg.model
    per_layer = 4 * m.d_model ** 2 + (3 if m.architecture == "llama" else 2) * m.d_model * m.d_mlp
    n = m.n_layers * per_layer + m.d_model * 98  # the output layer (98 tokens)
    return 6 * n + 12 * m.n_layers * m.d_model * seq


def matmul_peak(device: torch.device, n: int = 8192, reps: int = 10) -> float:
    """Measured bf16 matrix-product FLOP/s (n x n x n, after three warm-ups)."""
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    seconds = timed(lambda: [a @ b for _ in range(reps)], device)
    return 2 * n ** 3 * reps / seconds


def bench_data(configs: list[str], reps: int) -> None:
    """Today's string generator against the tensor generator, batch by batch."""
    from superpose.scratch.data import make_batch
    from superpose.scratch.tensor_data import TensorBatches
    from superpose.scratch.tokenizer import char_vocab
    from superpose.scratch.train import load_train_config
    from superpose.tasks import get_task

    print("data generator (CPU; seconds per batch, median):")
    for path in configs:
        cfg = load_train_config(path)
        tasks = [get_task(n) for n in cfg.tasks]
        gen = TensorBatches(cfg.tasks, cfg.n_examples, cfg.seed, cfg.batch_size, min_examples=cfg.min_examples)
        gen.batch(0)  # first-call allocations
        ref, fast, words = [], [], []
        for s in range(reps):
            ref.append(timed(lambda: make_batch(tasks, cfg.n_examples, cfg.seed, s * cfg.batch_size, cfg.batch_size,
                                                char_vocab(), min_examples=cfg.min_examples)))
            fast.append(timed(lambda: gen.batch(s)))
            words.append(timed(lambda: gen.words(s * cfg.batch_size)))
        gen.check()
        r, f, w = statistics.median(ref), statistics.median(fast), statistics.median(words)
        print(f"  {cfg.name:>10} ({cfg.batch_size} x {gen.width} tokens): strings {r * 1000:7.1f} ms, "
              f"tensors {f * 1000:6.1f} ms  -> {r / f:.1f}x  (of which Python's seeding and words "
              f"{w * 1000:.1f} ms: at most {r / w:.0f}x)")


def bench_observatory(cfg, device: torch.device, steps: int, warmup: int) -> None:
    """The observatory's cost per eval_every steps against the steps' own time, measured interleaved."""
    from superpose.scratch.observatory import Observatory
    from superpose.scratch.schedule import ScheduledBatches
    from superpose.scratch.snapshot import snapshot_for
    from superpose.scratch.step import autocast_for, fast_train_step

    import tempfile

    every = cfg.eval_every or 50
    model, opt = fresh_model(cfg, device)
    batches = ScheduledBatches(cfg, device)
    autocast = autocast_for(cfg, device)
    with tempfile.TemporaryDirectory() as tmp:
        obs = Observatory(cfg.tasks, cfg.n_examples, cfg.seed, cfg.eval_sequences, cfg.attention,
                          Path(tmp) / "observatory.jsonl", snapshot=snapshot_for(cfg.tasks, cfg.n_examples, cfg.seed))
        step_t, obs_t = [], []
        for s in range(warmup + steps):
            ids, mask = batches.batch(cfg.steps - 1 - s)  # the final phase's data (the study's task)
            t = timed(lambda: fast_train_step(model, opt, ids, mask, cfg, autocast), device)
            o = timed(lambda: obs.observe(model, s), device)
            if s >= warmup:
                step_t.append(t)
                obs_t.append(o)
    step, ev = statistics.median(step_t), statistics.median(obs_t)
    print(f"observatory ({cfg.name}: {cfg.eval_sequences} held-out sequences, λ snapshot "
          f"{'on' if obs.snapshot else 'off'}; median of {steps}, interleaved with the step):")
    print(f"  training step {step * 1000:8.1f} ms; one evaluation {ev * 1000:8.1f} ms = {ev / step:.2f} steps")
    print(f"  every {every} steps: overhead {ev / (every * step):.1%} of training time")


def bench_grid(cfg, ids: torch.Tensor, mask: torch.Tensor, device: torch.device, steps: int) -> None:
    """The fast step in each precision x attention kernel x eager/compiled, against the first."""
    from superpose.scratch.step import fast_train_step, masked_loss

    variants = {}
    for compiled in (False, True):
        for dtype in ("float32", "bfloat16"):
            for attention in ("sdpa", "eager"):
                model, opt = fresh_model(cfg, device, attention)
                cast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == "bfloat16")
                loss_fn = torch.compile(masked_loss, dynamic=False) if compiled else masked_loss
                step = (lambda m, o, c, f: lambda: fast_train_step(m, o, ids, mask, cfg, c, f))(model, opt, cast, loss_fn)
                step()  # compiles (each model its own graph)
                variants[f"{'compiled' if compiled else 'eager':>8}, {dtype:>8}, attention {attention}"] = step
    times = {k: [] for k in variants}
    for _ in range(steps):
        for k, step in variants.items():
            times[k].append(timed(step, device))
    base = statistics.median(next(iter(times.values())))
    print(f"fast step grid (median of {steps}, relative to the first line):")
    for k, v in times.items():
        print(f"  {k}: {statistics.median(v) * 1000:7.1f} ms/step  {base / statistics.median(v):.2f}x")


def main() -> None:
    """Time the loops and print tokens per second and their ratios."""
    from superpose.scratch.data import make_batch
    from superpose.scratch.tensor_data import TensorBatches
    from superpose.scratch.tokenizer import char_vocab
    from superpose.scratch.step import autocast_for, fast_train_step, masked_loss, train_step
    from superpose.scratch.train import load_train_config, lr_at
    from superpose.tasks import get_task

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/scratch/plus_cpu.yaml")
    ap.add_argument("--batch-size", type=int, help="override the config's batch (the study's model on a CPU)")
    ap.add_argument("--steps", type=int, default=12, help="timed steps per loop")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps per loop first")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads (1: the machine is shared)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--autocast", choices=["none", "bfloat16"], help="override the config's autocast")
    ap.add_argument("--compile", action="store_true", help="also time the compiled fast step")
    ap.add_argument("--bf16", action="store_true", help="also time both steps under bfloat16 autocast, the "
                    "fast one with transformers' matrix-product attention (attention: eager; docs/scratch.md)")
    ap.add_argument("--grid", action="store_true", help="also time the fast step in float32/bfloat16 x "
                    "sdpa/eager attention x eager/compiled")
    ap.add_argument("--profile", action="store_true", help="print torch.profiler tables of both steps")
    ap.add_argument("--observatory", action="store_true", help="time only the training observatory against "
                    "the step (its overhead at the config's eval_every)")
    ap.add_argument("--mfu", action="store_true", help="model FLOP utilisation against a measured bf16 peak")
    ap.add_argument("--data-configs", nargs="*", default=["configs/scratch/plus_cpu.yaml",
                    "configs/scratch/plus_paper.yaml", "configs/scratch/ret_paper.yaml"],
                    help="configs whose batches the data comparison builds ('' to skip)")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    over = {"device": args.device, "batch_size": args.batch_size, "autocast": args.autocast}
    cfg = load_train_config(args.config, **over)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, device {device}"
          + (f" ({torch.cuda.get_device_name()})" if device.type == "cuda" else "")
          + f"; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    if args.observatory:
        bench_observatory(cfg, device, args.steps, args.warmup)
        return
    if [c for c in args.data_configs if c]:
        bench_data([c for c in args.data_configs if c], reps=5)

    tasks = [get_task(n) for n in cfg.tasks]
    gen = TensorBatches(cfg.tasks, cfg.n_examples, cfg.seed, cfg.batch_size, device, min_examples=cfg.min_examples)
    autocast = autocast_for(cfg, device)
    n = args.warmup + args.steps

    def fresh(attention: str | None = None):
        return fresh_model(cfg, device, attention)

    def string_batch(s):
        ids, mask = make_batch(tasks, cfg.n_examples, cfg.seed, s * cfg.batch_size, cfg.batch_size, char_vocab(),
                               min_examples=cfg.min_examples)
        return ids.to(device), mask.to(device)

    # --- step alone: one prepared batch --------------------------------------------------------
    ids, mask = string_batch(0)
    tokens = int((ids != 0).sum())
    loops = {}
    m, o = fresh()
    loops["today"] = lambda: train_step(m, o, ids, mask, cfg, autocast)
    m2, o2 = fresh()
    loops["fast"] = lambda: fast_train_step(m2, o2, ids, mask, cfg, autocast)
    if args.compile:
        m3, o3 = fresh()
        compiled = torch.compile(masked_loss, dynamic=False)
        loops["compiled"] = lambda: fast_train_step(m3, o3, ids, mask, cfg, autocast, compiled)
        print(f"torch.compile warm-up (first step): {timed(loops['compiled'], device):.1f} s")
    if args.bf16:  # a change of precision, not only of speed: both steps, so that each has its baseline
        bf16 = torch.autocast(device.type, dtype=torch.bfloat16)
        m6, o6 = fresh()
        loops["today bf16"] = lambda: train_step(m6, o6, ids, mask, cfg, bf16)
        m7, o7 = fresh(attention="eager")
        loss_bf16 = torch.compile(masked_loss, dynamic=False) if args.compile else masked_loss
        loops["fast bf16"] = lambda: fast_train_step(m7, o7, ids, mask, cfg, bf16, loss_bf16)
        print(f"first fast bf16 step: {timed(loops['fast bf16'], device):.1f} s")
    times = {k: [] for k in loops}
    for s in range(n):
        for name, fn in loops.items():
            t = timed(fn, device)
            if s >= args.warmup:
                times[name].append(t)
    print(f"step alone ({cfg.name}: {cfg.model.n_layers} x {cfg.model.d_model}, batch {cfg.batch_size} x "
          f"{ids.shape[1]} tokens, {tokens} not padding, autocast {cfg.autocast}; median of {args.steps}):")
    rate = {k: tokens / statistics.median(v) for k, v in times.items()}
    for k, v in times.items():
        print(f"  {k:>10}: {statistics.median(v) * 1000:8.1f} ms/step {rate[k]:>12,.0f} tokens/s  "
              f"({rate[k] / rate['today']:.2f}x today's)")
    if args.mfu:
        peak = matmul_peak(device)
        flops = training_flops_per_token(cfg, ids.shape[1]) * ids.numel()  # every position is computed
        for k, v in times.items():
            achieved = flops / statistics.median(v)
            print(f"  {k:>10}: {achieved / 1e12:7.1f} TFLOP/s = MFU {achieved / peak:.1%} of the measured bf16 "
                  f"peak {peak / 1e12:.0f} TFLOP/s ({achieved / 790e12:.1%} of 790)")

    if args.grid:
        bench_grid(cfg, ids, mask, device, args.steps)

    # --- the trainer: data and step, as the loops run them -----------------------------------------
    m4, o4 = fresh()

    def today_loop(s):
        for group in o4.param_groups:
            group["lr"] = lr_at(s, cfg)
        train_step(m4, o4, *string_batch(s), cfg, autocast)  # .item() inside: a sync every step

    def fast_loop(attention, cast, loss_fn):
        model, opt = fresh(attention)
        pending: list[torch.Tensor] = []

        def run(s):
            for group in opt.param_groups:
                group["lr"] = lr_at(s, cfg)
            b_ids, b_mask = gen.batch(s)
            pending.append(fast_train_step(model, opt, b_ids, b_mask, cfg, cast, loss_fn))
            if len(pending) == cfg.log_every or s == n - 1:
                torch.stack(pending).tolist()  # the loss read: the loop's one sync
                pending.clear()
        return run

    trainers = {"today": today_loop, "fast": fast_loop(cfg.attention, autocast, compiled if args.compile else masked_loss)}
    if args.bf16:
        trainers["fast bf16"] = fast_loop("eager", bf16, loss_bf16)
    spans = {k: [] for k in trainers}
    for s in range(n):
        for k, loop in trainers.items():
            spans[k].append(timed(lambda: loop(s), device))
    gen.check()
    print(f"trainer (data + step, steps {args.warmup}..{n - 1}; the fast loops read their loss every "
          f"{cfg.log_every} steps and at the end):")
    total = {k: sum(v[args.warmup:]) for k, v in spans.items()}
    for k, t in total.items():
        print(f"  {k:>10}: {t / args.steps * 1000:8.1f} ms/step {tokens * args.steps / t:>12,.0f} tokens/s  "
              f"({total['today'] / t:.2f}x today's)")

    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
        for name in loops:
            with profile(activities=activities) as prof:
                for _ in range(3):
                    loops[name]()
                sync(device)
            print(f"\nprofile: {name} step (3 steps)")
            key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
            print(prof.key_averages().table(sort_by=key, row_limit=15))


if __name__ == "__main__":
    main()
