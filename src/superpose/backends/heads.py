"""Hooks on attention heads and on the model's output layer: the mechanism behind the ``heads`` capability.

* :func:`unembed_logprobs` -- the logit lens: a residual-stream vector read through the model's final
  norm and unembedding (and Gemma's final logit soft-cap), as float32 log-probabilities.
* :func:`recording_last` -- while active, the first forward pass stores ``resid_post`` at one column
  per row (the last prompt token) for chosen layers (the prompt pass of a scoring call; any later
  pass over answer tokens is not recorded).
* :func:`recording_head_means` / :func:`ablating_heads` -- the input of each layer's attention output
  projection (``o_proj``) is the heads' outputs side by side, ``[batch, seq, n_heads * head_dim]``;
  head ``h`` is the slice ``h * head_dim : (h + 1) * head_dim``. Mean-ablation replaces a head's slice
  by its mean over a set of prompts' tokens, at every position, per row of the batch.
* :func:`attention_weights` -- attention patterns (eager attention, switched on for one pass).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Sequence

import torch
from torch import nn

from superpose.backends.residual import _check_layers, _hidden, find_decoder_layers
from superpose.errors import SuperposeError

_OUT_PROJ_NAMES = ("o_proj", "out_proj", "c_proj", "dense")  # Llama/Gemma/Qwen, OPT, GPT-2, NeoX


def _text_config(model: nn.Module):
    config = model.config
    return getattr(config, "text_config", None) or config


def final_norm(model: nn.Module) -> nn.Module:
    """The norm applied after the last decoder layer (``model.norm``, ``transformer.ln_f``, ...)."""
    base = getattr(model, getattr(model, "base_model_prefix", "model"), None) or model
    for name in ("norm", "final_layernorm", "ln_f", "final_layer_norm"):
        found = getattr(base, name, None) or getattr(getattr(base, "language_model", None), name, None)
        if isinstance(found, nn.Module):
            return found
    raise SuperposeError(f"cannot find the final norm of {type(model).__name__}")


@torch.inference_mode()
def unembed_logprobs(model: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """``[n, d_model]`` residual-stream vectors -> ``[n, vocab]`` float32 log-probabilities (logit lens)."""
    head = model.get_output_embeddings()
    x = hidden.to(device=head.weight.device, dtype=head.weight.dtype)
    logits = head(final_norm(model)(x)).float()  # [n, vocab]
    cap = getattr(_text_config(model), "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return torch.log_softmax(logits, dim=-1)


@contextmanager
def recording_last(model: nn.Module, layers: Sequence[int], columns: Sequence[int] | None = None
                   ) -> Iterator[dict[int, torch.Tensor]]:
    """While active, the first pass through each layer stores ``resid_post`` at column ``columns[row]``
    of each row (None: the last column): ``{layer: [batch, d_model]}`` float32 (filled as the pass runs)."""
    blocks = find_decoder_layers(model)
    layers = _check_layers(layers, len(blocks))
    got: dict[int, torch.Tensor] = {}

    def make_hook(layer: int):
        def hook(module, args, output):
            if layer not in got:
                hidden = _hidden(output)  # [batch, seq, d_model]
                at = hidden[:, -1] if columns is None else hidden[torch.arange(hidden.shape[0]), list(columns)]
                got[layer] = at.float().clone()  # [batch, d_model]
        return hook

    handles = [blocks[layer].register_forward_hook(make_hook(layer)) for layer in layers]
    try:
        yield got
    finally:
        for h in handles:
            h.remove()


def out_projections(model: nn.Module) -> list[nn.Linear]:
    """Each decoder layer's attention output projection, whose input is the heads' outputs side by side."""
    found = []
    for i, block in enumerate(find_decoder_layers(model)):
        attn = getattr(block, "self_attn", None) or getattr(block, "attn", None) or getattr(block, "attention", None)
        proj = next((getattr(attn, n) for n in _OUT_PROJ_NAMES if isinstance(getattr(attn, n, None), nn.Module)), None)
        if proj is None:
            raise SuperposeError(f"cannot find the attention output projection of layer {i} of {type(model).__name__}")
        found.append(proj)
    return found


def head_shape(model: nn.Module) -> tuple[int, int, int]:
    """(layers, heads per layer, head dim)."""
    config = _text_config(model)
    n_heads = int(config.num_attention_heads)
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // n_heads
    return len(find_decoder_layers(model)), n_heads, int(head_dim)


@contextmanager
def _pre_hooks(projs: list[nn.Module], make_hook) -> Iterator[None]:
    """``make_hook(layer)`` as a forward pre-hook on each layer's ``o_proj`` while active."""
    handles = [p.register_forward_pre_hook(make_hook(i)) for i, p in enumerate(projs)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


@contextmanager
def recording_head_means(model: nn.Module) -> Iterator[list]:
    """While active, every pass adds its ``o_proj`` inputs to running sums; yields ``[sums, count]``
    where ``sums`` is ``[layers, heads * head_dim]`` float64 and ``count`` the tokens seen (rows x seq;
    pass unpadded rows)."""
    projs = out_projections(model)
    state: list = [torch.zeros(len(projs), projs[0].in_features, dtype=torch.float64), 0]

    def make_hook(layer: int):
        def hook(module, args):
            x = args[0]  # [batch, seq, heads * head_dim]
            state[0][layer] += x.double().sum(dim=(0, 1)).cpu()
            if layer == 0:
                state[1] += x.shape[0] * x.shape[1]
        return hook

    with _pre_hooks(projs, make_hook):
        yield state


@contextmanager
def ablating_heads(model: nn.Module, means: torch.Tensor, rows: list[Sequence[tuple[int, int]]]) -> Iterator[list]:
    """While active, row ``r`` of every pass has heads ``rows[r]`` (``(layer, head)`` pairs) replaced by
    ``means[layer, head]`` (``[layers, heads, head_dim]``) at every position. Yields ``rows`` itself: a
    caller may assign a new list to ``plan[0]`` between passes (the rows of a forked cache)."""
    projs = out_projections(model)
    n_layers, n_heads, head_dim = means.shape
    plan = [list(rows)]

    def make_hook(layer: int):
        def hook(module, args):
            x = args[0]  # [batch, seq, heads * head_dim]
            todo = [(r, h) for r, heads in enumerate(plan[0]) for (lay, h) in heads if lay == layer]
            if not todo:
                return None
            if len(plan[0]) != x.shape[0]:
                raise SuperposeError(f"head ablation planned for {len(plan[0])} rows, the pass has {x.shape[0]}")
            x = x.clone()
            for r, h in todo:
                x[r, :, h * head_dim:(h + 1) * head_dim] = means[layer, h].to(x.dtype)
            return (x, *args[1:])
        return hook

    with _pre_hooks(projs, make_hook):
        yield plan


@torch.inference_mode()
def attention_weights(model: nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
    """Attention patterns of one pass: ``[layers, batch, heads, seq, seq]`` float32 (eager attention for
    this pass only, since fused kernels do not return weights)."""
    before = _text_config(model)._attn_implementation
    model.set_attn_implementation("eager")
    try:
        out = model(input_ids=input_ids, output_attentions=True, use_cache=False, logits_to_keep=1)
    finally:
        model.set_attn_implementation(before)
    if not out.attentions or out.attentions[0] is None:
        raise SuperposeError(f"{type(model).__name__} returned no attention weights")
    return torch.stack([a.float() for a in out.attentions])
