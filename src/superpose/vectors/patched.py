"""Exact log P(answer) after a prompt whose residual stream is patched during the prompt pass.

The prompt (e.g. the zero-shot query ``57@23=``) is repeated ``batch`` times and run once with the
patches active, so every row can carry its own vector (the λ grid, or one layer per row). The patch
touches only the prompt's positions; the answers' tokens are then scored, without hooks, on the
patched KV cache, so the patched separator shapes every answer token through attention -- the
answer is multi-token and its probability is the exact chain-rule product, as in
:mod:`superpose.scoring`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from superpose.errors import PromptTooLong
from superpose.models import LoadedModel
from superpose.scoring import encode_continuation, encode_prompt
from superpose.vectors.hooks import Patch, patching


@torch.inference_mode()
def patched_logprobs(lm: LoadedModel, prompt: str, answers: Sequence[str], batch: int,
                     patches: Sequence[Patch]) -> np.ndarray:
    """log P(answer_k | prompt) for each of ``batch`` patched copies of the prompt: ``[batch, K]`` (float64)."""
    tok, model = lm.tokenizer, lm.model
    prompt_ids = encode_prompt(tok, prompt)
    conts = [encode_continuation(tok, prompt, prompt_ids, a)[0] for a in answers]
    n, k = len(prompt_ids), len(conts)
    longest = max(len(c) for c in conts)
    if n + longest > lm.max_context:
        raise PromptTooLong(f"prompt of {n} tokens plus an answer of {longest} exceeds the context of '{lm.name}'")
    device = lm.device
    ids = torch.tensor([prompt_ids] * batch, dtype=torch.long, device=device)  # [batch, n]
    with patching(model, patches) as fired:
        out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
    if patches and not all(fired):
        raise RuntimeError(f"a patch hook did not fire (calls per patch: {fired})")
    first = torch.log_softmax(out.logits[:, -1].float(), dim=-1)  # [batch, vocab]
    logp = np.zeros((batch, k))
    firsts = torch.tensor([c[0] for c in conts], device=device)
    logp += first[:, firsts].double().cpu().numpy()  # [batch, K]
    if longest > 1:
        cache = out.past_key_values
        cache.batch_repeat_interleave(k)  # row b*K + j continues prompt copy b with answer j
        pad = 0  # padded positions follow every real token and are never read
        tails = [c[:-1] + [pad] * (longest - len(c)) for c in conts]  # [K, longest-1]
        cont_ids = torch.tensor(tails * batch, dtype=torch.long, device=device)  # [batch*K, longest-1]
        positions = torch.arange(n, n + longest - 1, device=device).expand(batch * k, -1)
        logits = model(input_ids=cont_ids, past_key_values=cache, position_ids=positions).logits
        lp = torch.log_softmax(logits.float(), dim=-1)  # [batch*K, longest-1, vocab]
        for j, c in enumerate(conts):
            if len(c) > 1:
                targets = torch.tensor(c[1:], device=device)  # [len-1]
                rows = lp[j::k, : len(c) - 1]  # [batch, len-1, vocab]
                picked = rows.gather(2, targets[None, :, None].expand(batch, -1, 1))[..., 0]  # [batch, len-1]
                logp[:, j] += picked.double().sum(dim=1).cpu().numpy()
    return logp

