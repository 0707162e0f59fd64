"""What the bootstrap intervals cost: their share of a probe's wall time.

Runs a real probe (the demo config on the given model, its model loaded once beforehand so the
denominator is scoring plus writing, the smallest honest one), then recomputes the whole summary --
every mean with its bootstrap interval, the KLs, the comparisons -- from the run's records. The time of
that recomputation is an upper bound on what the intervals add (the means alone take microseconds).
Prints  intervals / probe  (goal <= 0.05) on the wall clock and in CPU time of this process (the CPU
ratio is the one a shared machine does not distort). Only ratios are reported.

    python benchmarks/intervals.py [--model smollm2-135m] [--n-prompts 12] [--controls]
"""

from __future__ import annotations

import argparse
import tempfile
import time

from superpose import load_backend
from superpose.experiments.probe import collect, load_probe_config, probe_summary, run_probe
from timing import timed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--n-prompts", type=int, default=12)
    p.add_argument("--controls", action="store_true")
    args = p.parse_args()
    config = load_probe_config("configs/demo.yaml", {"models": [args.model], "n_prompts": args.n_prompts,
                                                     "controls": args.controls or None})
    backend = load_backend(args.model, config.dtype)
    with tempfile.TemporaryDirectory() as root:
        holder = {}
        cpu = time.process_time()
        probe_s = timed(lambda: holder.update(run=run_probe(config, root=root, backend=backend)[0]))
        probe_cpu = time.process_time() - cpu
        records = holder["run"].read_records()
        cpu = time.process_time()
        stats_s = min(timed(lambda: probe_summary(collect(records, config), config)) for _ in range(3))
        stats_cpu = (time.process_time() - cpu) / 3
    print(f"model {args.model}, demo config, {args.n_prompts} prompts per mixture, controls {config.controls}: "
          f"{len(records)} records")
    print(f"intervals / probe = {stats_s / probe_s:.4f} wall, {stats_cpu / probe_cpu:.4f} CPU time  (goal <= 0.05; "
          f"the summary with every interval recomputed from the records, against the probe run that wrote them)")


if __name__ == "__main__":
    main()
