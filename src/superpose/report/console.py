"""Terminal output: one console, progress bars, and the summary table."""

from __future__ import annotations

import time
from typing import Iterable, Iterator, Sized, TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

console = Console(stderr=True)
T = TypeVar("T")


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate with a progress bar on a terminal, or a line per tenth of the work in logs."""
    total = total if total is not None else (len(items) if isinstance(items, Sized) else None)
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


def print_summary(summary: dict) -> None:
    """Mean P(answer) per task, other mass and KL, one row per (model, mixture, task)."""
    table = Table(title=f"probe '{summary['config']}': mean P(answer) per task")
    for col in ("model", "mixture", "task", "share", "mean P", "median P", "top-1", "other", "KL"):
        table.add_column(col, justify="left" if col in ("model", "mixture", "task") else "right")
    for model, mixtures in summary["models"].items():
        for mixture, s in mixtures.items():
            for i, (task, v) in enumerate(s["tasks"].items()):
                first = i == 0
                table.add_row(model if first else "", mixture if first else "", task,
                              f"{v['share']:.2f}", f"{v['mean']:.3f}", f"{v['median']:.3f}",
                              f"{v['top1_rate']:.2f}", f"{s['other_mean']:.3f}" if first else "",
                              f"{s['kl']:.2f}" if first else "")
    Console().print(table)
