"""The task family the construction covers: maps from a vocabulary of V symbols to itself.

A task is any function f: {0..V-1} -> {0..V-1}, written as a lookup table. Because the
tokens are one-hot, the map onehot(x) -> onehot(f(x)) is a 0/1 matrix (one 1 per column),
so one attention head's value/output matrix can apply it exactly; that is the only property of
the family the construction uses.

Named forms (k is an integer, 0 <= k < V):

    plus_k    x -> (x + k) mod V        (plus_0 is the copy task)
    minus_k   x -> (x - k) mod V
    times_k   x -> (k * x) mod V
    const_k   x -> k
    mirror    x -> V - 1 - x
    square    x -> x * x mod V
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from superpose.errors import SuperposeError

TASK_FORMS = ("plus_k", "minus_k", "times_k", "const_k", "mirror", "square")
_PARAM_RE = re.compile(r"^(plus|minus|times|const)_(\d+)$")


@dataclass(frozen=True)
class MapTask:
    """A named lookup task: ``table[x]`` is the answer for input symbol x."""

    name: str
    table: tuple[int, ...]

    def __call__(self, x: int) -> int:
        """The answer this task gives for input symbol x."""
        return self.table[x]


def make_task(name: str, vocab: int) -> MapTask:
    """Build a named task over ``vocab`` symbols; raise SuperposeError for an unknown name."""
    name = name.strip()
    match = _PARAM_RE.match(name)
    if match:
        form, k = match.group(1), int(match.group(2))
        if not 0 <= k < vocab:
            raise SuperposeError(
                f"task {name!r}: k must satisfy 0 <= k < vocab ({vocab}); got k={k}")
        rules = {"plus": lambda x: (x + k) % vocab, "minus": lambda x: (x - k) % vocab,
                 "times": lambda x: (k * x) % vocab, "const": lambda x: k}
        rule = rules[form]
    elif name == "mirror":
        rule = lambda x: vocab - 1 - x  # noqa: E731
    elif name == "square":
        rule = lambda x: (x * x) % vocab  # noqa: E731
    else:
        raise SuperposeError(
            f"tasks: unknown task {name!r}; allowed forms are {', '.join(TASK_FORMS)} "
            f"with 0 <= k < vocab ({vocab}), e.g. plus_1,plus_3,times_3")
    return MapTask(name=name, table=tuple(rule(x) for x in range(vocab)))


def parse_tasks(names: str | list[str] | tuple[str, ...], vocab: int) -> tuple[MapTask, ...]:
    """Parse a comma-separated list (or a list) of task names and check they can be mixed."""
    if vocab < 2:
        raise SuperposeError(f"vocab must be at least 2 (symbols 0..V-1); got {vocab}")
    if isinstance(names, str):
        names = [n for n in names.split(",") if n.strip()]
    tasks = tuple(make_task(n, vocab) for n in names)
    check_task_set(tasks, vocab)
    return tasks


def default_tasks(k: int, vocab: int) -> tuple[MapTask, ...]:
    """K shift tasks plus_1 .. plus_K (their answers differ on every input)."""
    if not 1 <= k < vocab:
        raise SuperposeError(f"k must satisfy 1 <= k < vocab ({vocab}) for the default "
                             f"plus_1..plus_k tasks; got k={k}")
    return parse_tasks([f"plus_{j}" for j in range(1, k + 1)], vocab)


def separating_inputs(tasks: tuple[MapTask, ...], vocab: int) -> list[int]:
    """Inputs on which all K tasks give pairwise different answers (usable as queries)."""
    return [x for x in range(vocab) if len({t(x) for t in tasks}) == len(tasks)]


def check_task_set(tasks: tuple[MapTask, ...], vocab: int) -> None:
    """Raise SuperposeError unless the tasks can be told apart on some query."""
    if not tasks:
        raise SuperposeError("tasks: give at least one task, e.g. --tasks plus_1,plus_3")
    if len(tasks) > vocab:
        raise SuperposeError(
            f"tasks: K={len(tasks)} tasks need K distinct answers on the query, so K must be "
            f"at most vocab ({vocab}); got K={len(tasks)}")
    seen: dict[tuple[int, ...], str] = {}
    for t in tasks:
        if t.table in seen:
            raise SuperposeError(
                f"tasks: {seen[t.table]!r} and {t.name!r} are the same map over {vocab} symbols; "
                "every task must differ from every other")
        seen[t.table] = t.name
    if not separating_inputs(tasks, vocab):
        raise SuperposeError(
            f"tasks: no input symbol gives {len(tasks)} different answers for "
            f"{', '.join(t.name for t in tasks)} (vocab {vocab}); the construction needs a query "
            "whose K answers differ, so choose tasks such as plus_1,plus_2,...")
