"""Mechanism speed: the lens, leave-one-out attribution and head ablation against plain prompt passes.

On copy-family prompts (``A@B=``, ``--examples`` examples), in one run, interleaved, medians over
``--reps`` (the one-prompt jobs, the first three, are timed 5 at a time):

* lens         -- :func:`lens_records` on one prompt (ONE pass: the prompt with the answers' tokens packed
                  after it under a tree mask, every layer's residual kept at the last prompt token, every
                  layer through the unembedding) / one prompt pass; and, for comparison, / exact scoring of
                  the same prompt (:meth:`HFBackend.score`: the prompt pass, then one pass over the answers'
                  tokens on a fork of its cache);
* attribution  -- :func:`attribution_record` (the full prompt and its n leave-one-out prompts scored
                  exactly, ``--batch`` prompts per pass) / n passes of the shorter prompts, one at a time;
* heads        -- every head (or ``--heads N`` of them, spread evenly over the layers) ablated alone,
                  scored exactly (``--rows`` ablated copies per pass, plus the unablated row) / that many
                  prompt passes: the ratio is per ablated head.

A "prompt pass" is :meth:`HFBackend.prefill` of one prompt: its KV cache and next-token log-probs.
Only ratios are printed (stdout), since absolute times on a shared machine mean little; progress goes to
stderr so that a slow run is visibly alive.

    python benchmarks/mechanism.py [--model smollm2-135m] [--examples 20] [--batch 8] [--rows 8] [--heads N]
                                   [--reps 3] [--only lens|attribution|heads ...]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time

import torch
from timing import timed

from superpose import load_backend
from superpose.backends import ScoreRequest, encode_prompt
from superpose.mechanism.attribution import attribution_record, leave_one_out_texts
from superpose.mechanism.heads import all_heads, head_record
from superpose.mechanism.lens import lens_records
from superpose.prompts import MixtureSpec, build_prompts


def _cpu_name() -> str:
    """The CPU's model name (Linux), else what platform knows."""
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--device", default=None)
    parser.add_argument("--examples", type=int, default=20)
    parser.add_argument("--batch", type=int, default=8, help="prompts per pass in attribution")
    parser.add_argument("--rows", type=int, default=8, help="ablated copies per pass")
    parser.add_argument("--heads", type=int, default=0, help="heads to ablate, spread over the layers (0: all)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--only", action="append", choices=["lens", "attribution", "heads"],
                        help="time only this analysis and its baseline (repeatable; default: all three)")
    args = parser.parse_args()
    start = time.perf_counter()

    def progress(what: str) -> None:
        print(f"[{time.perf_counter() - start:7.1f}s] {what}", file=sys.stderr, flush=True)

    lm = load_backend(args.model, args.dtype, args.device, batch_size=args.batch)
    spec = MixtureSpec(tasks=["copy_op1", "copy_op2", "op1_plus_op2"], n_examples=args.examples)
    prompt = build_prompts(spec, 1, 0)[0]
    ids = encode_prompt(lm.tokenizer, prompt.text)
    shorter = [encode_prompt(lm.tokenizer, t) for t in leave_one_out_texts(prompt, spec)]
    means = lm.head_means([prompt.text])
    heads = all_heads(lm)
    if 0 < args.heads < len(heads):
        heads = [heads[i * len(heads) // args.heads] for i in range(args.heads)]
    n_heads = len(heads)
    progress(f"loaded {args.model}; prompt of {len(ids)} tokens, {len(shorter)} shorter prompts, {n_heads} heads")

    def one_pass(x=ids):
        return lm.prefill([x])

    def five(fn):  # the one-prompt jobs run 5 times per timing: one pass alone is too short to time on a busy CPU
        return lambda: [fn() for _ in range(5)]

    jobs = {
        "one prompt pass": five(one_pass),
        "exact score": five(lambda: lm.score([ScoreRequest(prompt.text, prompt.answers)])),
        "lens": five(lambda: lens_records(lm, [prompt])),
        "n shorter passes": lambda: [one_pass(x) for x in shorter],
        "attribution": lambda: attribution_record(lm, prompt, spec),
        "heads": lambda: head_record(lm, prompt, means, args.rows, heads),
    }
    wanted = set(args.only or ["lens", "attribution", "heads"])
    needs = {"one prompt pass": {"lens", "heads"}, "exact score": {"lens"}, "lens": {"lens"},
             "n shorter passes": {"attribution"}, "attribution": {"attribution"}, "heads": {"heads"}}
    jobs = {name: fn for name, fn in jobs.items() if needs[name] & wanted}
    for name, fn in jobs.items():  # warm-up
        progress(f"warm-up: {name}")
        fn()
    times: dict[str, list[float]] = {k: [] for k in jobs}
    for rep in range(args.reps):
        for name, fn in jobs.items():
            times[name].append(timed(fn, lm.device))
            progress(f"rep {rep + 1}/{args.reps}: {name} {times[name][-1]:.3f}s")
    med = {k: statistics.median(v) for k, v in times.items()}
    for name in ("one prompt pass", "exact score", "lens"):
        if name in med:
            med[name] /= 5
    cpu = _cpu_name()
    print(f"model {args.model} ({args.dtype}, {lm.device}; {cpu}), prompt of {len(ids)} tokens "
          f"({args.examples} examples), {args.reps} reps, torch threads {torch.get_num_threads()}")
    if "lens" in wanted:
        print(f"lens / one prompt pass:                      {med['lens'] / med['one prompt pass']:.2f}  (target <= 1.3)")
        print(f"  (lens / exact scoring of the same prompt:  {med['lens'] / med['exact score']:.2f}; "
              f"exact scoring / one prompt pass: {med['exact score'] / med['one prompt pass']:.2f})")
    if "attribution" in wanted:
        print(f"attribution / {len(shorter)} shorter prompt passes:       "
              f"{med['attribution'] / med['n shorter passes']:.2f}  (target <= 1.2; batch {args.batch})")
    if "heads" in wanted:
        print(f"heads / {n_heads} prompt passes (per head):       "
              f"{med['heads'] / (n_heads * med['one prompt pass']):.2f}  (target <= 1.2; {args.rows} rows per pass, "
              f"{n_heads} of {len(all_heads(lm))} heads)")


if __name__ == "__main__":
    main()
