"""A prompt and all its answers in one forward pass: the answers' tokens packed after the prompt under a tree mask.

Exact scoring usually runs the prompt, then the answers' later tokens on a fork of its KV cache
(:meth:`~superpose.backends.hf.HFBackend.extend`): two passes, and on a CPU the second, though only a
few tokens long, still reads every weight. Packing puts each answer's tokens (all but its last, which
is only predicted) after the prompt in the same row, and a 4D attention mask lets each answer token see
the prompt and its own answer's earlier tokens only -- never another answer's. Position ids continue the
prompt's for every answer, so each answer token is computed exactly as in ``prompt + answer`` alone.

Rows are left-padded so that every row's packed block ends in the last column: the columns whose
next-token distribution is read (the prompt's last token and every packed answer token) are then
among the last ``max(tail) + 1`` columns of every row, and only those reach the output layer.

Sliding-window layers (Gemma 3) measure their window in positions here (``pos_q - pos_k < window``),
as the causal mask of an unpadded sequence does; a model is given one mask per layer type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from superpose.backends.base import Encoded


@dataclass
class PackedBatch:
    """Prompts with their answers' tokens packed after them, as one left-padded batch."""

    ids: torch.Tensor  # [B, width] token ids (pads: any id, never seen by a real token)
    positions: torch.Tensor  # [B, width] position ids: the prompt's, then each answer continuing the prompt
    visible: torch.Tensor  # [B, width, width] bool: query column may attend to key column (before any window)
    last: list[int]  # per row, the column of the prompt's last token
    reads: list[list[list[int]]]  # per row, per continuation, per token: the column whose next-token
    #                                distribution gives that token's log-probability

    @property
    def keep(self) -> int:
        """Columns, counted from the end, that hold every read position of every row."""
        width = self.ids.shape[1]
        return width - min(self.last)


def pack(encoded: Sequence[Encoded], pad: int, device: torch.device | str = "cpu") -> PackedBatch:
    """Lay out each request's prompt and its continuations' tokens (all but the last) in one row."""
    rows, segments, positions, lasts, reads = [], [], [], [], []
    for e in encoded:
        n = len(e.prompt_ids)
        ids, seg, pos = list(e.prompt_ids), [0] * n, list(range(n))
        row_reads = []
        for k, (cont, _) in enumerate(e.tokens):
            start = len(ids)  # column of this continuation's first packed token, before padding
            ids += cont[:-1]
            seg += [k + 1] * (len(cont) - 1)
            pos += range(n, n + len(cont) - 1)
            row_reads.append([n - 1] + [start + j for j in range(len(cont) - 1)])
        rows.append(ids), segments.append(seg), positions.append(pos), lasts.append(n - 1), reads.append(row_reads)
    width = max(len(r) for r in rows)
    shift = [width - len(r) for r in rows]  # left pads per row
    ids = torch.tensor([[pad] * s + r for s, r in zip(shift, rows)], device=device)  # [B, width]
    seg = torch.tensor([[-1] * s + g for s, g in zip(shift, segments)], device=device)  # [B, width] -1: pad
    pos = torch.tensor([[0] * s + p for s, p in zip(shift, positions)], device=device)  # [B, width]
    cols = torch.arange(width, device=device)
    causal = cols[None, :] <= cols[:, None]  # [width(q), width(k)]
    same_or_prompt = (seg[:, None, :] == 0) | (seg[:, None, :] == seg[:, :, None])  # [B, q, k]
    visible = causal[None] & same_or_prompt & (seg[:, None, :] >= 0)
    visible |= torch.eye(width, dtype=torch.bool, device=device)[None]  # a pad sees itself: no empty softmax row
    return PackedBatch(ids, pos, visible, [s + last for s, last in zip(shift, lasts)],
                       [[[s + c for c in cont] for cont in r] for s, r in zip(shift, reads)])


def _text_config(config: Any) -> Any:
    return getattr(config, "text_config", None) or config


def attention_masks(batch: PackedBatch, config: Any, dtype: torch.dtype) -> torch.Tensor | dict[str, torch.Tensor] | None:
    """The additive 4D mask(s) ``[B, 1, width, width]`` for ``batch``: one tensor, or one per layer type
    for a model that mixes full and sliding-window layers; None for a layer type we cannot mask."""
    config = _text_config(config)
    types = set(getattr(config, "layer_types", None) or ["full_attention"])
    if not types <= {"full_attention", "sliding_attention"}:
        return None
    blocked = torch.finfo(dtype).min  # not -inf: a fully masked row must not become NaN

    def additive(visible: torch.Tensor) -> torch.Tensor:
        zero = torch.zeros((), dtype=dtype, device=visible.device)
        return torch.where(visible, zero, torch.tensor(blocked, dtype=dtype, device=visible.device))[:, None]

    masks = {"full_attention": additive(batch.visible)}
    if "sliding_attention" in types:
        window = int(config.sliding_window)
        distance = batch.positions[:, :, None] - batch.positions[:, None, :]  # [B, q, k]
        masks["sliding_attention"] = additive(batch.visible & (distance < window))
    return masks["full_attention"] if types == {"full_attention"} else masks


__all__ = ["PackedBatch", "attention_masks", "pack"]
