"""Where a plus_k model puts its probability on a mixed prompt: P(answer = query + d mod 10), d = 0..9.

    python scripts/answer_offsets.py runs/scratch/plus_paper/model --tasks 2,7 --lambdas 0.3,0.5,0.7

The λ sweep scores only the two tasks' answers and calls the rest "other". For plus_k the other
answers have a meaning -- offset d is what plus_d would answer -- so this shows whether a model
that does not split between plus_k1 and plus_k2 picks one of them, or a third k of its own.
Prompts: ``--n-examples`` examples, round(λ·n) of them plus_k1 and the rest plus_k2 in a shuffled
order, uniform digits, then a query; prompt i is drawn from ``random.Random(i)``.
"""

from __future__ import annotations

import argparse
import random

import torch


def offset_probabilities(model, tokenizer, k1: int, k2: int, lam: float, n_examples: int,
                         n_prompts: int) -> list[float]:
    """Mean over prompts of P(next token = (query + d) mod 10) for d = 0..9."""
    digit_ids = [tokenizer.convert_tokens_to_ids(str(d)) for d in range(10)]
    total = torch.zeros(10)
    for i in range(n_prompts):
        rng = random.Random(i)
        n1 = round(lam * n_examples)
        ks = [k1] * n1 + [k2] * (n_examples - n1)
        rng.shuffle(ks)
        xs = [rng.randrange(10) for _ in range(n_examples + 1)]
        text = "".join(f"{x}>{(x + k) % 10}\n" for x, k in zip(xs, ks)) + f"{xs[-1]}>"
        ids = tokenizer(text, return_tensors="pt").input_ids  # [1, seq]
        with torch.no_grad():
            probs = model(ids).logits[0, -1].float().softmax(-1)[digit_ids]  # [10], by digit
        total += probs[[(xs[-1] + d) % 10 for d in range(10)]]  # by offset
    return (total / n_prompts).tolist()


def main() -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="a trained model folder (superpose train's model/)")
    ap.add_argument("--tasks", default="2,7", help="k1,k2: the mixed plus_k tasks")
    ap.add_argument("--lambdas", default="0.3,0.5,0.7", help="shares of plus_k1")
    ap.add_argument("--n-examples", type=int, default=100)
    ap.add_argument("--n-prompts", type=int, default=12)
    args = ap.parse_args()
    k1, k2 = (int(k) for k in args.tasks.split(","))
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model).eval()
    print(f"P(offset d) for plus_{k1} vs plus_{k2}, {args.n_examples} examples, {args.n_prompts} prompts each")
    print("   λ  " + " ".join(f"{d:>5}" for d in range(10)))
    for lam in (float(x) for x in args.lambdas.split(",")):
        probs = offset_probabilities(model, tokenizer, k1, k2, lam, args.n_examples, args.n_prompts)
        print(f"{lam:>4.2f}  " + " ".join(f"{p:>5.2f}" for p in probs))


if __name__ == "__main__":
    main()
