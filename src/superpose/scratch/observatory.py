"""The training observatory: what a model has learned, measured on a fixed held-out batch while it trains.

Every ``eval_every`` steps :class:`Observatory` appends one line to the run's ``observatory.jsonl``:

* ``loss_by_example``: the answer loss (answer character and its newline, the training loss's unit)
  of example 1, 2, .., n and the query. A model that infers k in context falls after example 1;
  the copying plateau of ret_k is flat at ln 8 / 2 = 1.04. ``loss_from_5`` is the mean from
  example 5 on (the query included): the issue's criterion for leaving the plateau is <= 0.52.
* ``icl_accuracy``: how often the most likely next character is the answer, from example 2 on.
* for retrieval tasks (ret_k, kret), ``column_attention``: per layer, the attention mass (max over
  heads, and each head's) from the position that predicts the query's answer onto the query's
  correct column, from eager attention on this batch only (training keeps its kernel).
* ``lambda_snapshot`` (see :mod:`.snapshot`): a small position-controlled λ sweep of one task pair,
  labelled aggregation / recency / neither.

The held-out sequences come from their own seed string (``observatory:<seed>``), never a training
step's, and are the same at every evaluation, so the curves compare one batch across steps.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F

from superpose.scratch.data import TrainingSequence, make_sequence, sequence_rng
from superpose.scratch.families import retrieval_k
from superpose.scratch.tokenizer import char_vocab
from superpose.tasks import get_task

PLATEAU_FRACTION = 0.5  # leaving the plateau: loss_from_5 <= this share of the copying plateau


def heldout_sequences(task_names: Sequence[str], n_examples: int, seed: int, n: int) -> list[TrainingSequence]:
    """The observatory's fixed batch: ``n`` single-task sequences from the seed ``observatory:<seed>``."""
    tasks = [get_task(t) for t in task_names]
    return [make_sequence(tasks, n_examples, sequence_rng(f"observatory:{seed}", i)) for i in range(n)]


def _tensors(seqs: list[TrainingSequence]) -> tuple[torch.Tensor, torch.Tensor]:
    vocab = char_vocab()
    width = max(len(s.text) for s in seqs)
    ids = torch.zeros((len(seqs), width), dtype=torch.long)  # [batch, seq]
    mask = torch.zeros((len(seqs), width), dtype=torch.bool)  # [batch, seq]
    for j, s in enumerate(seqs):
        ids[j, : len(s.text)] = torch.tensor([vocab[c] for c in s.text])
        mask[j, : len(s.text)] = torch.tensor(s.loss_mask)
    return ids, mask


def example_losses(logits: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor, n_lines: int
                   ) -> tuple[list[float], list[float]]:
    """(mean answer loss, answer-character accuracy) of each line (examples, then the query).

    logits: [batch, seq, vocab]; ids, mask: [batch, seq]. The loss is over the answer's characters
    and its newline (as in training); the accuracy is the first answer character's argmax.
    """
    newline_id = char_vocab()["\n"]
    logp = F.log_softmax(logits[:, :-1].float(), dim=-1)  # [batch, seq-1, vocab]
    nll = -logp.gather(2, ids[:, 1:, None])[..., 0]  # [batch, seq-1]: -log P(token t+1)
    target = mask[:, 1:]  # [batch, seq-1]
    line = (ids == newline_id).cumsum(1)[:, :-1]  # [batch, seq-1]: line of token t+1
    first = target & ~torch.cat([torch.zeros_like(target[:, :1]), target[:, :-1]], 1)  # first answer char
    correct = logp.argmax(-1) == ids[:, 1:]  # [batch, seq-1]
    losses, accs = [], []
    for i in range(n_lines):
        sel = target & (line == i)
        losses.append(float(nll[sel].mean()))
        accs.append(float(correct[first & (line == i)].float().mean()))
    return losses, accs


def answer_columns(seqs: list[TrainingSequence]) -> list[tuple[int, int] | None]:
    """Per sequence: (position that predicts the query's answer, position of the query's correct
    letter) for retrieval tasks, None for others."""
    out = []
    for s in seqs:
        k = retrieval_k(get_task(s.task))
        if k is None:
            out.append(None)
            continue
        start = s.text.rstrip("\n").rfind("\n") + 1  # the query line
        gt = s.text.index(">", start)
        column = start + (int(s.text[start]) if k == 0 else k - 1)  # kret: the digit, then the letters
        out.append((gt, column))
    return out


class Observatory:
    """Measures a model on a fixed held-out batch and appends the numbers to ``observatory.jsonl``."""

    def __init__(self, task_names: Sequence[str], n_examples: int, seed: int, n_sequences: int,
                 attention: str, path: Path, snapshot=None):
        self.seqs = heldout_sequences(task_names, n_examples, seed, n_sequences)
        self.ids, self.mask = _tensors(self.seqs)
        self.columns = answer_columns(self.seqs)
        self.n_lines = n_examples + 1
        self.attention, self.path, self.snapshot = attention, path, snapshot

    @torch.no_grad()
    def measure(self, model) -> dict:
        """The observatory's numbers for ``model`` now (eager attention for this batch only)."""
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        want_attention = any(c is not None for c in self.columns)
        if want_attention:
            model.set_attn_implementation("eager")
        try:
            out = model(input_ids=self.ids.to(device), output_attentions=want_attention, use_cache=False)
        finally:
            if want_attention:
                model.set_attn_implementation(self.attention)
        logits = out.logits.float().cpu()  # [batch, seq, vocab]
        losses, accs = example_losses(logits, self.ids, self.mask, self.n_lines)
        row = {"loss_by_example": [round(x, 4) for x in losses],
               "loss_from_5": round(sum(losses[4:]) / len(losses[4:]), 4) if len(losses) > 4 else None,
               "icl_accuracy": round(sum(accs[1:]) / len(accs[1:]), 4) if len(accs) > 1 else None}
        if want_attention:
            rows = [(b, q, c) for b, qc in enumerate(self.columns) if qc is not None for q, c in [qc]]
            b, q, c = (torch.tensor(x) for x in zip(*rows))
            per_layer = []
            for att in out.attentions:  # [batch, heads, seq, seq]
                mass = att[b, :, q, c].float().mean(0).cpu()  # [heads]
                per_layer.append([round(float(m), 4) for m in mass])
            row["column_attention"] = per_layer
            row["column_attention_max"] = round(max(max(h) for h in per_layer), 4)
        if self.snapshot is not None:
            row["lambda_snapshot"] = self.snapshot.measure(model)
        if was_training:
            model.train()
        return row

    def observe(self, model, step: int) -> dict:
        """Measure and append one line (with the step and the seconds it took) to the log."""
        clock = time.perf_counter()
        row = {"step": step, **self.measure(model)}
        row["seconds"] = round(time.perf_counter() - clock, 3)
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        return row


def read_observatory(run_dir: str | Path, before: int | None = None) -> list[dict]:
    """The rows of a run's ``observatory.jsonl`` (those before step ``before`` if given)."""
    path = Path(run_dir) / "observatory.jsonl"
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            break  # a line cut short by a kill
        if before is None or row["step"] <= before:
            rows.append(row)
    return rows
