"""Draw a training run's observatory (observatory.jsonl) against the step, and print its summary.

    python scripts/plot_observatory.py runs/scratch/seed0/ret_warm_kret --out docs/figures/x.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from superpose.scratch.observatory import observatory_summary, plot_observatory, read_observatory, run_title


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", help="a training run folder with observatory.jsonl")
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--title", default="", help="figure title (default: the run's name, with the architecture-change label where it has one)")
    args = p.parse_args()
    rows = read_observatory(args.run)
    if not rows:
        print(f"{args.run}: no observatory.jsonl rows (train with eval_every > 0)", file=sys.stderr)
        return 2
    config_path = Path(args.run) / "config.json"
    config = json.loads(config_path.read_text()) if config_path.is_file() else {}
    title, bounds = run_title(config, Path(args.run).name)
    plot_observatory(rows, args.out, title=args.title or title, boundaries=bounds)
    print(observatory_summary(rows))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
