"""Bad input gets one line and exit status 2, and run folders stay honest (docs/reliability.md)."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
import yaml

from superpose.cli import main
from superpose.runs import RunFolder

TINY = {"name": "tiny", "models": ["smollm2-135m"], "seed": 1, "n_prompts": 3,
        "mixtures": [{"name": "copy", "tasks": ["copy_op1", "copy_op2"], "n_examples": 6}]}


def cli(capsys, *args):
    code = main([str(a) for a in args])
    err = capsys.readouterr().err
    return code, err


def one_line_error(code, err, *needles):
    assert code == 2, err
    assert err.startswith("error: ") and err.strip().count("\n") == 0 and "Traceback" not in err, err
    for n in needles:
        assert n in err, (n, err)


def write(tmp_path, name, data):
    path = tmp_path / name
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data if isinstance(data, str) else yaml.safe_dump(data), encoding="utf-8")
    return path


# --- files -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, body", [("bad.csv", b"input,out\nab\xff,c\n"), ("bad.jsonl", b'{"input": "\xfe"}\n'),
                                        ("bad.yaml", b"rows:\n  - {input: \xff, out: b}\n")])
def test_task_file_that_is_not_utf8(tmp_path, capsys, name, body):
    path = write(tmp_path, name, body)
    one_line_error(*cli(capsys, "tasks", "--task-file", path), f"task file {path}: not UTF-8 text")


def test_config_that_is_not_utf8_or_not_yaml(tmp_path, capsys):
    path = write(tmp_path, "c.yaml", b"name: x\xff\n")
    one_line_error(*cli(capsys, "run", path), f"config {path}: not UTF-8 text")
    path = write(tmp_path, "d.yaml", "name: [unclosed\nseed: 1\n")
    one_line_error(*cli(capsys, "run", path), f"config {path}: not valid YAML at line")


def test_csv_field_over_the_size_limit(tmp_path, capsys):
    path = write(tmp_path, "big.csv", "input,out\na," + "x" * 140_000 + "\n")
    one_line_error(*cli(capsys, "tasks", "--task-file", path), f"task file {path}, line", "field larger than field limit")


def test_spreadsheet_bom_is_accepted_and_line_breaks_are_refused(tmp_path, capsys):
    ok = write(tmp_path, "bom.csv", b"\xef\xbb\xbfinput,antonym\nhot,cold\nup,down\n")
    assert cli(capsys, "tasks", "--task-file", ok)[0] == 0
    bad = write(tmp_path, "nl.csv", 'input,antonym\nhot,"co\nld"\nup,down\n')
    one_line_error(*cli(capsys, "tasks", "--task-file", bad), f"task file {bad}, line 3: field 'antonym' contains a line break")


# --- configs and names -----------------------------------------------------------------------------

@pytest.mark.parametrize("change, needle", [
    ({"mixtures": [{"name": "m", "tasks": ["copy_op1", "copy_op2"], "template": "{examples}\n{oops}{query}"}]},
     "template: names unknown placeholder(s) ['oops']"),
    ({"name": "../../escaped"}, "name '../../escaped': a run name is"),
    ({"name": "/tmp/abs"}, "name '/tmp/abs'"),
    ({"name": ""}, "name '': a run name is"),
])
def test_bad_configs_leave_no_run_folder(tmp_path, capsys, change, needle):
    path = write(tmp_path, "c.yaml", {**TINY, **change})
    one_line_error(*cli(capsys, "run", path, "--out", tmp_path / "runs"), needle)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    assert not (tmp_path.parent / "escaped").exists()


def test_the_same_model_twice_is_refused(tmp_path, capsys):
    path = write(tmp_path, "c.yaml", TINY)
    one_line_error(*cli(capsys, "run", path, "--model", "smollm2-135m", "--model", "smollm2-135m",
                        "--out", tmp_path / "runs"), "model labels must be unique")


def test_a_time_limit_that_is_not_positive_is_refused(tmp_path, capsys):
    one_line_error(*cli(capsys, "train", "configs/scratch/plus_cpu.yaml", "--out", tmp_path / "runs",
                        "--time-limit", "0"), "--time-limit", "positive number of minutes")
    assert not (tmp_path / "runs").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("command", [
    ["run", "CONFIG"], ["decode", "--prompt", "1@2="], ["scale", "configs/scale/embedded.yaml"],
    ["sweep", "configs/sweep/plus_scratch.yaml"], ["train", "configs/scratch/plus_cpu.yaml"]])
def test_a_missing_gpu_is_one_line_and_no_run_folder(tmp_path, capsys, command, monkeypatch):
    monkeypatch.chdir(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    args = [str(write(tmp_path, "c.yaml", TINY)) if a == "CONFIG" else a for a in command]
    out = {"run": ["--out", tmp_path / "runs"], "scale": ["--out", tmp_path / "runs"],
           "sweep": ["--out", tmp_path / "runs"], "train": ["--out", tmp_path / "runs"]}.get(command[0], [])
    one_line_error(*cli(capsys, *args, "--device", "cuda", *out), "device 'cuda':", "use --device cpu or auto")
    assert not (tmp_path / "runs").exists()


# --- run folders -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    path = root / "c.yaml"
    path.write_text(yaml.safe_dump(TINY))
    assert main(["run", str(path), "--out", str(root / "out")]) == 0
    (folder,) = (root / "out").iterdir()
    return folder


def interrupted_copy(finished, tmp_path, keep=1):
    copy = tmp_path / "interrupted"
    shutil.copytree(finished, copy)
    lines = (copy / "records.jsonl").read_text().splitlines()
    (copy / "records.jsonl").write_text("".join(line + "\n" for line in lines[:keep]))
    (copy / "summary.json").unlink()
    RunFolder(copy)._set_status("running")
    return copy


def test_an_error_after_the_folder_exists_marks_it_failed(tmp_path, capsys):
    path = write(tmp_path, "c.yaml", {**TINY, "mixtures": [{"name": "long", "tasks": ["copy_op1", "copy_op2"],
                                                           "n_examples": 1500}]})
    code, err = cli(capsys, "run", path, "--out", tmp_path / "runs")
    one_line_error(code, err.strip().splitlines()[-1] + "\n", "does not fit in the context")  # after progress lines
    (folder,) = (tmp_path / "runs").iterdir()
    status = json.loads((folder / "status.json").read_text())
    assert status["status"] == "failed" and "does not fit" in status["reason"]
    assert not (folder / "lock").exists()


def test_resume_of_a_folder_with_a_broken_config(finished, tmp_path, capsys):
    for body in ("", "config: [\n"):
        copy = interrupted_copy(finished, tmp_path / str(len(body)))
        (copy / "config.yaml").write_text(body)
        one_line_error(*cli(capsys, "run", "--resume", copy), f"{copy}/config.yaml: empty or not valid YAML")


def test_resume_takes_the_folders_config_and_names_what_would_change(finished, tmp_path, capsys):
    copy = interrupted_copy(finished, tmp_path)
    other = write(tmp_path, "other.yaml", {**TINY, "seed": 9, "n_prompts": 5})
    one_line_error(*cli(capsys, "run", "--resume", copy, other), "n_prompts (3 -> 5), seed (1 -> 9) differ from the run's")
    one_line_error(*cli(capsys, "run", "--resume", copy, "--n-prompts", "50"), "n_prompts (3 -> 50) differs")
    assert cli(capsys, "run", "--resume", copy, "--seed", "1")[0] == 0  # the same value changes nothing
    assert RunFolder.open(copy).status == "complete"


def test_duplicate_records_are_repaired_and_a_missing_newline_is_not_glued(finished, tmp_path, capsys):
    copy = interrupted_copy(finished, tmp_path, keep=2)
    lines = (copy / "records.jsonl").read_text().splitlines()
    (copy / "records.jsonl").write_text("\n".join([lines[0], lines[0], lines[1]]))  # a duplicate, no final newline
    assert cli(capsys, "run", "--resume", copy)[0] == 0
    records = RunFolder.open(copy).read_records()
    assert sorted(r["index"] for r in records) == [0, 1, 2]


def test_a_stale_lock_does_not_block(finished, tmp_path, capsys):
    copy = interrupted_copy(finished, tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (copy / "lock").write_text(str(dead.pid))
    assert cli(capsys, "run", "--resume", copy)[0] == 0
    assert not (copy / "lock").exists()


def test_two_resumes_at_once_write_each_record_once(finished, tmp_path):
    copy = interrupted_copy(finished, tmp_path, keep=0)
    cmd = [sys.executable, "-m", "superpose.cli", "run", "--resume", str(copy)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(600), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes in ([0, 0], [0, 2]), results
    if codes == [0, 2]:
        (err,) = [e for c, e in results if c == 2]
        assert "is being written by process" in err
    records = RunFolder.open(copy).read_records()
    assert sorted(r["index"] for r in records) == [0, 1, 2]
    assert len((copy / "records.jsonl").read_text().splitlines()) == 3


def test_summary_escapes_user_text():
    from superpose.display.text import md
    import matplotlib.pyplot as plt

    import superpose.display.figures  # noqa: F401  (sets the rcParam)

    assert md("<script>alert(1)</script>|x") == "&lt;script>alert(1)&lt;/script>\\|x"  # "<" escaped: no tag can open
    assert plt.rcParams["text.parse_math"] is False


def test_a_run_folder_says_its_kind_and_refuses_another_kinds_resume(tmp_path):
    from superpose.errors import SuperposeError
    from superpose.runs import FORMAT_VERSION, read_status

    run = RunFolder.create("k", {"name": "k"}, tmp_path, kind="probe")
    run.finish({})
    assert {k: read_status(run.path)[k] for k in ("status", "kind", "format")} == {
        "status": "complete", "kind": "probe", "format": FORMAT_VERSION}
    with pytest.raises(SuperposeError, match="holds a probe run, not a sweep run"):
        RunFolder.open(run.path, resume=True, kind="sweep")
    (run.path / "status.json").write_text('{"status": "complete"}')  # a folder of format 1
    assert read_status(run.path)["format"] == 1
    resumed = RunFolder.open(run.path, resume=True, kind="probe")  # learns its kind
    assert read_status(resumed.path)["kind"] == "probe" and resumed.status == "running"
    resumed.unlock()
