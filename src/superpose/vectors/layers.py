"""Layer choice: patch each layer's task vector into zero-shot queries; keep the layer that best recovers the task.

For a query and a task vector, one batch holds ``1 + n_layers`` copies of the query: row 0 is left
alone (the zero-shot baseline), row ``1 + i`` has layer ``layers[i]``'s vector written at the
separator. So the whole layer profile of one query costs a single short batched pass.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from superpose.backends.base import Residual
from superpose.progress import track
from superpose.backends.residual import Patch
from superpose.vectors.patched import patched_logprobs
from superpose.vectors.queries import Query


def layer_profile(lm: Residual, query: Query, answers: Sequence[str], vectors: torch.Tensor,
                  layers: Sequence[int]) -> np.ndarray:
    """log P(answer_k) with ``vectors[i]`` patched at ``layers[i]``, row 0 unpatched: ``[1 + n_layers, K]``."""
    patches = [Patch(layer=layer, vectors=vectors[i][None], rows=[1 + i]) for i, layer in enumerate(layers)]
    return patched_logprobs(lm, query.text, answers, 1 + len(layers), patches)


def layer_sweep(lm: Residual, task_vectors: dict[str, torch.Tensor], layers: Sequence[int],
                queries: Sequence[Query]) -> np.ndarray:
    """log P of every task's answer, per task vector, query and layer: ``[T, Q, 1 + n_layers, T]``.

    ``task_vectors[t]`` is ``[n_layers, d_model]`` (one vector per entry of ``layers``); index 0 on
    the third axis is the unpatched query.
    """
    tasks = list(task_vectors)
    out = np.zeros((len(tasks), len(queries), 1 + len(layers), len(tasks)))
    jobs = [(ti, qi) for ti in range(len(tasks)) for qi in range(len(queries))]
    for ti, qi in track(jobs, "layer sweep"):
        q = queries[qi]
        out[ti, qi] = layer_profile(lm, q, [q.answers[t] for t in tasks], task_vectors[tasks[ti]], layers)
    return out


def best_layer(logp: np.ndarray, layers: Sequence[int]) -> tuple[int, np.ndarray]:
    """(the layer maximising mean P(correct answer) over tasks and queries, that mean per layer ``[T, n_layers]``)."""
    t = logp.shape[0]
    correct = np.stack([np.exp(logp[i, :, 1:, i]).mean(axis=0) for i in range(t)])  # [T, n_layers]
    return int(layers[int(np.argmax(correct.mean(axis=0)))]), correct
