"""Top-K solved and calibration (the study's Section 7 and Appendix E), for one model at a time.

With K tasks in a prompt, a model that runs all K tasks in parallel should rank all K answers among
its K most probable complete outputs. For every prompt we

* enumerate the most probable complete outputs (:mod:`superpose.enumerate`, terminator newline);
* score every task's answer + terminator exactly (the backend's :meth:`~superpose.backends.base.Backend.score`);
* rank each answer among the distinct outputs: task k is **solved** when fewer than K other strings
  are more probable than its answer (ties count in the answer's favour);
* measure calibration: KL(in-context task distribution ‖ P over the K answers), raw (P keeps the
  mass of non-answers, so the KL also charges it) and after renormalising P over the K answers.

An answer's probability for ranking is the larger of the enumerated one (which sums every token
path that spells it, e.g. "82\\n" and "82\\n\\n") and the scorer's (its canonical tokenization only;
used when the search never reached the answer). Calibration uses the scorer's value, as the probe.

The ranking is exact when no unexplored probability could reorder the K-th and (K+1)-th strings:
``topk_exact`` records ``p_K >= p_{K+1} + unexplored mass`` per prompt, and summaries report its rate.

Single-task prompts (K = 1) give the study's baseline: top-1 accuracy, against which the top-K
solved rate on mixed prompts is compared (Appendix E, Table 2).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from superpose.enumerate import Enumeration, OutputEnumerator
from superpose.metrics import kl_to_shares, normalize_logp
from superpose.stats import DEFAULT_LEVEL, interval, with_interval
from superpose.prompts import Prompt
from superpose.display.figures import save_figure

TOP_OUTPUTS_KEPT = 10  # outputs stored per record, for reading the run folder by eye


def answer_probabilities(enum: Enumeration, answers: list[str], scored_logp: list[float]) -> list[float]:
    """P(answer) for ranking: the enumerated (all paths) value, or the scored one when larger."""
    return [max(enum.prob_of(a), math.exp(lp)) for a, lp in zip(answers, scored_logp)]


def answer_ranks(enum: Enumeration, answers: list[str], probs: list[float]) -> tuple[list[int], list[float]]:
    """(0-based rank of each answer among distinct outputs, pool probabilities sorted high to low).

    The pool is every listed terminator-ended output plus the answers themselves (an answer below
    the search's floor still competes with the others). Rank = number of other strings strictly
    more probable, so tied strings share the better rank.
    """
    pool = {o.text: o.prob for o in enum.outputs if o.ended_by == "terminator"}
    for a, p in zip(answers, probs):
        pool[a] = p
    ranks = [sum(1 for t, q in pool.items() if t != a and q > p) for a, p in zip(answers, probs)]
    return ranks, sorted(pool.values(), reverse=True)


def topk_is_exact(pool_sorted: list[float], k: int, unexplored: float) -> bool:
    """True when hidden mass cannot reorder the K-th and (K+1)-th most probable strings."""
    if len(pool_sorted) < k:
        return False
    nxt = pool_sorted[k] if len(pool_sorted) > k else 0.0
    return pool_sorted[k - 1] >= nxt + unexplored


def analyse_prompt(enumerator: OutputEnumerator, prompt: Prompt) -> dict:
    """One record: answers' probabilities and ranks, tasks solved, KL, and the top outputs."""
    terminator = enumerator.settings.terminator
    k = len(prompt.tasks)
    scores = enumerator.lm.score_one(prompt.text, [a + terminator for a in prompt.answers])
    logp = [s.logprob for s in scores]  # [K]
    enum = enumerator.enumerate(prompt.text)
    probs = answer_probabilities(enum, prompt.answers, logp)
    ranks, pool = answer_ranks(enum, prompt.answers, probs)
    solved = [r < k for r in ranks]
    shares = np.array([prompt.in_context_distribution])  # [1, K]
    lp = np.array([logp])  # [1, K]
    return {
        "K": k, "tasks": prompt.tasks, "answers": prompt.answers,
        "shares": prompt.in_context_distribution,
        "logprobs": logp, "answer_probs": probs, "ranks": ranks,
        "solved": solved, "n_solved": int(sum(solved)),
        "kl": float(kl_to_shares(shares, lp)[0]),
        "kl_normalized": float(kl_to_shares(shares, normalize_logp(lp))[0]),
        "top_outputs": [[o.text, o.prob] for o in enum.outputs[:TOP_OUTPUTS_KEPT] if o.ended_by == "terminator"],
        "covered_mass": enum.covered_mass, "unexplored_mass": enum.unexplored_mass,
        "topk_exact": topk_is_exact(pool, k, enum.unexplored_mass),
        "n_expansions": enum.n_expansions, "stop_reason": enum.stop_reason,
        "straddles": [s.straddles for s in scores],
    }


def _mean(xs) -> float | None:
    xs = list(xs)
    return float(np.mean(xs)) if xs else None


def summarize_mixture(records: list[dict]) -> dict:
    """Top-K solved, KL and answer probabilities of one (model, mixture)'s records."""
    first = records[0]
    k, tasks = first["K"], first["tasks"]
    solved = np.array([r["solved"] for r in records], dtype=float)  # [N, K]
    probs = np.exp(np.array([r["logprobs"] for r in records]))  # [N, K]
    shares = np.array([r["shares"] for r in records])  # [N, K]
    n_solved = np.array([r["n_solved"] for r in records])  # [N]
    return {
        "K": k, "n_prompts": len(records), "tasks": tasks,
        "uniform": bool(np.allclose(shares.mean(axis=0), 1.0 / k)),
        "share": shares.mean(axis=0).tolist(),
        "solved_rate": solved.mean(axis=0).tolist(),  # per task
        "mean_p": probs.mean(axis=0).tolist(),  # per task
        "n_solved_mean": float(n_solved.mean()),
        "fraction_solved": float(n_solved.mean() / k),
        "n_solved_hist": [int((n_solved == j).sum()) for j in range(k + 1)],
        "kl": float(np.mean([r["kl"] for r in records])),
        "kl_normalized": float(np.mean([r["kl_normalized"] for r in records])),
        "other_mean": float((1.0 - probs.sum(axis=1)).mean()),
        "covered_mass_mean": float(np.mean([r["covered_mass"] for r in records])),
        "topk_exact_rate": float(np.mean([r["topk_exact"] for r in records])),
    }


def summarize_model(records_by_mixture: dict[str, list[dict]], rng: np.random.Generator | None = None,
                    level: float = DEFAULT_LEVEL) -> dict:
    """Per-mixture summaries plus the model-level numbers the scaling plot needs, the curves' numbers with
    bootstrap intervals over prompts (``kl_lo``, ``kl_hi``, ...)."""
    rng = rng if rng is not None else np.random.default_rng(0)
    mixtures = {m: summarize_mixture(rs) for m, rs in records_by_mixture.items() if rs}
    mixed = {m: s for m, s in mixtures.items() if s["K"] > 1}
    single = {m: s for m, s in mixtures.items() if s["K"] == 1}
    mixed_records = [r for m in mixed for r in records_by_mixture[m]]
    per_prompt = {"kl": [r["kl"] for r in mixed_records], "kl_normalized": [r["kl_normalized"] for r in mixed_records],
                  "fraction_solved": [r["n_solved"] / r["K"] for r in mixed_records],
                  "all_solved_rate": [r["n_solved"] == r["K"] for r in mixed_records],
                  "single_top1": [r["solved"][0] for m in single for r in records_by_mixture[m]]}
    intervals: dict = {"ci_level": level}
    for key, values in per_prompt.items():
        with_interval(intervals, key, interval(np.asarray(values, dtype=float), rng, level) if values else None)
    return {
        **intervals,
        "mixtures": mixtures,
        # Averages over prompts (not mixtures) of the mixed (K > 1) prompts.
        "kl": _mean(r["kl"] for r in mixed_records),
        "kl_normalized": _mean(r["kl_normalized"] for r in mixed_records),
        "fraction_solved": _mean(r["n_solved"] / r["K"] for r in mixed_records),
        "n_solved": _mean(r["n_solved"] for r in mixed_records),
        "all_solved_rate": _mean(r["n_solved"] == r["K"] for r in mixed_records),
        "uniform_fraction_solved": _mean(
            r["n_solved"] / r["K"] for m, s in mixed.items() if s["uniform"] for r in records_by_mixture[m]),
        "single_top1": _mean(s["solved_rate"][0] for s in single.values()),
        "topk_exact_rate": _mean(r["topk_exact"] for rs in records_by_mixture.values() for r in rs),
        "table2": table2_rows(mixtures),
    }


def table2_rows(mixtures: dict[str, dict]) -> list[dict]:
    """Appendix E, Table 2: per task, top-1 accuracy alone (K = 1) against top-K solved when mixed.

    The mixed column averages the uniform mixtures (equal shares) holding the task, or every mixed
    mixture holding it when none is uniform, weighting by prompts.
    """
    rows = []
    tasks = list(dict.fromkeys(t for s in mixtures.values() for t in s["tasks"]))
    for task in tasks:
        single = [s for s in mixtures.values() if s["K"] == 1 and s["tasks"] == [task]]
        mixed = [s for s in mixtures.values() if s["K"] > 1 and task in s["tasks"]]
        chosen = [s for s in mixed if s["uniform"]] or mixed
        n = sum(s["n_prompts"] for s in chosen)
        rate = (sum(s["solved_rate"][s["tasks"].index(task)] * s["n_prompts"] for s in chosen) / n
                if n else None)
        rows.append({
            "task": task,
            "single_top1": single[0]["solved_rate"][0] if single else None,
            "mixed_topk": rate,
            "mixed_K": sorted({s["K"] for s in chosen}),
            "mixed_prompts": n,
        })
    return rows


def plot_reliability(points: dict[str, list[tuple[float, float]]], path: Path, title: str = "") -> Path:
    """P(answer) against the task's share in the prompt, one panel per model, with binned means.

    ``points[model] = [(share, P(answer)), ...]`` over every task of every mixed prompt.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(points)
    fig, axes = plt.subplots(1, len(models), figsize=(3.6 * len(models), 3.6), squeeze=False)
    rng = np.random.default_rng(0)  # jitter only, so that equal shares do not hide each other
    for ax, model in zip(axes[0], models):
        data = np.array(points[model], dtype=float).reshape(-1, 2)  # [n, 2]
        ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfect calibration")
        if len(data):
            x = data[:, 0] + rng.uniform(-0.012, 0.012, len(data))
            ax.scatter(x, data[:, 1], s=7, alpha=0.3, color="tab:blue", label="one answer")
            shares = np.unique(np.round(data[:, 0], 3))
            means = [data[np.isclose(np.round(data[:, 0], 3), s), 1].mean() for s in shares]
            ax.plot(shares, means, "o-", color="tab:red", label="mean at share")
        ax.set_xlim(-0.03, 1.03)
        ax.set_ylim(-0.03, 1.03)
        ax.set_title(model, fontsize=9)
        ax.set_xlabel("task's share of the in-context examples")
        ax.set_ylabel("P(task's answer)")
    axes[0][0].legend(fontsize=7, loc="upper left")
    return save_figure(fig, path, title)
