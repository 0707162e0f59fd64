"""Scoring speed: the shared-prefix scorer against the naive oracle and against a bare prompt pass.

For mixed prompts of 60 examples with K = 3 or 4 task answers, times (median over repetitions,
measurements interleaved so that machine noise hits all three alike):

* naive   -- one full forward pass over prompt + answer per answer (K prompt passes);
* ours    -- the transformers backend, one prompt at a time: one prompt pass, then the K answers
             batched on a fork of its KV cache;
* forward -- one plain forward pass over the prompt alone (the floor any exact scorer pays).

It prints  naive / ours  (goal >= 0.8 K: we save almost all K-1 extra prompt passes) and
ours / forward  (goal <= 1.3: scoring K answers costs little more than reading the prompt).
Only ratios are reported; absolute times on a shared machine mean little.

    python benchmarks/scoring.py [--model smollm2-135m] [--dtype float32] [--prompts 4] [--reps 3]
"""

from __future__ import annotations

import argparse
import statistics

import torch

from superpose import MixtureSpec, load_backend
from superpose.backends import encode_prompt
from superpose.prompts import build_prompt
from superpose.naive import NaiveScorer
from timing import timed

SETTINGS = {
    "copy (K=3)": ["copy_op1", "copy_op2", "op1_plus_op2"],
    "letters (K=4)": ["first_letter", "first_letter_upper", "last_letter", "last_letter_upper"],
    "sum in words (K=4)": ["sum_numeral", "sum_english", "sum_french", "sum_spanish"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--device", default=None, help="e.g. cuda")
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--examples", type=int, default=60)
    args = parser.parse_args()

    lm = load_backend(args.model, args.dtype, args.device)
    naive = NaiveScorer(lm)
    sync = torch.cuda.synchronize if lm.device.type == "cuda" else (lambda: None)

    @torch.inference_mode()
    def forward(text: str) -> None:
        lm.model(input_ids=torch.tensor([encode_prompt(lm.tokenizer, text)], device=lm.device))
        sync()

    print(f"model {args.model} ({args.dtype}, {lm.device}), {args.examples} examples per prompt, "
          f"{args.prompts} prompts x {args.reps} reps, torch threads {torch.get_num_threads()}")
    print(f"{'setting':<20} {'tokens':>7} {'naive/ours':>11} {'goal':>7} {'ours/forward':>13} {'goal':>6}")
    for name, tasks in SETTINGS.items():
        k = len(tasks)
        prompts = [build_prompt(MixtureSpec(tasks=tasks, n_examples=args.examples), 0, i) for i in range(args.prompts)]
        forward(prompts[0].text)  # warm-up
        lm.score_one(prompts[0].text, prompts[0].answers)
        times: dict[str, list[float]] = {"naive": [], "ours": [], "forward": []}
        for _ in range(args.reps):
            for p in prompts:
                times["forward"].append(timed(lambda: forward(p.text)))
                times["ours"].append(timed(lambda: (lm.score_one(p.text, p.answers), sync())))
                times["naive"].append(timed(lambda: (naive.score(p.text, p.answers), sync())))
        med = {key: statistics.median(v) for key, v in times.items()}
        n_tokens = statistics.mean(len(encode_prompt(lm.tokenizer, p.text)) for p in prompts)
        print(f"{name:<20} {n_tokens:>7.0f} {med['naive'] / med['ours']:>11.2f} {'>=' + format(0.8 * k, '.1f'):>7} "
              f"{med['ours'] / med['forward']:>13.2f} {'<=1.3':>6}")


if __name__ == "__main__":
    main()
