"""Loss curves of several training runs in one figure (each run folder's records.jsonl, or log.jsonl).

    python scripts/plot_training.py runs/scratch/a runs/scratch/b --out curves.png
    python scripts/plot_training.py RUN... --labels "float32, seed 0" "bfloat16, seed 0" --color-by seed

Curves are the mean over ``--smooth`` steps (the per-step loss of a small batch is noisy), on a
log scale, so that plateaus -- the loss holding still for hundreds of steps -- show as flat steps.
Runs whose config says ``autocast: bfloat16`` are dashed; ``--color-by seed`` gives runs of one seed
one colour (float32 against bfloat16, seed by seed).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def read_log(folder: Path) -> list[dict]:
    """The rows of the folder's training log (a line cut short by a kill is dropped)."""
    from superpose.runs import training_log

    path = training_log(folder)
    if not path.is_file():
        raise ValueError(f"{folder}: not a training run folder (no records.jsonl or log.jsonl)")
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break
    if not rows:
        raise ValueError(f"{path}: no steps logged yet")
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path, help="training run folders")
    ap.add_argument("--labels", nargs="+", help="one per run (default: the folder names)")
    ap.add_argument("--smooth", type=int, default=50, help="steps per mean (1: every step)")
    ap.add_argument("--color-by", choices=["run", "seed"], default="run")
    ap.add_argument("--title", default="training loss (answer characters)")
    ap.add_argument("--out", type=Path, required=True, help="the PNG to write")
    args = ap.parse_args()
    if args.labels and len(args.labels) != len(args.runs):
        print(f"error: --labels: expected {len(args.runs)} labels (one per run), got {len(args.labels)}",
              file=sys.stderr)
        return 2
    if args.smooth < 1:
        print(f"error: --smooth: expected a positive number of steps, got {args.smooth}", file=sys.stderr)
        return 2
    try:
        logs = [read_log(r) for r in args.runs]  # every folder checked before anything is drawn
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    for i, (folder, log) in enumerate(zip(args.runs, logs)):
        config = json.loads((folder / "config.json").read_text()) if (folder / "config.json").is_file() else {}
        bf16 = config.get("autocast") == "bfloat16"
        k = args.smooth
        steps = [log[j + k - 1]["step"] for j in range(0, len(log) - k + 1, k)]
        means = [sum(r["loss"] for r in log[j:j + k]) / k for j in range(0, len(log) - k + 1, k)]
        label = args.labels[i] if args.labels else folder.name
        colour = f"C{(config.get('seed', 0) if args.color_by == 'seed' else i) % 10}"
        ax.plot(steps, means, lw=1.2, ls="--" if bf16 else "-", color=colour, label=label)
    ax.set(xlabel="step", ylabel=f"loss, mean of {args.smooth} steps", yscale="log", title=args.title)
    ax.legend(fontsize=8, ncol=2)
    ax.grid(alpha=0.3, which="both")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110, bbox_inches="tight")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
