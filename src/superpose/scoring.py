"""Exact log P(continuation | prompt) for several continuations of one shared prompt.

Task superposition is measured by the probability a model gives to *each* task's answer after the
same prompt. An answer is usually several tokens, so its probability is the chain-rule product
``P(a_1 | prompt) * P(a_2 | prompt, a_1) * ...``, which we keep as a sum of float32 log-probabilities
(products of bf16 probabilities underflow to 0 and make the KL divergence infinite).

Two scorers give the same numbers:

* :class:`SharedPrefixScorer` (the one to use) runs the prompt once, keeping only the last position's
  logits, then copies its KV cache K times and runs all K answers as one right-padded batch. Cost is
  one prompt pass plus ``K x len(answer)`` tokens, instead of K prompt passes. Right padding needs no
  attention mask: a real token never attends to a later pad, and the pads' own outputs are dropped.
* :class:`NaiveScorer` runs one full forward pass over prompt + answer per answer. It is slow and
  obviously right, so it is the test oracle and the benchmark baseline.

The token boundary. Scoring needs the answer's tokens *after* the prompt's tokens. We tokenize
``prompt + answer`` jointly and take the tail when the prompt's own tokens are an exact prefix (the
usual case: the study's separators ``=`` and ``->`` end a token). When a token straddles the boundary
(BPE merged the prompt's last characters with the answer's first), we fall back to encoding the
answer on its own, append it to the prompt's tokens, and flag the score as ``straddles=True``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, Sequence

import torch

from superpose.errors import PromptTooLong, SuperposeError
from superpose.models import LoadedModel


@dataclass
class ContinuationScore:
    """The scored continuation: its tokens and the log-probability of each given what precedes it."""

    text: str
    token_ids: list[int]
    token_logprobs: list[float]
    straddles: bool = False  # the joint tokenization merged prompt and continuation; see module doc

    @property
    def logprob(self) -> float:
        """log P(continuation | prompt), natural log."""
        return math.fsum(self.token_logprobs)

    @property
    def prob(self) -> float:
        """P(continuation | prompt)."""
        return math.exp(self.logprob)


class Scorer(Protocol):
    """Anything that rates continuations of a prompt."""

    def score(self, prompt: str, continuations: Sequence[str]) -> list[ContinuationScore]:
        """One :class:`ContinuationScore` per continuation, in order."""
        ...


def encode_prompt(tokenizer, prompt: str) -> list[int]:
    """Prompt token ids, with the special tokens the model expects in front (e.g. Gemma's <bos>)."""
    return list(tokenizer(prompt).input_ids)


def encode_continuation(tokenizer, prompt: str, prompt_ids: list[int], continuation: str) -> tuple[list[int], bool]:
    """(continuation token ids after ``prompt_ids``, whether a token straddled the boundary)."""
    if not continuation:
        raise SuperposeError("cannot score an empty continuation")
    joint = list(tokenizer(prompt + continuation).input_ids)
    n = len(prompt_ids)
    if joint[:n] == prompt_ids and len(joint) > n:
        return joint[n:], False
    return list(tokenizer(continuation, add_special_tokens=False).input_ids), True


class _BaseScorer:
    def __init__(self, lm: LoadedModel):
        self.lm = lm
        self.model, self.tokenizer = lm.model, lm.tokenizer

    def _encode(self, prompt: str, continuations: Sequence[str]) -> tuple[list[int], list[tuple[list[int], bool]]]:
        if not continuations:
            raise SuperposeError("no continuations to score")
        prompt_ids = encode_prompt(self.tokenizer, prompt)
        conts = [encode_continuation(self.tokenizer, prompt, prompt_ids, c) for c in continuations]
        total = len(prompt_ids) + max(len(ids) for ids, _ in conts)
        if total > self.lm.max_context:
            raise PromptTooLong(
                f"prompt of {len(prompt_ids)} tokens plus an answer of "
                f"{total - len(prompt_ids)} does not fit in the context of model '{self.lm.name}' "
                f"({self.lm.max_context} tokens); use fewer examples (n_examples)")
        return prompt_ids, conts

    def _tensor(self, ids: list[list[int]]) -> torch.Tensor:
        return torch.tensor(ids, dtype=torch.long, device=self.lm.device)


class SharedPrefixScorer(_BaseScorer):
    """One prompt pass, then all continuations batched on copies of its KV cache."""

    @torch.inference_mode()
    def score(self, prompt: str, continuations: Sequence[str]) -> list[ContinuationScore]:
        """Exact chain-rule log-probabilities of every continuation after ``prompt``."""
        prompt_ids, conts = self._encode(prompt, continuations)
        out = self.model(input_ids=self._tensor([prompt_ids]), use_cache=True, logits_to_keep=1)
        first = torch.log_softmax(out.logits[0, -1].float(), dim=-1)  # [vocab]
        logprobs = [[first[ids[0]].item()] for ids, _ in conts]

        longest = max(len(ids) for ids, _ in conts)
        if longest > 1:
            k, n = len(conts), len(prompt_ids)
            cache = out.past_key_values
            cache.batch_repeat_interleave(k)
            pad = 0  # any id: padded positions come after every real token and are never read
            batch = [ids[:-1] + [pad] * (longest - len(ids)) for ids, _ in conts]  # [K, longest-1]
            positions = torch.arange(n, n + longest - 1, device=self.lm.device).expand(k, -1)
            logits = self.model(input_ids=self._tensor(batch), past_key_values=cache,
                                position_ids=positions).logits  # [K, longest-1, vocab]
            for i, (ids, _) in enumerate(conts):
                if len(ids) > 1:
                    lp = torch.log_softmax(logits[i, : len(ids) - 1].float(), dim=-1)  # [len-1, vocab]
                    targets = torch.tensor(ids[1:], device=lp.device)
                    logprobs[i] += lp.gather(1, targets[:, None])[:, 0].tolist()
        return [ContinuationScore(text, ids, lps, straddles)
                for text, (ids, straddles), lps in zip(continuations, conts, logprobs)]


class NaiveScorer(_BaseScorer):
    """One full forward pass over prompt + continuation per continuation (oracle and baseline)."""

    @torch.inference_mode()
    def score(self, prompt: str, continuations: Sequence[str]) -> list[ContinuationScore]:
        """Same result as :class:`SharedPrefixScorer`, computed the slow, obvious way."""
        prompt_ids, conts = self._encode(prompt, continuations)
        results = []
        n = len(prompt_ids)
        for text, (ids, straddles) in zip(continuations, conts):
            logits = self.model(input_ids=self._tensor([prompt_ids + ids])).logits[0]  # [seq, vocab]
            lp = torch.log_softmax(logits[n - 1 : n - 1 + len(ids)].float(), dim=-1)
            targets = torch.tensor(ids, device=lp.device)
            results.append(ContinuationScore(text, ids, lp.gather(1, targets[:, None])[:, 0].tolist(), straddles))
        return results
