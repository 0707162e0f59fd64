"""Output enumeration ("superposed decoding"): a model's most probable complete outputs after a prompt.

Sampling or greedy decoding shows one output; a model that holds several tasks in superposition puts
probability on several complete answers at once. :class:`OutputEnumerator` lists them: a best-first
search over the tree of token continuations, from the most probable partial output down, that

* runs the prompt once and reuses its KV cache for every expansion (each expansion only feeds the
  few tokens of its partial output, several frontier nodes batched in one forward pass);
* expands only partial outputs whose probability is at least ``min_prob`` (so the tree stays small);
* stops at limits on expansions, output length (tokens) and the number of outputs wanted.

A complete output is the token sequence up to and including the first token whose decoded text
contains the terminator (default newline); its string is the text before the terminator. A token
the model treats as end-of-sequence also ends an output (``ended_by="eos"``). Different token paths
can spell the same string (e.g. "17" as one token or as "1" + "7"): outputs are merged by string and
their probabilities summed, so an output's probability is P(the model writes this string, then the
terminator) over every path the search found. The probability of one path is exact (the chain rule
in float32 log-probabilities, as :mod:`superpose.naive` computes it).

Mass accounting: every unit of probability ends in exactly one bucket, so
``covered + frontier + pruned + truncated == 1`` up to rounding:

* ``covered_mass``  -- complete outputs found (all of them, listed or not);
* ``frontier_mass`` -- partial outputs still waiting when a limit stopped the search;
* ``pruned_mass``   -- continuations below ``min_prob`` (or beyond ``max_branching``), never expanded;
* ``truncated_mass``-- partial outputs that reached ``max_tokens`` without a terminator.

Any string not listed has probability at most ``1 - covered_mass``, which bounds what the search
could have missed.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import asdict, dataclass, field
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from superpose.backends.base import Enumerating, Prefill, encode_prompt
from superpose.errors import SuperposeError

EndedBy = Literal["terminator", "eos"]  # what ended an output: the terminator string, or an end-of-sequence token
StopReason = Literal["exhausted", "max_expansions", "max_outputs"]


class EnumerateSettings(BaseModel):
    """Limits of the output search (also a block of the scale config)."""

    model_config = ConfigDict(extra="forbid")

    terminator: str = Field("\n", min_length=1)  # an output ends at the first token containing it
    min_prob: float = Field(1e-4, gt=0, lt=1)  # expand only partial outputs at least this probable
    max_expansions: int = Field(256, ge=1)  # nodes expanded (one next-token distribution each)
    max_tokens: int = Field(16, ge=1)  # longest output in tokens, terminator included
    max_outputs: int = Field(20, ge=1)  # stop once this many outputs are found and none can overtake
    max_branching: int = Field(100, ge=1)  # children kept per node (most probable first)
    batch_size: int = Field(16, ge=1)  # frontier nodes expanded per forward pass
    stop_at_eos: bool = True  # an end-of-sequence token also completes an output


@dataclass
class Output:
    """One distinct complete output and every token path found that spells it."""

    text: str
    prob: float  # sum over paths
    ended_by: EndedBy
    paths: list[list[int]] = field(default_factory=list)  # token ids, terminator/eos token included
    path_logprobs: list[float] = field(default_factory=list)

    @property
    def logprob(self) -> float:
        """log of :attr:`prob` (natural log)."""
        return math.log(self.prob) if self.prob > 0 else -math.inf


@dataclass
class Enumeration:
    """The result of one search: outputs best first, and where the rest of the probability went."""

    prompt_tokens: int
    outputs: list[Output]  # best first, at most max_outputs
    covered_mass: float
    frontier_mass: float
    pruned_mass: float
    truncated_mass: float
    n_expansions: int
    n_forward_passes: int  # the prompt pass included
    stop_reason: StopReason
    n_found: int  # distinct complete outputs found (may exceed len(outputs))

    @property
    def listed_mass(self) -> float:
        """Probability of the listed outputs."""
        return math.fsum(o.prob for o in self.outputs)

    @property
    def unexplored_mass(self) -> float:
        """Upper bound on the probability of any output the search did not find."""
        return max(0.0, 1.0 - self.covered_mass)

    def texts(self, k: int | None = None, ended_by: str | None = "terminator") -> list[str]:
        """The ``k`` most probable output strings (only terminator-ended ones by default)."""
        items = [o.text for o in self.outputs if ended_by is None or o.ended_by == ended_by]
        return items if k is None else items[:k]

    def prob_of(self, text: str, ended_by: str = "terminator") -> float:
        """Probability found for ``text`` (0 when the search did not reach it)."""
        return next((o.prob for o in self.outputs if o.text == text and o.ended_by == ended_by), 0.0)

    def to_dict(self) -> dict:
        """A JSON-serialisable record."""
        return {**asdict(self), "unexplored_mass": self.unexplored_mass}


@dataclass(order=True)
class _Node:
    neg_logprob: float  # heap key: the most probable partial output first
    order: int  # tie-break by creation order, so the search is deterministic
    path: tuple[int, ...] = field(compare=False)


class OutputEnumerator:
    """Best-first enumeration of complete outputs, on the prompt's KV cache (``reuse_cache=True``).

    ``reuse_cache=False`` re-runs prompt + partial output for every expansion: same numbers, slower;
    it is the test oracle and the benchmark baseline.
    """

    def __init__(self, lm: Enumerating, settings: EnumerateSettings | None = None, reuse_cache: bool = True):
        type(lm).require("enumerate", "output enumeration")
        self.lm = lm
        self.tokenizer = lm.tokenizer
        self.settings = settings or EnumerateSettings()
        self.reuse_cache = reuse_cache
        self.end_ids = lm.end_token_ids()

    # --- decoding text ------------------------------------------------------------------------

    def _decode(self, context: list[int], path: tuple[int, ...]) -> str:
        # Decode after the prompt's last token: some tokenizers drop a leading space when a
        # sequence starts with a word-initial piece, which would change the output string.
        if not context:
            return self.tokenizer.decode(list(path), skip_special_tokens=False,
                                         clean_up_tokenization_spaces=False)
        head = self.tokenizer.decode(context, skip_special_tokens=False, clean_up_tokenization_spaces=False)
        full = self.tokenizer.decode(context + list(path), skip_special_tokens=False,
                                     clean_up_tokenization_spaces=False)
        if full.startswith(head):
            return full[len(head):]
        return self.tokenizer.decode(list(path), skip_special_tokens=False, clean_up_tokenization_spaces=False)

    # --- next-token distributions -------------------------------------------------------------

    def _next_logprobs_cached(self, pre: Prefill, paths: list[tuple[int, ...]]) -> torch.Tensor:
        """log P(next token | prompt, path) for each path, on forks of the prompt's cache; [B, vocab] float32."""
        return self.lm.extend(pre, [0] * len(paths), paths, keep=[len(p) - 1 for p in paths])

    def _next_logprobs_naive(self, prompt_ids: list[int], paths: list[tuple[int, ...]]) -> torch.Tensor:
        """Same as the cached version, re-running the whole prompt for every path; [B, vocab]."""
        out = []
        for p in paths:
            ids = prompt_ids + list(p)
            logits = self.lm.next_token_logits(ids, last_only=True)  # [1, vocab]
            out.append(torch.log_softmax(logits[-1].float(), dim=-1))
        return torch.stack(out)

    # --- the search ---------------------------------------------------------------------------

    @torch.inference_mode()
    def enumerate(self, prompt: str, settings: EnumerateSettings | None = None) -> Enumeration:
        """The most probable complete outputs after ``prompt``, best first (see the module doc)."""
        s = settings or self.settings
        prompt_ids = encode_prompt(self.tokenizer, prompt)
        if not prompt_ids:
            raise SuperposeError("cannot enumerate outputs of an empty prompt")
        n = len(prompt_ids)
        self.lm.check_fit(n, s.max_tokens, hint="lower max_tokens or the prompt's n_examples")
        context = prompt_ids[-1:]
        floor = math.log(s.min_prob)

        pre = self.lm.prefill([prompt_ids])
        root = pre.last_logprobs[0]  # [vocab]
        n_forward = 1

        heap: list[_Node] = []
        found: dict[tuple[str, EndedBy], Output] = {}
        mass = {"pruned": 0.0, "truncated": 0.0}
        counter = 0

        def add_children(path: tuple[int, ...], path_lp: float, dist: torch.Tensor) -> None:
            nonlocal counter
            total = path_lp + dist  # [vocab] log P(path + token)
            keep = torch.nonzero(total >= floor).flatten()
            if keep.numel() > s.max_branching:
                keep = keep[torch.topk(total[keep], s.max_branching).indices]
            kept = total[keep].double()
            kept_mass = float(torch.exp(kept).sum()) if keep.numel() else 0.0
            mass["pruned"] += max(0.0, math.exp(path_lp) - kept_mass)
            for tok, lp in zip(keep.tolist(), kept.tolist()):
                child = path + (tok,)
                text = self._decode(context, child)
                cut = text.find(s.terminator)
                if cut >= 0 or (s.stop_at_eos and tok in self.end_ids):
                    ended: EndedBy = "terminator" if cut >= 0 else "eos"
                    key = (text[:cut] if cut >= 0 else self._decode(context, path), ended)
                    o = found.setdefault(key, Output(key[0], 0.0, ended))
                    o.prob += math.exp(lp)
                    o.paths.append(list(child))
                    o.path_logprobs.append(lp)
                elif len(child) >= s.max_tokens:
                    mass["truncated"] += math.exp(lp)
                else:
                    counter += 1
                    heapq.heappush(heap, _Node(-lp, counter, child))

        add_children((), 0.0, root)
        n_expansions = 0
        stop: StopReason = "exhausted"
        while heap:
            if n_expansions >= s.max_expansions:
                stop = "max_expansions"
                break
            if len(found) >= s.max_outputs:
                kth = sorted((o.prob for o in found.values()), reverse=True)[s.max_outputs - 1]
                if math.exp(-heap[0].neg_logprob) < kth:  # no waiting node can beat the k-th output
                    stop = "max_outputs"
                    break
            take = min(s.batch_size, len(heap), s.max_expansions - n_expansions)
            nodes = [heapq.heappop(heap) for _ in range(take)]
            paths = [nd.path for nd in nodes]
            if self.reuse_cache:
                dists = self._next_logprobs_cached(pre, paths)  # [B, vocab]
                n_forward += 1
            else:
                dists = self._next_logprobs_naive(prompt_ids, paths)  # [B, vocab]
                n_forward += len(paths)
            n_expansions += take
            for nd, dist in zip(nodes, dists):
                add_children(nd.path, -nd.neg_logprob, dist)

        outputs = sorted(found.values(), key=lambda o: (-o.prob, o.text))
        return Enumeration(
            prompt_tokens=n, outputs=outputs[: s.max_outputs],
            covered_mass=math.fsum(o.prob for o in outputs),
            frontier_mass=math.fsum(math.exp(-nd.neg_logprob) for nd in heap),
            pruned_mass=mass["pruned"], truncated_mass=mass["truncated"],
            n_expansions=n_expansions, n_forward_passes=n_forward, stop_reason=stop,
            n_found=len(outputs))


def enumerate_outputs(lm: Enumerating, prompt: str, settings: EnumerateSettings | None = None,
                      reuse_cache: bool = True) -> Enumeration:
    """One-call form of :meth:`OutputEnumerator.enumerate`."""
    return OutputEnumerator(lm, settings, reuse_cache).enumerate(prompt)


def format_enumeration(e: Enumeration, tokenizer=None) -> str:
    """A plain-text listing: rank, probability, output (repr), paths; then the mass accounting."""
    lines = [f"{'#':>3} {'prob':>9} {'log P':>8}  output"]
    for i, o in enumerate(e.outputs, 1):
        tag = " [eos]" if o.ended_by == "eos" else ""
        extra = f"  ({len(o.paths)} token paths)" if len(o.paths) > 1 else ""
        if tokenizer is not None and len(o.paths) == 1:
            extra = "  tokens " + "|".join(repr(tokenizer.decode([t]))[1:-1] for t in o.paths[0])
        lines.append(f"{i:>3} {o.prob:>9.5f} {o.logprob:>8.3f}  {o.text!r}{tag}{extra}")
    lines.append(
        f"covered {e.covered_mass:.4f} ({e.n_found} outputs found) · frontier {e.frontier_mass:.4f} · "
        f"pruned {e.pruned_mass:.4f} · truncated {e.truncated_mass:.4f} · {e.n_expansions} expansions "
        f"in {e.n_forward_passes} forward passes · prompt {e.prompt_tokens} tokens · stop: {e.stop_reason}")
    return "\n".join(lines)
