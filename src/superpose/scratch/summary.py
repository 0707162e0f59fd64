"""A training run's summary: summary.md and its figures (the loss, the observatory), from its folder.

The run's loop calls :func:`summarise_training` whenever it stops (finished or not); ``superpose train``
prints the summary.md it writes, and the report embeds it. :func:`training_markdown` and
:func:`training_figures` only read the folder, so the report can show a running run without writing it.
"""

from __future__ import annotations

import json
from pathlib import Path

from superpose.display.figures import save_figure
from superpose.display.text import md
from superpose.errors import SuperposeError
from superpose.files import read_jsonl
from superpose.runs import training_log

TAIL = 50  # the steps whose mean loss the summary states


def read_training_log(folder: str | Path) -> list[dict]:
    """A training run's per-step rows (``records.jsonl``, or ``log.jsonl`` of older folders): every whole
    line (a last line cut by a kill is left out)."""
    folder = Path(folder)
    path = training_log(folder)
    rows = []
    for i, row in enumerate(read_jsonl(path)):
        try:
            rows.append({"step": int(row["step"]), "loss": float(row["loss"]), "seconds": float(row["seconds"]),
                         "tokens": int(row.get("tokens") or 0)})
        except (ValueError, KeyError, TypeError):
            raise SuperposeError(f"{path}, line {i + 1}: damaged (expected a JSON object with step, loss and "
                                 "seconds)") from None
    return rows


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def training_markdown(folder: str | Path) -> str:
    """summary.md of a training run: steps, time, speed and recent loss; where it stopped or its model;
    the observatory's last verdict."""
    from superpose.scratch.observatory import observatory_summary, read_observatory

    folder = Path(folder)
    config = _read_json(folder / "config.json")
    status = _read_json(folder / "status.json")
    log = read_training_log(folder)
    out = [f"# Training {md(config.get('name', folder.name))}\n"]
    columns = (config.get("model") or {}).get("column_embedding")
    if columns:  # said first: a reader compares this model with the study's
        from superpose.models.columns import LABEL

        out.append(f"Architecture: {LABEL} (model.column_embedding: {columns}).\n")
    if log:
        last, tail = log[-1], [r["loss"] for r in log[-TAIL:]]
        speed = f" ({last['tokens'] / last['seconds']:,.0f} tokens/s)" if last["tokens"] and last["seconds"] else ""
        out.append(f"{len(log)} steps in {last['seconds']:.0f} s{speed}; mean loss of the last {len(tail)} steps "
                   f"{sum(tail) / len(tail):.4f}.\n")
    else:
        out.append("No step logged yet.\n")
    if (folder / "model").is_dir():
        out.append(f"Model: {md(folder / 'model')}\n")
    elif status.get("status") == "stopped":
        out.append(f"Stopped at step {status.get('step', len(log))} of {config.get('steps', '?')}: continue with "
                   f"superpose train --resume {md(folder)}\n")
    rows = read_observatory(folder)
    if rows:
        out += ["## Training observatory\n", md(observatory_summary(rows)) + "\n"]
    return "\n".join(out)


def plot_loss(log: list[dict], path: str | Path) -> Path:
    """The training loss against the step (log scale)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3))
    ax.plot([r["step"] for r in log], [r["loss"] for r in log], lw=0.8)
    ax.set(xlabel="step", ylabel="loss (answers only)", yscale="log")
    return save_figure(fig, Path(path))


def training_figures(folder: str | Path, out: str | Path) -> list[Path]:
    """Draw a training run's figures into ``out``: loss.png, and observatory.png when it has an observatory."""
    from superpose.scratch.observatory import plot_observatory, read_observatory, run_title

    folder, out = Path(folder), Path(out)
    log, rows = read_training_log(folder), read_observatory(folder)
    figures = [plot_loss(log, out / "loss.png")] if log else []
    if rows:
        title, bounds = run_title(_read_json(folder / "config.json"), folder.name)
        figures.append(plot_observatory(rows, out / "observatory.png", title=title, boundaries=bounds))
    return figures


def summarise_training(folder: str | Path) -> Path:
    """Write a training run's summary.md and figures/ (loss, observatory); returns the summary.md path."""
    folder = Path(folder)
    training_figures(folder, folder / "figures")
    path = folder / "summary.md"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(training_markdown(folder), encoding="utf-8")
    tmp.replace(path)  # atomic: a kill leaves the old summary or the new one
    return path
