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

Each mean (mean P, normalised mean P, top-1 rate, "other" mass, both KLs) carries a bootstrap
confidence interval over prompts, ``<name>_lo`` / ``<name>_hi`` (:mod:`superpose.stats`), at
``ci_level`` (level 95 % by default).

A probability of 0 (an API lower bound that found no path to an answer) makes KL(shares || P)
infinite for that prompt when the task is in context, and a prompt whose K answers all have P = 0
cannot be renormalised. Such prompts are left out of the KL means, counted in ``kl_excluded``, and
``kl_note`` says why; a mean with no prompt left is ``inf``.
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

from superpose.stats import DEFAULT_LEVEL, interval, paired_interval, ratio_interval, sign_test, with_interval


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


def task_statistics(tasks: list[str], logp: np.ndarray, shares: np.ndarray, rng: np.random.Generator | None = None,
                    level: float = DEFAULT_LEVEL) -> dict:
    """All per-task and per-mixture statistics for N prompts x K tasks, with intervals (JSON-serialisable).

    ``rng`` draws the bootstrap resamples (default: a Generator seeded 0).
    """
    rng = rng if rng is not None else np.random.default_rng(0)
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
            **with_interval({"mean": float(p[:, k].mean())}, "mean", interval(p[:, k], rng, level)),
            "variance": float(p[:, k].var(ddof=1)) if n > 1 else None,  # unbiased, as the study
            "variance_biased": float(p[:, k].var()),
            "median": float(np.median(p[:, k])),
            **with_interval({"mean_normalized": _finite_mean(np.exp(normalized[:, k]))}, "mean_normalized",
                            interval(np.exp(normalized[:, k]), rng, level)),
            **with_interval({"top1_rate": float((top == k).mean())}, "top1_rate", interval(top == k, rng, level)),
        }
        for k, t in enumerate(tasks)
    }
    return {
        "n_prompts": n,
        "ci_level": level,
        "tasks": per_task,
        "sorted_means": np.sort(p, axis=1)[:, ::-1].mean(axis=0).tolist(),
        **with_interval({"other_mean": float(other.mean())}, "other_mean", interval(other, rng, level)),
        "other_median": float(np.median(other)),
        **with_interval({"kl": _finite_mean(kl)}, "kl", interval(kl, rng, level)),
        **with_interval({"kl_normalized": _finite_mean(kl_normalized)}, "kl_normalized", interval(kl_normalized, rng, level)),
        **({"kl_excluded": excluded,
            "kl_note": f"{excluded} of {n} prompts left out of the KL means: P = 0 for a task in context "
                       "(an API lower bound that found no path to the answer) makes their KL infinite"}
           if excluded else {}),
    }


def control_statistics(tasks: list[str], logp: np.ndarray, without: list[np.ndarray], single: list[np.ndarray],
                       rng: np.random.Generator, level: float = DEFAULT_LEVEL) -> dict:
    """Per task k: the in-context effect P(answer_k | mixed) − P(answer_k | without k's examples) with a
    paired interval over prompts, and mixed P / single-task P (with interval).

    ``logp`` [N, K] is the mixture's; ``without[k]`` and ``single[k]`` [N, K] are the leave-task-k-out and
    the all-task-k prompts of the same N prompts, in the same order. A task is ``superposed`` when its
    effect's interval lies above 0 (null when there is no interval).
    """
    p = np.exp(np.asarray(logp, dtype=np.float64))  # [N, K]
    out = {}
    for k, task in enumerate(tasks):
        mixed = p[:, k]
        p_without = np.exp(np.asarray(without[k], dtype=np.float64))[:, k]  # [N]
        p_single = np.exp(np.asarray(single[k], dtype=np.float64))[:, k]  # [N]
        effect = with_interval({"effect": float((mixed - p_without).mean())}, "effect",
                               paired_interval(mixed, p_without, rng, level))
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = float(mixed.mean() / p_single.mean()) if p_single.mean() > 0 else None
        out[task] = {
            **effect,
            **with_interval({"mean_without": float(p_without.mean())}, "mean_without", interval(p_without, rng, level)),
            **with_interval({"mean_single": float(p_single.mean())}, "mean_single", interval(p_single, rng, level)),
            **with_interval({"ratio_to_single": ratio}, "ratio_to_single",
                            ratio_interval(mixed, p_single, rng, level) if ratio is not None else None),
            "superposed": None if effect["effect_lo"] is None else bool(effect["effect_lo"] > 0),
        }
    return out


def paired_difference(p_a: np.ndarray, p_b: np.ndarray, rng: np.random.Generator, level: float = DEFAULT_LEVEL) -> dict:
    """mean(P_a − P_b) over the same prompts, its paired interval, and a sign test of the differences."""
    p_a, p_b = np.asarray(p_a, dtype=np.float64), np.asarray(p_b, dtype=np.float64)
    return {**with_interval({"difference": float((p_a - p_b).mean())}, "difference",
                            paired_interval(p_a, p_b, rng, level)),
            **sign_test(p_a - p_b)}


def seed_spread(values) -> dict:
    """Mean, sample standard deviation, min and max of one number across seeds."""
    v = np.asarray(values, dtype=np.float64)
    return {"n_seeds": len(v), "mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else None,
            "min": float(v.min()), "max": float(v.max())}


def verdict(control: dict | None) -> str:
    """The word for one task: "superposed" only when its in-context effect's interval lies above 0."""
    if control is None:
        return "no controls run"
    if control["superposed"] is None:
        return "no interval (one prompt)"
    return "superposed" if control["superposed"] else "not shown (CI reaches 0)"
