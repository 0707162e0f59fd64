"""The one run contract, kind by kind (docs/architecture.md): a run stopped part-way and resumed leaves the
folder an uninterrupted run leaves (records and summary byte-identical, apart from fields that record
time), and a resume that changes a field the kind does not allow exits 2 with one line naming it.

The probe and training are killed for real (SIGKILL to a command after its first records, and for
training its first checkpoint). The other kinds resume a copy of a finished folder cut back to the
state a kill leaves: some records, a last line cut mid-write, no summary, status "running".
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

from superpose.runs import RunFolder, read_status
from test_reliability import cli, one_line_error, write

COPY = ["copy_op1", "copy_op2"]
TIME_FIELDS = {"time", "started", "elapsed", "seconds", "duration", "per_second"}


def without_time(doc):
    """``doc`` without the fields that record when or how long (they differ between two equal runs)."""
    if isinstance(doc, dict):
        return {k: without_time(v) for k, v in doc.items() if not any(t in k for t in TIME_FIELDS)}
    if isinstance(doc, list):
        return [without_time(v) for v in doc]
    return doc


def assert_same_results(resumed, whole, files=("records.jsonl",)):
    """The resumed folder holds an uninterrupted run's results: ``files`` byte for byte, summary.json too
    (apart from time fields), and it is complete."""
    for name in files:
        assert (resumed / name).read_bytes() == (whole / name).read_bytes(), name
    text = [(f / "summary.json").read_text(encoding="utf-8") for f in (resumed, whole)]
    assert without_time(json.loads(text[0])) == without_time(json.loads(text[1]))
    if not any(t in text[1] for t in TIME_FIELDS):  # nothing records time: the whole file is equal
        assert text[0] == text[1]
    assert read_status(resumed)["status"] == "complete"


def killed_copy(folder, where, keep):
    """A copy of the finished ``folder`` as a kill leaves it: ``keep`` records and half of the next one."""
    copy = where / f"killed-{folder.name}"
    shutil.copytree(folder, copy)
    lines = (copy / "records.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) > keep + 1
    (copy / "records.jsonl").write_text("".join(line + "\n" for line in lines[:keep]) + lines[keep][:20],
                                        encoding="utf-8")
    (copy / "summary.json").unlink()
    RunFolder(copy)._set_status("running")
    return copy


def refused(capsys, folder, *argv, needle):
    """``superpose <argv> --resume folder`` changing a field the kind keeps: exit 2, one line naming the
    field, and the folder untouched."""
    def state():  # status.json, and the lock a killed writer left (or none)
        return (folder / "status.json").read_bytes(), (folder / "lock").exists() and (folder / "lock").read_bytes()

    before = state()
    capsys.readouterr()  # what the runs before printed
    code, err = cli(capsys, *argv[:1], "--resume", folder, *argv[1:])
    one_line_error(code, err, f"{needle} (")
    assert "from the run's; a resume" in err
    assert state() == before


def killed_command(argv, root, ready):
    """Run ``superpose <argv> --out root`` and SIGKILL it once ``ready(folder)``; returns the folder."""
    import torch

    # the same thread count as the run it is compared with: a float sum split differently differs in its last bits
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    proc = subprocess.Popen([sys.executable, "-m", "superpose.cli", *map(str, argv), "--out", str(root),
                             "--no-progress"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            folders = list(root.glob("*"))
            if folders and ready(folders[0]):
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.005)
    finally:
        proc.kill()
        proc.wait()
    (folder,) = root.iterdir()
    return folder


# --- probe: a command killed for real -----------------------------------------------------------------

PROBE = {"name": "tiny", "models": ["smollm2-135m"], "seed": 7, "n_prompts": 2, "controls": True,
         "mixtures": [{"name": "copy", "tasks": COPY, "n_examples": 6}]}  # 2 prompts + 8 controls


def test_probe_killed_and_resumed_equals_an_uninterrupted_run(smollm, tmp_path, capsys):
    from superpose.experiments.probe import load_probe_config, run_probe

    path = write(tmp_path, "c.yaml", PROBE)
    whole, _ = run_probe(load_probe_config(path), root=tmp_path / "whole", backend=smollm)
    folder = killed_command(["run", path], tmp_path / "killed",
                            lambda f: (f / "records.jsonl").is_file() and (f / "records.jsonl").read_bytes().count(b"\n") >= 1)
    n = len(RunFolder(folder).read_records())
    assert read_status(folder)["status"] == "running" and 1 <= n < 10, n  # stopped part-way
    refused(capsys, folder, "run", "--n-prompts", "3", needle="n_prompts")
    resumed, _ = run_probe(None, root=tmp_path, resume=folder, backend=smollm)
    assert_same_results(resumed.path, whole.path, ("records.jsonl", "prompts.jsonl", "controls.jsonl"))


# --- train: a command killed for real ------------------------------------------------------------------

TRAIN = {"name": "tiny", "tasks": ["plus_1"], "n_examples": 4, "steps": 400, "batch_size": 4, "lr": 1e-2,
         "warmup_steps": 2, "decay_steps": 4, "checkpoint_every": 5, "log_every": 1, "seed": 3, "threads": 1,
         "model": {"n_layers": 1, "d_model": 16, "n_heads": 2, "d_mlp": 32, "max_position_embeddings": 64}}


def test_training_killed_and_resumed_equals_an_uninterrupted_run(tmp_path, capsys):
    from superpose.experiments.train import run_train
    from superpose.scratch.recipe import load_train_config

    path = write(tmp_path, "t.yaml", TRAIN)
    whole, _ = run_train(load_train_config(path), root=tmp_path / "whole", progress=False)

    def past_a_checkpoint(folder):
        log = folder / "records.jsonl"
        return (folder / "checkpoint" / "state.pt").is_file() and log.is_file() and log.read_bytes().count(b"\n") >= 7

    folder = killed_command(["train", path], tmp_path / "killed", past_a_checkpoint)
    assert read_status(folder)["status"] == "running" and not (folder / "model").exists()  # stopped part-way
    refused(capsys, folder, "train", "--seed", "8", needle="seed")
    resumed, _ = run_train(None, root=tmp_path, resume=folder, progress=False)

    def untimed(path):  # records.jsonl, but for the field that records time
        return [without_time(json.loads(line)) for line in path.read_text().splitlines()]

    assert untimed(resumed.path / "records.jsonl") == untimed(whole.path / "records.jsonl")
    assert len(untimed(whole.path / "records.jsonl")) == 400
    assert_same_results(resumed.path, whole.path, ("model/model.safetensors",))  # the same weights, bit for bit


# --- sweep ---------------------------------------------------------------------------------------------

def test_sweep_resumed_equals_an_uninterrupted_run(smollm, tmp_path, capsys):
    from superpose.experiments.sweep import SweepConfig, run_sweep

    cfg = SweepConfig(name="t", model="smollm2-135m", task1=COPY[0], task2=COPY[1], n_examples=4, n_prompts=2,
                      lambdas=[0.0, 0.5, 1.0])
    whole, _ = run_sweep(cfg, root=tmp_path / "whole", backend=smollm, progress=False)
    copy = killed_copy(whole.path, tmp_path, keep=2)
    refused(capsys, copy, "sweep", "--n-prompts", "3", needle="n_prompts")
    resumed, _ = run_sweep(None, root=tmp_path, resume=copy, backend=smollm, progress=False)
    assert_same_results(resumed.path, whole.path)


# --- scale ---------------------------------------------------------------------------------------------

SCALE = {"name": "t", "n_prompts": 2, "threads": 1, "models": ["smollm2-135m"],
         "mixtures": [{"name": "copy", "tasks": COPY, "n_examples": 4}],
         "enumerate": {"min_prob": 1e-2, "max_tokens": 3, "max_outputs": 4}}


def test_scale_resumed_equals_an_uninterrupted_run_and_may_change_only_threads(smollm, tmp_path, capsys):
    from superpose.config import validate
    from superpose.experiments.scale import ScaleConfig, run_scale

    whole, _ = run_scale(validate(ScaleConfig, SCALE, "test"), root=tmp_path / "whole", backend=smollm, progress=False)
    copy = killed_copy(whole.path, tmp_path, keep=2)
    refused(capsys, copy, "scale", "--n-prompts", "3", needle="n_prompts")
    resumed, _ = run_scale(None, root=tmp_path, resume=copy, backend=smollm, progress=False)
    assert_same_results(resumed.path, whole.path)
    # threads is speed only: a resume may change it, and config.yaml says what the run went on with
    faster = validate(ScaleConfig, {**SCALE, "threads": 2}, "test")
    run_scale(faster, root=tmp_path, resume=copy, backend=smollm, progress=False)
    assert RunFolder(copy).config["threads"] == 2
    assert_same_results(copy, whole.path)


# --- vectors -------------------------------------------------------------------------------------------

VECTORS = {"name": "t", "model": "smollm2-135m", "tasks": COPY,
           "extract": {"n_prompts": 2, "n_examples": 3, "layers": [2, 4], "batch_size": 2},
           "layers": {"n_queries": 1},
           "interpolate": {"n_points": 3, "n_queries": 1, "n_prompts": 1, "real_lambdas": [0, 1]},
           "steer": {"alphas": [0, 1], "n_prompts": 1}}
VECTOR_FILES = ("layers.json", "projection.json", "interpolation.json", "steering.json", "vectors.safetensors")


def test_vectors_resumed_equals_an_uninterrupted_run_and_resume_follows_the_rule(smollm, tmp_path, capsys):
    from superpose.experiments.vectors import run_vectors
    from superpose.vectors.config import vectors_config_from_dict

    whole, _ = run_vectors(vectors_config_from_dict(VECTORS, "test"), root=tmp_path / "whole", backend=smollm)
    copy = tmp_path / "killed"
    shutil.copytree(whole.path, copy)
    for name in ("interpolation.json", "steering.json", "summary.json", "summary.md"):  # killed in step 4
        (copy / name).unlink()
    RunFolder(copy)._set_status("running")
    refused(capsys, copy, "vectors", "--seed", "3", needle="seed")  # once every flag was refused; now only a change
    resumed, _ = run_vectors(None, root=tmp_path, resume=copy, backend=smollm)
    assert_same_results(resumed.path, whole.path, VECTOR_FILES)
    code, _ = cli(capsys, "vectors", "--resume", copy, "--seed", "0", "--step", "project", "--layer", "4")
    assert code == 0 and json.loads((copy / "projection.json").read_text())["layer"] == 4  # the layer may change
    assert RunFolder(copy).config["layers"]["layer"] == 4
    assert cli(capsys, "vectors", "--resume", copy, "--step", "project", "--layer", "5")[0] == 2  # not extracted
    assert RunFolder(copy).config["layers"]["layer"] == 4  # refused before config.yaml records it


# --- construct -----------------------------------------------------------------------------------------

def test_construct_resumed_equals_an_uninterrupted_run(tmp_path, capsys):
    flags = ["--prompts", "8", "--examples", "8", "--dims", "1,4", "--no-progress"]
    assert cli(capsys, "construct", "--out", tmp_path / "whole", *flags)[0] == 0
    (whole,) = (tmp_path / "whole").iterdir()
    copy = killed_copy(whole, tmp_path, keep=3)
    refused(capsys, copy, "construct", "--prompts", "9", needle="prompts")
    assert cli(capsys, "construct", "--resume", copy, "--prompts", "8", "--no-progress")[0] == 0  # the same value
    assert_same_results(copy, whole, ("records.jsonl", "prompts.jsonl", "dimension_table.json"))


# --- mechanism -----------------------------------------------------------------------------------------

MECHANISM = {"name": "t", "models": ["smollm2-135m"], "n_prompts": 2, "seed": 0,
             "mixtures": [{"name": "copy", "tasks": COPY, "n_examples": 4}],
             "mechanism": {"analyses": ["lens", "attribution"], "batch_size": 2,
                           "attribution": {"n_prompts": 2, "bins": 2}}}


def test_mechanism_resumed_equals_an_uninterrupted_run(smollm, tmp_path, capsys):
    from superpose.config import validate
    from superpose.experiments.mechanism import MechanismConfig, run_mechanism

    whole, _ = run_mechanism(validate(MechanismConfig, MECHANISM, "test"), root=tmp_path / "whole", backend=smollm)
    copy = killed_copy(whole.path, tmp_path, keep=1)
    refused(capsys, copy, "mechanism", "--analysis", "heads", needle="mechanism.analyses")
    resumed, _ = run_mechanism(None, root=tmp_path, resume=copy, backend=smollm)
    assert_same_results(resumed.path, whole.path)


def test_old_folders_without_kind_still_resume(tmp_path, capsys):
    """A format-1 folder (status.json without kind or format) resumes under the rule and learns its kind."""
    flags = ["--prompts", "6", "--examples", "8", "--dims", "1", "--no-progress"]
    assert cli(capsys, "construct", "--out", tmp_path / "runs", *flags)[0] == 0
    (folder,) = (tmp_path / "runs").iterdir()
    (folder / "summary.json").unlink()
    (folder / "status.json").write_text(json.dumps({"status": "running", "time": "2026-01-01T00:00:00+0000"}))
    refused(capsys, folder, "construct", "--seed", "1", needle="seed")
    assert cli(capsys, "construct", "--resume", folder, "--no-progress")[0] == 0
    assert read_status(folder)["kind"] == "construct" and read_status(folder)["format"] == 2
