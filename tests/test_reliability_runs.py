"""Run folders and training runs stay honest when something goes wrong (docs/reliability.md).

Real commands on real folders: a training run copied and resumed elsewhere, damaged checkpoints,
a full disk (a small tmpfs, where this process may mount one), damaged model files and records,
many processes creating run folders at once.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from superpose.cli import main
from superpose.runs import read_status

# A training recipe small enough that its few steps take a second; out_dir relative, as typed.
TINY_TRAIN = {"name": "tiny", "tasks": ["plus_[0-9]"], "n_examples": 5,
              "model": {"n_layers": 1, "d_model": 16, "n_heads": 2, "d_mlp": 32, "max_position_embeddings": 96},
              "steps": 6, "batch_size": 4, "lr": 1e-2, "warmup_steps": 2, "decay_steps": 2,
              "checkpoint_every": 3, "seed": 7, "threads": 1, "out_dir": "runs/tiny"}


def cli(capsys, *args):
    code = main([str(a) for a in args] + ["--no-progress"])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code, err, *needles, status=2):
    assert code == status, err
    assert err.startswith("error: ") and err.strip().count("\n") == 0 and "Traceback" not in err, err
    for n in needles:
        assert n in err, (n, err)


def losses(folder: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (folder / "log.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def stopped_training(tmp_path_factory):
    """A training run stopped at its step-3 checkpoint, started in its own working directory with
    the recipe's relative out_dir; and the same recipe run straight through, for its losses."""
    home = tmp_path_factory.mktemp("start")
    (home / "tiny.yaml").write_text(yaml.safe_dump(TINY_TRAIN))
    cwd = os.getcwd()
    os.chdir(home)
    try:
        from superpose.scratch.train import load_train_config, train

        train(load_train_config("tiny.yaml"), stop_at=3, progress=False)
        straight = train(load_train_config("tiny.yaml", out_dir="straight"), progress=False)
    finally:
        os.chdir(cwd)
    assert read_status(home / "runs/tiny")["status"] == "stopped"
    return home / "runs/tiny", straight.losses


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --- 1. resume trains exactly the folder it is given ------------------------------------------------

def test_resume_of_a_copied_training_folder_from_another_directory(stopped_training, tmp_path, capsys, monkeypatch):
    original, straight = stopped_training
    before = snapshot(original)
    copy = tmp_path / "elsewhere" / "copy"
    shutil.copytree(original, copy)
    monkeypatch.chdir(tmp_path)  # not the directory the run started from: config.json's out_dir means nothing here
    code, out, err = cli(capsys, "train", "--resume", copy)
    assert code == 0, err
    assert out.strip().splitlines()[-1] == f"run folder: {copy}"
    assert read_status(copy)["status"] == "complete" and (copy / "model" / "model.safetensors").is_file()
    assert losses(copy) == straight  # continued exactly, as if never interrupted
    assert snapshot(original) == before  # the folder it was copied from is untouched


def test_resume_of_a_copy_beside_the_original_trains_the_copy(stopped_training, tmp_path, capsys, monkeypatch):
    original, straight = stopped_training
    before = snapshot(original)
    copy = tmp_path / "copy"
    shutil.copytree(original, copy)
    monkeypatch.chdir(original.parents[1])  # where config.json's relative out_dir names the original
    code, out, err = cli(capsys, "train", "--resume", copy, "--steps", "6")  # a flag that changes nothing
    assert code == 0, err
    assert read_status(copy)["status"] == "complete" and losses(copy) == straight
    assert snapshot(original) == before
