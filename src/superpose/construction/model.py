"""A plain decoder-only transformer whose every weight is a visible tensor (nanoGPT-style).

Nothing here is specific to the construction: the weights are zeros until
``superpose.construction.weights.build_transformer`` fills them with formulas. Differences from a
trained GPT, each needed for exactness and each harmless for the argument:

* float64 throughout, so that saturated softmaxes (scores up to a few hundred) stay exact;
* no LayerNorm: the construction keeps 0/1 flags at fixed magnitudes in the residual stream;
* attention scores are ``q . k`` without the 1/sqrt(d_head) factor (the formulas absorb it);
* heads may have their own query/key width ``d_qk`` and value width ``d_v`` per layer;
* the position enters as a fixed code (``pos_code``) written by a fixed matrix, not learned;
* a block may leave out its attention or its MLP (the construction's layers each do one job).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

DTYPE = torch.float64


def position_code(n_positions: int, n_freq: int) -> torch.Tensor:
    """Codes ``[cos(2 pi t / 2^f), sin(2 pi t / 2^f)]`` for f = 1..n_freq, positions t = 0..N-1."""
    t = torch.arange(n_positions, dtype=DTYPE)[:, None]  # [N, 1]
    freq = 2 * math.pi / 2.0 ** torch.arange(1, n_freq + 1, dtype=DTYPE)  # [L]
    angle = t * freq  # [N, L]
    # Interleave so that each frequency owns a (cos, sin) pair, which a 2x2 rotation can shift.
    return torch.stack([torch.cos(angle), torch.sin(angle)], dim=-1).reshape(n_positions, 2 * n_freq)


class Attention(nn.Module):
    """Causal multi-head attention with per-layer query/key width and value width."""

    def __init__(self, d_model: int, n_heads: int, d_qk: int, d_v: int):
        super().__init__()
        self.n_heads, self.d_qk, self.d_v = n_heads, d_qk, d_v
        z = lambda *shape: nn.Parameter(torch.zeros(*shape, dtype=DTYPE), requires_grad=False)  # noqa: E731
        self.w_q, self.b_q = z(n_heads, d_model, d_qk), z(n_heads, d_qk)
        self.w_k, self.b_k = z(n_heads, d_model, d_qk), z(n_heads, d_qk)
        self.w_v, self.b_v = z(n_heads, d_model, d_v), z(n_heads, d_v)
        self.w_o = z(n_heads, d_v, d_model)

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """Masked attention scores before the softmax."""
        # x: [batch, seq, d_model]
        q = torch.einsum("bsd,hde->bhse", x, self.w_q) + self.b_q[None, :, None]  # [batch, head, seq, d_qk]
        k = torch.einsum("bsd,hde->bhse", x, self.w_k) + self.b_k[None, :, None]  # [batch, head, seq, d_qk]
        s = q @ k.transpose(-1, -2)  # [batch, head, seq, seq]
        seq = x.shape[1]
        future = torch.ones(seq, seq, dtype=torch.bool, device=x.device).triu(1)
        return s.masked_fill(future, float("-inf"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """What the layer adds to the residual stream."""
        att = F.softmax(self.scores(x), dim=-1)  # [batch, head, seq, seq]
        v = torch.einsum("bsd,hde->bhse", x, self.w_v) + self.b_v[None, :, None]  # [batch, head, seq, d_v]
        y = att @ v  # [batch, head, seq, d_v]
        return torch.einsum("bhse,hed->bsd", y, self.w_o)  # [batch, seq, d_model]


class MLP(nn.Module):
    """Two linear maps with a ReLU between them."""

    def __init__(self, d_model: int, d_hidden: int):
        super().__init__()
        self.fc = nn.Linear(d_model, d_hidden, dtype=DTYPE)
        self.proj = nn.Linear(d_hidden, d_model, dtype=DTYPE)
        for p in self.parameters():
            p.requires_grad_(False)
            p.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """What the layer adds to the residual stream."""
        return self.proj(F.relu(self.fc(x)))  # [batch, seq, d_model]


class Block(nn.Module):
    """Residual block: x + attn(x), then + mlp(x); either part may be absent."""

    def __init__(self, attn: Attention | None, mlp: MLP | None, job: str = ""):
        super().__init__()
        self.attn, self.mlp, self.job = attn, mlp, job

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block to the residual stream."""
        if self.attn is not None:
            x = x + self.attn(x)
        if self.mlp is not None:
            x = x + self.mlp(x)
        return x  # [batch, seq, d_model]


class ConstructedTransformer(nn.Module):
    """Token embedding + fixed position code, a stack of blocks, a linear unembedding."""

    def __init__(self, vocab_size: int, d_model: int, max_len: int, n_freq: int, blocks: list[Block]):
        super().__init__()
        self.vocab_size, self.d_model, self.max_len = vocab_size, d_model, max_len
        self.tok_emb = nn.Parameter(torch.zeros(vocab_size, d_model, dtype=DTYPE), requires_grad=False)
        self.pos_emb = nn.Parameter(torch.zeros(2 * n_freq, d_model, dtype=DTYPE), requires_grad=False)
        self.register_buffer("pos_code", position_code(max_len, n_freq))  # [max_len, 2L]
        self.blocks = nn.ModuleList(blocks)
        self.unembed = nn.Linear(d_model, vocab_size, dtype=DTYPE)
        for p in self.unembed.parameters():
            p.requires_grad_(False)
            p.zero_()

    def residual(self, tokens: torch.Tensor, upto: int | None = None) -> torch.Tensor:
        """The residual stream after the first ``upto`` blocks (all blocks when None)."""
        # tokens: [batch, seq]
        if tokens.shape[1] > self.max_len:
            raise ValueError(f"sequence of {tokens.shape[1]} tokens exceeds max_len {self.max_len}")
        x = self.tok_emb[tokens] + (self.pos_code[: tokens.shape[1]] @ self.pos_emb)[None]  # [batch, seq, d_model]
        for block in list(self.blocks)[:upto]:
            x = block(x)
        return x

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Next-token logits at every position."""
        return self.unembed(self.residual(tokens))  # [batch, seq, vocab]

    def next_token_probs(self, tokens: torch.Tensor) -> torch.Tensor:
        """Softmax distribution of the token after the last position."""
        return F.softmax(self.forward(tokens)[:, -1], dim=-1)  # [batch, vocab]
