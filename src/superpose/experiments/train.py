"""Training as a kind of run: :func:`run_train` opens its folder through ``open_run``, like every kind,
and runs the loop of :mod:`superpose.scratch.train` in it.

    run, result = run_train(load_train_config("configs/scratch/plus_cpu.yaml"), root="runs/scratch")
    run, result = run_train(None, resume=run.path)  # after a kill, Ctrl-C, stop_at or a time limit

A resume runs the folder's own recipe; a recipe given with it may change only the fields
``TrainConfig.resume_may_change`` lists (speed, and the limits of one call: ``stop_at``,
``time_limit_minutes``, ``export_to``, which a resume does not inherit).
"""

from __future__ import annotations

from pathlib import Path

from superpose.errors import ConfigError
from superpose.experiments.base import open_run, resumed_config
from superpose.progress import Progress
from superpose.runs import DEFAULT_ROOT, RunFolder, environment
from superpose.scratch.recipe import TrainConfig, read_run_config
from superpose.scratch.train import TrainResult, starting_point, train


def run_train(config: TrainConfig | None, *, root: str | Path = DEFAULT_ROOT, resume: str | Path | None = None,
              backend: None = None, progress: Progress = True) -> tuple[RunFolder, TrainResult]:
    """Train ``config`` in a new folder ``root/<name>-<time>``, or continue the folder ``resume`` exactly;
    returns the folder and what it trained (:class:`~superpose.scratch.train.TrainResult`, whose
    ``summary()`` is summary.json). Training builds its own model: ``backend`` must be None."""
    if backend is not None:
        raise ConfigError("backend: training builds its own model from the recipe; pass no backend")
    if resume is None:
        if config is None:
            raise ConfigError("give a training recipe (e.g. configs/scratch/plus_cpu.yaml) or a folder to resume")
        start = starting_point(config, None)  # a missing GPU or an init_from that does not fit: no folder yet
    else:
        adopt_older_folder(Path(resume))
        start = starting_point(resumed_config("train", TrainConfig, config, resume), Path(resume))
    run, config = open_run("train", TrainConfig, config, root, resume)
    if config.out_dir != str(run.path):  # the recipe records the folder it trains in (a copy: the copy)
        config = config.model_copy(update={"out_dir": str(run.path)})
        run.update_config("config", config.model_dump(mode="json"))
    return run, train(config, run, start, progress=progress)


def adopt_older_folder(folder: Path) -> None:
    """Give a training folder of an older version (its recipe only in config.json) the config.yaml every run
    folder has, once, so it resumes like any other; a damaged config.json is one line naming it."""
    if (folder / "config.yaml").exists() or not (folder / "config.json").is_file():
        return
    run = RunFolder(folder, kind="train")
    run.refuse_if_written()
    recipe = read_run_config(folder / "config.json")
    run.write_yaml("config.yaml", {"config": recipe.model_dump(mode="json"), "environment": environment(),
                                   "adopted": "config.json of a folder an older version wrote"})
