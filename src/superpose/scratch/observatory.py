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
import math
import time
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F

from superpose.files import read_jsonl
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
    return [row for row in read_jsonl(Path(run_dir) / "observatory.jsonl") if before is None or row["step"] <= before]


def run_title(config: dict, name: str = "") -> tuple[str, list[int]]:
    """A training run's figure title (with the architecture-change label where the model has one)
    and its phase boundaries (steps), from its stored config."""
    from superpose.models.columns import LABEL

    title = str(config.get("name") or name)
    if (config.get("model") or {}).get("column_embedding"):
        title += f" — {LABEL}"
    bounds, start = [], 0
    for phase in (config.get("phases") or [])[:-1]:
        start += phase["steps"]
        bounds.append(start)
    return title, bounds


def plot_observatory(rows: list[dict], path: str | Path, title: str = "", boundaries: Sequence[int] = ()) -> Path:
    """Draw the observatory's numbers against the step: loss by example index, attention on the
    answer's column by layer, and in-context accuracy with the λ snapshot's slopes and verdicts.
    ``boundaries``: phase boundaries (steps), drawn as vertical lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    ax = axes[0]
    n = len(rows[0]["loss_by_example"]) if rows else 0
    for i in sorted({0, 1, 4, n - 1} & set(range(n))):
        label = "query" if i == n - 1 else f"example {i + 1}"
        ax.plot(steps, [r["loss_by_example"][i] for r in rows], lw=1, label=label)
    if rows and rows[0].get("loss_from_5") is not None:
        ax.plot(steps, [r["loss_from_5"] for r in rows], "k", lw=2, label="mean from example 5")
    ax.axhline(math.log(8) / 2, color="grey", ls="--", lw=0.8, label="ret_k copying plateau, ln 8 / 2")
    ax.axhline(math.log(8) / 4, color="grey", ls=":", lw=0.8, label="left the plateau (half of it)")
    ax.set(xlabel="step", ylabel="answer loss (held-out batch)", title="loss by example index")
    ax.legend(fontsize=7)
    ax = axes[1]
    if rows and "column_attention" in rows[0]:
        for layer in range(len(rows[0]["column_attention"])):
            ax.plot(steps, [max(r["column_attention"][layer]) for r in rows], label=f"layer {layer} (best head)")
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "not a retrieval task", ha="center", transform=ax.transAxes)
    ax.set(xlabel="step", ylabel="attention mass", ylim=(0, 1),
           title="query's answer position → its correct column")
    ax = axes[2]
    ax.plot(steps, [r.get("icl_accuracy") for r in rows], "k", label="in-context accuracy (example 2 on)")
    snaps = [(s, r["lambda_snapshot"]) for s, r in zip(steps, rows) if r.get("lambda_snapshot")]
    if snaps:
        for m in snaps[0][1]["slopes"]:
            ax.plot([s for s, _ in snaps], [sn["slopes"][m] for _, sn in snaps], lw=1,
                    label=f"λ slope, last {m} fixed" if m != "0" else "λ slope, plain sweep")
        colors = {"aggregation": "tab:green", "recency": "tab:red", "neither": "tab:grey"}
        for s, sn in snaps:
            ax.scatter([s], [-0.08], color=colors[sn["verdict"]], s=12, marker="s")
        for v, c in colors.items():
            ax.scatter([], [], color=c, marker="s", label=v)
        pair = " vs ".join(snaps[0][1]["pair"])
        ax.set_title(f"accuracy; λ snapshot ({pair}), verdict per checkpoint")
    ax.set(xlabel="step", ylim=(-0.15, 1.1))
    ax.legend(fontsize=7)
    for ax in axes:
        for b in boundaries:
            ax.axvline(b, color="tab:purple", lw=0.8, ls="-.")
    if boundaries:
        axes[0].text(boundaries[0], axes[0].get_ylim()[1], " next phase", color="tab:purple", fontsize=7, va="top")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def observatory_summary(rows: list[dict]) -> str:
    """One paragraph: the last evaluation's numbers, the first step that left the plateau, the verdict."""
    last = rows[-1]
    text = (f"{len(rows)} evaluations; at step {last['step']}: answer loss from example 5 on "
            f"{last.get('loss_from_5')}, in-context accuracy {last.get('icl_accuracy')}")
    if "column_attention_max" in last:
        text += f", attention on the answer's column (best head) {last['column_attention_max']}"
    plateau = [r["step"] for r in rows if r.get("loss_from_5") is not None
               and r["loss_from_5"] <= PLATEAU_FRACTION * math.log(8) / 2]
    text += (f". Left the ret_k copying plateau (loss from example 5 on <= {PLATEAU_FRACTION * math.log(8) / 2:.2f}) "
             f"first at step {plateau[0]}" if plateau else ". Never below half the ret_k copying plateau")
    snap = last.get("lambda_snapshot")
    if snap:
        slopes = ", ".join(f"m = {m}: {s}" for m, s in snap["slopes"].items())
        text += f". λ snapshot ({' vs '.join(snap['pair'])}): slopes {slopes} → {snap['verdict']}"
    return text + "."
