"""Projection of task vectors to 2-D (the study's Figure 4), and where a mixture's vector lies.

LDA (scikit-learn, shrinkage covariance because d_model exceeds the number of prompts) is fitted on
the single-task prompts' separator states at one layer, with the task as label; mixed prompts are
then projected with the same map. LDA gives at most ``T - 1`` axes; with two tasks the second axis is
the top principal component of what the first leaves. PCA (fitted on the single-task states) is the
unsupervised option.

Position of a mixture: the affine coordinates ``c`` (summing to 1) of its mean that best fit
``mean ≈ sum_i c_i * centroid_i`` over the single-task centroids, with the relative residual. For a
pair, ``c = (1 - t, t)`` where ``t`` is the position along the segment from task 1 (t = 0) to task 2
(t = 1); "between" means every coordinate is in (0, 1). Computed in the 2-D plane and in full d_model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np
from sklearn.decomposition import PCA
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis


@dataclass
class Projection:
    """A fitted linear map from d_model to 2-D."""

    method: str
    mean: np.ndarray  # [d_model]
    axes: np.ndarray  # [d_model, 2]

    def transform(self, x: np.ndarray) -> np.ndarray:
        """``[n, d_model]`` -> ``[n, 2]``."""
        return (np.asarray(x, dtype=np.float64) - self.mean) @ self.axes


def fit_projection(x: np.ndarray, labels: Sequence[int], method: Literal["lda", "pca"] = "lda",
                   seed: int = 0) -> Projection:
    """Fit a 2-D projection on ``x`` ``[n, d_model]`` (labels are used by LDA only)."""
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=0)
    xc = x - mean
    if method == "pca":
        pca = PCA(n_components=2, random_state=seed).fit(xc)
        return Projection("pca", mean, pca.components_.T)
    n_classes = len(set(labels))
    k = min(2, n_classes - 1)
    try:
        lda = LinearDiscriminantAnalysis(solver="eigen", shrinkage="auto", n_components=k).fit(xc, labels)
    except np.linalg.LinAlgError:
        # A within-class scatter too degenerate even with shrinkage (a handful of prompts): plain SVD LDA.
        lda = LinearDiscriminantAnalysis(solver="svd", n_components=k).fit(xc, labels)
    axes = lda.scalings_[:, :k]  # [d_model, k]
    if k < 2:
        # Second axis: top principal direction of the data with the discriminant direction removed.
        u = axes[:, 0] / np.linalg.norm(axes[:, 0])
        rest = xc - np.outer(xc @ u, u)
        pc = PCA(n_components=1, random_state=seed).fit(rest).components_[0]
        axes = np.stack([axes[:, 0], pc * _scale(xc @ axes[:, 0], rest @ pc)], axis=1)
    return Projection("lda", mean, axes)


def _scale(first: np.ndarray, second: np.ndarray) -> float:
    """Factor giving the second axis the spread of the first, so the scatter is not squashed."""
    s2 = float(np.std(second))
    return float(np.std(first)) / s2 if s2 > 0 else 1.0


def affine_coordinates(point: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, float]:
    """(coordinates ``c`` with sum 1 such that ``point ≈ c @ centroids``, residual / mean centroid spacing)."""
    point, centroids = np.asarray(point, np.float64), np.asarray(centroids, np.float64)
    base = centroids[0]
    diffs = (centroids[1:] - base).T  # [dim, T-1]
    coef, *_ = np.linalg.lstsq(diffs, point - base, rcond=None)
    c = np.concatenate([[1 - coef.sum()], coef])
    residual = np.linalg.norm(point - c @ centroids)
    pairs = [np.linalg.norm(a - b) for i, a in enumerate(centroids) for b in centroids[i + 1:]]
    return c, float(residual / np.mean(pairs))
