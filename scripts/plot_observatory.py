"""Draw a training run's observatory (observatory.jsonl) against the step, and print its summary.

    python scripts/plot_observatory.py runs/scratch/seed0/ret_warm_kret --out docs/figures/x.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from superpose.scratch.observatory import observatory_summary, plot_observatory, read_observatory


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", help="a training run folder with observatory.jsonl")
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--title", default="", help="figure title (default: the run folder's name)")
    args = p.parse_args()
    rows = read_observatory(args.run)
    if not rows:
        print(f"{args.run}: no observatory.jsonl rows (train with eval_every > 0)", file=sys.stderr)
        return 2
    plot_observatory(rows, args.out, title=args.title or Path(args.run).name)
    print(observatory_summary(rows))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
