"""Is a trained model learning in context? Its answer loss by example index.

In a single-task sequence the first answer cannot be known (the hidden k is not yet shown), and
every later one can, given the examples before it. So a model that infers k in context has a loss
that falls with the example index; a model that has learned only the answers' form (e.g. "copy one
of the query's letters", the ret_k plateau) has a flat one. This is the in-context-learning score of
induction-head studies, per example rather than per token.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from superpose.scratch.data import make_batch
from superpose.scratch.tokenizer import char_vocab
from superpose.tasks import get_task


@torch.no_grad()
def loss_by_example(model, task_names: Sequence[str], n_examples: int, n_sequences: int = 64,
                    seed: int = 0) -> list[float]:
    """Mean cross-entropy (nats per answer character, newline excluded) of each example's answer.

    Returns ``n_examples + 1`` values: examples 1..n, then the query. The sequences are training
    batch 0 of ``seed`` (one task per sequence, chosen uniformly from ``task_names``).
    """
    vocab = char_vocab()
    ids, mask = make_batch([get_task(n) for n in task_names], n_examples, seed, 0, n_sequences, vocab)
    device = next(model.parameters()).device
    logits = model(input_ids=ids.to(device)).logits.float().cpu()  # [n_seq, seq, vocab]
    # log P(token t+1) at position t; right padding never reaches a scored token (causal attention)
    target_logprob = F.log_softmax(logits[:, :-1], dim=-1).gather(2, ids[:, 1:, None])[..., 0]  # [n_seq, seq-1]
    newline = ids == vocab["\n"]  # [n_seq, seq]
    is_answer = mask[:, 1:] & ~newline[:, 1:]  # answer characters, not the newline after them
    example = newline.cumsum(1)[:, :-1]  # [n_seq, seq-1]: example of token t+1 = newlines up to t
    rows = torch.arange(n_sequences)[:, None].expand_as(example)
    where = (rows[is_answer], example[is_answer])
    sums = torch.zeros(n_sequences, n_examples + 1, dtype=torch.float64)
    counts = torch.zeros_like(sums)
    sums.index_put_(where, -target_logprob[is_answer].double(), accumulate=True)
    counts.index_put_(where, torch.ones_like(sums[where]), accumulate=True)
    return (sums / counts).mean(0).tolist()  # mean over each answer's characters, then sequences
