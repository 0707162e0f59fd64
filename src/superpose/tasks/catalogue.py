"""The task catalogue as `superpose tasks` prints it: tasks grouped by family, one example each.

Plain text, so it reads the same in a terminal and in a pipe. Names are never cut: a family whose
lines would pass 80 columns puts each description on its own indented line.
"""

from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass

from superpose.tasks.base import UNAVAILABLE, Task, list_tasks

WIDTH = 80


@dataclass(frozen=True)
class Entry:
    """One task in the catalogue: its name, input count, an example line and what it does."""

    task: str
    inputs: str
    example: str
    description: str


def _width(text: str) -> int:
    """Terminal columns: East Asian wide characters (一, 法) take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _width(text))


def _inputs(task: Task) -> str:
    space = task.space
    text = ("inputs drawn at random" if space.size is None
            else f"{space.size:,} input" + ("" if space.size == 1 else "s"))
    if space.repeats:
        text += ", repeating"
    if space.queries is not None:
        text += "; the query is always " + " or ".join(space.render(q) for q in space.queries)
    return text


def catalogue() -> dict[str, list[Entry]]:
    """Family -> its tasks in registration order, each with an example line (fixed seed)."""
    families: dict[str, list[Entry]] = {}
    for t in list_tasks(sort=False):
        x = t.space.draw_one(random.Random(0))
        families.setdefault(t.family, []).append(Entry(t.name, _inputs(t), t.example(x), t.description))
    return families


def render_catalogue(families: dict[str, list[Entry]] | None = None, width: int = WIDTH) -> str:
    """The catalogue as text: a header line per family, then one line per task."""
    families = catalogue() if families is None else families
    lines = ["Tasks by family; tasks of one family can be mixed in one prompt, which is",
             "the example lines, one per line, then the query line: {examples}\\n{query}."]
    for family, entries in families.items():
        sizes = {e.inputs for e in entries}
        lines += ["", f"{family}  ({entries[0].inputs if len(sizes) == 1 else 'inputs per task'})"]
        name_w = max(len(e.task) for e in entries)
        ex_w = max(_width(e.example) for e in entries)
        rows = [(f"  {e.task:<{name_w}}  {_pad(e.example, ex_w)}",
                 e.description + ("" if len(sizes) == 1 else f" ({e.inputs})")) for e in entries]
        if all(_width(head) + 2 + _width(tail) <= width for head, tail in rows):
            lines += [f"{head}  {tail}".rstrip() for head, tail in rows]
        else:
            for head, tail in rows:
                lines += [head.rstrip(), f"      {tail}"]
    lines += [f"\nnot loaded: the {module} tasks ({why})" for module, why in UNAVAILABLE.items()]
    return "\n".join(lines)
