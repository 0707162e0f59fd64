"""Prompts for the construction: m examples ``x y SEP`` drawn from K tasks (and noise), a query.

Token layout: ``BOS x1 y1 SEP x2 y2 SEP ... xm ym SEP xq``; the model's distribution after xq
is its answer. An example *fits* task k when y = f_k(x); a *noise* example fits no task. The
construction's guarantee covers prompts in which every example fits at most one task and the
K answers on the query are different; ``check_prompt`` rejects any other prompt.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from superpose.construction.tasks import MapTask, separating_inputs
from superpose.errors import SuperposeError

NOISE = -1


@dataclass(frozen=True)
class SymbolPrompt:
    """One prompt of symbols (not :class:`superpose.prompts.Prompt`'s text): its examples, the task each
    example follows (NOISE = -1), and the query."""

    examples: tuple[tuple[int, int], ...]
    labels: tuple[int, ...]
    query: int

    def tokens(self, vocab: int) -> list[int]:
        """Token ids: BOS = vocab, SEP = vocab + 1."""
        out = [vocab]
        for x, y in self.examples:
            out += [x, y, vocab + 1]
        return out + [self.query]

    def counts(self, k: int) -> list[int]:
        """Number of examples of each task (noise not counted)."""
        return [sum(1 for lab in self.labels if lab == j) for j in range(k)]

    def shares(self, k: int) -> list[float]:
        """Each task's share of the examples that fit a task (the target probabilities)."""
        counts = self.counts(k)
        total = sum(counts)
        return [c / total if total else 0.0 for c in counts]

    def text(self) -> str:
        """Readable form, e.g. ``3 4 | 7 0 | 5 ?``."""
        return " | ".join(f"{x} {y}" for x, y in self.examples) + f" | {self.query} ?"


def fitting_tasks(tasks: tuple[MapTask, ...], x: int, y: int) -> list[int]:
    """Indices of the tasks that map x to y."""
    return [k for k, t in enumerate(tasks) if t(x) == y]


def check_prompt(prompt: SymbolPrompt, tasks: tuple[MapTask, ...], vocab: int) -> None:
    """Raise SuperposeError if the prompt is outside what the construction covers."""
    if not prompt.examples:
        raise SuperposeError("examples (m) must be at least 1; the prompt has no examples")
    symbols = range(vocab)
    for i, (x, y) in enumerate(prompt.examples):
        if x not in symbols or y not in symbols:
            raise SuperposeError(f"example {i + 1} ({x} {y}): symbols must lie in 0..{vocab - 1}")
        fits = fitting_tasks(tasks, x, y)
        if len(fits) > 1:
            names = ", ".join(tasks[k].name for k in fits)
            raise SuperposeError(
                f"example {i + 1} ({x} {y}) fits several tasks ({names}); the construction covers "
                "prompts where each example fits at most one task")
    if prompt.query not in symbols:
        raise SuperposeError(f"query {prompt.query}: symbols must lie in 0..{vocab - 1}")
    answers = [t(prompt.query) for t in tasks]
    if len(set(answers)) < len(answers):
        raise SuperposeError(
            f"query {prompt.query}: tasks give colliding answers {answers}; choose a query from "
            f"{separating_inputs(tasks, vocab)}")


def sample_prompt(tasks: tuple[MapTask, ...], counts: list[int], n_noise: int, vocab: int,
                  rng: np.random.Generator) -> SymbolPrompt:
    """A prompt with ``counts[k]`` examples of task k and ``n_noise`` noise examples, shuffled."""
    K = len(tasks)
    if len(counts) != K or any(c < 0 for c in counts):
        raise SuperposeError(f"counts must be {K} non-negative integers; got {counts}")
    if sum(counts) + n_noise < 1:
        raise SuperposeError("examples (m) must be at least 1")
    if n_noise < 0:
        raise SuperposeError(f"noise must be >= 0; got {n_noise}")
    examples: list[tuple[int, int]] = []
    labels: list[int] = []
    for k, c in enumerate(counts):
        # Inputs where task k's answer differs from every other task's, so the example is unambiguous.
        own = [x for x in range(vocab) if all(t(x) != tasks[k](x) for j, t in enumerate(tasks) if j != k)]
        if c and not own:
            raise SuperposeError(f"task {tasks[k].name!r} agrees with another task on every input; "
                                 "its examples could not be told apart")
        for x in rng.choice(own, size=c) if c else []:
            examples.append((int(x), tasks[k](int(x))))
            labels.append(k)
    noisy_inputs = [x for x in range(vocab) if len({t(x) for t in tasks}) < vocab]
    if n_noise and not noisy_inputs:
        raise SuperposeError(f"noise: the {K} tasks use every symbol as an answer on every input, "
                             "so no example can fit none of them; use noise 0 or fewer tasks")
    for _ in range(n_noise):
        x = int(rng.choice(noisy_inputs))
        wrong = sorted(set(range(vocab)) - {t(x) for t in tasks})
        examples.append((x, int(rng.choice(wrong))))
        labels.append(NOISE)
    order = rng.permutation(len(examples))
    query = int(rng.choice(separating_inputs(tasks, vocab)))
    prompt = SymbolPrompt(tuple(examples[i] for i in order), tuple(labels[i] for i in order), query)
    check_prompt(prompt, tasks, vocab)
    return prompt


def random_counts(k: int, total: int, rng: np.random.Generator) -> list[int]:
    """A random mixture: counts of each of k tasks summing to ``total`` (uniform weights on the simplex)."""
    weights = rng.dirichlet(np.ones(k))
    return [int(c) for c in rng.multinomial(total, weights)]
