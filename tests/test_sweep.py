"""λ sweep on the shipped scratch checkpoint: the study's finding, resumability, config errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from superpose.errors import ConfigError
from superpose.experiments.sweep import (STUDY_CURVES, SweepConfig, load_sweep_config, per_prompt_split,
                                         run_sweep)
from superpose.backends import load_backend
from superpose.models import EMBEDDED_MODELS

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def scratch_lm():
    return load_backend("scratch-plus-cpu")


def test_shipped_checkpoint_is_an_embedded_model(scratch_lm):
    entry = EMBEDDED_MODELS["scratch-plus-cpu"]
    assert entry.installed() and (entry.locate() / "model.safetensors").is_file()
    assert scratch_lm.info["architecture"] == "LlamaForCausalLM"
    assert scratch_lm.info["max_context"] >= 84
    size = sum(p.stat().st_size for p in entry.locate().iterdir())
    assert size < 10 * 2**20  # a few MB in the repo


def _sweep(tmp_path, lm, task1, task2, counts="exact", n_prompts=40):
    cfg = SweepConfig(model="scratch-plus-cpu", task1=task1, task2=task2, n_examples=20,
                      n_prompts=n_prompts, counts=counts, seed=1, reference="plus",
                      out_root=str(tmp_path))
    return run_sweep(cfg, progress=False, backend=lm)


@pytest.mark.parametrize("task1, task2, counts", [("plus_2", "plus_3", "exact"), ("plus_7", "plus_2", "exact"),
                                                   ("plus_4", "plus_1", "iid")])
def test_shipped_checkpoint_splits_probability_with_the_mix(tmp_path, scratch_lm, task1, task2, counts):
    """The issue's must-show: trained on one plus_k per sequence, it splits its probability with
    the mix -- P1 rises with λ (Spearman >= 0.95), both >= 0.2 at λ = 0.5, leftover <= 0.1."""
    run, s = _sweep(tmp_path, scratch_lm, task1, task2, counts)
    p1 = [c["p1"] for c in s["curve"]]
    assert [c["lambda"] for c in s["curve"]] == [i / 10 for i in range(11)]
    assert s["spearman_p1_vs_lambda"] >= 0.95 and s["monotone_p1"]
    assert s["at_half"]["p1"] >= 0.2 and s["at_half"]["p2"] >= 0.2
    assert s["mean_other"] <= 0.1
    assert p1[0] < 0.05 and s["curve"][-1]["p2"] < 0.05  # only the other task in context: no mass
    assert (run.path / "figures" / "sweep.png").stat().st_size > 10_000
    assert len(run.read_records()) == 11 * 40


def test_sweep_resumes_without_redoing_records(tmp_path, scratch_lm):
    cfg = SweepConfig(model="scratch-plus-cpu", task1="plus_3", task2="plus_8", n_examples=20,
                      n_prompts=3, lambdas=[0.0, 0.5, 1.0], out_root=str(tmp_path))
    run, full = run_sweep(cfg, progress=False, backend=scratch_lm)
    records = run.read_records()
    # simulate a kill: keep 4 records and a half-written fifth line
    (run.path / "records.jsonl").write_text(
        "".join(__import__("json").dumps(r) + "\n" for r in records[:4]) + '{"lambda": 0.5, "ind')
    _, again = run_sweep(cfg, resume=run.path, progress=False, backend=scratch_lm)
    assert again["curve"] == full["curve"]
    keys = [(r["lambda"], r["index"]) for r in run.read_records()]
    assert len(keys) == len(set(keys)) == 9


def test_prompts_share_inputs_across_lambda():
    cfg = SweepConfig(model="scratch-plus-cpu", task1="plus_3", task2="plus_8", n_examples=20)
    from superpose.prompts import build_prompt

    a, b = build_prompt(cfg.spec(0.2), 0, 5), build_prompt(cfg.spec(0.7), 0, 5)
    assert a.example_inputs == b.example_inputs and a.query_input == b.query_input
    assert a.counts == [4, 16] and b.counts == [14, 6]


def test_sweep_config_errors_name_the_field(tmp_path):
    def load(text: str):
        p = tmp_path / "s.yaml"
        p.write_text(text)
        return load_sweep_config(p)

    base = "model: scratch-plus-cpu\ntask1: plus_1\ntask2: plus_2\n"
    with pytest.raises(ConfigError, match=r"counts.*'exact' or 'iid'"):
        load(base + "counts: sometimes\n")
    with pytest.raises(ConfigError, match=r"lambdas.*\[0, 1\]"):
        load(base + "lambdas: [0.0, 1.5]\n")
    with pytest.raises(ConfigError, match=r"n_prompts"):
        load(base + "n_prompts: 0\n")
    with pytest.raises(ConfigError, match=r"cannot be mixed"):
        load("model: m\ntask1: plus_1\ntask2: ret_1\n")
    with pytest.raises(ConfigError, match=r"unknown task 'plus_11'"):
        load("model: m\ntask1: plus_1\ntask2: plus_11\n")


def test_shipped_sweep_configs_validate():
    names = {p.stem for p in (ROOT / "configs/sweep").glob("*.yaml")}
    assert {"plus_scratch", "gemma_copy"} <= names
    for p in (ROOT / "configs/sweep").glob("*.yaml"):
        load_sweep_config(p)
    gemma = load_sweep_config(ROOT / "configs/sweep/gemma_copy.yaml")
    assert (gemma.model, gemma.task1, gemma.task2) == ("gemma-3-270m", "copy_op1", "copy_op2")
    assert len(STUDY_CURVES["plus"]) == len(STUDY_CURVES["ret"]) == 11


def test_per_prompt_split_tells_superposition_from_recency():
    """Two models with the same mean curve: one splits every prompt, one follows the last example."""
    lasts = [1, 2, 1, 2]  # task of each prompt's last example, at λ = 0.5
    even = [{"lambda": 0.5, "p1": 0.5, "p2": 0.5, "last_example_task": t} for t in lasts]
    recency = [{"lambda": 0.5, "p1": float(t == 1), "p2": float(t == 2), "last_example_task": t}
               for t in lasts]
    pure = [{"lambda": 0.0, "p1": 0.0, "p2": 1.0, "last_example_task": 2}]  # λ = 0 is not mixed
    s_even, s_rec = per_prompt_split(even + pure), per_prompt_split(recency + pure)
    assert s_even["split_within_prompt"] == 1.0 and s_even["prompts_splitting_10pct"] == 1.0
    assert s_rec["split_within_prompt"] == 0.0 and s_rec["prompts_splitting_10pct"] == 0.0
    assert s_rec["follows_last_example"] == 1.0 and s_even["follows_last_example"] == 0.5


def test_sweep_resume_from_the_command_line_needs_only_the_folder(tmp_path, scratch_lm, capsys):
    from superpose.cli import main

    cfg = SweepConfig(model="scratch-plus-cpu", task1="plus_3", task2="plus_8", n_examples=20,
                      n_prompts=2, lambdas=[0.0, 1.0], out_root=str(tmp_path / "runs"))
    run, _ = run_sweep(cfg, progress=False, backend=scratch_lm)
    lines = (run.path / "records.jsonl").read_text().splitlines()
    (run.path / "records.jsonl").write_text(lines[0] + "\n")
    assert main(["sweep", "--resume", str(run.path), "--no-progress"]) == 0  # no config, no --out-root
    assert len(run.read_records()) == 4
    assert main(["sweep", "--resume", str(run.path), "--n-prompts", "5"]) == 2
    assert "change n_prompts" in capsys.readouterr().err
