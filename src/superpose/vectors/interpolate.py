"""Interpolation (the study's Figure 5): patch ``v(λ) = (1 - λ) v1 + λ v2`` into zero-shot queries.

The whole λ grid is one batch: ``len(lambdas)`` copies of the query, row ``i`` patched with
``v(lambdas[i])``. The reference curve comes from real prompts whose examples are task 1 with share
``1 - λ`` and task 2 with share ``λ``, scored without any patch.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from superpose.backends.base import Residual, ScoreRequest
from superpose.progress import track
from superpose.prompts import Counts, MixtureSpec, build_prompt
from superpose.backends.residual import Patch
from superpose.vectors.patched import patched_logprobs
from superpose.vectors.queries import Query

REAL_PROMPT_OFFSET = 10_000  # prompt indices for the reference curve, apart from the extraction prompts


def lambda_grid(n_points: int) -> list[float]:
    """``n_points`` evenly spaced values from 0 to 1."""
    return [i / (n_points - 1) for i in range(n_points)]


def interpolation_vectors(v1: torch.Tensor, v2: torch.Tensor, lambdas: Sequence[float]) -> torch.Tensor:
    """``(1 - λ) v1 + λ v2`` for each λ: ``[n_lambdas, d_model]``."""
    lam = torch.tensor(list(lambdas), dtype=v1.dtype)[:, None]  # [n, 1]
    return (1 - lam) * v1[None] + lam * v2[None]


def interpolate_query(lm: Residual, query: Query, answers: Sequence[str], layer: int,
                      vectors: torch.Tensor) -> np.ndarray:
    """log P(answer_k) with row ``i`` patched by ``vectors[i]`` at ``layer``, one batched pass: ``[n, K]``."""
    return patched_logprobs(lm, query.text, answers, vectors.shape[0], [Patch(layer=layer, vectors=vectors)])


def interpolate(lm: Residual, queries: Sequence[Query], tasks: Sequence[str], layer: int,
                vectors: torch.Tensor) -> np.ndarray:
    """log P of each task's answer for every query and vector: ``[Q, n_vectors, K]``."""
    return np.stack([interpolate_query(lm, q, [q.answers[t] for t in tasks], layer, vectors)
                     for q in track(queries, f"interpolating at layer {layer}")])


def real_mixture_curve(lm: Residual, task1: str, task2: str, lambdas: Sequence[float], n_prompts: int,
                       n_examples: int, seed: int, counts: Counts = "exact",
                       other_tasks: Sequence[str] = ()) -> np.ndarray:
    """log P of each answer (task1, task2, then ``other_tasks``) after real mixed prompts: ``[n_lambdas, n_prompts, K]``.

    Prompt ``i`` at every λ comes from the same seed, so the inputs are the same and only which task
    answers each example changes.
    """
    others = [o for o in other_tasks if o not in (task1, task2)]
    out = np.zeros((len(lambdas), n_prompts, 2 + len(others)))
    jobs = [(li, i) for li in range(len(lambdas)) for i in range(n_prompts)]
    requests = []
    for li, i in jobs:
        lam = lambdas[li]
        spec = MixtureSpec(tasks=[task1, task2, *others], weights=[1 - lam, lam] + [0.0] * len(others),
                           n_examples=n_examples, counts=counts)
        prompt = build_prompt(spec, seed, REAL_PROMPT_OFFSET + i)
        requests.append(ScoreRequest(prompt.text, prompt.answers))
    for k, scores in track(lm.stream(requests), "real mixed prompts", total=len(jobs)):
        li, i = jobs[k]
        out[li, i] = [s.logprob for s in scores]
    return out


def monotonicity(values: Sequence[float]) -> dict:
    """How monotone a curve is: direction, count of steps against it, and Spearman's rho with the index."""
    v = np.asarray(values, dtype=np.float64)
    steps = np.diff(v)
    direction = 1 if v[-1] >= v[0] else -1
    against = int(np.sum(steps * direction < 0))
    ranks = np.argsort(np.argsort(v))
    idx = np.arange(len(v))
    rho = float(np.corrcoef(ranks, idx)[0, 1]) if len(v) > 1 and np.std(ranks) > 0 else 0.0
    return {"direction": "increasing" if direction > 0 else "decreasing", "steps_against": against,
            "largest_step_against": float(max(0.0, -(steps * direction).min())) if len(steps) else 0.0,
            "spearman_rho": rho, "monotone": against == 0}
