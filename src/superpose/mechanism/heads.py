"""Attention heads by task answer: mean-ablate each head, and the top heads of one task together.

A head's output is the slice of its layer's ``o_proj`` input that belongs to it; ablating it replaces
that slice, at every position, by its mean over every token of the run's prompts
(:meth:`HFBackend.head_means`). The change in log P of every task's answer is scored exactly
(:meth:`HFBackend.score_ablated`, several ablated copies of a prompt per forward pass). Induction
scores on repeated random tokens stand beside the effects as the standard head score.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from superpose.backends import ScoreRequest
from superpose.backends.base import Heads
from superpose.prompts import Prompt


def all_heads(lm: Heads) -> list[tuple[int, int]]:
    """Every (layer, head) of the model, layer-major."""
    layers, heads, _ = lm.head_shape
    return [(layer, h) for layer in range(layers) for h in range(heads)]


def head_record(lm: Heads, prompt: Prompt, means: torch.Tensor, rows_per_pass: int = 8,
                heads: Sequence[tuple[int, int]] | None = None) -> dict:
    """One prompt: exact log P of every answer with no head ablated, and its change for each head
    ablated alone: ``delta[head][k]`` (``heads``, default every head layer-major)."""
    heads = all_heads(lm) if heads is None else list(heads)
    scores = lm.score_ablated(ScoreRequest(prompt.text, prompt.answers), [[]] + [[h] for h in heads], means,
                              rows_per_pass)
    lp = np.array([[c.logprob for c in s] for s in scores])  # [1 + H, K]
    return {"index": prompt.index, "tasks": prompt.tasks, "logprob": lp[0].tolist(),
            "delta": (lp[1:] - lp[0][None]).round(6).tolist()}


def top_heads(records: Sequence[dict], n_heads_per_layer: int, top: int) -> dict[str, list[dict]]:
    """Per task, the ``top`` heads whose ablation lowers its mean P the most (ΔP over prompts)."""
    base = np.exp(np.array([r["logprob"] for r in records]))  # [N, K]
    after = np.exp(np.array([r["logprob"] for r in records])[:, None] + np.array([r["delta"] for r in records]))
    dp = (after - base[:, None]).mean(axis=0)  # [H, K]
    out = {}
    for k, t in enumerate(records[0]["tasks"]):
        order = np.argsort(dp[:, k])[:top]
        out[t] = [{"layer": int(i // n_heads_per_layer), "head": int(i % n_heads_per_layer),
                   "delta_p": [round(float(x), 5) for x in dp[i]]} for i in order]
    return out


def ablate_set(lm: Heads, prompts: Sequence[Prompt], heads: Sequence[tuple[int, int]], means: torch.Tensor
               ) -> list[dict]:
    """Per prompt, log P of every answer with ``heads`` ablated together, beside none ablated."""
    out = []
    for p in prompts:
        s = lm.score_ablated(ScoreRequest(p.text, p.answers), [[], list(heads)], means)
        out.append({"index": p.index, "before": [c.logprob for c in s[0]], "after": [c.logprob for c in s[1]]})
    return out


def verdict(before: np.ndarray, after: np.ndarray, tasks: Sequence[str]) -> str:
    """What ablating a set of heads did, from mean P per task before and after (``[K]`` each): 'nothing',
    'collapses to <task>', 'loses every task', or which tasks it lost (P below half) and raised (P doubled)."""
    ratio = after / np.maximum(before, 1e-12)
    share_after = after / max(after.sum(), 1e-12)
    share_before = before / max(before.sum(), 1e-12)
    top = int(np.argmax(share_after))
    if len(before) > 1 and share_after[top] >= 0.8 and share_before[top] < 0.8:
        return f"collapses to {tasks[top]}"
    if (ratio < 0.5).all():
        return "loses every task"
    lost = [t for t, r in zip(tasks, ratio) if r < 0.5]
    raised = [t for t, r in zip(tasks, ratio) if r > 2]
    if not lost and not raised:
        return "nothing" if ((ratio > 0.8) & (ratio < 1.25)).all() else "small shifts"
    return "; ".join(part for part in (f"loses {', '.join(lost)}" if lost else "",
                                       f"raises {', '.join(raised)}" if raised else "") if part)


def induction_scores(lm: Heads, rng: np.random.Generator, length: int = 25, sequences: int = 4) -> np.ndarray:
    """``[layers, heads]``: mean attention from each token of the second copy of a random token sequence
    to the token after its earlier occurrence (the induction score)."""
    vocab = len(lm.tokenizer)
    bos = lm.tokenizer.bos_token_id
    lead = [bos] if bos is not None and lm.count_tokens("") > 0 else []
    special = set(lm.tokenizer.all_special_ids)
    ids = []
    for _ in range(sequences):
        toks = [int(t) for t in rng.integers(1000, min(vocab, 20000), size=length) if int(t) not in special]
        while len(toks) < length:
            toks.append(1000 + len(toks))
        ids.append(lead + toks + toks)
    att = lm.attention_weights(ids)  # [layers, rows, heads, seq, seq]
    off = len(lead)
    q = torch.arange(off + length, off + 2 * length)  # second copy
    k = q - length + 1  # the token after the earlier occurrence
    return att[:, :, :, q, k].mean(dim=(1, 3)).numpy()  # [layers, heads]
