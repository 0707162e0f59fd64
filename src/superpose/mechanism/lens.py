"""The logit lens by task answer: log P(each answer's first token) read from every layer's residual stream.

At the last prompt token, the output of decoder layer ``l`` is passed through the model's final norm
and unembedding (:meth:`HFBackend.lens_logprobs`). At the last layer this is the model's own
next-token distribution, so the lens there equals the exact log-probability of each answer's first
token; beside it, the record keeps the exact full-answer log-probability from the same prompt pass.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from superpose.backends import ScoreRequest
from superpose.backends.base import Heads
from superpose.prompts import Prompt


def lens_of(lm: Heads, requests: Sequence[ScoreRequest]) -> list[dict]:
    """Per request (a prompt and the K answers): ``lens[k][l]`` = log P(answer k's first token) read from
    layer ``l``, ``vocab_rank[k][l]`` (tokens ranked above it there), and the exact first-token and
    full-answer log-probabilities from the same prompt pass."""
    layers = list(range(lm.n_layers))
    scores, resid = lm.score_with_residuals(requests, layers)
    out = []
    for row, s in enumerate(scores):
        first = [c.token_ids[0] for c in s]
        hidden = torch.stack([resid[layer][row] for layer in layers])  # [layers, d_model]
        lp = lm.lens_logprobs(hidden)  # [layers, vocab]
        lens = lp[:, first].T  # [K, layers]
        # int32 sum: summing bools to the default int64 was a tenth of a prompt pass (benchmarks/mechanism.py)
        ranks = (lp[:, None, :] > lp[:, first][:, :, None]).sum(-1, dtype=torch.int32).T  # [K, layers]
        out.append({"lens": lens.tolist(), "vocab_rank": ranks.tolist(),
                    "first_logprob": [c.token_logprobs[0] for c in s], "logprob": [c.logprob for c in s]})
    return out


def lens_records(lm: Heads, prompts: Sequence[Prompt]) -> list[dict]:
    """:func:`lens_of` for mixture prompts, each record with the prompt's index, tasks, answers and shares."""
    found = lens_of(lm, [ScoreRequest(p.text, p.answers) for p in prompts])
    return [{"index": p.index, "tasks": p.tasks, "answers": p.answers, "shares": p.in_context_distribution, **r}
            for p, r in zip(prompts, found)]


def first_layer_on_top(mean_lens: np.ndarray) -> list[int | None]:
    """Per task, the first layer at which its mean lens log-prob exceeds every other task's (None: never)."""
    k, _ = mean_lens.shape
    out: list[int | None] = []
    for t in range(k):
        others = np.delete(mean_lens, t, axis=0)  # [K-1, layers]
        above = np.nonzero((mean_lens[t] > others.max(axis=0)) if k > 1 else np.ones(mean_lens.shape[1], bool))[0]
        out.append(int(above[0]) if len(above) else None)
    return out


def _first_below(values: np.ndarray, limit: float) -> int | None:
    """The first layer whose value is below ``limit`` (None: none)."""
    below = np.nonzero(values < limit)[0]
    return int(below[0]) if len(below) else None


def summarize_lens(records: list[dict]) -> dict:
    """Per task and layer: mean, std and quartiles of the lens log-prob over prompts; mean P; the first
    layer on top (its mean lens log-prob above every other task's) and the first layer at which the
    answer's median rank in the vocabulary is below 10; the exact first-token and full-answer log-probabilities for comparison."""
    lens = np.array([r["lens"] for r in records])  # [N, K, layers]
    tasks = records[0]["tasks"]
    mean = lens.mean(axis=0)  # [K, layers]
    probs = np.exp(lens)
    first = first_layer_on_top(mean)
    share = np.array([r["shares"] for r in records]).mean(axis=0)
    exact_first = np.array([r["first_logprob"] for r in records])  # [N, K]
    exact = np.array([r["logprob"] for r in records])  # [N, K]
    ranks = np.array([r["vocab_rank"] for r in records])  # [N, K, layers]
    # Answers whose first tokens coincide cannot be told apart by the lens: also report the others alone.
    distinct = np.array([len({a[:1] for a in r["answers"]}) == len(r["answers"]) for r in records])
    probs_distinct = probs[distinct] if distinct.any() else probs[:0]
    return {
        "n_prompts": len(records), "n_layers": lens.shape[2], "n_distinct_first": int(distinct.sum()),
        "tasks": {t: {
            "share": float(share[k]),
            "mean_logprob": mean[k].round(4).tolist(), "std_logprob": lens[:, k].std(axis=0, ddof=1).round(4).tolist()
            if len(records) > 1 else [0.0] * lens.shape[2],
            "mean_prob": probs[:, k].mean(axis=0).round(5).tolist(),
            "mean_prob_distinct_first": probs_distinct[:, k].mean(axis=0).round(5).tolist() if len(probs_distinct) else None,
            "q25_prob": np.quantile(probs[:, k], 0.25, axis=0).round(5).tolist(),
            "q75_prob": np.quantile(probs[:, k], 0.75, axis=0).round(5).tolist(),
            "median_vocab_rank": np.median(ranks[:, k], axis=0).tolist(),
            "first_layer_on_top": first[k],
            "first_layer_top10": _first_below(np.median(ranks[:, k], axis=0), 10),
            "exact_first_token_mean_prob": float(np.exp(exact_first[:, k]).mean()),
            "exact_answer_mean_prob": float(np.exp(exact[:, k]).mean()),
        } for k, t in enumerate(tasks)},
    }
