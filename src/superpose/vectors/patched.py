"""Exact log P(answer) after a prompt whose residual stream is patched during the prompt pass.

The prompt (e.g. the zero-shot query ``57@23=``) is repeated ``batch`` times and run once with the
patches active, so every row can carry its own vector (the λ grid, or one layer per row). The patch
touches only the prompt's positions; the answers' tokens are then scored, without hooks, on forks of
the patched KV cache (:meth:`~superpose.backends.hf.HFBackend.extend`), so the patched separator
shapes every answer token through attention -- the answer is multi-token and its probability is the
exact chain-rule product, as every backend computes it.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from superpose.backends.base import Residual, ScoreRequest
from superpose.backends.hf import gather_logprobs
from superpose.backends.residual import Patch


@torch.inference_mode()
def patched_logprobs(lm: Residual, prompt: str, answers: Sequence[str], batch: int,
                     patches: Sequence[Patch]) -> np.ndarray:
    """log P(answer_k | prompt) for each of ``batch`` patched copies of the prompt: ``[batch, K]`` (float64)."""
    encoded = lm.encode(ScoreRequest(prompt, answers))
    conts = [ids for ids, _ in encoded.tokens]
    k = len(conts)
    with lm.patching(patches) as fired:
        pre = lm.prefill([encoded.prompt_ids] * batch)
    if patches and not all(fired):
        raise RuntimeError(f"a patch hook did not fire (calls per patch: {fired})")
    firsts = torch.tensor([c[0] for c in conts], device=pre.last_logprobs.device)
    logp = pre.last_logprobs[:, firsts].double().cpu().numpy()  # [batch, K]
    if max(len(c) for c in conts) > 1:
        rows = [b for b in range(batch) for _ in range(k)]  # row b*K + j continues copy b with answer j
        lp = lm.extend(pre, rows, [c[:-1] for c in conts] * batch)  # [batch*K, longest-1, vocab]
        picked = gather_logprobs(lp, [c[1:] for c in conts] * batch)  # [batch*K, longest-1]
        for j, c in enumerate(conts):
            if len(c) > 1:
                logp[:, j] += picked[j::k, : len(c) - 1].double().sum(dim=1).cpu().numpy()  # [batch]
    return logp
