"""Attribution by task answer: what each in-context example adds to each task's answer (leave one out).

The effect of example ``i`` on answer ``k`` is ``log P(answer_k | prompt) - log P(answer_k | prompt
without example i)``, both scored exactly by the backend's score path (the n edited prompts go
through :meth:`Backend.score` in batches). Positive: the example raises that answer.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from superpose.backends import Backend, ScoreRequest
from superpose.errors import SuperposeError
from superpose.prompts import MixtureSpec, Prompt


def example_lines(prompt: Prompt, spec: MixtureSpec) -> tuple[str, list[str], str]:
    """(text before the examples, the example lines in order, the separator-joined rest: the query)."""
    head, sep = spec.template.split("{examples}")[0], spec.example_separator
    n = len(prompt.example_tasks)
    if "{" in head or not prompt.text.startswith(head) or not sep:
        raise SuperposeError("attribution needs a template that starts with {examples} (text before it is "
                             "fixed) and a non-empty example_separator")
    parts = prompt.text[len(head):].split(sep)
    lines, rest = parts[:n], sep.join(parts[n:])
    if len(parts) <= n or head + sep.join(lines + [rest]) != prompt.text:
        raise SuperposeError(f"prompt {prompt.index}: cannot split its {n} examples at the separator "
                             f"{sep!r} (an example contains it)")
    return head, lines, rest


def leave_one_out_texts(prompt: Prompt, spec: MixtureSpec) -> list[str]:
    """The prompt's text with example ``i`` removed, for every ``i``."""
    head, lines, rest = example_lines(prompt, spec)
    sep = spec.example_separator
    return [head + sep.join(lines[:i] + lines[i + 1:] + [rest]) for i in range(len(lines))]


def leave_one_out(lm: Backend, text: str, edited: Sequence[str], answers: Sequence[str]) -> tuple[list, list]:
    """(log P of each answer after ``text``, ``effect[i][k]`` = that minus log P after ``edited[i]``),
    all prompts scored in one batched call."""
    scores = lm.score([ScoreRequest(t, answers) for t in [text, *edited]])
    lp = np.array([[c.logprob for c in s] for s in scores])  # [1 + n, K]
    return lp[0].tolist(), (lp[0][None] - lp[1:]).tolist()


def attribution_record(lm: Backend, prompt: Prompt, spec: MixtureSpec) -> dict:
    """``effect[i][k]`` for every example ``i`` and task ``k`` of one prompt (one batched score call)."""
    full, effect = leave_one_out(lm, prompt.text, leave_one_out_texts(prompt, spec), prompt.answers)
    return {"index": prompt.index, "tasks": prompt.tasks, "example_tasks": prompt.example_tasks,
            "logprob": full, "effect": effect}


def task_matrix(record: dict) -> np.ndarray:
    """``[K, K]``: mean effect of the examples of task ``j`` (row) on answer ``k`` (column); NaN where a
    prompt has no example of task ``j``."""
    effect = np.array(record["effect"])  # [n, K]
    ids = np.array(record["example_tasks"])
    k = len(record["tasks"])
    return np.array([effect[ids == j].mean(axis=0) if (ids == j).any() else np.full(k, np.nan) for j in range(k)])


def _mean_interval(x: np.ndarray) -> tuple[float, float, float]:
    """Mean over prompts and its 95% t-interval (half-width NaN for one prompt)."""
    from scipy import stats

    x = x[~np.isnan(x)]
    if len(x) == 0:
        return float("nan"), float("nan"), float("nan")
    m = float(x.mean())
    if len(x) < 2:
        return m, float("nan"), float("nan")
    lo, hi = stats.t.interval(0.95, len(x) - 1, loc=m, scale=stats.sem(x)) if x.std() > 0 else (m, m)
    return m, float(lo), float(hi)


def recency_profile(records: Sequence[dict], bins: int) -> dict:
    """Per task k: the effect of task-k examples on answer k against their position (``bins`` equal
    slices of the prompt, first to last), mean and 95% interval over prompts of each slice's mean."""
    k = len(records[0]["tasks"])
    out = {}
    for t in range(k):
        per_prompt = []  # [N, bins]
        for r in records:
            effect, ids = np.array(r["effect"])[:, t], np.array(r["example_tasks"])
            n = len(ids)
            where = np.minimum((np.arange(n) * bins) // max(n, 1), bins - 1)
            per_prompt.append([effect[(ids == t) & (where == b)].mean() if ((ids == t) & (where == b)).any()
                               else np.nan for b in range(bins)])
        arr = np.array(per_prompt)
        stats = [_mean_interval(arr[:, b]) for b in range(bins)]
        out[records[0]["tasks"][t]] = {"mean": [s[0] for s in stats], "low": [s[1] for s in stats],
                                       "high": [s[2] for s in stats]}
    return out


def summarize_attribution(records: Sequence[dict], bins: int = 10) -> dict:
    """The K x K matrix (mean and 95% interval over prompts), and the recency profile per task."""
    tasks = records[0]["tasks"]
    mats = np.array([task_matrix(r) for r in records])  # [N, K, K]
    cells = [[_mean_interval(mats[:, j, k]) for k in range(len(tasks))] for j in range(len(tasks))]
    last = np.array([np.array(r["effect"])[-1] for r in records])  # [N, K]: the last example's effect
    return {
        "n_prompts": len(records), "n_examples": len(records[0]["example_tasks"]), "tasks": tasks,
        "matrix": [[c[0] for c in row] for row in cells], "matrix_low": [[c[1] for c in row] for row in cells],
        "matrix_high": [[c[2] for c in row] for row in cells],
        "recency": recency_profile(records, bins), "bins": bins,
        "last_example_effect": last.mean(axis=0).tolist(),
    }
