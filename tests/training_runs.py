"""Training in the tests: the loop in exactly ``cfg.out_dir``, as a scale run trains its family in folders
of its own (tests of the run contract -- new folders, the resume rule -- call ``run_train``)."""

from __future__ import annotations

from pathlib import Path

from superpose.runs import RunFolder
from superpose.scratch.train import TrainConfig, TrainResult, train


def train_at(cfg: TrainConfig, **limits) -> TrainResult:
    """Train ``cfg`` in ``cfg.out_dir`` (made if missing), continuing its checkpoint if it holds one;
    ``limits``: the per-call fields (``stop_at``, ``time_limit_minutes``, ``export_to``)."""
    folder = Path(cfg.out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    return train(cfg.model_copy(update=limits), RunFolder(folder, kind="train"), progress=False)
