"""Figures of the task-vector steps: layer profile, 2-D projection (Fig. 4), interpolation (Fig. 5), steering."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import numpy as np  # noqa: E402
from superpose.display.figures import save_figure

_COLORS = plt.get_cmap("tab10").colors
_REST = "0.55"


def _save(fig, path: Path) -> Path:
    return save_figure(fig, path)


def plot_layers(layers: Sequence[int], correct: np.ndarray, baseline: np.ndarray, tasks: Sequence[str],
                best: int, path: Path, title: str = "") -> Path:
    """Mean P(correct answer) against the patched layer, one line per task (dotted: zero-shot, no patch)."""
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for i, t in enumerate(tasks):
        ax.plot(layers, correct[i], marker="o", ms=3, color=_COLORS[i % 10], label=t)
        ax.axhline(baseline[i], color=_COLORS[i % 10], ls=":", lw=1)
    ax.axvline(best, color="k", ls="--", lw=1, label=f"chosen layer {best}")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("patched layer (resid_post)")
    ax.set_ylabel("mean P(correct answer), zero-shot")
    ax.set_ylim(0, 1)
    ax.set_title(title or "task vector patched into zero-shot queries", fontsize=10)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_projection(points: dict[str, np.ndarray], labels: dict[str, str], single: Sequence[str], path: Path,
                    axis_names: tuple[str, str] = ("LD1", "LD2"), title: str = "") -> Path:
    """Scatter of per-prompt projected vectors, one colour per group; large markers at group means."""
    fig, ax = plt.subplots(figsize=(6.4, 5.0))
    for i, (name, xy) in enumerate(points.items()):
        color = _COLORS[i % 10]
        marker = "o" if name in single else "^"
        ax.scatter(xy[:, 0], xy[:, 1], s=14, alpha=0.55, color=color, marker=marker, label=labels[name])
        m = xy.mean(axis=0)
        ax.scatter([m[0]], [m[1]], s=140, color=color, marker=marker, edgecolors="k", linewidths=1.2)
    ax.set_xlabel(axis_names[0])
    ax.set_ylabel(axis_names[1])
    ax.set_title(title or "task vectors (circles: single task; triangles: mixtures)", fontsize=10)
    ax.legend(fontsize=7, loc="best")
    return _save(fig, path)


def plot_interpolation(lambdas: Sequence[float], probs: np.ndarray, tasks: Sequence[str], path: Path,
                       real_lambdas: Sequence[float] | None = None, real_probs: np.ndarray | None = None,
                       mix_points: Sequence[tuple[float, np.ndarray]] = (), layer: int | None = None) -> Path:
    """P(task 1), P(task 2) and the rest against λ from patched v(λ) (lines), real mixed prompts (squares).

    ``probs`` is ``[n_lambdas, 2]`` mean probabilities; ``real_probs`` ``[n_real, 2]``; ``mix_points``
    holds (λ, ``[2]``) for patched mixed-prompt vectors (diamonds).
    """
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    lam = np.asarray(lambdas)
    rest = 1 - probs.sum(axis=1)
    for i, t in enumerate(tasks):
        ax.plot(lam, probs[:, i], color=_COLORS[i], marker="o", ms=3, label=f"P({t}) · patched v(λ)")
    ax.plot(lam, rest, color=_REST, ls="-", marker="o", ms=2, label="rest · patched v(λ)")
    if real_probs is not None and real_lambdas is not None:
        rl = np.asarray(real_lambdas)
        for i, t in enumerate(tasks):
            ax.plot(rl, real_probs[:, i], color=_COLORS[i], ls="--", marker="s", ms=6, mfc="white",
                    label=f"P({t}) · real mixed prompts")
        ax.plot(rl, 1 - real_probs.sum(axis=1), color=_REST, ls="--", marker="s", ms=5, mfc="white",
                label="rest · real mixed prompts")
    for j, (x, p) in enumerate(mix_points):
        for i in range(len(tasks)):
            ax.scatter([x], [p[i]], color=_COLORS[i], marker="D", s=50, edgecolors="k", zorder=5,
                       label="patched mixed-prompt vector" if (i == 0 and j == 0) else None)
    ax.set_xlabel(f"λ   (v = (1−λ)·v[{tasks[0]}] + λ·v[{tasks[1]}]; real prompts: share of {tasks[1]})")
    ax.set_ylabel("mean probability")
    ax.set_ylim(0, 1)
    ax.set_xlim(-0.02, 1.02)
    ax.set_title("interpolating task vectors" + (f" at layer {layer}" if layer is not None else ""), fontsize=10)
    ax.legend(fontsize=7, loc="center right")
    return _save(fig, path)


def plot_steering(alphas: Sequence[float], probs: np.ndarray, targets: Sequence[str], tasks: Sequence[str],
                  path: Path, title: str = "") -> Path:
    """One panel per steering target: mean P of each task's answer (and the rest) against α.

    ``probs`` is ``[n_targets, n_alphas, K]``.
    """
    fig, axes = plt.subplots(1, len(targets), figsize=(4.4 * len(targets), 3.6), squeeze=False)
    for ti, target in enumerate(targets):
        ax = axes[0][ti]
        for k, t in enumerate(tasks):
            ax.plot(alphas, probs[ti, :, k], marker="o", ms=3, color=_COLORS[k % 10], label=f"P({t})")
        ax.plot(alphas, 1 - probs[ti].sum(axis=1), marker="o", ms=2, color=_REST, label="rest")
        ax.set_title(f"steer toward {target}", fontsize=10)
        ax.set_xlabel("α   (add α·(v_target − v_mixture))")
        ax.set_ylim(0, 1)
        if ti == 0:
            ax.set_ylabel("mean probability")
            ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)
