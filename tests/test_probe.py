"""The probe end to end on the real SmolLM2-135M: run folder, summary, figures, resume, CLI errors."""

import json
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from superpose.cli import main
from superpose.experiments.probe import load_probe_config, run_probe
from superpose.runs import RunFolder

TINY = {
    "name": "tiny",
    "models": ["smollm2-135m"],
    "seed": 7,
    "n_prompts": 3,
    "mixtures": [
        {"name": "copy", "tasks": ["copy_op1", "copy_op2"], "n_examples": 8},
        {"name": "letters", "tasks": ["first_letter", "last_letter_upper"], "weights": [0.75, 0.25], "n_examples": 8},
    ],
}


def write_config(tmp_path, **changes):
    path = tmp_path / "probe.yaml"
    path.write_text(yaml.safe_dump({**TINY, **changes}))
    return path


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return run_probe(load_probe_config(write_config(root)), root=root)[0]


def test_run_folder_holds_config_prompts_records_summary_figures(finished_run):
    run = finished_run
    assert run.status == "complete"
    doc = run.config_doc()
    assert doc["config"]["seed"] == 7
    assert doc["environment"]["versions"]["torch"]
    assert doc["models"]["smollm2-135m"]["sha256"]
    prompts = [json.loads(line) for line in (run.path / "prompts.jsonl").read_text().splitlines()]
    records = run.read_records()
    assert len(prompts) == len(records) == 6
    summary = json.loads((run.path / "summary.json").read_text())
    letters = summary["models"]["smollm2-135m"]["letters"]
    assert letters["tasks"]["first_letter"]["share"] == pytest.approx(0.75)
    assert 0.0 <= letters["other_mean"] <= 1.0
    for name in ("distributions", "means"):
        assert (run.path / "figures" / f"{name}.png").stat().st_size > 10_000
    assert "| first_letter | 0.750 |" in (run.path / "summary.md").read_text()


def test_records_match_the_prompts(finished_run):
    prompts = {(p["mixture"], p["index"]): p for p in
               map(json.loads, (finished_run.path / "prompts.jsonl").read_text().splitlines())}
    for r in finished_run.read_records():
        p = prompts[(r["mixture"], r["index"])]
        assert r["answers"] == p["answers"]
        assert all(lp < 0 for lp in r["logprobs"])


def test_resume_after_interruption_repeats_and_loses_nothing(finished_run, tmp_path):
    copy = tmp_path / "interrupted"
    shutil.copytree(finished_run.path, copy)
    lines = (copy / "records.jsonl").read_text().splitlines()
    # killed while writing record 3: two complete records and half a line
    (copy / "records.jsonl").write_text("\n".join(lines[:2]) + "\n" + lines[2][: len(lines[2]) // 2])
    (copy / "summary.json").unlink()
    RunFolder(copy)._set_status("running")

    resumed, _ = run_probe(None, resume=copy)
    assert resumed.status == "complete"
    key = lambda r: (r["model"], r["mixture"], r["index"])  # noqa: E731
    before = sorted(finished_run.read_records(), key=key)
    after = sorted(resumed.read_records(), key=key)
    assert [key(r) for r in after] == [key(r) for r in before]  # none lost, none repeated
    for a, b in zip(after, before):
        assert a["logprobs"] == pytest.approx(b["logprobs"], abs=1e-6)


def test_resume_writes_the_prompts_a_kill_left_unwritten(finished_run, tmp_path):
    """Killed after config.yaml but before prompts.jsonl: resuming writes the same prompts."""
    copy = tmp_path / "killed-early"
    shutil.copytree(finished_run.path, copy)
    for name in ("prompts.jsonl", "records.jsonl", "summary.json"):
        (copy / name).unlink()
    RunFolder(copy)._set_status("running")

    resumed, _ = run_probe(None, resume=copy)
    assert (resumed.path / "prompts.jsonl").read_bytes() == (finished_run.path / "prompts.jsonl").read_bytes()


def test_same_seed_same_prompts(tmp_path):
    a = load_probe_config(write_config(tmp_path))
    from superpose.experiments.probe import make_prompts

    assert make_prompts(a) == make_prompts(a.model_copy())


def _cli(capsys, *args):
    code = main(list(args))
    return code, capsys.readouterr().err


@pytest.mark.parametrize("changes, message", [
    ({"mixtures": [{"name": "x", "tasks": ["copy_op1", "copy_op9"]}]}, r"mixtures\.0\.tasks: unknown task 'copy_op9'"),
    ({"mixtures": [{"name": "x", "tasks": ["copy_op1", "copy_op2"], "weights": [0.7, 0.7]}]},
     r"mixtures\.0: weights must sum to 1"),
    ({"mixtures": [{"name": "x", "tasks": ["copy_op1", "copy_op2"], "weights": [1.2, -0.2]}]},
     r"weights must be non-negative"),
    ({"mixtures": [{"name": "x", "tasks": ["capital", "continent"], "n_examples": 500}]},
     r"n_examples=500 needs 501 distinct inputs"),
    ({"dtype": "int8"}, r"dtype: Input should be 'float32', 'bfloat16' or 'float16'"),
    ({"n_prompt": 3}, r"n_prompt: unknown field"),
    ({"models": ["no-such-model"]}, r"unknown model 'no-such-model'"),
])
def test_bad_configs_fail_clearly_and_write_nothing(tmp_path, capsys, changes, message):
    code, err = _cli(capsys, "run", str(write_config(tmp_path, **changes)), "--out", str(tmp_path / "runs"))
    assert code == 2
    assert err.startswith("error: ") and "Traceback" not in err
    assert re.search(message, err), err
    # nothing that looks like a finished run
    assert not list((tmp_path / "runs").glob("*/summary.json")) if (tmp_path / "runs").exists() else True


def test_prompt_longer_than_context_stops_before_scoring(tmp_path, capsys):
    config = write_config(tmp_path, mixtures=[{"name": "long", "tasks": ["copy_op1", "copy_op2"], "n_examples": 1500}])
    code, err = _cli(capsys, "run", str(config), "--out", str(tmp_path / "runs"))
    assert code == 2 and "does not fit in the context of model 'smollm2-135m' (8192 tokens)" in err
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert RunFolder.open(run_dir).status == "failed"  # with the reason, never "running" forever
    assert not (run_dir / "records.jsonl").exists() and not (run_dir / "summary.json").exists()


def test_command_line_exit_code_and_listing():
    bad = subprocess.run([sys.executable, "-m", "superpose.cli", "run", "does/not/exist.yaml"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "config does/not/exist.yaml: no such file" in bad.stderr
    listing = subprocess.run([sys.executable, "-m", "superpose.cli", "tasks"], capture_output=True, text=True,
                             env={"COLUMNS": "200", **__import__("os").environ})
    assert listing.returncode == 0 and "copy_op1" in listing.stdout and "57@23" not in listing.stderr


def test_each_request_is_encoded_once_and_the_probe_warns_once(tmp_path, capsys, monkeypatch):
    """The fit check's encoding is the one scored (not a second tokenization), and the warning about
    prompts beyond the training length comes once, from the probe (backends never print)."""
    from superpose.backends import base
    from superpose.experiments.probe import ProbeConfig

    encoded = []

    def counting(tokenizer, prompt):
        encoded.append(prompt)
        return original(tokenizer, prompt)

    original = base.encode_prompt
    monkeypatch.setattr(base, "encode_prompt", counting)
    config = ProbeConfig(name="long", models=["scratch-plus-cpu"], n_prompts=3, seed=0,  # trained on 84 tokens
                         mixtures=[{"name": "plus", "tasks": ["plus_4", "plus_9"], "n_examples": 30}])
    run_probe(config, root=tmp_path)
    assert len(encoded) == 3 == len(set(encoded))  # one encoding per prompt: checked, then scored
    err = capsys.readouterr().err
    assert err.count("was trained on sequences of at most 84 tokens") == 1
    (folder,) = tmp_path.iterdir()
    assert len((folder / "records.jsonl").read_text().splitlines()) == 3
