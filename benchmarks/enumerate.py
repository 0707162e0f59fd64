"""Output enumeration speed: reusing the prompt's KV cache against re-running the prompt per expansion.

For mixed prompts (K = 3 copy tasks) and single-task prompts, times the same best-first search
(identical limits, so identical expansions and outputs) two ways, interleaved so that machine noise
hits both alike:

* rerun -- every expansion runs prompt + partial output from scratch (one pass per node);
* ours  -- the prompt runs once; expansions feed only their partial outputs on copies of its KV
           cache, several frontier nodes per forward pass.

It prints  rerun / ours  (the speed-up; it grows with prompt length and with the number of
expansions) and checks that both found the same outputs with the same probabilities. Only ratios
are reported; absolute times on a shared machine mean little.

    python benchmarks/enumerate.py [--model smollm2-135m] [--examples 30] [--prompts 2] [--reps 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from superpose import MixtureSpec, load_backend
from superpose.enumerate import EnumerateSettings, OutputEnumerator
from superpose.prompts import build_prompt

SETTINGS = {
    "copy mixed (K=3)": ["copy_op1", "copy_op2", "op1_plus_op2"],
    "copy_op1 alone": ["copy_op1"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--device", default=None, help="e.g. cuda")
    parser.add_argument("--examples", type=int, default=30)
    parser.add_argument("--prompts", type=int, default=2)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--min-prob", type=float, default=1e-3)
    parser.add_argument("--max-expansions", type=int, default=48)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    lm = load_backend(args.model, args.dtype, args.device)
    limits = EnumerateSettings(min_prob=args.min_prob, max_expansions=args.max_expansions, max_outputs=20)
    ours = OutputEnumerator(lm, limits, reuse_cache=True)
    rerun = OutputEnumerator(lm, limits, reuse_cache=False)
    sync = torch.cuda.synchronize if lm.device.type == "cuda" else (lambda: None)

    def timed(enumerator, text):
        start = time.perf_counter()
        result = enumerator.enumerate(text)
        sync()
        return time.perf_counter() - start, result

    print(f"model {args.model} ({args.dtype}, {lm.device}), {args.examples} examples per prompt, "
          f"min_prob {args.min_prob:g}, max_expansions {args.max_expansions}, {args.prompts} prompts x "
          f"{args.reps} reps, torch threads {torch.get_num_threads()}")
    print(f"{'setting':<18} {'tokens':>7} {'expansions':>11} {'passes ours/rerun':>18} {'rerun/ours':>11} {'same':>5}")
    for name, tasks in SETTINGS.items():
        prompts = [build_prompt(MixtureSpec(tasks=tasks, n_examples=args.examples), 0, i) for i in range(args.prompts)]
        ours.enumerate(prompts[0].text)  # warm-up
        times: dict[str, list[float]] = {"ours": [], "rerun": []}
        same, tokens, expansions, passes = True, [], [], []
        for _ in range(args.reps):
            for p in prompts:
                t_ours, a = timed(ours, p.text)
                t_rerun, b = timed(rerun, p.text)
                times["ours"].append(t_ours)
                times["rerun"].append(t_rerun)
                same &= [o.text for o in a.outputs] == [o.text for o in b.outputs] and all(
                    abs(x.prob - y.prob) < 1e-4 for x, y in zip(a.outputs, b.outputs))
                tokens.append(a.prompt_tokens)
                expansions.append(a.n_expansions)
                passes.append(f"{a.n_forward_passes}/{b.n_forward_passes}")
        ratio = statistics.median(times["rerun"]) / statistics.median(times["ours"])
        print(f"{name:<18} {statistics.mean(tokens):>7.0f} {statistics.mean(expansions):>11.0f} "
              f"{passes[0]:>18} {ratio:>11.1f} {'yes' if same else 'NO':>5}")


if __name__ == "__main__":
    main()
