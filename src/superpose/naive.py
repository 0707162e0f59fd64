"""The naive scorer: one full forward pass over prompt + continuation per continuation.

Every backend computes exact chain-rule log-probabilities of continuations (see
:mod:`superpose.backends`); the transformers backend does it with one prompt pass per prompt and a
fork of its KV cache. :class:`NaiveScorer` computes the same numbers the slow, obvious way, so it is
the test oracle and the benchmark baseline -- the study's reference code scores this way (K passes
of the whole prompt), without the float32 log-space sums and the token-boundary check kept here.
"""

from __future__ import annotations

from typing import Sequence

import torch

from superpose.backends.base import ContinuationScore, Enumerating, ScoreRequest


class NaiveScorer:
    """One full forward pass over prompt + continuation per continuation (oracle and baseline)."""

    def __init__(self, backend: Enumerating):
        self.backend = backend

    @torch.inference_mode()
    def score(self, prompt: str, continuations: Sequence[str]) -> list[ContinuationScore]:
        """Same result as :meth:`~superpose.backends.hf.HFBackend.score`, computed the slow, obvious way."""
        b = self.backend
        encoded = b.encode(ScoreRequest(prompt, continuations))
        n = len(encoded.prompt_ids)
        results = []
        for text, (ids, straddles) in zip(continuations, encoded.tokens):
            logits = b.next_token_logits(encoded.prompt_ids + ids)  # [seq, vocab]
            lp = torch.log_softmax(logits[n - 1: n - 1 + len(ids)].float(), dim=-1)  # [len, vocab]
            targets = torch.tensor(ids, device=lp.device)
            results.append(ContinuationScore(text, ids, lp.gather(1, targets[:, None])[:, 0].tolist(), straddles))
        return results
