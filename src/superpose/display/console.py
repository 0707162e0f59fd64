"""Terminal output on stderr: the progress console, progress bars and warnings (results are summary.md, on stdout)."""

from __future__ import annotations

import time
from typing import Iterable, Iterator, Sized, TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

console = Console(stderr=True, soft_wrap=True)  # progress and messages; results go to stdout
T = TypeVar("T")
_progress = {"enabled": True, "prefix": ""}  # --no-progress; reproduce's "[2/6] " before each bar


def set_progress(enabled: bool, prefix: str = "") -> None:
    """Turn progress bars and progress lines on or off (``--no-progress``); ``prefix`` labels every bar."""
    _progress.update(enabled=enabled, prefix=prefix)


def progress_enabled() -> bool:
    """Whether progress should be shown (``--no-progress`` not given)."""
    return _progress["enabled"]


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate with a progress bar on a terminal, or a line per tenth of the work in logs."""
    total = total if total is not None else (len(items) if isinstance(items, Sized) else None)
    if not progress_enabled():
        yield from items
        return
    description = _progress["prefix"] + description
    if console.is_terminal:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=console) as bar:
            job = bar.add_task(description, total=total)
            for item in items:
                yield item
                bar.advance(job)
        return
    start, step = time.monotonic(), max(1, (total or 10) // 10)
    done = 0
    for item in items:
        yield item
        done += 1
        if done % step == 0 or done == total:
            console.print(f"{description}: {done}/{total if total is not None else '?'} "
                          f"({time.monotonic() - start:.0f} s)", highlight=False)


def warn(message: str) -> None:
    """One warning line on the console (stderr)."""
    console.print(f"warning: {message}", style="yellow", highlight=False, markup=False, soft_wrap=True)
