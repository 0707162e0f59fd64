"""A small position-controlled λ sweep for the training observatory: aggregation, recency or neither.

The same prompts as ``superpose sweep`` (:func:`superpose.prompts.build_prompt`, task 1 against task
2, the last ``m`` examples held at task 2) and the same slope as
:func:`superpose.experiments.sweep.position_control` (least squares of every prompt's P(task 1) on
λ; a test holds the two equal, since this layer may not import the sweep), scored in one forward pass of the
character model (every answer is one character, so P(answer) is the softmax at the prompt's last
position). The verdict, with n examples and m fixed (docs/scratch.md, "Recency or aggregation?"):

* **aggregation**: with the last m examples task 2's, P(task 1) still follows λ: slope at m
  >= half the counts rule's (n - m)/n;
* **recency**: the plain sweep follows λ (slope at m = 0 >= 0.5) but the fixed-last sweep is flat
  (slope <= 0.1): the answer is read off the last examples;
* **neither**: anything else (e.g. a model that does not follow λ at all, still on a plateau).
"""

from __future__ import annotations

import statistics
from typing import Sequence

import torch

from superpose.prompts import MixtureSpec, build_prompt
from superpose.scratch.tokenizer import char_vocab

LAMBDAS = (0.0, 0.25, 0.5, 0.75, 1.0)
FIXED_LAST = (0, 2)
PAIRS = (("ret_2", "ret_6"), ("plus_2", "plus_7"))  # the study-pair sweeps of docs/scratch.md


def verdict(slopes: dict[int, float | None], n_examples: int) -> str:
    """aggregation / recency / neither from the slopes by number of fixed last examples."""
    m = max(slopes)
    s0, sm = slopes.get(0), slopes[m]
    if s0 is None or sm is None:
        return "neither"
    if m > 0 and sm >= 0.5 * (n_examples - m) / n_examples:
        return "aggregation"
    if s0 >= 0.5 and sm <= 0.1:
        return "recency"
    return "neither"


class LambdaSnapshot:
    """Scores the fixed snapshot prompts with a character model; :meth:`measure` gives slopes and verdict."""

    def __init__(self, task1: str, task2: str, n_examples: int, seed: int, n_prompts: int = 8,
                 lambdas: Sequence[float] = LAMBDAS, fixed_last: Sequence[int] = FIXED_LAST):
        self.task1, self.task2, self.n_examples = task1, task2, n_examples
        self.items, self.prompts = [], []
        for m in fixed_last:
            for lam in lambdas:
                spec = MixtureSpec(tasks=[task1, task2], weights=[lam, 1 - lam], n_examples=n_examples,
                                   fixed_last=m, fixed_task=1)
                for i in range(n_prompts):
                    self.items.append((m, lam))
                    self.prompts.append(build_prompt(spec, seed, i))
        vocab = char_vocab()
        width = max(len(p.text) for p in self.prompts)
        self.ids = torch.zeros((len(self.prompts), width), dtype=torch.long)  # [prompts, seq]
        self.last = torch.tensor([len(p.text) - 1 for p in self.prompts])  # [prompts]
        self.answers = torch.tensor([[vocab[a[0]] for a in p.answers] for p in self.prompts])  # [prompts, 2]
        for j, p in enumerate(self.prompts):
            self.ids[j, : len(p.text)] = torch.tensor([vocab[c] for c in p.text])

    def records(self, model) -> list[dict]:
        """One sweep-style record (lambda, p1, p2, fixed_last, example_tasks) per prompt."""
        device = next(model.parameters()).device
        logits = model(input_ids=self.ids.to(device), use_cache=False).logits.float().cpu()  # [prompts, seq, vocab]
        probs = logits[torch.arange(len(self.prompts)), self.last].softmax(-1)  # [prompts, vocab]
        p = probs.gather(1, self.answers)  # [prompts, 2]
        return [{"lambda": lam, "fixed_last": m, "p1": float(p[j, 0]), "p2": float(p[j, 1]),
                 "example_tasks": "".join(str(t + 1) for t in prompt.example_tasks)}
                for j, ((m, lam), prompt) in enumerate(zip(self.items, self.prompts))]

    @torch.no_grad()
    def measure(self, model) -> dict:
        """{"pair", "slopes" by m, "p1" by m and λ, "verdict"} for ``model`` now."""
        records = self.records(model)
        slopes, curves = {}, {}
        for m in sorted({r["fixed_last"] for r in records}):
            rows = [r for r in records if r["fixed_last"] == m]
            slopes[m] = slope([r["lambda"] for r in rows], [r["p1"] for r in rows])
            curves[str(m)] = [round(statistics.fmean(r["p1"] for r in rows if r["lambda"] == lam), 4)
                              for lam in sorted({r["lambda"] for r in rows})]
        return {"pair": [self.task1, self.task2],
                "slopes": {str(m): (None if s is None else round(s, 4)) for m, s in slopes.items()},
                "p1": curves, "verdict": verdict(slopes, self.n_examples)}


def slope(xs: list[float], ys: list[float]) -> float | None:
    """Least-squares slope of ys on xs (None when xs do not vary): position_control's slope."""
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var if var > 0 else None


def snapshot_for(task_names: Sequence[str], n_examples: int, seed: int) -> LambdaSnapshot | None:
    """The snapshot of the study's pair that ``task_names`` holds (ret_2/ret_6, plus_2/plus_7), else None."""
    for a, b in PAIRS:
        if a in task_names and b in task_names and n_examples > max(FIXED_LAST):
            return LambdaSnapshot(a, b, n_examples, seed)
    return None
