"""Probe figures: the study's Figure 2 (distribution of P(answer) per task) and a bar chart of means.

Both read the per-prompt records, so a finished (or interrupted) run can be re-plotted at any time.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

# Task, mixture and model names are user text: "$x$" must print as typed, not as math.
plt.rcParams["text.parse_math"] = False

OTHER = "other"
_COLORS = plt.get_cmap("tab10").colors


def save_figure(fig, path: str | Path, title: str | None = None) -> Path:
    """Lay out, write (PNG, 130 dpi, parent folders created) and close a figure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for ax in fig.axes:  # log axes label ticks with math text, which parse_math=False would print raw
        for axis in (ax.xaxis, ax.yaxis):
            if axis.get_scale() == "log":
                axis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    if title:  # wrapped to the figure's width, so a one-panel figure does not clip it
        width = max(30, int(fig.get_figwidth() * 13))  # characters per line at 10 pt
        fig.suptitle(textwrap.fill(title, width), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def _grid(n_rows: int, n_cols: int, width: float = 4.2, height: float = 3.4):
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(width * n_cols, height * n_rows), squeeze=False)
    return fig, axes


def plot_distributions(table: dict, path: Path) -> Path:
    """Box + strip plot of P(answer) per task, with the "other" mass, one panel per (model, mixture).

    ``table[model][mixture] = {"tasks": [...], "probs": [N, K] array, "shares": [K]}``.
    """
    models = list(table)
    mixtures = list(dict.fromkeys(m for model in models for m in table[model]))
    fig, axes = _grid(len(models), len(mixtures))
    rng = np.random.default_rng(0)  # jitter only
    for r, model in enumerate(models):
        for c, mixture in enumerate(mixtures):
            ax = axes[r][c]
            entry = table[model].get(mixture)
            if entry is None:
                ax.set_visible(False)
                continue
            probs = np.asarray(entry["probs"])  # [N, K]
            columns = [probs[:, k] for k in range(probs.shape[1])] + [1.0 - probs.sum(axis=1)]
            labels = list(entry["tasks"]) + [OTHER]
            ax.boxplot(columns, showfliers=False, widths=0.55, medianprops={"color": "black"})
            for k, values in enumerate(columns):
                color = _COLORS[k % 10] if k < len(entry["tasks"]) else "grey"
                x = k + 1 + rng.uniform(-0.18, 0.18, size=len(values))
                ax.scatter(x, values, s=9, alpha=0.55, color=color, linewidths=0)
            for k, share in enumerate(entry["shares"]):
                ax.hlines(share, k + 0.65, k + 1.35, colors="red", linestyles="dashed", linewidth=1)
            ax.set_xticks(range(1, len(labels) + 1), labels, rotation=25, ha="right", fontsize=8)
            ax.set_ylim(-0.02, 1.02)
            ax.set_title(f"{model}\n{mixture} ({len(probs)} prompts)", fontsize=9)
            if c == 0:
                ax.set_ylabel("P(task's answer | prompt)")
    return save_figure(fig, path, "Probability of each task's answer after a mixed-task prompt "
                                  "(dashed red: the task's share of the examples)")


def plot_means(table: dict, path: Path) -> Path:
    """Mean P(answer) per task and the mean "other" mass, bars grouped by model, one panel per mixture."""
    models = list(table)
    mixtures = list(dict.fromkeys(m for model in models for m in table[model]))
    fig, axes = _grid(1, len(mixtures), width=max(4.2, 1.1 * len(models) + 3))
    width = 0.8 / len(models)
    for c, mixture in enumerate(mixtures):
        ax = axes[0][c]
        labels: list[str] = []
        for i, model in enumerate(models):
            entry = table[model].get(mixture)
            if entry is None:
                continue
            probs = np.asarray(entry["probs"])
            columns = [probs[:, k] for k in range(probs.shape[1])] + [1.0 - probs.sum(axis=1)]
            labels = list(entry["tasks"]) + [OTHER]
            means = [v.mean() for v in columns]
            errs = [v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else 0.0 for v in columns]
            x = np.arange(len(columns)) + (i - (len(models) - 1) / 2) * width
            ax.bar(x, means, width, yerr=errs, capsize=2, label=model, color=_COLORS[i % 10])
        ax.set_xticks(range(len(labels)), labels, rotation=25, ha="right", fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_title(mixture, fontsize=9)
        if c == 0:
            ax.set_ylabel("mean P(answer) (±1 s.e.)")
    axes[0][-1].legend(fontsize=8)
    return save_figure(fig, path, "Mean probability of each task's answer in mixed-task prompts")
