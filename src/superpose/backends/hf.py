"""The transformers backend: any causal LM transformers loads, in-process, with exact batched scoring.

Scoring runs each prompt once and continues from its KV cache (:meth:`HFBackend.prefill`, then
:meth:`HFBackend.extend`): cost is one prompt pass plus ``K x len(answer)`` tokens per prompt instead
of K prompt passes. Several prompts share one forward pass (``batch_size``): prompts are *left*-padded
(an attention mask hides the pads, position ids count real tokens only), so every prompt's last token
sits in the last column and real tokens keep their relative distances -- which sliding-window layers
(Gemma 3) measure in cache slots. Continuations are then *right*-padded after the prompt: a real token
never attends to a later pad, so those pads need no mask. The cache fork in :meth:`extend` is the one
place that copies a KV cache; scoring, output enumeration and activation patching all use it. The
lens's scoring (:meth:`HFBackend.score_with_residuals`) needs no fork: it packs the answers' tokens into
the prompt pass under a tree mask (:mod:`superpose.backends.packed`), one pass in all.

:class:`~superpose.naive.NaiveScorer` (one full pass per continuation) is the test oracle.

Besides scoring, this backend offers the two optional capabilities (:mod:`superpose.backends.base`)
as public methods, so no module outside ``backends/`` touches the model itself: ``enumerate`` --
:meth:`HFBackend.prefill`, :meth:`HFBackend.extend`, :meth:`HFBackend.next_token_logits`,
:meth:`HFBackend.end_token_ids`; ``residual`` -- :attr:`HFBackend.n_layers`,
:meth:`HFBackend.capture_residuals`, :meth:`HFBackend.patching` (forward hooks,
:mod:`superpose.backends.residual`); ``heads`` -- :meth:`HFBackend.lens_logprobs`,
:meth:`HFBackend.score_with_residuals`, :attr:`HFBackend.head_shape`, :meth:`HFBackend.head_means`,
:meth:`HFBackend.score_ablated`, :meth:`HFBackend.attention_weights` (:mod:`superpose.backends.heads`).
"""

from __future__ import annotations

import contextlib

import copy
import importlib.metadata
import os
from contextlib import contextmanager
from typing import Any, ClassVar, Iterator, Sequence

import torch

from superpose.backends.base import ContinuationScore, Encoded, Prefill, ScoreRequest, TokenizedBackend, encode_prompt
from superpose.backends.devices import resolve_device, warn_bfloat16_on_cpu
from superpose.backends.heads import (ablating_heads, attention_weights, head_shape, recording_head_means,
                                      recording_last, unembed_logprobs)
from superpose.backends.packed import attention_masks, pack
from superpose.backends.residual import Patch, capture_residuals, n_layers, patching
from superpose.errors import ModelNotAvailable
from superpose.models.convert import quiet_transformers_in_logs
from superpose.models.loading import model_source
from superpose.models.metadata import folder_metadata


def fork_cache(cache: Any, rows: torch.Tensor) -> Any:
    """A new cache whose row ``i`` is ``cache``'s row ``rows[i]``; ``cache`` itself stays untouched.

    Each layer's ``batch_select_indices`` rebinds its tensors to indexed copies, so shallow copies of the
    cache and its layers are enough to keep the original intact.
    """
    forked = copy.copy(cache)
    forked.layers = [copy.copy(layer) for layer in cache.layers]
    for layer in forked.layers:
        layer.batch_select_indices(rows)
    return forked


def gather_logprobs(lp: torch.Tensor, targets: Sequence[Sequence[int]]) -> torch.Tensor:
    """The log-probabilities of each row's target tokens: ``lp`` ``[C, T, vocab]`` (from :meth:`HFBackend.extend`),
    ``targets[i]`` at most T token ids -> ``[C, T]``, 0 past the end of a row's targets."""
    width = lp.shape[1]
    ids = torch.tensor([list(t) + [0] * (width - len(t)) for t in targets], device=lp.device)  # [C, T]
    real = torch.tensor([[j < len(t) for j in range(width)] for t in targets], device=lp.device)  # [C, T]
    return torch.where(real, lp.gather(2, ids[:, :, None])[..., 0], 0.0)



@contextlib.contextmanager
def errors_only_from_transformers(quiet: bool = True):
    """Transformers' logging at error level inside the block (when ``quiet``), as it was after."""
    from transformers.utils import logging as hf_logging

    before = hf_logging.get_verbosity()
    if quiet:
        hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(before)

class HFBackend(TokenizedBackend):
    """A Hugging Face causal LM (eval mode) with its tokenizer and provenance."""

    kind: ClassVar[str] = "hf"
    capabilities: ClassVar[frozenset[str]] = frozenset({"score", "enumerate", "residual", "heads"})

    def __init__(self, name: str, model: Any, tokenizer: Any, info: dict, batch_size: int = 1):
        self.name, self.model, self.tokenizer, self.info = name, model, tokenizer, info
        self.batch_size = batch_size

    @property
    def device(self) -> torch.device:
        """Where inputs go: the device of the model's first parameters (the embedding)."""
        return next(self.model.parameters()).device

    def _tensor(self, rows: list[list[int]]) -> torch.Tensor:
        return torch.tensor(rows, dtype=torch.long, device=self.device)

    # --- the KV-cache fork --------------------------------------------------------------------------

    @torch.inference_mode()
    def prefill(self, prompts: Sequence[list[int]]) -> Prefill:
        """Run prompts (token ids) as one left-padded batch, keeping the cache and the next-token log-probs."""
        lengths = [len(p) for p in prompts]
        width = max(lengths)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = self._tensor([[pad] * (width - len(p)) + list(p) for p in prompts])  # [B, width]
        kwargs: dict[str, Any] = {}
        mask = None
        if min(lengths) < width:
            mask = self._tensor([[0] * (width - n) + [1] * n for n in lengths])  # [B, width]
            kwargs = {"attention_mask": mask, "position_ids": (mask.cumsum(-1) - 1).clamp(min=0)}
        out = self.model(input_ids=ids, use_cache=True, logits_to_keep=1, **kwargs)
        last = torch.log_softmax(out.logits[:, -1].float(), dim=-1)  # [B, vocab]
        return Prefill(out.past_key_values, mask, lengths, last)

    @torch.inference_mode()
    def extend(self, pre: Prefill, rows: Sequence[int], tails: Sequence[Sequence[int]],
               keep: Sequence[int] | None = None) -> torch.Tensor:
        """Feed ``tails[i]`` after prompt ``rows[i]`` of ``pre`` on a fork of its cache.

        Returns float32 log-probabilities of the next token: ``[C, longest, vocab]`` at every tail
        position, or ``[C, vocab]`` at position ``keep[i]`` of row ``i`` when ``keep`` is given.
        """
        index = torch.tensor(list(rows), dtype=torch.long, device=self.device)  # [C]
        cache = fork_cache(pre.cache, index)
        longest = max(len(t) for t in tails)
        batch = self._tensor([list(t) + [0] * (longest - len(t)) for t in tails])  # [C, longest]
        starts = torch.tensor([pre.lengths[r] for r in rows], device=self.device)  # [C]
        positions = starts[:, None] + torch.arange(longest, device=self.device)[None]  # [C, longest]
        kwargs: dict[str, Any] = {}
        if pre.mask is not None:
            ones = torch.ones(len(rows), longest, dtype=pre.mask.dtype, device=self.device)
            kwargs["attention_mask"] = torch.cat([pre.mask[index], ones], dim=1)  # [C, width + longest]
        if keep is None:
            logits = self.model(input_ids=batch, past_key_values=cache, position_ids=positions, **kwargs).logits
            return torch.log_softmax(logits.float(), dim=-1)  # [C, longest, vocab]
        at = torch.tensor(list(keep), device=self.device)  # [C]
        kept = torch.unique(at)  # only the positions read reach the (large) output layer
        logits = self.model(input_ids=batch, past_key_values=cache, position_ids=positions,
                            logits_to_keep=kept, **kwargs).logits  # [C, len(kept), vocab]
        picked = logits[torch.arange(len(rows), device=self.device), torch.searchsorted(kept, at)]  # [C, vocab]
        return torch.log_softmax(picked.float(), dim=-1)

    @torch.inference_mode()
    def next_token_logits(self, ids: Sequence[int], last_only: bool = False) -> torch.Tensor:
        """Logits of the next token after every prefix of one token sequence, with no cache:
        ``[len(ids), vocab]``, or ``[1, vocab]`` for the last position alone (``last_only``).

        The slow, obvious pass that the naive scorer and the naive enumeration check the cache against.
        """
        kwargs = {"logits_to_keep": 1} if last_only else {}
        return self.model(input_ids=self._tensor([list(ids)]), **kwargs).logits[0]

    def end_token_ids(self) -> set[int]:
        """Token ids that end a sequence for this model (tokenizer and generation config)."""
        ids: set[int] = set()
        gen = getattr(self.model, "generation_config", None)
        for c in (getattr(self.tokenizer, "eos_token_id", None), getattr(gen, "eos_token_id", None)):
            if isinstance(c, int):
                ids.add(c)
            elif isinstance(c, (list, tuple)):
                ids.update(int(x) for x in c)
        return ids

    # --- the residual stream ------------------------------------------------------------------------

    @property
    def n_layers(self) -> int:
        """Decoder layers of the model (``resid_post.0`` .. ``resid_post.{n_layers - 1}``)."""
        return n_layers(self.model)

    def capture_residuals(self, ids: Sequence[Sequence[int]], positions: Sequence[int], layers: Sequence[int],
                          pad: int | None = None) -> dict[int, torch.Tensor]:
        """``resid_post`` at ``positions[row]`` of every row of token ids (right-padded with ``pad``,
        default the tokenizer's), for each layer: ``{layer: [rows, d_model]}`` float32."""
        if pad is None:
            pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        width = max(len(r) for r in ids)
        batch = self._tensor([list(r) + [pad] * (width - len(r)) for r in ids])  # [rows, width]
        return capture_residuals(self.model, batch, positions, layers)

    @contextmanager
    def patching(self, patches: Sequence[Patch]) -> Iterator[list[int]]:
        """While active, every forward pass writes the patches into the residual stream; yields the
        count of hook calls per patch (see :func:`superpose.backends.residual.patching`)."""
        with patching(self.model, patches) as fired:
            yield fired

    # --- scoring ------------------------------------------------------------------------------------

    def score(self, requests: Sequence[ScoreRequest]) -> list[list[ContinuationScore]]:
        """Exact chain-rule log-probabilities, ``batch_size`` prompts per forward pass."""
        requests = list(requests)
        encoded = [self.encode(r) for r in requests]  # every fit check before any compute
        results: list[list[ContinuationScore]] = []
        for start in range(0, len(encoded), self.batch_size):
            chunk = encoded[start: start + self.batch_size]
            for request, enc, lps in zip(requests[start: start + self.batch_size], chunk, self._logprobs(chunk)):
                results.append([ContinuationScore(text, ids, lp, straddles) for text, (ids, straddles), lp
                                in zip(request.continuations, enc.tokens, lps)])
        return results

    def _logprobs(self, chunk: list[Encoded], pre: Prefill | None = None,
                  before_extend: Any = None) -> list[list[list[float]]]:
        """Per request, per continuation, the log-probability of each of its tokens (``pre``: the prompts'
        prefill, already run; ``before_extend(rows)`` is told which prompt row each answer row forks)."""
        if pre is None:
            pre = self.prefill([e.prompt_ids for e in chunk])
        out = [[[pre.last_logprobs[b, ids[0]].item()] for ids, _ in e.tokens] for b, e in enumerate(chunk)]
        where = [(b, j) for b, e in enumerate(chunk) for j, (ids, _) in enumerate(e.tokens) if len(ids) > 1]
        if where:
            if before_extend is not None:
                before_extend([b for b, _ in where])
            conts = [chunk[b].tokens[j][0] for b, j in where]
            lp = self.extend(pre, [b for b, _ in where], [ids[:-1] for ids in conts])  # [C, longest-1, vocab]
            picked = gather_logprobs(lp, [ids[1:] for ids in conts])  # [C, longest-1]
            for row, ((b, j), ids) in enumerate(zip(where, conts)):
                out[b][j] += picked[row, : len(ids) - 1].tolist()
        return out


    # --- the lens and the heads (capability "heads") -------------------------------------------------

    def _scores(self, request: ScoreRequest, enc: Encoded, lps: list[list[float]]) -> list[ContinuationScore]:
        return [ContinuationScore(text, ids, lp, straddles)
                for text, (ids, straddles), lp in zip(request.continuations, enc.tokens, lps)]

    def lens_logprobs(self, hidden: torch.Tensor) -> torch.Tensor:
        """The logit lens: ``[n, d_model]`` residual vectors through the final norm and unembedding ->
        ``[n, vocab]`` float32 log-probabilities."""
        return unembed_logprobs(self.model, hidden)

    def score_with_residuals(self, requests: Sequence[ScoreRequest], layers: Sequence[int]
                             ) -> tuple[list[list[ContinuationScore]], dict[int, torch.Tensor]]:
        """:meth:`score`, and ``resid_post`` at each prompt's last token for ``layers``, from ONE pass per
        batch: the answers' tokens packed after the prompt under a tree mask (:mod:`superpose.backends.packed`;
        a model whose attention that mask cannot describe gets the prompt pass and a cache fork instead).
        Returns ``{layer: [len(requests), d_model]}`` float32 beside the scores."""
        requests = list(requests)
        encoded = [self.encode(r) for r in requests]
        results: list[list[ContinuationScore]] = []
        captured: dict[int, list[torch.Tensor]] = {int(x): [] for x in layers}
        for start in range(0, len(encoded), self.batch_size):
            chunk = encoded[start: start + self.batch_size]
            got, lps = self._packed_pass(chunk, layers)
            for layer in captured:
                captured[layer].append(got[layer])
            for request, enc, lp in zip(requests[start:], chunk, lps):
                results.append(self._scores(request, enc, lp))
        return results, {layer: torch.cat(parts) for layer, parts in captured.items()}

    @torch.inference_mode()
    def _packed_pass(self, chunk: list[Encoded], layers: Sequence[int]
                     ) -> tuple[dict[int, torch.Tensor], list[list[list[float]]]]:
        """One forward pass of prompts and their packed answers: (residuals at each prompt's last token,
        per request per continuation the log-probability of each token)."""
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        batch = pack(chunk, pad, self.device)
        masks = attention_masks(batch, self.model.config, next(self.model.parameters()).dtype)
        if masks is None:
            with recording_last(self.model, layers) as got:  # left padding: every prompt ends in column -1
                pre = self.prefill([e.prompt_ids for e in chunk])
            return got, self._logprobs(chunk, pre)
        with recording_last(self.model, layers, batch.last) as got:
            logits = self.model(input_ids=batch.ids, position_ids=batch.positions, attention_mask=masks,
                                use_cache=False, logits_to_keep=batch.keep).logits  # [B, keep, vocab]
        offset = batch.ids.shape[1] - batch.keep  # column of logits[:, 0]
        rows = [b for b, e in enumerate(chunk) for ids, _ in e.tokens for _ in ids]
        cols = [c - offset for r in batch.reads for cont in r for c in cont]
        tokens = [t for e in chunk for ids, _ in e.tokens for t in ids]
        lp = torch.log_softmax(logits[rows, cols].float(), dim=-1)  # [answer tokens, vocab]
        flat = iter(lp[torch.arange(len(tokens)), tokens].tolist())
        return got, [[[next(flat) for _ in ids] for ids, _ in e.tokens] for e in chunk]

    @property
    def head_shape(self) -> tuple[int, int, int]:
        """(layers, attention heads per layer, head dim)."""
        return head_shape(self.model)

    @torch.inference_mode()
    def head_means(self, prompts: Sequence[str]) -> torch.Tensor:
        """Each head's output (the ``o_proj`` input slice) averaged over every token of ``prompts``:
        ``[layers, heads, head_dim]`` float32. One unpadded pass per prompt."""
        layers, heads, dim = self.head_shape
        with recording_head_means(self.model) as state:
            for text in prompts:
                self.model(input_ids=self._tensor([encode_prompt(self.tokenizer, text)]), use_cache=False,
                           logits_to_keep=1)
        sums, count = state
        return (sums / max(count, 1)).float().reshape(layers, heads, dim)

    def score_ablated(self, request: ScoreRequest, rows: Sequence[Sequence[tuple[int, int]]],
                      means: torch.Tensor, rows_per_pass: int = 8) -> list[list[ContinuationScore]]:
        """Score one request once per entry of ``rows``, with that entry's heads (``(layer, head)``
        pairs; empty: none) mean-ablated to ``means`` (``[layers, heads, head_dim]``) at every position,
        prompt and answer tokens alike; ``rows_per_pass`` copies of the prompt share a forward pass."""
        enc = self.encode(request)
        results: list[list[ContinuationScore]] = []
        for start in range(0, len(rows), rows_per_pass):
            part = [list(r) for r in rows[start: start + rows_per_pass]]
            with ablating_heads(self.model, means.to(self.device), part) as plan:
                pre = self.prefill([enc.prompt_ids] * len(part))

                def fork(parents: list[int]) -> None:
                    plan[0] = [part[b] for b in parents]

                for lps in self._logprobs([enc] * len(part), pre, before_extend=fork):
                    results.append(self._scores(request, enc, lps))
        return results

    def attention_weights(self, ids: Sequence[Sequence[int]]) -> torch.Tensor:
        """Attention patterns for rows of equal length: ``[layers, rows, heads, seq, seq]`` float32."""
        return attention_weights(self.model, self._tensor([list(r) for r in ids]))

    @classmethod
    def load(cls, name: str, dtype: str = "float32", device: str | None = None, batch_size: int | None = None,
             threads: int | None = None) -> HFBackend:
        """Load a causal LM for scoring (eval mode, no grad) with its tokenizer and provenance.

        ``name`` is an embedded name, a GGUF file, a local Hugging Face folder or a hub id. A GGUF file is
        converted once into a cached folder (:mod:`superpose.models.convert`) and read from there.
        ``batch_size`` prompts share a forward pass: by default 16 on a GPU and 1 on a CPU, where padding
        costs more than batching saves (``benchmarks/backends.py``). ``threads`` sets torch's CPU threads
        (None: torch's default).
        """
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        from transformers import AutoModelForCausalLM, AutoTokenizer

        quiet_transformers_in_logs()

        where_device = resolve_device(device)
        if dtype == "bfloat16" and where_device == "cpu":
            warn_bfloat16_on_cpu()
        if threads is not None:
            torch.set_num_threads(threads)
        resolved, folder, info = model_source(name)
        kwargs: dict[str, Any] = {}
        if where_device == "auto":  # several GPUs: accelerate spreads the layers
            kwargs["device_map"] = "auto"
        from superpose.models.columns import attach_columns, has_columns

        try:
            tokenizer = AutoTokenizer.from_pretrained(str(folder))
            # a column-position model's extra weights are attached below: transformers' "UNEXPECTED key"
            # report about them would only alarm
            with errors_only_from_transformers(has_columns(folder)):
                hf_model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=getattr(torch, dtype), **kwargs)
        except (OSError, ValueError) as e:
            raise ModelNotAvailable(f"could not load model '{name}' from {folder}: {e}") from None
        attach_columns(hf_model, folder)  # a column-position model (an architecture change) gets its column weights
        hf_model.eval()
        if where_device != "auto":
            hf_model.to(where_device)
        info.update({
            "name": resolved, "backend": "hf", "dtype": dtype, "device": str(next(hf_model.parameters()).device),
            "n_parameters": sum(p.numel() for p in hf_model.parameters()),
            "max_context": _max_context(hf_model.config, tokenizer),
            "hub_commit": getattr(hf_model.config, "_commit_hash", None),
            "versions": {p: importlib.metadata.version(p) for p in ("torch", "transformers")},
        })
        for key, value in folder_metadata(folder).items():  # training length, weight hashes (when local)
            info.setdefault(key, value)
        info.setdefault("architecture", type(hf_model).__name__)  # a hub id: no local config.json read
        if batch_size is None:
            batch_size = 1 if where_device == "cpu" else 16
        return cls(resolved, hf_model, tokenizer, info, batch_size=batch_size)


def _max_context(config: Any, tokenizer: Any) -> int:
    for attr in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    limit = getattr(tokenizer, "model_max_length", None)
    return int(limit) if isinstance(limit, int) and limit < 10**8 else 2048


__all__ = ["HFBackend", "Prefill", "fork_cache", "gather_logprobs"]
