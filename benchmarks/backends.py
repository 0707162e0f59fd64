"""Prompts per second through each backend on the same mixture prompts, in one run.

Four ways to score every task's answer after N mixed prompts of the study's shape (60 examples,
K = 3 and K = 4 tasks; fp32 unless --dtype):

* hf-one       -- the transformers backend, one prompt per forward pass (batch_size 1; the baseline);
* hf-batched   -- the transformers backend, --batch prompts per forward pass;
* vllm-old     -- the vLLM backend's prompt-logprobs path: one request per answer, K prefills a prompt;
* vllm-shared  -- the vLLM backend's shared-prefix path: the prompt once, then the answers' prefixes
                  from the prefix cache.

Both vLLM paths run on one engine (never two at once), and its prefix cache is emptied before
every timed pass, so no pass reads what an earlier one left. Each backend is warmed up first on one
prompt (vLLM's first requests are slow), then timed over --reps passes, alternating backends so that
machine noise hits all alike. Printed: prompts per second, the ratio to hf-one, the largest
difference in P from hf-one, and for vLLM the prompt tokens the engine computed per prompt (from its
own count of prefix-cache hits). Only the ratios mean something on a shared machine.

    python benchmarks/backends.py [--model smollm2-135m] [--prompts 8] [--examples 60] [--batch 8]
"""

from __future__ import annotations

import argparse
import statistics
import time

from superpose import MixtureSpec, ScoreRequest, load_backend
from superpose.backends.base import PrefixPlan
from superpose.prompts import build_prompt

FAMILIES = {3: [["copy_op1", "copy_op2", "op1_plus_op2"], ["sum_numeral", "sum_english", "sum_french"],
                ["capital", "continent", "country_upper"]],
            4: [["sum_numeral", "sum_english", "sum_french", "sum_spanish"],
                ["first_letter", "first_letter_upper", "last_letter", "last_letter_upper"]]}


def requests(k: int, n: int, n_examples: int) -> list[ScoreRequest]:
    """``n`` mixed prompts of K tasks, cycling over the K-task families, with every task's answer."""
    out = []
    for i in range(n):
        p = build_prompt(MixtureSpec(tasks=FAMILIES[k][i % len(FAMILIES[k])], n_examples=n_examples), 0, i)
        out.append(ScoreRequest(p.text, p.answers))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--examples", type=int, default=60)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--block-size", type=int, default=None, help="vLLM's KV block size (default: the backend's)")
    parser.add_argument("--no-vllm", action="store_true")
    args = parser.parse_args()

    hf = load_backend(args.model, args.dtype)
    vllm = None
    if not args.no_vllm:
        options = {"block_size": args.block_size} if args.block_size else {}
        vllm = load_backend(f"vllm:{args.model}", args.dtype, **options)

    def on_vllm(path: str, batch: list[ScoreRequest]):
        vllm.scoring_path = path
        vllm.llm.reset_prefix_cache()
        return vllm.score(batch)

    for k in FAMILIES:
        batch = requests(k, args.prompts, args.examples)
        warm_up = {
            "hf-one": lambda b: (setattr(hf, "batch_size", 1), hf.score(b))[-1],
            "hf-batched": lambda b: (setattr(hf, "batch_size", args.batch), hf.score(b))[-1],
        }
        if vllm is not None:
            warm_up["vllm-old"] = lambda b: on_vllm("prompt_logprobs", b)
            warm_up["vllm-shared"] = lambda b: on_vllm("shared_prefix", b)
        runners = {name: (lambda run=run: run(batch)) for name, run in warm_up.items()}
        for name, run in warm_up.items():  # vLLM's first requests are slow; the transformers model's too
            run(batch[:1])
        results: dict = {}
        times: dict[str, list[float]] = {name: [] for name in runners}
        computed: dict[str, int] = {}
        for _ in range(args.reps):
            for name, run in runners.items():
                cached = vllm.cached_tokens if vllm is not None else 0
                start = time.perf_counter()
                results[name] = run()
                times[name].append(time.perf_counter() - start)
                if name == "vllm-shared":
                    encoded = [vllm.encode(r) for r in batch]
                    asked = sum(len(p) for p, _ in PrefixPlan(encoded).questions)
                    computed[name] = asked - (vllm.cached_tokens - cached)
        if vllm is not None:
            computed["vllm-old"] = sum(len(e.prompt_ids) + len(ids) for e in map(vllm.encode, batch)
                                       for ids, _ in e.tokens)
        tokens = statistics.mean(hf.count_tokens(r.prompt) for r in batch)
        print(f"\nK = {k}: model {args.model} ({args.dtype}), {args.prompts} prompts of {args.examples} examples "
              f"(~{tokens:.0f} tokens), {args.reps} reps, hf batch {args.batch}"
              + (f", vLLM block size {vllm.llm.llm_engine.vllm_config.cache_config.block_size}" if vllm else ""))
        base = statistics.median(times["hf-one"])
        print(f"{'backend':<12} {'prompts/s':>10} {'x hf-one':>9} {'max |P - P(hf-one)|':>20} {'tokens computed/prompt':>23}")
        for name, ts in times.items():
            t = statistics.median(ts)
            diff = max(abs(a.prob - b.prob) for x, y in zip(results[name], results["hf-one"]) for a, b in zip(x, y))
            per_prompt = f"{computed[name] / args.prompts:.0f}" if name in computed else "-"
            print(f"{name:<12} {args.prompts / t:>10.2f} {base / t:>9.2f} {diff:>20.1e} {per_prompt:>23}")
        if vllm is not None:
            ratio = statistics.median(times["vllm-old"]) / statistics.median(times["vllm-shared"])
            print(f"vllm-shared / vllm-old: {ratio:.2f}x")
    if vllm is not None:
        vllm.close()


if __name__ == "__main__":
    main()
