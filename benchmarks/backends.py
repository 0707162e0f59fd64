"""Prompts per second through each backend on the same mixture prompts, in one run.

Three ways to score every task's answer after N mixed prompts (fp32 unless --dtype):

* hf-one     -- the transformers backend, one prompt per forward pass (batch_size 1; the baseline);
* hf-batched -- the transformers backend, --batch prompts per forward pass;
* vllm       -- the vLLM backend, every request handed to the engine at once.

Each is warmed up on the same prompts first (vLLM's first request compiles), then timed over
--reps passes, alternating backends so that machine noise hits all alike. It prints prompts per
second and the ratio to hf-one. Only the ratios mean something on a shared machine. The vLLM engine
runs in its own processes, so it is started after the transformers timings' model is loaded; both
stay in memory.

    python benchmarks/backends.py [--model smollm2-135m] [--prompts 32] [--batch 8] [--dtype float32]
"""

from __future__ import annotations

import argparse
import statistics
import time

from superpose import MixtureSpec, ScoreRequest, load_backend
from superpose.prompts import build_prompt

FAMILIES = [["copy_op1", "copy_op2", "op1_plus_op2"], ["sum_numeral", "sum_english", "sum_french"],
            ["capital", "continent", "country_upper"], ["first_letter", "last_letter"]]


def requests(n: int, n_examples: int) -> list[ScoreRequest]:
    """``n`` mixed prompts cycling over four task families, with every task's answer."""
    out = []
    for i in range(n):
        p = build_prompt(MixtureSpec(tasks=FAMILIES[i % len(FAMILIES)], n_examples=n_examples), 0, i)
        out.append(ScoreRequest(p.text, p.answers))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--device", default=None)
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--examples", type=int, default=30)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--no-vllm", action="store_true")
    args = parser.parse_args()

    batch = requests(args.prompts, args.examples)
    hf = load_backend(args.model, args.dtype, args.device)
    runners = {
        "hf-one": lambda: (setattr(hf, "batch_size", 1), hf.score(batch)),
        "hf-batched": lambda: (setattr(hf, "batch_size", args.batch), hf.score(batch)),
    }
    if not args.no_vllm:
        vllm = load_backend(f"vllm:{args.model}", args.dtype, args.device if args.device != "cpu" else None)
        runners["vllm"] = lambda: vllm.score(batch)
    results = {name: run()[-1] if name.startswith("hf") else run() for name, run in runners.items()}  # warm-up
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(args.reps):
        for name, run in runners.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    tokens = statistics.mean(hf.count_tokens(r.prompt) for r in batch)
    print(f"model {args.model} ({args.dtype}), {args.prompts} prompts of ~{tokens:.0f} tokens, K = 2-3 answers, "
          f"{args.reps} reps, hf batch {args.batch}")
    base = statistics.median(times["hf-one"])
    print(f"{'backend':<12} {'prompts/s':>10} {'x hf-one':>9} {'max |P - P(hf-one)|':>20}")
    for name, ts in times.items():
        t = statistics.median(ts)
        diff = max(abs(a.prob - b.prob) for x, y in zip(results[name], results["hf-one"]) for a, b in zip(x, y))
        print(f"{name:<12} {args.prompts / t:>10.2f} {base / t:>9.2f} {diff:>20.1e}")


if __name__ == "__main__":
    main()
