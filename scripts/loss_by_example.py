"""Does a scratch model infer its task in context? Answer loss by example index, for one or more models.

    python scripts/loss_by_example.py scratch-plus-cpu runs/scratch/ret_c1/model --out loss.png

A model that infers the hidden k from the examples has a high loss on the first answer and a low
one afterwards; a model on a plateau (e.g. ret_k's "copy one of the query's letters") has a flat
line at the plateau's value. Tasks and the number of examples default to the model's training
recipe (its training.json); --tasks and --n-examples override them.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+", help="model folders or embedded scratch model names")
    ap.add_argument("--tasks", help="comma-separated task names (default: the model's training tasks)")
    ap.add_argument("--n-examples", type=int, help="examples per sequence (default: as in training)")
    ap.add_argument("--n-sequences", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="also draw the curves into this PNG")
    args = ap.parse_args()

    from transformers import AutoModelForCausalLM

    from superpose.errors import SuperposeError
    from superpose.models.loading import resolve_model
    from superpose.scratch.diagnose import loss_by_example

    torch.set_num_threads(1)
    curves = {}
    for name in args.models:
        try:
            folder = Path(resolve_model(name)[1])  # a folder, or an embedded one (scratch-plus-cpu)
        except SuperposeError as e:
            print(e, file=sys.stderr)
            raise SystemExit(2)
        recipe = folder / "training.json"  # written by `superpose train` next to the final model
        if not (args.tasks and args.n_examples) and not recipe.is_file():
            print(f"{folder}: no training.json to take the tasks from; give --tasks and --n-examples",
                  file=sys.stderr)
            raise SystemExit(2)
        trained = json.loads(recipe.read_text())["config"] if recipe.is_file() else {}
        tasks = args.tasks.split(",") if args.tasks else trained["tasks"]
        n = args.n_examples or trained["n_examples"]
        model = AutoModelForCausalLM.from_pretrained(folder).eval()
        curves[name] = loss_by_example(model, tasks, n, args.n_sequences, args.seed)
        print(f"{name}: {len(tasks)} tasks (a guess among their answers: ln {len(tasks)} = "
              f"{math.log(len(tasks)):.2f}), {n} examples")
        print("  " + " ".join(f"{x:.2f}" for x in curves[name]))
    if args.out:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator

        fig, ax = plt.subplots(figsize=(7, 4))
        for name, ys in curves.items():
            ax.plot(range(1, len(ys) + 1), ys, marker="o", ms=3, label=name)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("example index (last: the query)")
        ax.set_ylabel("answer loss (nats per character)")
        ax.set_title("Learning in context: answer loss by example index")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(args.out, dpi=120)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
