"""The mean gap |P(task 1) − study| of a sweep run folder, with a 95 % bootstrap interval over its prompts.

    python scripts/reference_gap.py SWEEP_RUN_FOLDER

The sweep's summary gives the gap (``reference.mean_abs_diff``) without an interval; here the prompts of
each λ are resampled (scipy.stats.bootstrap, percentile, 2,000 resamples, seed 0), m = 0 records only.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy.stats import bootstrap

from superpose.experiments.sweep import STUDY_CURVES
from superpose.files import load_yaml, read_jsonl


def reference_gap(folder: Path) -> tuple[float, float, float]:
    """(gap, low, high) of the folder's plain curve against the study curve its config names."""
    config = load_yaml(folder / "config.yaml", str(folder / "config.yaml"))["config"]
    ref = np.array(STUDY_CURVES[config["reference"]])  # at λ = 0, 0.1, ..., 1
    records = [r for r in read_jsonl(folder / "records.jsonl") if r.get("fixed_last", 0) == 0]
    samples = [np.array([r["p1"] for r in records if abs(r["lambda"] - lam) < 1e-9]) for lam in config["lambdas"]]

    def gap(*per_lambda):
        return float(np.mean(np.abs(np.array([x.mean() for x in per_lambda]) - ref)))

    ci = bootstrap(samples, gap, vectorized=False, n_resamples=2000, method="percentile",
                   random_state=np.random.default_rng(0)).confidence_interval
    return gap(*samples), float(ci.low), float(ci.high)


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        g, lo, hi = reference_gap(Path(arg))
        print(f"{arg}: mean |P1 − study| = {g:.3f} [{lo:.3f}, {hi:.3f}]")
