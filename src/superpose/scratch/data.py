"""Training sequences: N in-context examples of ONE task, then a query, with loss on answers only.

A sequence is ``x_1>y_1\\n x_2>y_2\\n ... x_N>y_N\\n x_q>y_q\\n`` (no spaces), every line from the
same task -- one hidden k per sequence, e.g. plus_3. The model sees no task label, so it must infer
k from the examples. The loss covers each answer's characters and the newline after them, never
the inputs: the model is trained to answer, not to predict random inputs.

Sequence ``i`` of a run draws from its own ``random.Random`` seeded by ``(seed, i)``, so step ``s``
always sees the same batch, whatever happened before -- which makes resuming exact without saving
any data-loader state.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

import torch

from superpose.tasks import Task


@dataclass
class TrainingSequence:
    """One training sequence: its text, which characters carry loss, and its task."""

    text: str
    loss_mask: list[bool]  # loss_mask[t]: character t is a target (an answer character or its newline)
    task: str


def make_sequence(tasks: Sequence[Task], n_examples: int, rng: random.Random,
                  min_examples: int | None = None) -> TrainingSequence:
    """Draw one task, then ``n_examples`` examples and a query of it, all with their answers.

    With ``min_examples``, the number of examples is drawn uniformly from ``min_examples ..
    n_examples`` per sequence (varied lengths, so that the query's position varies in training).
    """
    task = tasks[rng.randrange(len(tasks))]
    if min_examples is not None:  # drawn only then: fixed-length runs keep their random streams
        n_examples = rng.randint(min_examples, n_examples)
    inputs = task.space.draw(rng, n_examples + 1)  # the last one is the query
    parts: list[str] = []
    mask: list[bool] = []
    for x in inputs:
        prefix, answer = task.query(x), task.answer(x) + "\n"
        parts += [prefix, answer]
        mask += [False] * len(prefix) + [True] * len(answer)
    return TrainingSequence("".join(parts), mask, task.name)


def sequence_rng(seed: int, index: int, reuse: random.Random | None = None) -> random.Random:
    """The random stream of sequence ``index`` (string seeds hash with SHA-512: stable across runs).

    ``reuse``: a generator to re-seed and return instead of a new one (the same stream, without
    building an object per sequence).
    """
    rng = reuse if reuse is not None else random.Random()
    rng.seed(f"superpose-scratch:{seed}:{index}")
    return rng


def make_batch(tasks: Sequence[Task], n_examples: int, seed: int, start: int, batch_size: int,
               vocab: dict[str, int], pad_id: int = 0, min_examples: int | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Sequences ``start .. start+batch_size-1`` as (input_ids, loss_mask), right-padded.

    input_ids: [batch, seq] long; loss_mask: [batch, seq] bool (padding never carries loss).
    """
    seqs = [make_sequence(tasks, n_examples, sequence_rng(seed, start + j), min_examples)
            for j in range(batch_size)]
    return pad_batch(seqs, vocab, pad_id)


def pad_batch(seqs: Sequence[TrainingSequence], vocab: dict[str, int], pad_id: int = 0
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Sequences as (input_ids, loss_mask), [batch, seq] each, right-padded to the longest."""
    width = max(len(s.text) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)  # [batch, seq]
    mask = torch.zeros((len(seqs), width), dtype=torch.bool)  # [batch, seq]
    for j, s in enumerate(seqs):
        ids[j, : len(s.text)] = torch.tensor([vocab[c] for c in s.text], dtype=torch.long)
        mask[j, : len(s.text)] = torch.tensor(s.loss_mask, dtype=torch.bool)
    return ids, mask


def _build_batch(names: list[str], n_examples: int, seed: int, start: int, batch_size: int,
                 min_examples: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """make_batch in a worker process, from task names (tasks are looked up there)."""
    from superpose.scratch.tokenizer import char_vocab
    from superpose.tasks import get_task

    ids, mask = make_batch([get_task(n) for n in names], n_examples, seed, start, batch_size,
                           char_vocab(), min_examples=min_examples)
    return ids.to(torch.int16), mask  # int16: a quarter of the bytes to send back


class BatchStream:
    """The batch of each training step, built ``workers`` processes ahead of the loop.

    ``batch(step)`` returns exactly ``make_batch(..., start=step * batch_size, ...)``, so the stream
    changes speed, never the run. With ``workers=0`` every batch is built in the calling process.
    Use as a context manager: leaving it stops the workers.
    """

    def __init__(self, task_names: Sequence[str], n_examples: int, seed: int, batch_size: int,
                 vocab: dict[str, int], workers: int = 0, min_examples: int | None = None):
        from superpose.tasks import get_task

        self.names, self.tasks = list(task_names), [get_task(n) for n in task_names]
        self.n_examples, self.seed, self.batch_size = n_examples, seed, batch_size
        self.vocab, self.workers, self.min_examples = vocab, workers, min_examples
        self.pending: dict[int, object] = {}  # step -> Future
        self.pool = None
        if workers:
            import multiprocessing
            import signal
            from concurrent.futures import ProcessPoolExecutor

            # spawn, not fork: the parent may already hold a CUDA context, which a fork must not copy.
            # Workers ignore Ctrl-C (a terminal sends it to them too): the loop checkpoints and stops
            # them, and each would otherwise print its own traceback.
            self.pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=signal.signal, initargs=(signal.SIGINT, signal.SIG_IGN))

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(input_ids [batch, seq] long, loss_mask [batch, seq] bool) of ``step``."""
        if self.pool is None:
            return make_batch(self.tasks, self.n_examples, self.seed, step * self.batch_size,
                              self.batch_size, self.vocab, min_examples=self.min_examples)
        for ahead in range(step, step + 2 * self.workers):  # keep every worker busy
            if ahead not in self.pending:
                self.pending[ahead] = self.pool.submit(
                    _build_batch, self.names, self.n_examples, self.seed, ahead * self.batch_size,
                    self.batch_size, self.min_examples)
        for stale in [s for s in self.pending if s < step]:  # a resumed or skipped stream
            self.pending.pop(stale).cancel()
        ids, mask = self.pending.pop(step).result()
        return ids.long(), mask

    def check(self) -> None:
        """Nothing to check: a string batch is always built in full (the tensor generator's check)."""

    def __enter__(self) -> "BatchStream":
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
