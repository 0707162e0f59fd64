"""Training throughput of the CPU recipe: our training step vs a plain reference loop, as a ratio.

    python benchmarks/training.py [--config configs/scratch/plus_cpu.yaml] [--steps 20]

Both loops train the same model (same init, same batches, same thread count) for the same steps:

* ours: :func:`superpose.scratch.train.train_step` -- fused AdamW, and the output layer applied only
  at answer positions (the only ones with loss);
* compiled (``--compile``): ours with ``compile: true`` (torch.compile of the loss);
* reference: the textbook Hugging Face loop -- ``model(input_ids, labels=labels).loss`` over full
  logits, ``torch.optim.AdamW`` with its per-parameter for-loop implementation.

Batches are built before timing starts, so the ratio measures the model step. Timings on a shared
machine move with the load: the two loops are interleaved (ABAB...) so both see the same load, and
the script prints the load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from contextlib import nullcontext

import torch


def main() -> None:
    """Time both loops and print tokens per second and their ratio."""
    from superpose.scratch.data import make_batch
    from superpose.scratch.model import build_model
    from superpose.scratch.tokenizer import char_vocab
    from superpose.scratch.train import answer_loss, load_train_config, make_optimizer, train_step
    from superpose.tasks import get_task

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/scratch/plus_cpu.yaml")
    ap.add_argument("--steps", type=int, default=20, help="timed steps per loop")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps per loop first")
    ap.add_argument("--compile", action="store_true",
                    help="also time ours with compile: true (adds a 1-2 minute compile)")
    args = ap.parse_args()

    cfg = load_train_config(args.config)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    tasks = [get_task(n) for n in cfg.tasks]
    n = args.warmup + args.steps
    batches = [make_batch(tasks, cfg.n_examples, cfg.seed, s * cfg.batch_size, cfg.batch_size, char_vocab())
               for s in range(n)]  # [batch, seq] pairs, built outside the timed region

    ours = build_model(cfg.model, torch.Generator().manual_seed(cfg.seed))
    ours_opt = make_optimizer(ours, cfg, torch.device("cpu"))
    ref = build_model(cfg.model, torch.Generator().manual_seed(cfg.seed))
    ref_opt = torch.optim.AdamW(ref.parameters(), lr=cfg.lr, betas=cfg.betas,
                                weight_decay=cfg.weight_decay, foreach=False)

    def step_ours(ids, mask):
        return train_step(ours, ours_opt, ids, mask, cfg, nullcontext())

    def step_ref(ids, mask):
        labels = torch.where(mask, ids, torch.full_like(ids, -100))  # HF shifts labels itself
        loss = ref(input_ids=ids, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(ref.parameters(), cfg.grad_clip)
        ref_opt.step()
        ref_opt.zero_grad()
        return loss.item()

    loops = [("ours", step_ours), ("reference", step_ref)]
    if args.compile:
        comp = build_model(cfg.model, torch.Generator().manual_seed(cfg.seed))
        comp_opt = make_optimizer(comp, cfg, torch.device("cpu"))
        compiled = torch.compile(answer_loss)

        def step_compiled(ids, mask):
            return train_step(comp, comp_opt, ids, mask, cfg, nullcontext(), compiled)

        t0 = time.perf_counter()
        step_compiled(*batches[0])  # the compile itself, reported apart
        print(f"torch.compile took {time.perf_counter() - t0:.0f} s (once per run)")
        loops.append(("compiled", step_compiled))

    times: dict[str, list[float]] = {name: [] for name, _ in loops}
    for s, (ids, mask) in enumerate(batches):
        for name, fn in loops:
            t0 = time.perf_counter()
            fn(ids, mask)
            if s >= args.warmup:
                times[name].append(time.perf_counter() - t0)
    tokens = int((batches[0][0] != 0).sum())
    print(f"config {args.config}: {cfg.model.n_layers} layers, width {cfg.model.d_model}, batch "
          f"{cfg.batch_size} x {batches[0][0].shape[1]} tokens; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; load average {os.getloadavg()[0]:.1f}")
    rate = {}
    for name, ts in times.items():
        med = statistics.median(ts)
        rate[name] = tokens / med
        print(f"  {name:>9}: median {med * 1000:7.1f} ms/step  {rate[name]:>9,.0f} tokens/s  "
              f"(min {min(ts) * 1000:.1f} ms)")
    for name in rate:
        if name != "reference":
            print(f"  ratio {name} / reference: {rate[name] / rate['reference']:.2f}x")


if __name__ == "__main__":
    main()
