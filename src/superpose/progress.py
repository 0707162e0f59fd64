"""Progress, passed in: every long loop (scoring, sweeping, training) reports through this module.

A function that runs long takes ``progress`` (as vLLM's ``LLM.generate`` takes ``use_tqdm``):

* ``True``  -- a bar on a terminal, a line per tenth of the work in a pipe or a log (stderr), unless
  the command line said ``--no-progress`` (:func:`set_progress`);
* ``False`` -- silent;
* a callable -- called as ``progress(done, total, what)`` after each unit of work, where ``what`` is
  the description, or a dict of metrics when the loop has new ones (training's loss and lr).

    for item in track(items, "scoring", progress=progress): ...
    with Bar(progress, total, "train") as bar: bar.advance(1, {"loss": 2.1}); bar.say("...")
"""

from __future__ import annotations

import time
from typing import Callable, Iterable, Iterator, Sized, TypeVar, Union

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn, TimeElapsedColumn
from rich.progress import TimeRemainingColumn

Progress = Union[bool, Callable[[int, "int | None", "str | dict"], None]]
T = TypeVar("T")

console = Console(stderr=True, soft_wrap=True)  # progress and messages go to stderr; results to stdout
_default = {"enabled": True, "prefix": ""}  # --no-progress; reproduce's "[2/6] " before each bar


def set_progress(enabled: bool, prefix: str = "") -> None:
    """What ``progress=True`` means in this process: shown or not (``--no-progress``); ``prefix`` labels every bar."""
    _default.update(enabled=enabled, prefix=prefix)


def progress_enabled() -> bool:
    """Whether ``progress=True`` shows anything (``--no-progress`` not given)."""
    return _default["enabled"]


class Bar:
    """One loop's progress: a rich bar (terminal), a line per tenth (pipe), a callable's calls, or nothing."""

    def __init__(self, progress: Progress, total: int | None, description: str, initial: int = 0):
        self.callback = progress if callable(progress) else None
        self.shown = progress is True and progress_enabled()
        self.total, self.done, self.start = total, initial, time.monotonic()
        self.description = _default["prefix"] + description
        self.latest: dict = {}  # the last metrics, shown beside the bar
        self.every = max(1, (total - initial if total else 10) // 10)  # a line per tenth in a pipe
        self.rich = None
        if self.shown and console.is_terminal:
            self.rich = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                                     TextColumn("{task.fields[metrics]}"), console=console)
            self.rich.start()
            self.job = self.rich.add_task(self.description, total=total, completed=initial, metrics="")

    def __enter__(self) -> "Bar":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def advance(self, n: int = 1, metrics: dict | None = None) -> None:
        """Count ``n`` more units done; ``metrics``: the loop's new numbers (e.g. the latest loss), if any."""
        self.done += n
        self.latest = metrics or self.latest
        if self.callback is not None:
            self.callback(self.done, self.total, metrics or self.description)
        elif self.rich is not None:
            self.rich.update(self.job, completed=self.done,
                             metrics=" ".join(f"{k} {_fmt(v)}" for k, v in self.latest.items()))
        elif self.shown and (self.done % self.every == 0 or self.done == self.total):
            metrics = "".join(f", {k} {_fmt(v)}" for k, v in self.latest.items())
            console.print(f"{self.description}: {self.done}/{self.total if self.total is not None else '?'} "
                          f"({time.monotonic() - self.start:.0f} s{metrics})", highlight=False, markup=False)

    def say(self, line: str) -> None:
        """A message line on stderr (above a live bar), shown whatever ``progress`` is."""
        console.print(line, highlight=False, markup=False)

    def close(self) -> None:
        """Stop a live bar (idempotent)."""
        if self.rich is not None:
            self.rich.stop()
            self.rich = None


def track(items: Iterable[T], description: str, total: int | None = None, progress: Progress = True) -> Iterator[T]:
    """Iterate ``items``, reporting each one done through ``progress`` (see the module's docstring)."""
    total = total if total is not None else (len(items) if isinstance(items, Sized) else None)
    if progress is False or (progress is True and not progress_enabled()):
        yield from items
        return
    with Bar(progress, total, description) as bar:
        for item in items:
            yield item
            bar.advance()


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
