"""One Markdown table row per training run, from its training log and observatory.jsonl (docs/scratch.md).

    python scripts/training_table.py RUN_FOLDER [RUN_FOLDER ...]

Columns: steps (status), minutes of the run's own clock, kret loss over steps 550-599 (a 600-step warm
start), loss over the last 50 steps, the observatory's last loss from example 5 (and the first step
at or below half the ret_k copying plateau), in-context accuracy, best head's attention on the
answer's column, and the λ snapshot's slopes and verdict.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

from superpose.files import read_jsonl
from superpose.runs import read_status, training_log
from superpose.scratch.observatory import read_observatory

BAR = math.log(8) / 4  # half the ret_k copying plateau ln 8 / 2


def row(folder: Path) -> str:
    """The table row of one training run folder."""
    rows = list(read_jsonl(training_log(folder)))
    loss = {r["step"]: r["loss"] for r in rows}
    obs = read_observatory(folder)
    last = max(loss)
    kret = sum(loss[s] for s in range(550, 600)) / 50 if 599 in loss else None
    tail = [loss[s] for s in range(last - 49, last + 1) if s in loss]
    first = next((o["step"] for o in obs if (o.get("loss_from_5") or 9) <= BAR), None)
    o, snap = obs[-1], obs[-1].get("lambda_snapshot") or {}
    seconds = rows[-1]["seconds"]
    slopes = "; ".join(f"{v:.3f}" for v in (snap.get("slopes") or {}).values())
    return (f"| {folder.name} | {last + 1} ({read_status(folder).get('status')}) | {seconds / 60:.1f} | "
            f"{'—' if kret is None else f'{kret:.4f}'} | {sum(tail) / len(tail):.3f} | "
            f"{o['loss_from_5']:.4f} (first ≤ {BAR:.2f} at {first or 'never'}) | {o['icl_accuracy']:.3f} | "
            f"{o.get('column_attention_max', float('nan')):.3f} | {slopes} → {snap.get('verdict', '—')} |")


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(row(Path(arg)))
