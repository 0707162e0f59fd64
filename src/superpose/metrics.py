"""Statistics of task superposition over many prompts.

Input is a matrix of log-probabilities ``logp[n, k] = log P(answer of task k | prompt n)`` and the
in-context task distribution of each prompt ``shares[n, k]`` (the fraction of its examples drawn
from task k). Everything is computed from log-probabilities, so a tiny probability never becomes
``log(0)``.

* mean / variance / median of P(answer_k) across prompts. ``variance`` is the unbiased sample
  variance (ddof=1), the one the study reports (``torch.var``); ``variance_biased`` divides by N.
  With one prompt the unbiased variance is undefined and written as null;
* mean of the sorted probabilities: per prompt sort the K probabilities (largest first), then
  average each rank -- shows whether the model commits to one task or spreads evenly;
* "other" mass: ``1 - sum_k P(answer_k)``, what the model gives to anything that is no task's answer;
* KL(shares || P): how far the model's probabilities are from the in-context task mix. With raw
  probabilities the KL also charges the "other" mass; ``kl_normalized`` first renormalises P over
  the K answers and measures only the split between tasks;
* top-1 rate: how often task k's answer is the most probable of the K answers.

A probability of 0 (an API lower bound that found no path to an answer) makes KL(shares || P)
infinite for that prompt when the task is in context, and a prompt whose K answers all have P = 0
cannot be renormalised. Such prompts are left out of the KL means, counted in ``kl_excluded``, and
``kl_note`` says why; a mean with no prompt left is ``inf``.
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp


def kl_to_shares(shares: np.ndarray, logp: np.ndarray) -> np.ndarray:
    """Per-prompt KL(shares || P) in nats, from log-probabilities; terms with share 0 contribute 0."""
    shares = np.asarray(shares, dtype=np.float64)
    logp = np.asarray(logp, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(shares > 0, shares * (np.log(np.where(shares > 0, shares, 1.0)) - logp), 0.0)
    return terms.sum(axis=-1)


def normalize_logp(logp: np.ndarray) -> np.ndarray:
    """log P renormalised over the K answers (each row sums to 1 in probability; NaN where all are 0)."""
    logp = np.asarray(logp, dtype=np.float64)
    total = logsumexp(logp, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore"):  # -inf - -inf: a row with nothing to renormalise
        return np.where(np.isfinite(total), logp - total, np.nan)


def _finite_mean(values: np.ndarray) -> float:
    """Mean of the finite values (``inf`` when there are none)."""
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if len(finite) else float("inf")


def task_statistics(tasks: list[str], logp: np.ndarray, shares: np.ndarray) -> dict:
    """All per-task and per-mixture statistics for N prompts x K tasks (JSON-serialisable)."""
    logp = np.asarray(logp, dtype=np.float64)  # [N, K]
    shares = np.asarray(shares, dtype=np.float64)  # [N, K]
    if logp.ndim != 2 or logp.shape != shares.shape or logp.shape[1] != len(tasks):
        raise ValueError(f"expected logp and shares of shape [N, {len(tasks)}], got {logp.shape}, {shares.shape}")
    p = np.exp(logp)
    n = len(p)
    top = np.argmax(logp, axis=1)
    other = 1.0 - p.sum(axis=1)
    normalized = normalize_logp(logp)  # [N, K]
    kl, kl_normalized = kl_to_shares(shares, logp), kl_to_shares(shares, normalized)  # [N] each
    excluded = int((~np.isfinite(kl) | ~np.isfinite(kl_normalized)).sum())
    per_task = {
        t: {
            "share": float(shares[:, k].mean()),
            "mean": float(p[:, k].mean()),
            "variance": float(p[:, k].var(ddof=1)) if n > 1 else None,  # unbiased, as the study
            "variance_biased": float(p[:, k].var()),
            "median": float(np.median(p[:, k])),
            "mean_normalized": _finite_mean(np.exp(normalized[:, k])),
            "top1_rate": float((top == k).mean()),
        }
        for k, t in enumerate(tasks)
    }
    return {
        "n_prompts": n,
        "tasks": per_task,
        "sorted_means": np.sort(p, axis=1)[:, ::-1].mean(axis=0).tolist(),
        "other_mean": float(other.mean()),
        "other_median": float(np.median(other)),
        "kl": _finite_mean(kl),
        "kl_normalized": _finite_mean(kl_normalized),
        **({"kl_excluded": excluded,
            "kl_note": f"{excluded} of {n} prompts left out of the KL means: P = 0 for a task in context "
                       "(an API lower bound that found no path to the answer) makes their KL infinite"}
           if excluded else {}),
    }
