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

from superpose.scratch.data import make_sequence, sequence_rng
from superpose.scratch.tokenizer import char_vocab
from superpose.tasks import get_task


@torch.no_grad()
def loss_by_example(model, task_names: Sequence[str], n_examples: int, n_sequences: int = 64,
                    seed: int = 0) -> list[float]:
    """Mean cross-entropy (nats per answer character, newline excluded) of each example's answer.

    Returns ``n_examples + 1`` values: examples 1..n, then the query. Sequences are drawn as in
    training (one task per sequence, chosen uniformly from ``task_names``), from ``seed``.
    """
    tasks, vocab = [get_task(n) for n in task_names], char_vocab()
    device = next(model.parameters()).device
    totals = torch.zeros(n_examples + 1, dtype=torch.float64)
    for i in range(n_sequences):
        seq = make_sequence(tasks, n_examples, sequence_rng(seed, i))
        ids = torch.tensor([[vocab[c] for c in seq.text]], device=device)  # [1, seq]
        logprobs = F.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)  # [seq, vocab]
        answers = _answer_spans(seq.loss_mask)
        for j, (start, end) in enumerate(answers):
            targets = ids[0, start:end - 1]  # the answer's characters, not its newline
            totals[j] -= logprobs[start - 1:end - 2].gather(1, targets[:, None]).mean().item()
    return (totals / n_sequences).tolist()


def _answer_spans(mask: Sequence[bool]) -> list[tuple[int, int]]:
    """(start, end) of each run of loss-carrying characters: one answer and its newline."""
    spans, start = [], None
    for t, on in enumerate(list(mask) + [False]):
        if on and start is None:
            start = t
        elif not on and start is not None:
            spans.append((start, t))
            start = None
    return spans
