"""Confidence intervals and paired tests over prompts: the one place superpose computes uncertainty.

Every presenter (summary.json and summary.md, the console, figures, the HTML report, the notebook
DataFrames) reads the intervals these functions write; none computes its own.

* :func:`interval` -- a bootstrap confidence interval of a statistic (default: the mean) of
  per-prompt values, from ``scipy.stats.bootstrap``;
* :func:`paired_interval` -- the same for a statistic of two paired samples (the in-context effect
  mean(mixed) − mean(without k), a ratio of means, a difference between two models on the same prompts);
* :func:`sign_test` -- a two-sided sign test of paired differences (``scipy.stats.binomtest``);
* :func:`generator` -- the seeded ``numpy.random.Generator`` of one (seed, label), so an interval does
  not depend on which other intervals were computed before it.

Degenerate samples: one prompt gives no interval (``None``, written as null); values that are all
equal give the interval ``[v, v]`` (every resample has the same statistic).
"""

from __future__ import annotations

import hashlib
import warnings
from typing import Callable

import numpy as np
from scipy import stats as sps

DEFAULT_LEVEL = 0.95
N_RESAMPLES = 4999  # a 95 % endpoint's Monte-Carlo error is ~1 % of the interval's width at this count
# BCa, not percentile: per-prompt probabilities are bounded and skewed (most near 0 or near 1), and
# with tens of prompts a percentile interval of such a mean is biased and under-covers; BCa corrects
# for the bias and the skew. It is undefined when the jackknife has no spread (then: percentile).
METHOD = "BCa"

Interval = tuple[float, float] | None


def generator(seed: int, *labels: object) -> np.random.Generator:
    """A Generator seeded by the run's seed and a label (e.g. model, mixture): stable, order-free."""
    digest = hashlib.sha256(repr((seed, labels)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _mean(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x, axis=axis)


def _bootstrap(data: tuple[np.ndarray, ...], statistic: Callable, rng: np.random.Generator, level: float,
               paired: bool) -> Interval:
    for method in (METHOD, "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scipy warns for degenerate BCa; the NaN check below handles it
            res = sps.bootstrap(data, statistic, n_resamples=N_RESAMPLES, confidence_level=level,
                                method=method, paired=paired, vectorized=True, random_state=rng)
        lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
        if np.isfinite(lo) and np.isfinite(hi):
            return lo, hi
    return None


def interval(values, rng: np.random.Generator, level: float = DEFAULT_LEVEL,
             statistic: Callable = _mean) -> Interval:
    """Bootstrap CI of ``statistic`` of per-prompt ``values`` [N]; None for N < 2, [v, v] if all equal."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if len(x) < 2:
        return None
    if np.all(x == x[0]):
        v = float(statistic(x))
        return v, v
    return _bootstrap((x,), statistic, rng, level, paired=False)


def _difference(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x, axis=axis) - np.mean(y, axis=axis)


def _ratio(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.mean(x, axis=axis) / np.mean(y, axis=axis)


def paired_interval(x, y, rng: np.random.Generator, level: float = DEFAULT_LEVEL,
                    statistic: Callable = _difference) -> Interval:
    """Paired bootstrap CI (prompts resampled together) of ``statistic(x, y)``; default mean(x) − mean(y)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(x) < 2:
        return None
    if np.all(x == x[0]) and np.all(y == y[0]):
        v = float(statistic(x, y))
        return (v, v) if np.isfinite(v) else None
    return _bootstrap((x, y), statistic, rng, level, paired=True)


def ratio_interval(x, y, rng: np.random.Generator, level: float = DEFAULT_LEVEL) -> Interval:
    """Paired bootstrap CI of mean(x) / mean(y) (None when mean(y) is 0 in resamples)."""
    return paired_interval(x, y, rng, level, statistic=_ratio)


def sign_test(differences) -> dict:
    """Two-sided sign test of paired differences (ties dropped): counts above and below 0, and p."""
    d = np.asarray(differences, dtype=np.float64)
    above, below = int((d > 0).sum()), int((d < 0).sum())
    p = float(sps.binomtest(above, above + below).pvalue) if above + below else 1.0
    return {"n_above": above, "n_below": below, "p_value": p}


def with_interval(out: dict, key: str, ci: Interval) -> dict:
    """Add ``key_lo`` / ``key_hi`` (null without an interval) beside ``out[key]``; returns ``out``."""
    out[f"{key}_lo"], out[f"{key}_hi"] = (None, None) if ci is None else ci
    return out


def fmt(value: float | None, lo: float | None = None, hi: float | None = None, digits: int = 3) -> str:
    """``0.147 [0.090, 0.210]``; the value alone without an interval, "–" without a value."""
    if value is None:
        return "–"
    text = f"{value:.{digits}f}"
    return text if lo is None or hi is None else f"{text} [{lo:.{digits}f}, {hi:.{digits}f}]"


def fmt_key(d: dict, key: str, digits: int = 3) -> str:
    """:func:`fmt` of ``d[key]`` with its ``key_lo`` / ``key_hi`` when present."""
    return fmt(d.get(key), d.get(f"{key}_lo"), d.get(f"{key}_hi"), digits)
