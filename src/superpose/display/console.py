"""Terminal output on stderr: the message console and warnings (results are summary.md, on stdout;
progress bars are superpose.progress)."""

from __future__ import annotations

from superpose.progress import console  # one stderr console: messages print above a live progress bar

__all__ = ["console", "warn"]


def warn(message: str) -> None:
    """One warning line on the console (stderr)."""
    console.print(f"warning: {message}", style="yellow", highlight=False, markup=False, soft_wrap=True)
