"""An ARCHITECTURE CHANGE for character models: a learned embedding of each token's column in its line.

Rotary positions give attention relative offsets, but nothing in a token's vector says which column
of its line it sits in, which is what ret_k needs ("which column of x_i holds y_i?",
docs/scratch.md). This adds ``column[c]`` (c = characters since the last newline, capped at
``n_columns - 1``) to the token embedding and keeps the global rotary positions. It is not the
study's architecture, so a model that has it says so: ``config.json`` holds
``superpose_column_embedding`` (the number of columns), :func:`column_label` names it, and
``superpose models``, the model metadata and the figures that show such a model carry the label.

Columns are counted in the ids of one call: a continuation fed through a KV cache starts again at
column 0, so such a model must see whole prompts in one pass (the scorer reads a one-character
answer's probability from the prompt's own pass, which is exact; multi-token continuations from a
cache are not).

A plain ``LlamaForCausalLM`` loading of such a folder would drop the column weights without error,
so every loader calls :func:`attach_columns` (the HF backend does) after ``from_pretrained``.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

CONFIG_KEY = "superpose_column_embedding"
NEWLINE_KEY = "superpose_newline_id"  # the token that starts a new line (the tokenizer's newline)
WEIGHT_KEY = "model.embed_tokens.column.weight"
LABEL = "column-position embedding (architecture changed, not the study's)"


def columns_of(input_ids: torch.Tensor, newline_id: int, n_columns: int) -> torch.Tensor:
    """Column of every token: characters since the last newline before it ([batch, seq] -> same)."""
    seq = input_ids.shape[-1]
    pos = torch.arange(seq, device=input_ids.device).expand_as(input_ids)  # [batch, seq]
    after_newline = torch.where(input_ids == newline_id, pos, -1)  # a newline ends its own line
    last = torch.cummax(after_newline, dim=-1).values  # [batch, seq]: the latest newline at or before t
    prev = torch.cat([torch.full_like(last[..., :1], -1), last[..., :-1]], -1)  # strictly before t
    return (pos - prev - 1).clamp(max=n_columns - 1)


class ColumnEmbedding(nn.Embedding):
    """The token embedding (same ``weight``) plus a learned embedding of the token's column."""

    def __init__(self, base: nn.Embedding, n_columns: int, newline_id: int):
        super().__init__(base.num_embeddings, base.embedding_dim, padding_idx=base.padding_idx,
                         device=base.weight.device, dtype=base.weight.dtype)
        self.weight = base.weight
        self.column = nn.Embedding(n_columns, base.embedding_dim, device=base.weight.device, dtype=base.weight.dtype)
        self.n_columns, self.newline_id = n_columns, newline_id

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:  # [batch, seq] -> [batch, seq, d_model]
        tokens = F.embedding(input_ids, self.weight, self.padding_idx)
        return tokens + self.column(columns_of(input_ids, self.newline_id, self.n_columns))


def column_count(config) -> int:
    """Columns of a model's column embedding (0: a plain model); ``config`` is an HF config or its dict."""
    value = config.get(CONFIG_KEY) if isinstance(config, dict) else getattr(config, CONFIG_KEY, None)
    return int(value or 0)


def attach_columns(model, folder: str | Path | None = None) -> bool:
    """Give ``model`` its column embedding if its config names one (weights from ``folder``'s
    safetensors when given); False for a plain model, which is left unchanged."""
    n = column_count(model.config)
    if not n:
        return False
    embed = model.get_input_embeddings()
    if not isinstance(embed, ColumnEmbedding):
        model.set_input_embeddings(ColumnEmbedding(embed, n, int(getattr(model.config, NEWLINE_KEY))))
    if folder is not None:
        from safetensors import safe_open

        with safe_open(str(Path(folder) / "model.safetensors"), framework="pt") as f:
            weight = f.get_tensor(WEIGHT_KEY)
        with torch.no_grad():
            model.get_input_embeddings().column.weight.copy_(weight)
    return True


def has_columns(folder: str | Path) -> bool:
    """Whether the model folder's config.json names a column embedding (False if it cannot be read)."""
    import json

    try:
        return column_count(json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))) > 0
    except (OSError, ValueError):
        return False


def column_label(config) -> str | None:
    """The label a model with a column embedding carries everywhere it is shown (None: plain)."""
    return LABEL if column_count(config) else None
