"""Training sequences beyond one task list: a weighted mixture of task families, and retrieval
lines with fewer letters (a curriculum), still ONE task per sequence.

A :class:`DataSpec` says what the sequences of one training step look like. With its defaults
(no mixture, 8 letters) :func:`make_mixed_sequence` is :func:`.data.make_sequence` exactly, so a
recipe that uses none of these switches keeps its random streams. Otherwise sequence ``i`` draws,
from its own ``random.Random`` (:func:`.data.sequence_rng`): the family by weight, then the task
uniformly within it, then (for a retrieval task with ``letters < 8``) inputs of ``letters``
distinct letters. These batches are built from strings (the tensor generator builds plain plus_k
and ret_k lists only).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

import torch

from superpose.scratch.data import TrainingSequence, make_sequence, pad_batch, sequence_rng
from superpose.tasks import Task, get_task
from superpose.tasks.characters import EIGHT_LETTERS, K_AND_EIGHT_LETTERS, LETTERS, RET_LENGTH


@dataclass(frozen=True)
class DataSpec:
    """What one step's sequences are: families (task lists) with weights, examples, letters."""

    families: tuple[tuple[str, ...], ...]  # each family: its task names (one is drawn per sequence)
    weights: tuple[float, ...]  # one per family (normalised when drawn)
    n_examples: int
    min_examples: int | None = None
    letters: int = RET_LENGTH  # letters per retrieval input (ret_k, kret); 8 is the study's

    @property
    def plain(self) -> bool:
        """True when this is one task list at full length: :func:`.data.make_sequence`'s data."""
        return len(self.families) == 1 and self.letters == RET_LENGTH

    @property
    def task_names(self) -> list[str]:
        """Every task a sequence of this spec may hold."""
        return [n for fam in self.families for n in fam]


def retrieval_k(task: Task) -> int | None:
    """k of a ret_k task, 0 for kret (k written in the line), None for any other task."""
    if task.space is EIGHT_LETTERS:
        probe = LETTERS[:RET_LENGTH]
        return probe.index(task.answer(probe)) + 1
    if task.space is K_AND_EIGHT_LETTERS:
        return 0
    return None


def _short_retrieval(task: Task, k: int, n_examples: int, letters: int, rng: random.Random
                     ) -> TrainingSequence:
    """A retrieval sequence whose inputs have ``letters`` distinct letters (k <= letters)."""
    seen: set[str] = set()
    parts: list[str] = []
    mask: list[bool] = []
    while len(seen) < n_examples + 1:
        word = "".join(rng.sample(LETTERS, letters))
        if word in seen:
            continue
        seen.add(word)
        if k == 0:  # kret: a k per line, written before the letters
            line_k = rng.randint(1, letters)
            prefix, answer = f"{line_k}{word}>", word[line_k - 1] + "\n"
        else:
            prefix, answer = f"{word}>", word[k - 1] + "\n"
        parts += [prefix, answer]
        mask += [False] * len(prefix) + [True] * len(answer)
    return TrainingSequence("".join(parts), mask, task.name)


def allowed_tasks(names: Sequence[str], letters: int) -> list[Task]:
    """The tasks of a family that a ``letters``-letter input can answer (ret_k needs k <= letters)."""
    tasks = [get_task(n) for n in names]
    if letters == RET_LENGTH:
        return tasks
    return [t for t in tasks if (retrieval_k(t) or 0) <= letters]


def make_mixed_sequence(spec: DataSpec, rng: random.Random) -> TrainingSequence:
    """One sequence of ``spec``: a family by weight, a task in it, its examples and query."""
    if len(spec.families) == 1:
        family = spec.families[0]
    else:
        family = rng.choices(spec.families, weights=spec.weights)[0]
    tasks = allowed_tasks(family, spec.letters)
    if spec.letters == RET_LENGTH or all(retrieval_k(t) is None for t in tasks):
        return make_sequence(tasks, spec.n_examples, rng, spec.min_examples)
    task = tasks[rng.randrange(len(tasks))]
    k = retrieval_k(task)
    n = spec.n_examples if spec.min_examples is None else rng.randint(spec.min_examples, spec.n_examples)
    if k is None:  # a non-retrieval family inside a curriculum of letters
        inputs = task.space.draw(rng, n + 1)
        text = "".join(task.query(x) + task.answer(x) + "\n" for x in inputs)
        mask = [c for x in inputs for c in [False] * len(task.query(x)) + [True] * (len(task.answer(x)) + 1)]
        return TrainingSequence(text, mask, task.name)
    return _short_retrieval(task, k, n, spec.letters, rng)


def make_spec_batch(spec: DataSpec, seed: int, start: int, batch_size: int, vocab: dict[str, int],
                    pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Sequences ``start ..`` of ``spec`` as (input_ids, loss_mask), [batch, seq] each, right-padded."""
    rng = random.Random()
    seqs = [make_mixed_sequence(spec, sequence_rng(seed, start + j, rng)) for j in range(batch_size)]
    return pad_batch(seqs, vocab, pad_id)


def sequence_tasks(spec: DataSpec, seed: int, start: int, n: int) -> list[str]:
    """The task of each of sequences ``start .. start+n-1`` (what tests count mixtures with)."""
    rng = random.Random()
    return [make_mixed_sequence(spec, sequence_rng(seed, start + j, rng)).task for j in range(n)]
