"""Mixture prompts: in-context examples drawn from several tasks, then one query.

A :class:`MixtureSpec` says which tasks, in what proportion, how many examples and how they are
written. :func:`build_prompt` turns it into a :class:`Prompt` that records, for every example, the
task that produced it, and for the query, every task's answer -- the candidates the scorer will rate.

Prompt ``i`` of a run is drawn from its own ``random.Random`` seeded by ``(seed, i)``, so a prompt
does not depend on how many were drawn before it (resuming a run rebuilds exactly the same ones).
"""

from __future__ import annotations

import math
import random
import string
from dataclasses import asdict, dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from superpose.errors import SuperposeError
from superpose.tasks import Task, check_mixable, common_space, get_task

MAX_QUERY_RESAMPLES = 1000
Counts = Literal["exact", "iid"]  # how a mixture's examples get their tasks (MixtureSpec.counts)


class MixtureSpec(BaseModel):
    """Which tasks to mix, how much of each, and how the prompt is written."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tasks: list[str]
    weights: list[float] | None = None  # None: equal shares
    n_examples: int = 60
    counts: Counts = "exact"  # exact: largest-remainder counts; iid: each example draws its task
    # Position control: the last `fixed_last` examples all belong to task `fixed_task` (an index
    # into `tasks`); weights and counts then govern only the examples before them.
    fixed_last: int = Field(0, ge=0)
    fixed_task: int = Field(0, ge=0)
    example_separator: str = "\n"
    template: str = "{examples}{example_separator}{query}"

    @field_validator("tasks")
    @classmethod
    def _known_mixable_tasks(cls, names: list[str]) -> list[str]:
        if not names:
            raise ValueError("needs at least one task")
        if len(set(names)) != len(names):
            raise ValueError(f"lists a task twice: {names}")
        try:
            check_mixable([get_task(n) for n in names])
        except SuperposeError as e:  # re-raised as ValueError so pydantic names the field
            raise ValueError(str(e)) from None
        return names

    @field_validator("n_examples")
    @classmethod
    def _non_negative(cls, n: int) -> int:
        if n < 0:
            raise ValueError(f"must be >= 0, got {n}")
        return n

    @field_validator("template")
    @classmethod
    def _has_placeholders(cls, t: str) -> str:
        if "{examples}" not in t or "{query}" not in t:
            raise ValueError("must contain the placeholders {examples} and {query}")
        try:
            fields = {name for _, name, _, _ in string.Formatter().parse(t) if name is not None}
        except ValueError as e:  # a lone { or }
            raise ValueError(f"is not a valid format string ({e}); write a literal brace as {{{{ or }}}}") from None
        unknown = sorted(fields - {"examples", "example_separator", "query"})
        if unknown:
            raise ValueError(f"names unknown placeholder(s) {unknown}; allowed: {{examples}}, "
                             "{example_separator}, {query}")
        return t

    @model_validator(mode="after")
    def _check(self) -> "MixtureSpec":
        if self.weights is not None:
            if len(self.weights) != len(self.tasks):
                raise ValueError(
                    f"weights has {len(self.weights)} entries but tasks has {len(self.tasks)}")
            if any(w < 0 or not math.isfinite(w) for w in self.weights):
                raise ValueError(f"weights must be non-negative, got {self.weights}")
            if abs(sum(self.weights) - 1.0) > 1e-6:
                raise ValueError(f"weights must sum to 1, got sum {sum(self.weights):.6g}")
        if self.fixed_last > self.n_examples:
            raise ValueError(f"fixed_last={self.fixed_last} exceeds n_examples={self.n_examples}")
        if self.fixed_task >= len(self.tasks):
            raise ValueError(f"fixed_task={self.fixed_task} is not an index into tasks "
                             f"(0 .. {len(self.tasks) - 1})")
        space = common_space([get_task(n) for n in self.tasks])
        supply = space.size
        if space.queries is not None:  # the query comes from its own set, never an example
            supply = None if space.repeats else supply + 1
        if not space.repeats and supply is not None and self.n_examples + 1 > supply:
            raise ValueError(
                f"n_examples={self.n_examples} needs {self.n_examples + 1} distinct inputs (examples "
                f"plus query) but tasks {self.tasks} have only {supply}")
        return self

    @property
    def shares(self) -> list[float]:
        """The in-context task distribution (weights, or equal shares)."""
        k = len(self.tasks)
        return list(self.weights) if self.weights is not None else [1.0 / k] * k


def largest_remainder_counts(weights: list[float], n: int) -> list[int]:
    """Integer counts summing to n, as close to weights * n as possible (Hamilton's method)."""
    quotas = [w * n for w in weights]
    counts = [math.floor(q + 1e-9) for q in quotas]
    order = sorted(range(len(weights)), key=lambda i: (-(quotas[i] - counts[i]), i))
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    return counts


@dataclass
class Prompt:
    """One mixture prompt and everything needed to score and analyse it."""

    index: int
    text: str
    tasks: list[str]
    shares: list[float]  # the intended task distribution of the spec
    example_inputs: list[str]
    example_tasks: list[int]  # index into `tasks` for every example, in prompt order
    query_input: str
    answers: list[str]  # answers[k] is task k's answer to the query

    @property
    def counts(self) -> list[int]:
        """How many examples each task has in this prompt."""
        return [self.example_tasks.count(k) for k in range(len(self.tasks))]

    @property
    def in_context_distribution(self) -> list[float]:
        """Each task's share of this prompt's examples (equals `shares` for exact counts)."""
        n = len(self.example_tasks)
        return [c / n for c in self.counts] if n else list(self.shares)

    def to_dict(self) -> dict:
        """A JSON-serialisable record."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Prompt":
        """Inverse of :meth:`to_dict`."""
        return cls(**d)


def build_prompt(spec: MixtureSpec, seed: int, index: int) -> Prompt:
    """Draw prompt number ``index`` of the mixture ``spec`` (deterministic in seed and index)."""
    return _draw(spec, seed, index)[0]


def _draw(spec: MixtureSpec, seed: int, index: int) -> tuple[Prompt, random.Random, list, object]:
    """The prompt, its Random stream (positioned after every draw the prompt made), examples and query."""
    rng = random.Random(f"superpose:{seed}:{index}")
    tasks: list[Task] = [get_task(n) for n in spec.tasks]
    space = common_space(tasks)
    n = spec.n_examples
    free = n - spec.fixed_last  # examples whose task the mixture draws
    if spec.counts == "exact":
        task_ids = [k for k, c in enumerate(largest_remainder_counts(spec.shares, free)) for _ in range(c)]
        rng.shuffle(task_ids)
    else:
        task_ids = rng.choices(range(len(tasks)), weights=spec.shares, k=free)
    task_ids += [spec.fixed_task] * spec.fixed_last

    if space.queries is None:
        inputs = space.draw(rng, n + 1)
        examples, query_x = inputs[:n], inputs[n]
    else:
        examples, query_x = space.draw(rng, n), rng.choice(space.queries)
    used = set(examples)
    # The K answers to the query must differ, else a probability could not be told apart by task.
    for _ in range(MAX_QUERY_RESAMPLES):
        answers = [t.answer(query_x) for t in tasks]
        if len(set(answers)) == len(answers):
            break
        if space.queries is not None:
            query_x = rng.choice(space.queries)
            continue
        query_x = space.draw_one(rng)
        while query_x in used and not space.repeats:
            query_x = space.draw_one(rng)
    else:
        raise SuperposeError(
            f"could not find a query whose answers differ across tasks {spec.tasks} "
            f"after {MAX_QUERY_RESAMPLES} tries; these tasks agree on (almost) every input")
    return _render(spec, index, task_ids, examples, query_x, answers, spec.shares), rng, examples, query_x


def _render(spec: MixtureSpec, index: int, task_ids: list[int], examples: list, query_x: object,
            answers: list[str], shares: list[float]) -> Prompt:
    """The prompt whose example i is task ``task_ids[i]`` applied to ``examples[i]``, then the query."""
    tasks: list[Task] = [get_task(n) for n in spec.tasks]
    space = common_space(tasks)
    lines = [tasks[k].example(x) for k, x in zip(task_ids, examples)]
    query = tasks[0].query(query_x)
    text = spec.template.format(
        examples=spec.example_separator.join(lines), example_separator=spec.example_separator,
        query=query)
    return Prompt(
        index=index, text=text, tasks=list(spec.tasks), shares=list(shares),
        example_inputs=[space.render(x) for x in examples], example_tasks=list(task_ids),
        query_input=space.render(query_x), answers=answers,
    )


# A run builds all its prompts in memory before scoring: 100,000 copy prompts of 60 examples took
# 0.7 GB and 48 s (a shared 2-core Intel Xeon, 2026-12-06). Configs refuse more per mixture (per λ,
# per group) when they are read.
MAX_PROMPTS = 100_000


@dataclass
class Control:
    """A control prompt of one mixture prompt: ``kind`` "without" (task ``task``'s examples given to the
    other tasks) or "single" (every example task ``task``'s); same inputs, positions and query."""

    kind: Literal["without", "single"]
    task: int
    prompt: Prompt

    def to_dict(self) -> dict:
        """A JSON-serialisable record."""
        return {"control": self.kind, "control_task": self.task, **self.prompt.to_dict()}


def build_controls(spec: MixtureSpec, seed: int, index: int) -> list[Control]:
    """The 2K control prompts of mixture prompt ``index``: K leave-one-task-out, then K single-task.

    Drawn from the mixture prompt's own Random stream after everything the mixture prompt drew, so
    the mixture prompt is the same with or without controls. Leave-one-out gives task k's positions
    to the other tasks in turn (as even as the count allows, in a shuffled order); with one task
    there is no other task and no control.
    """
    prompt, rng, examples, query_x = _draw(spec, seed, index)
    n_tasks = len(spec.tasks)
    if n_tasks < 2:
        return []
    out = []
    for k in range(n_tasks):
        positions = [i for i, t in enumerate(prompt.example_tasks) if t == k]
        others = [t for t in range(n_tasks) if t != k]
        fill = [others[j % len(others)] for j in range(len(positions))]
        rng.shuffle(fill)
        task_ids = list(prompt.example_tasks)
        for i, t in zip(positions, fill):
            task_ids[i] = t
        out.append(Control("without", k, _control_prompt(spec, prompt, task_ids, examples, query_x)))
    for k in range(n_tasks):
        out.append(Control("single", k, _control_prompt(spec, prompt, [k] * len(examples), examples, query_x)))
    return out


def _control_prompt(spec: MixtureSpec, prompt: Prompt, task_ids: list[int], examples: list, query_x: object) -> Prompt:
    n = len(task_ids)
    shares = [task_ids.count(k) / n if n else 0.0 for k in range(len(spec.tasks))]
    return _render(spec, prompt.index, task_ids, examples, query_x, prompt.answers, shares)


def build_prompts(spec: MixtureSpec, n_prompts: int, seed: int) -> list[Prompt]:
    """Prompts ``0 .. n_prompts-1`` of a mixture (at most :data:`MAX_PROMPTS`)."""
    if n_prompts > MAX_PROMPTS:
        raise SuperposeError(f"n_prompts: at most {MAX_PROMPTS:,} prompts per mixture (all are built in memory "
                             f"before scoring), got {n_prompts:,}")
    return [build_prompt(spec, seed, i) for i in range(n_prompts)]
