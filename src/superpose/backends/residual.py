"""Forward hooks on the decoder layers of any Hugging Face causal LM: read and write the residual stream.

The mechanism behind the transformers backend's ``residual`` capability: experiments call
:meth:`~superpose.backends.hf.HFBackend.capture_residuals` and :meth:`~superpose.backends.hf.HFBackend.patching`.

The activation we call ``resid_post.{layer}`` is the output of decoder layer ``layer`` (0-based): the
residual stream after that block's attention and MLP have been added, shape ``[batch, seq, d_model]``.
It is what ``output_hidden_states`` reports as ``hidden_states[layer + 1]``, except for the last layer,
where Hugging Face models report the stream *after* the final norm; the hook sees it before the norm.

Two operations, both plain ``register_forward_hook`` calls that are removed on exit:

* :func:`capture_residuals` stores ``resid_post`` at one position per row for chosen layers, and stops
  the forward pass as soon as the deepest of them has run (the layers above it, the final norm and the
  unembedding are never computed: with Gemma's 262k-token vocabulary the unembedding is a large share
  of a pass).
* :func:`patching` replaces (or adds to) ``resid_post`` at one position, per row, while it is active.
  Each :class:`Patch` names its layer and its rows, so one batch can hold rows patched at different
  layers or with different vectors (the λ grid is one batch of rows, one vector each).

Decoder layers return a tensor in recent transformers and a tuple ``(hidden, ...)`` in older ones
(and in some remote-code models); both are handled.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Literal, Sequence

import torch
from torch import nn

from superpose.errors import SuperposeError

# Attribute paths of the decoder block list in the common Hugging Face families, tried first.
_KNOWN_LAYER_PATHS = (
    "model.layers",          # Llama, Gemma, Qwen, Mistral, Phi-3, OLMo, scratch Llama
    "model.language_model.layers",  # multimodal wrappers (Gemma 3 4B+, Llava-style)
    "transformer.h",         # GPT-2, GPT-J, Falcon, Bloom
    "gpt_neox.layers",       # Pythia / GPT-NeoX
    "model.decoder.layers",  # OPT
    "transformer.blocks",    # MPT
)


def resid_name(layer: int) -> str:
    """The stable name of the residual stream after decoder layer ``layer``."""
    return f"resid_post.{layer}"


def _get_path(obj: object, path: str) -> object | None:
    for part in path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def find_decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The model's list of decoder blocks (known attribute paths first, then a generic search)."""
    for path in _KNOWN_LAYER_PATHS:
        found = _get_path(model, path)
        if isinstance(found, nn.ModuleList) and len(found) > 0:
            return found
    # Generic: the ModuleList whose length is the configured number of layers, else the longest one.
    config = getattr(model, "config", None)
    expected = None
    for attr in ("num_hidden_layers", "n_layer", "num_layers"):
        value = getattr(config, attr, None) or getattr(getattr(config, "text_config", None), attr, None)
        if isinstance(value, int):
            expected = value
            break
    lists = [m for _, m in model.named_modules() if isinstance(m, nn.ModuleList) and len(m) > 0]
    if expected is not None:
        for m in lists:
            if len(m) == expected:
                return m
    if lists:
        return max(lists, key=len)
    raise SuperposeError(f"cannot find the decoder layers of {type(model).__name__}: no nn.ModuleList of blocks")


def n_layers(model: nn.Module) -> int:
    """Number of decoder layers."""
    return len(find_decoder_layers(model))


def _hidden(output: object) -> torch.Tensor:
    """The hidden states inside a decoder layer's output (tensor, or first element of a tuple)."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise SuperposeError(f"unexpected decoder layer output type {type(output).__name__}")


def _replace_hidden(output: object, hidden: torch.Tensor) -> object:
    """The layer output with its hidden states swapped for ``hidden``, same structure."""
    if isinstance(output, torch.Tensor):
        return hidden
    return type(output)((hidden, *output[1:])) if isinstance(output, tuple) else [hidden, *output[1:]]


class _StopForward(Exception):
    """Raised by the hook of the deepest needed layer: nothing above it has to run."""


def _check_layers(layers: Sequence[int], total: int) -> list[int]:
    layers = sorted(set(int(x) for x in layers))
    if not layers:
        raise SuperposeError("no layers asked for")
    bad = [x for x in layers if not 0 <= x < total]
    if bad:
        raise SuperposeError(f"layers {bad} out of range: the model has {total} decoder layers (0..{total - 1})")
    return layers


@torch.inference_mode()
def capture_residuals(model: nn.Module, input_ids: torch.Tensor, positions: torch.Tensor | Sequence[int],
                      layers: Sequence[int], stop_early: bool = True) -> dict[int, torch.Tensor]:
    """``resid_post`` at ``positions[row]`` of every row, for each layer: ``{layer: [batch, d_model]}`` (float32).

    ``input_ids`` is ``[batch, seq]``, right-padded where rows differ in length (a causal model's real
    tokens never attend to later pads, so no attention mask is needed). With ``stop_early`` the pass
    ends after the deepest requested layer.
    """
    blocks = find_decoder_layers(model)
    layers = _check_layers(layers, len(blocks))
    deepest = layers[-1]
    pos = torch.as_tensor(positions, dtype=torch.long, device=input_ids.device)  # [batch]
    rows = torch.arange(input_ids.shape[0], device=input_ids.device)
    captured: dict[int, torch.Tensor] = {}

    def make_hook(layer: int):
        def hook(module, args, output):
            hidden = _hidden(output)  # [batch, seq, d_model]
            captured[layer] = hidden[rows, pos].float().clone()  # [batch, d_model]
            if stop_early and layer == deepest:
                raise _StopForward
        return hook

    handles = [blocks[layer].register_forward_hook(make_hook(layer)) for layer in layers]
    try:
        model(input_ids=input_ids, use_cache=False, logits_to_keep=1)
    except _StopForward:
        pass
    finally:
        for h in handles:
            h.remove()
    missing = [x for x in layers if x not in captured]
    if missing:
        raise SuperposeError(f"hooks on layers {missing} never fired: the model did not run those blocks")
    return captured


@dataclass
class Patch:
    """Write ``vectors`` into ``resid_post.{layer}`` at sequence ``position`` of ``rows`` (None: every row)."""

    layer: int
    vectors: torch.Tensor  # [n_rows, d_model] or [d_model] (broadcast to every row)
    rows: Sequence[int] | None = None
    position: int = -1
    mode: Literal["replace", "add"] = "replace"


@contextmanager
def patching(model: nn.Module, patches: Sequence[Patch]) -> Iterator[list[int]]:
    """While active, every forward pass has the patches applied; yields a list counting hook calls per patch.

    Meant for the prompt pass only: a later pass over continuation tokens (on the patched KV cache)
    must run outside the context, else the hook would overwrite a continuation position.
    """
    blocks = find_decoder_layers(model)
    if patches:
        _check_layers([p.layer for p in patches], len(blocks))
    fired = [0] * len(patches)

    def make_hook(i: int, patch: Patch):
        def hook(module, args, output):
            hidden = _hidden(output)  # [batch, seq, d_model]
            vec = patch.vectors.to(device=hidden.device, dtype=hidden.dtype)
            rows = (torch.arange(hidden.shape[0], device=hidden.device) if patch.rows is None
                    else torch.as_tensor(list(patch.rows), dtype=torch.long, device=hidden.device))
            if vec.dim() == 1:
                vec = vec.expand(len(rows), -1)  # [n_rows, d_model]
            if vec.shape[0] != len(rows):
                raise SuperposeError(f"patch at layer {patch.layer}: {vec.shape[0]} vectors for {len(rows)} rows")
            hidden = hidden.clone()  # never modify a tensor the layer may still hold
            if patch.mode == "replace":
                hidden[rows, patch.position] = vec
            else:
                hidden[rows, patch.position] += vec
            fired[i] += 1
            return _replace_hidden(output, hidden)
        return hook

    handles = [blocks[p.layer].register_forward_hook(make_hook(i, p)) for i, p in enumerate(patches)]
    try:
        yield fired
    finally:
        for h in handles:
            h.remove()
