"""λ sweep of one model on every pair of a task family, with the issue's criteria per pair.

    python scripts/sweep_all_pairs.py scratch-plus-cpu --family plus_k --n-prompts 40

A single pair can be lucky; this runs all of them (45 for plus_0..9), so a reader can check that
the result does not depend on which pair was picked. Prints one line per pair and a tally, and
writes the table as JSON. Runs go under runs/sweep-pairs/ like any sweep.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
from pathlib import Path

from superpose.experiments.sweep import SweepConfig, run_sweep
from superpose.backends import load_backend
from superpose.tasks import list_tasks


def meets_criteria(s: dict) -> bool:
    """The issue's must-show: Spearman >= 0.95, both answers >= 0.2 at λ = 0.5, leftover <= 0.1."""
    half = s["at_half"]
    return s["spearman_p1_vs_lambda"] >= 0.95 and min(half["p1"], half["p2"]) >= 0.2 and s["mean_other"] <= 0.1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--family", default="plus_k")
    ap.add_argument("--n-examples", type=int, default=20)
    ap.add_argument("--n-prompts", type=int, default=40)
    ap.add_argument("--counts", choices=["exact", "iid"], default="exact")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reference", choices=["none", "plus", "ret"], default="plus")
    ap.add_argument("--out", default="runs/sweep-pairs/table.json")
    args = ap.parse_args()

    names = [t.name for t in list_tasks() if t.family == args.family]
    if len(names) < 2:
        raise SystemExit(f"--family {args.family}: needs at least two tasks, found {names}")
    lm = load_backend(args.model)
    rows = []
    for t1, t2 in itertools.combinations(names, 2):
        cfg = SweepConfig(name=f"sweep-{t1}-{t2}", model=args.model, task1=t1, task2=t2,
                          n_examples=args.n_examples, n_prompts=args.n_prompts, counts=args.counts,
                          seed=args.seed, reference=args.reference)
        _, s = run_sweep(cfg, root="runs/sweep-pairs", progress=False, backend=lm)
        row = {"task1": t1, "task2": t2, "spearman": s["spearman_p1_vs_lambda"],
               "p1_half": s["at_half"]["p1"], "p2_half": s["at_half"]["p2"],
               "mean_other": s["mean_other"], "p1": [c["p1"] for c in s["curve"]],
               "meets": meets_criteria(s)}
        if "reference" in s:
            row["mean_abs_diff_to_reference"] = s["reference"]["mean_abs_diff"]
        rows.append(row)
        print(f"{t1:>8} vs {t2:<8} spearman {row['spearman']:.3f}  at λ=.5 {row['p1_half']:.3f}/"
              f"{row['p2_half']:.3f}  other {row['mean_other']:.3f}  {'ok' if row['meets'] else 'FAILS'}",
              flush=True)
    mean_curve = [statistics.fmean(r["p1"][i] for r in rows) for i in range(len(rows[0]["p1"]))]
    table = {"model": args.model, "family": args.family, "n_examples": args.n_examples,
             "n_prompts": args.n_prompts, "counts": args.counts, "seed": args.seed,
             "pairs": rows, "pairs_meeting_criteria": sum(r["meets"] for r in rows),
             "mean_p1_curve": mean_curve,
             "mean_other_over_pairs": statistics.fmean(r["mean_other"] for r in rows)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(table, indent=2) + "\n")
    print(f"{table['pairs_meeting_criteria']}/{len(rows)} pairs meet the criteria; mean leftover "
          f"{table['mean_other_over_pairs']:.3f}; mean P1 curve "
          + " ".join(f"{p:.3f}" for p in mean_curve))


if __name__ == "__main__":
    main()
