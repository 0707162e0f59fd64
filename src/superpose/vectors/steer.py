"""Steering (beyond the study): choose the task of a MIXED prompt by adding ``α (v_target - v_mixture)``.

At the chosen layer and the separator of a real mixed prompt, add ``α`` times the difference between
the target task's vector and the mixture's own vector. At ``α = 1`` the separator's state moves (on
average) to where the target's single-task prompts put it. One batched pass per prompt holds every
(target, α) row.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from superpose.backends.base import Residual
from superpose.prompts import Prompt
from superpose.progress import track
from superpose.backends.residual import Patch
from superpose.vectors.patched import patched_logprobs

STEER_PROMPT_OFFSET = 20_000  # held-out prompt indices: steering is evaluated on prompts not averaged into v


def steering_vectors(directions: torch.Tensor, alphas: Sequence[float]) -> torch.Tensor:
    """``α d`` for every direction ``d`` and ``α``: ``[n_targets * n_alphas, d_model]`` (target-major)."""
    a = torch.tensor(list(alphas), dtype=directions.dtype)  # [A]
    return (directions[:, None, :] * a[None, :, None]).reshape(-1, directions.shape[-1])


def steer(lm: Residual, prompts: Sequence[Prompt], layer: int, directions: torch.Tensor,
          alphas: Sequence[float]) -> np.ndarray:
    """log P of each of the prompt's answers, per prompt, target and α: ``[P, n_targets, n_alphas, K]``."""
    vectors = steering_vectors(directions, alphas)
    out = []
    for p in track(prompts, f"steering at layer {layer}"):
        logp = patched_logprobs(lm, p.text, p.answers, vectors.shape[0],
                                [Patch(layer=layer, vectors=vectors, mode="add")])  # [T*A, K]
        out.append(logp.reshape(directions.shape[0], len(alphas), -1))
    return np.stack(out)
