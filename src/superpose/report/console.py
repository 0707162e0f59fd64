"""Terminal output: the message console (stderr) and the probe's summary table (stdout); progress is superpose.progress."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from superpose.metrics import verdict
from superpose.progress import console  # one stderr console: messages print above a live progress bar
from superpose.stats import DEFAULT_LEVEL, fmt_key


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
