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
                low, high = sorted(axis.get_view_interval())
                if 0 < low and high < 10 * low:  # within a decade matplotlib labels the minor ticks instead
                    axis.set_minor_formatter(FuncFormatter(lambda x, _: f"{x:.2g}"))
    if title:  # wrapped to the figure's width, so a one-panel figure does not clip it
        width = max(30, int(fig.get_figwidth() * 11))  # characters per line at 10 pt (about 0.09 in each)
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
    """Mean P(answer) per task and the mean "other" mass with their bootstrap intervals as error bars,
    bars grouped by model, one panel per mixture (``table[model][mixture]["stats"]``: task_statistics)."""
    models = list(table)
    mixtures = list(dict.fromkeys(m for model in models for m in table[model]))
    fig, axes = _grid(1, len(mixtures), width=max(4.2, 1.1 * len(models) + 3))
    width = 0.8 / len(models)
    for c, mixture in enumerate(mixtures):
        ax = axes[0][c]
        labels: list[str] = []
        level = 0.95
        for i, model in enumerate(models):
            entry = table[model].get(mixture)
            if entry is None:
                continue
            stats = entry["stats"]  # metrics.task_statistics: the means and their intervals
            labels = list(entry["tasks"]) + [OTHER]
            cells = [stats["tasks"][t] for t in entry["tasks"]]
            means = [c["mean"] for c in cells] + [stats["other_mean"]]
            bounds = [(c.get("mean_lo"), c.get("mean_hi")) for c in cells]
            bounds.append((stats.get("other_mean_lo"), stats.get("other_mean_hi")))
            errs = np.array([[m - lo, hi - m] if lo is not None else [0.0, 0.0]
                             for m, (lo, hi) in zip(means, bounds)]).T  # [2, K+1]: below, above
            x = np.arange(len(means)) + (i - (len(models) - 1) / 2) * width
            ax.bar(x, means, width, yerr=np.clip(errs, 0, None), capsize=2, label=model, color=_COLORS[i % 10])
            level = stats.get("ci_level", 0.95)
        ax.set_xticks(range(len(labels)), labels, rotation=25, ha="right", fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_title(mixture, fontsize=9)
        if c == 0:
            ax.set_ylabel(f"mean P(answer) ({level:.0%} bootstrap CI)")
    axes[0][-1].legend(fontsize=8)
    return save_figure(fig, path, "Mean probability of each task's answer in mixed-task prompts")


def plot_controls(table: dict, path: Path) -> Path | None:
    """Per (model, mixture) panel: each task's P without its examples, mixed and single-task, with their
    bootstrap intervals (None when no mixture has controls)."""
    panels = [(model, mixture, e["stats"]) for model in table for mixture, e in table[model].items()
              if "controls" in e["stats"]]
    if not panels:
        return None
    fig, axes = _grid(1, len(panels), width=4.6)
    conditions = [("mean_without", "without its examples", "lightgrey"), ("mean", "mixed", "tab:blue"),
                  ("mean_single", "single-task", "tab:green")]
    for c, (model, mixture, stats) in enumerate(panels):
        ax = axes[0][c]
        tasks = list(stats["tasks"])
        for j, (key, label, color) in enumerate(conditions):
            cells = [stats["tasks"][t] if key == "mean" else stats["controls"][t] for t in tasks]
            means = np.array([cell[key] for cell in cells])
            errs = np.array([[m - cell[f"{key}_lo"], cell[f"{key}_hi"] - m] if cell.get(f"{key}_lo") is not None
                             else [0.0, 0.0] for m, cell in zip(means, cells)]).T  # [2, K]
            ax.bar(np.arange(len(tasks)) + (j - 1) * 0.27, means, 0.27, yerr=np.clip(errs, 0, None), capsize=2,
                   label=label, color=color)
        for k, t in enumerate(tasks):  # the verdict above each task's bars
            if stats["controls"][t]["superposed"]:
                ax.text(k, 1.02, "✓", ha="center", va="bottom", fontsize=9)
        ax.set_xticks(range(len(tasks)), tasks, rotation=25, ha="right", fontsize=8)
        ax.set_ylim(0, 1.32)  # room above 1 for the ticks and the legend
        ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0])
        ax.set_title(f"{model}\n{mixture}", fontsize=9)
        if c == 0:
            ax.set_ylabel(f"mean P(answer) ({stats.get('ci_level', 0.95):.0%} CI)")
    axes[0][-1].legend(fontsize=7, loc="upper center", ncol=3, frameon=False)
    return save_figure(fig, path, "Controls: each task's answer without its examples, in the mixture, and with "
                                  "only its examples (✓: in-context effect's interval above 0)")
