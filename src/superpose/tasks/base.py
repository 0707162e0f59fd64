"""What a task is: an input space, a separator, and a function from input to answer.

Tasks that share an input space (and separator) can be mixed in one prompt: every example line is
``render(x) + separator + answer``, and the query is ``render(x) + separator``. A space is either a
finite tuple of items (sampled without replacement, so a task can supply ``len(items)`` distinct
inputs) or a sampler for spaces too large to list (duplicates rejected). Tiny spaces, such as one
digit, set ``repeats=True``: their inputs recur within a prompt, as in the study's plus_k tasks.

A task's input space holds exactly the inputs it has an answer for. Tasks over one table (the
country tasks) therefore have spaces that are subsets of one ``parent`` space: they mix, and a
mixture draws from the inputs every mixed task can answer (:func:`common_space`). A space may also
fix the query inputs (``queries``), as the study's small ``x->`` set always asks ``5->``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from superpose.errors import SuperposeError


@dataclass(frozen=True)
class InputSpace:
    """A set of inputs, how to draw them, and how to write one in a prompt."""

    name: str
    items: tuple[Any, ...] | None = None  # a finite space, listed
    sampler: Callable[[random.Random], Any] | None = None  # or: draws one input (huge spaces)
    render: Callable[[Any], str] = str
    repeats: bool = False  # inputs may recur within a prompt (the query too)
    queries: tuple[Any, ...] | None = None  # the query is drawn from these (never an example) if set
    parent: "InputSpace | None" = None  # a subset of this space: mixes with the parent's other subsets

    def __post_init__(self) -> None:
        if (self.items is None) == (self.sampler is None):
            raise ValueError(f"input space '{self.name}': give exactly one of items or sampler")

    @property
    def root(self) -> "InputSpace":
        """The space this one is a subset of (itself if none): spaces with one root can be mixed."""
        return self.parent.root if self.parent is not None else self

    def subset(self, keep: Callable[[Any], bool], name: str) -> "InputSpace":
        """The inputs of this (listed) space for which ``keep`` is true, in the same order."""
        if self.items is None:
            raise ValueError(f"input space '{self.name}': only a listed space has subsets")
        items = tuple(x for x in self.items if keep(x))
        if len(items) == len(self.items):
            return self
        return InputSpace(name=name, items=items, render=self.render, repeats=self.repeats,
                          queries=self.queries, parent=self)

    @property
    def size(self) -> int | None:
        """Number of distinct inputs, or None when unbounded for practical purposes."""
        return len(self.items) if self.items is not None else None

    def draw_one(self, rng: random.Random) -> Any:
        """One input."""
        return rng.choice(self.items) if self.items is not None else self.sampler(rng)

    def draw(self, rng: random.Random, n: int) -> list[Any]:
        """``n`` inputs, all different unless the space allows repeats."""
        if self.repeats:
            return [self.draw_one(rng) for _ in range(n)]
        if self.items is not None:
            return [self.items[i] for i in rng.sample(range(len(self.items)), n)]
        seen: set = set()
        out: list[Any] = []
        while len(out) < n:
            x = self.sampler(rng)
            if x not in seen:
                seen.add(x)
                out.append(x)
        return out


@dataclass(frozen=True)
class Task:
    """A named map from an input space to answer strings (the continuation after the separator)."""

    name: str
    space: InputSpace
    separator: str
    answer_fn: Callable[[Any], str]
    description: str = ""
    family: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)

    def answer(self, x: Any) -> str:
        """The answer string for input ``x``."""
        return self.answer_fn(x)

    def example(self, x: Any) -> str:
        """One in-context example line (without the line separator)."""
        return self.space.render(x) + self.separator + self.answer(x)

    def query(self, x: Any) -> str:
        """The query line: the input and separator, to be continued by the model."""
        return self.space.render(x) + self.separator


def register_family(family: str, space: InputSpace, separator: str,
                    specs: Sequence[tuple[str, Callable[[Any], str], str]]) -> list[Task]:
    """Register one task per ``(name, answer function, description)`` over a shared space."""
    return [register(Task(name, space, separator, fn, desc, family=family)) for name, fn, desc in specs]


_REGISTRY: dict[str, Task] = {}


def register(task: Task, *, replace: bool = False) -> Task:
    """Add a task to the registry (user tasks may replace an earlier user task of the same name)."""
    if task.name in _REGISTRY and not replace:
        raise SuperposeError(f"task '{task.name}' is already registered")
    _REGISTRY[task.name] = task
    return task


def get_task(name: str) -> Task:
    """Look a task up by name; an unknown name lists the close matches."""
    _ensure_builtins()
    try:
        return _REGISTRY[name]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(name, _REGISTRY, n=5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        if UNAVAILABLE:
            hint += " Not loaded: " + "; ".join(f"the {m} tasks ({why})" for m, why in UNAVAILABLE.items()) + "."
        raise SuperposeError(
            f"unknown task '{name}'.{hint} Run `superpose tasks` to list all tasks."
        ) from None


def list_tasks(sort: bool = True) -> list[Task]:
    """All registered tasks, sorted by family then name (or in the order they were registered)."""
    _ensure_builtins()
    tasks = list(_REGISTRY.values())
    return sorted(tasks, key=lambda t: (t.family, t.name)) if sort else tasks


def check_mixable(tasks: Sequence[Task]) -> None:
    """Tasks in one prompt must read the same inputs written the same way."""
    first = tasks[0]
    for t in tasks[1:]:
        if t.space.root is not first.space.root or t.separator != first.separator:
            raise SuperposeError(
                f"tasks '{first.name}' and '{t.name}' cannot be mixed in one prompt: they have "
                f"different inputs ('{first.space.name}' + '{first.separator}' vs "
                f"'{t.space.name}' + '{t.separator}'). Mix tasks of one family."
            )


_COMMON: dict[tuple[int, ...], tuple[list[InputSpace], InputSpace]] = {}


def common_space(tasks: Sequence[Task]) -> InputSpace:
    """The inputs that every one of ``tasks`` can answer (they must be mixable)."""
    check_mixable(tasks)
    spaces = sorted({id(t.space): t.space for t in tasks}.values(), key=id)  # distinct objects
    if len(spaces) == 1:
        return spaces[0]
    key = tuple(id(s) for s in spaces)
    cached = _COMMON.get(key)
    if cached is not None and all(a is b for a, b in zip(cached[0], spaces)):
        return cached[1]
    members = [set(s.items) for s in spaces]
    smallest = min(spaces, key=lambda s: len(s.items))
    if all(set(smallest.items) <= m for m in members):  # one space lies inside all the others
        space = smallest
    else:
        space = spaces[0].root.subset(lambda x: all(x in m for m in members),
                                      name=" & ".join(sorted(s.name for s in spaces)))
    _COMMON[key] = (spaces, space)
    return space


_BUILTINS_LOADED = False
_BUILTIN_MODULES = ("arithmetic", "characters", "countries", "lists", "numerals", "words")
# Built-in modules whose data package is not installed: module -> why. Their tasks are
# missing, and asking for an unknown task says why, while every other family still works (a GPU
# image without wordfreq can still train on plus_k).
UNAVAILABLE: dict[str, str] = {}


def _ensure_builtins() -> None:
    # Built-in families register on first use so `import superpose` stays light.
    global _BUILTINS_LOADED
    if not _BUILTINS_LOADED:
        _BUILTINS_LOADED = True
        import importlib

        for module in _BUILTIN_MODULES:
            try:
                importlib.import_module(f"superpose.tasks.{module}")
            except ModuleNotFoundError as e:
                if e.name is None or e.name.split(".")[0] == "superpose":
                    raise
                UNAVAILABLE[module] = f"{e.name} is not installed"
