"""Task-vector interpolation speed: the whole λ grid in one batched pass against one pass per λ.

For each of a few zero-shot queries (``57@23=``), the 21 interpolated vectors
``v(λ) = (1-λ) v1 + λ v2`` (v1, v2: copy_op1 / copy_op2 task vectors from a few short prompts) are
patched at one layer and both tasks' answers are scored on the patched cache:

* batched  -- one prompt pass of 21 rows, each row patched with its own vector, then the answers;
* per-λ    -- 21 separate patched passes of one row each (what a plain loop over λ does).

It prints per-λ / batched (the speed-up) and the largest difference between the two methods'
log-probabilities (they must agree). Times are medians over interleaved repetitions; only ratios
are reported, since absolute times on a shared machine mean little.

    python benchmarks/vectors.py [--model smollm2-135m] [--points 21] [--queries 3] [--reps 3] [--layer L]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from superpose import load_backend
from superpose.vectors import Patch, extract_prompts, interpolation_vectors, lambda_grid, make_group, n_layers
from superpose.vectors.extract import group_prompts
from superpose.vectors.interpolate import interpolate_query
from superpose.vectors.patched import patched_logprobs
from superpose.vectors.queries import zero_shot_queries

TASKS = ["copy_op1", "copy_op2"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--device", default=None, help="e.g. cuda")
    parser.add_argument("--points", type=int, default=21)
    parser.add_argument("--queries", type=int, default=3)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--layer", type=int, default=None, help="default: the middle layer")
    args = parser.parse_args()

    lm = load_backend(args.model, args.dtype, args.device)
    sync = torch.cuda.synchronize if lm.device.type == "cuda" else (lambda: None)
    layer = args.layer if args.layer is not None else n_layers(lm.model) // 2
    v = {t: extract_prompts(lm, [p.text for p in group_prompts(make_group([t]), 4, 10, seed=0)], [layer])[:, 0].mean(0)
         for t in TASKS}  # [d_model] each
    vectors = interpolation_vectors(v[TASKS[0]], v[TASKS[1]], lambda_grid(args.points))  # [points, d_model]
    queries = zero_shot_queries(TASKS, args.queries, seed=0)

    def batched(q) -> np.ndarray:
        out = interpolate_query(lm, q, [q.answers[t] for t in TASKS], layer, vectors)
        sync()
        return out

    def per_lambda(q) -> np.ndarray:
        out = np.stack([patched_logprobs(lm, q.text, [q.answers[t] for t in TASKS], 1, [Patch(layer, vec)])[0]
                        for vec in vectors])
        sync()
        return out

    batched(queries[0]), per_lambda(queries[0])  # warm-up
    times: dict[str, list[float]] = {"batched": [], "per_lambda": []}
    worst = 0.0
    for _ in range(args.reps):
        for q in queries:
            start = time.perf_counter()
            a = batched(q)
            times["batched"].append(time.perf_counter() - start)
            start = time.perf_counter()
            b = per_lambda(q)
            times["per_lambda"].append(time.perf_counter() - start)
            worst = max(worst, float(np.abs(a - b).max()))
    med = {k: statistics.median(x) for k, x in times.items()}
    print(f"model {args.model} ({args.dtype}, {lm.device}), layer {layer}, {args.points} λ points, "
          f"{args.queries} queries x {args.reps} reps, torch threads {torch.get_num_threads()}")
    print(f"per-λ / batched: {med['per_lambda'] / med['batched']:.2f}x   "
          f"(median {med['per_lambda'] * 1e3:.0f} ms vs {med['batched'] * 1e3:.0f} ms per query)   "
          f"max |Δ log P| {worst:.2e}")


if __name__ == "__main__":
    main()
