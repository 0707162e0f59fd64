"""The HTML report of run folders (the top floor: it reads every kind's summary.md and figures)."""
