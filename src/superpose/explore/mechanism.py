"""The explorer's mechanism panels: the lens of the prompt on the page, its examples coloured by
leave-one-out attribution, and a task-vector steering slider beside the real λ curve.

Each function runs on the explorer's model worker (app.py queues it) and raises
:class:`~superpose.errors.SuperposeError` for anything the user can fix (a 4xx on the page).
"""

from __future__ import annotations

import math

import torch
from pydantic import Field

from superpose.backends import Backend
from superpose.backends.base import Heads, Residual, capable
from superpose.errors import SuperposeError
from superpose.explore.service import SEPARATOR, ScoreBody, Setting, mixture
from superpose.mechanism.attribution import leave_one_out
from superpose.mechanism.lens import lens_of
from superpose.vectors.extract import extract_prompts, group_prompts, make_group
from superpose.vectors.interpolate import interpolate_query, interpolation_vectors, lambda_grid
from superpose.vectors.queries import zero_shot_queries


class AttributionBody(ScoreBody):
    """A prompt (one example per line, the query last) and its answers."""

    max_examples: int = Field(80, ge=1, le=200)


class SteerBody(Setting):
    """Two tasks; the layer to patch (None: the middle one); λ points; prompts per task vector."""

    layer: int | None = Field(None, ge=0)
    n_points: int = Field(11, ge=2, le=21)
    n_vector_prompts: int = Field(4, ge=1, le=16)


def _check(body: ScoreBody) -> None:
    if not body.prompt.strip():
        raise SuperposeError("prompt: empty; write some examples and a query, or draw a prompt")
    if any(not a for a in body.answers) or len(set(body.answers)) != len(body.answers):
        raise SuperposeError(f"answers: expected distinct non-empty strings, got {body.answers}")


def lens(backend: Backend, body: ScoreBody) -> dict:
    """Per answer, P(its first token) read from every layer at the last prompt token, and the exact output."""
    _check(body)
    from superpose.backends import ScoreRequest

    r = lens_of(capable(backend, Heads, "the layer lens"), [ScoreRequest(body.prompt, body.answers)])[0]
    return {"layers": len(r["lens"][0]), "probs": [[math.exp(x) for x in row] for row in r["lens"]],
            "exact_first": [math.exp(x) for x in r["first_logprob"]], "exact": [math.exp(x) for x in r["logprob"]]}


def attribution(backend: Backend, body: AttributionBody) -> dict:
    """Per example line, the change in log P of every answer when that line is removed."""
    _check(body)
    lines = body.prompt.split(SEPARATOR)
    examples, query = lines[:-1], lines[-1]
    if not examples:
        raise SuperposeError("prompt: no examples; attribution needs example lines before the query line")
    if len(examples) > body.max_examples:
        raise SuperposeError(f"prompt: {len(examples)} examples; attribution scores one prompt per example, "
                             f"at most {body.max_examples}")
    edited = [SEPARATOR.join(examples[:i] + examples[i + 1:] + [query]) for i in range(len(examples))]
    full, effect = leave_one_out(backend, body.prompt, edited, body.answers)
    return {"examples": examples, "logprob": full, "effect": effect}


def steer(backend: Backend, body: SteerBody) -> dict:
    """P of both tasks' answers on a zero-shot query with ``λ v1 + (1-λ) v2`` patched at the separator
    (v: mean residual of single-task prompts at ``layer``), as ``superpose vectors`` interpolates."""
    lm = capable(backend, Residual, "steering")
    if len(body.tasks) != 2:
        raise SuperposeError(f"tasks: steering needs exactly two tasks, got {len(body.tasks)}")
    mixture(body)  # the two tasks must mix (same inputs)
    layer = lm.n_layers // 2 if body.layer is None else body.layer
    if layer >= lm.n_layers:
        raise SuperposeError(f"layer: {layer} out of range; the model has {lm.n_layers} layers (0..{lm.n_layers - 1})")
    v = [extract_prompts(lm, [p.text for p in group_prompts(make_group([t]), body.n_vector_prompts, body.n_examples,
                                                                  body.seed)], [layer])[:, 0].mean(0)
         for t in body.tasks]  # [d_model] each
    lambdas = lambda_grid(body.n_points)  # λ: task 1's weight in the vector, as its share in the λ sweep
    vectors = interpolation_vectors(v[1], v[0], lambdas)  # [points, d_model]: (1 - λ) v2 + λ v1
    q = zero_shot_queries(body.tasks, 1, seed=body.seed)[0]
    lp = interpolate_query(lm, q, [q.answers[t] for t in body.tasks], layer, vectors)  # [points, 2]
    probs = torch.from_numpy(lp).exp().tolist()
    return {"tasks": body.tasks, "layer": layer, "query": q.text, "lambdas": lambdas,
            "p1": [p[0] for p in probs], "p2": [p[1] for p in probs]}
