"""Terminal output: the progress console (stderr), progress bars, and the probe's summary table (stdout)."""

from __future__ import annotations

import time
from typing import Iterable, Iterator, Sized, TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from superpose.metrics import verdict
from superpose.stats import DEFAULT_LEVEL, fmt_key

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


def print_summary(summary: dict) -> None:
    """Mean P(answer) per task: a heading line per (model, mixture), then a row per task.

    Names are never cut: they sit in a heading line or in the one text column, which folds rather
    than truncates, so a pipe or an 80-column terminal shows them whole.
    """
    out = Console(soft_wrap=True)
    out.print(f"probe '{summary['config']}': mean P(answer) per task", style="bold")
    for model, mixtures in summary["models"].items():
        for mixture, s in mixtures.items():
            out.print(f"\n{model} · {mixture} ({s['n_prompts']} prompts): other mass {fmt_key(s, 'other_mean')}, "
                      f"KL(shares‖P) {fmt_key(s, 'kl', 2)} nats"
                      + (f" ({s['kl_excluded']} prompts with P = 0 left out)" if s.get("kl_excluded") else ""),
                      highlight=False, markup=False)
            controls = s.get("controls")
            level = f"{s.get('ci_level', DEFAULT_LEVEL):.0%}"
            table = _table(["share", f"mean P [{level} CI]", "median P", "top-1"])
            for task, v in s["tasks"].items():
                table.add_row(task, f"{v['share']:.2f}", fmt_key(v, "mean"), f"{v['median']:.3f}", fmt_key(v, "top1_rate", 2))
            out.print(table)
            if not controls:
                out.print("no controls run (--controls): no task is called superposed", highlight=False, markup=False)
                continue
            table = _table(["in-context effect [CI]", "verdict"])  # a second table: one would pass 80 columns
            for task, c in controls.items():
                table.add_row(task, fmt_key(c, "effect"), verdict(c))
            out.print(table)


def _table(columns: list[str]) -> Table:
    """A borderless table: the task column folds, number columns never wrap."""
    table = Table(box=None, pad_edge=False, show_edge=False)
    table.add_column("task", overflow="fold")
    for col in columns:
        table.add_column(col, justify="right", no_wrap=True)
    return table
