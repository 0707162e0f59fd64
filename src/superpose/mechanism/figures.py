"""Figures of the mechanism run: the lens by task, the K x K attribution matrix, the recency profile,
the prompt coloured by attribution, and the head-ablation map beside induction scores."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import TwoSlopeNorm  # noqa: E402

from superpose.display.figures import save_figure  # noqa: E402

_COLORS = plt.get_cmap("tab10").colors


def plot_lens(summary: dict, path: Path, title: str) -> Path:
    """Mean P(answer's first token) read at each layer, one line per task, interquartile band; dashed:
    the task's in-context share; dot at the right: the exact first-token P at the output."""
    fig, ax = plt.subplots(figsize=(6.8, 4.0))
    for i, (t, s) in enumerate(summary["tasks"].items()):
        c = _COLORS[i % 10]
        x = np.arange(len(s["mean_prob"]))
        ax.plot(x, s["mean_prob"], color=c, marker="o", ms=3, label=f"{t} (in the top 10 from layer {s.get('first_layer_top10')})")
        ax.fill_between(x, s["q25_prob"], s["q75_prob"], color=c, alpha=0.15, lw=0)
        ax.axhline(s["share"], color=c, ls="--", lw=1)
        ax.plot([x[-1] + 0.6], [s["exact_first_token_mean_prob"]], marker="D", color=c, ms=5)
    ax.set(xlabel="layer (residual stream after it, read through the final norm and unembedding)",
           ylabel="mean P(answer's first token)", ylim=(0, None))
    ax.legend(fontsize=7, loc="upper left")
    return save_figure(fig, path, f"{title} — logit lens, {summary['n_prompts']} prompts (band: quartiles; "
                                  "dashed: in-context share; ◆: exact output)")


def plot_matrix(summary: dict, path: Path, title: str) -> Path:
    """The K x K matrix: mean effect of task-j examples (rows) on log P(answer k) (columns)."""
    m = np.array(summary["matrix"], dtype=float)
    tasks = summary["tasks"]
    fig, ax = plt.subplots(figsize=(1.4 * len(tasks) + 2.4, 1.1 * len(tasks) + 1.6))
    lim = max(np.nanmax(np.abs(m)), 1e-6)
    im = ax.imshow(m, cmap="RdBu_r", norm=TwoSlopeNorm(0, -lim, lim))
    lo, hi = np.array(summary["matrix_low"], dtype=float), np.array(summary["matrix_high"], dtype=float)
    for j in range(len(tasks)):
        for k in range(len(tasks)):
            ax.text(k, j, f"{m[j, k]:+.3f}\n[{lo[j, k]:+.3f}, {hi[j, k]:+.3f}]", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(tasks)), tasks, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(tasks)), tasks, fontsize=8)
    ax.set(xlabel="answer of task k", ylabel="examples of task j")
    fig.colorbar(im, ax=ax, label="mean Δ log P (example present − removed)")
    return save_figure(fig, path, f"{title} — leave-one-out, {summary['n_prompts']} prompts × "
                                  f"{summary['n_examples']} examples (95% t-interval over prompts)")


def plot_recency(summary: dict, path: Path, title: str) -> Path:
    """Effect of a task's examples on its own answer against where they sit in the prompt."""
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    bins = summary["bins"]
    x = (np.arange(bins) + 0.5) / bins
    for i, (t, s) in enumerate(summary["recency"].items()):
        c = _COLORS[i % 10]
        ax.plot(x, s["mean"], color=c, marker="o", ms=3, label=t)
        ax.fill_between(x, np.array(s["low"], float), np.array(s["high"], float), color=c, alpha=0.15, lw=0)
    ax.axhline(0, color="0.5", lw=0.8)
    ax.set(xlabel="position of the example in the prompt (0 = first, 1 = last)",
           ylabel="Δ log P(own task's answer)")
    ax.legend(fontsize=7)
    return save_figure(fig, path, f"{title} — recency: own-task effect by position, {summary['n_prompts']} "
                                  "prompts (band: 95% t-interval)")


def plot_prompt(lines: Sequence[str], effect: Sequence[float], tasks: Sequence[str], example_tasks: Sequence[int],
                task: str, path: Path, title: str) -> Path:
    """The prompt's examples in reading order, each coloured by its effect on ``task``'s answer."""
    n = len(lines)
    cols = max(1, int(np.ceil(n / 20)))
    rows = int(np.ceil(n / cols))
    fig, ax = plt.subplots(figsize=(2.3 * cols + 1.5, 0.24 * rows + 1.2))
    lim = max(float(np.max(np.abs(effect))), 1e-6)
    cmap, norm = plt.get_cmap("RdBu_r"), TwoSlopeNorm(0, -lim, lim)
    for i, (line, e) in enumerate(zip(lines, effect)):
        c, r = divmod(i, rows)
        ax.text(c / cols, 1 - (r + 0.5) / rows, f"{line}  [{tasks[example_tasks[i]]}] {e:+.2f}", fontsize=7,
                family="monospace", va="center", bbox={"facecolor": cmap(norm(e)), "edgecolor": "none", "pad": 1})
    ax.axis("off")
    fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=f"Δ log P({task})", fraction=0.03)
    return save_figure(fig, path, f"{title} — each example coloured by its effect on {task}'s answer")


def plot_heads(delta_p: np.ndarray, induction: np.ndarray, tasks: Sequence[str], path: Path, title: str) -> Path:
    """Per task, mean ΔP when each head is ablated (layers × heads), and the induction scores."""
    k = len(tasks)
    fig, axes = plt.subplots(1, k + 1, figsize=(2.6 * (k + 1) + 1, 0.18 * induction.shape[0] + 1.8), squeeze=False)
    lim = max(float(np.max(np.abs(delta_p))), 1e-6)
    for i, t in enumerate(tasks):
        ax = axes[0, i]
        im = ax.imshow(delta_p[:, :, i], cmap="RdBu_r", norm=TwoSlopeNorm(0, -lim, lim), aspect="auto")
        ax.set(title=f"ΔP({t})", xlabel="head", ylabel="layer" if i == 0 else None)
    fig.colorbar(im, ax=axes[0, k - 1], fraction=0.05)
    ax = axes[0, k]
    im2 = ax.imshow(induction, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    ax.set(title="induction score", xlabel="head")
    fig.colorbar(im2, ax=ax, fraction=0.05)
    return save_figure(fig, path, f"{title} — mean-ablating each head")
