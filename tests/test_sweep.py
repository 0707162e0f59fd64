"""λ sweep on the shipped scratch checkpoint: the study's finding, resumability, config errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from superpose.errors import ConfigError, SuperposeError
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
                      n_prompts=n_prompts, counts=counts, seed=1, reference="plus")
    return run_sweep(cfg, root=tmp_path, progress=False, backend=lm)


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
                      n_prompts=3, lambdas=[0.0, 0.5, 1.0])
    run, full = run_sweep(cfg, root=tmp_path, progress=False, backend=scratch_lm)
    records = run.read_records()
    # simulate a kill: keep 4 records and a half-written fifth line
    (run.path / "records.jsonl").write_text(
        "".join(__import__("json").dumps(r) + "\n" for r in records[:4]) + '{"lambda": 0.5, "ind')
    _, again = run_sweep(cfg, root=tmp_path, resume=run.path, progress=False, backend=scratch_lm)
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


def test_task_files_work_in_sweep_and_scale_configs(tmp_path):
    """Every experiment config shares the header (experiments/base.py), task_files included."""
    from superpose.experiments.scale import load_scale_config

    (tmp_path / "shout.csv").write_text("input,shout,whisper\n" + "".join(f"{w},{w.upper()},{w.lower()}.\n"
                                                                           for w in ("ab", "cd", "ef", "gh", "ij")))
    (tmp_path / "s.yaml").write_text("model: m\ntask1: shout\ntask2: whisper\nn_examples: 3\ntask_files: [shout.csv]\n")
    assert load_sweep_config(tmp_path / "s.yaml").task_files == [str(tmp_path / "shout.csv")]
    (tmp_path / "scale.yaml").write_text("models: [m]\ntask_files: [shout.csv]\nenumerate: {max_outputs: 3}\n"
                                         "mixtures: [{name: x, tasks: [shout, whisper], n_examples: 3}]\n")
    assert load_scale_config(tmp_path / "scale.yaml").mixtures[0].tasks == ["shout", "whisper"]


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


def test_a_flat_curve_is_flagged_whatever_its_spearman():
    """A model that ignores the mix gives one P1 at every λ up to noise; ranking that noise can give
    Spearman 1.0. The summary says the curve is flat instead of letting the number stand alone."""
    from superpose.experiments.sweep import spearman_caveat, summarize_sweep, sweep_markdown

    cfg = SweepConfig(model="scratch-plus-cpu", task1="plus_2", task2="plus_7", n_examples=4, n_prompts=1)
    def records(p1):
        return [{"lambda": lam, "p1": p1(lam), "p2": 1 - p1(lam), "other": 0.0} for lam in cfg.lambdas]
    flat = summarize_sweep(records(lambda lam: 0.5 + 1e-5 * lam), cfg)
    assert flat["spearman_p1_vs_lambda"] == pytest.approx(1.0) and flat["p1_range"] < 1e-4
    assert "flat" in spearman_caveat(flat) and "< 0.001" in spearman_caveat(flat)
    assert spearman_caveat(flat) in sweep_markdown(flat)  # summary.md says it: the command and the report show it
    follows = summarize_sweep(records(lambda lam: lam), cfg)
    assert follows["p1_range"] == pytest.approx(1.0) and spearman_caveat(follows) == ""


def test_sweep_resume_from_the_command_line_needs_only_the_folder(tmp_path, scratch_lm, capsys):
    from superpose.cli import main

    cfg = SweepConfig(model="scratch-plus-cpu", task1="plus_3", task2="plus_8", n_examples=20,
                      n_prompts=2, lambdas=[0.0, 1.0])
    run, _ = run_sweep(cfg, root=tmp_path / "runs", progress=False, backend=scratch_lm)
    lines = (run.path / "records.jsonl").read_text().splitlines()
    (run.path / "records.jsonl").write_text(lines[0] + "\n")
    assert main(["sweep", "--resume", str(run.path), "--no-progress"]) == 0  # no config, no --out-root
    assert len(run.read_records()) == 4
    out = capsys.readouterr().out  # the folder's summary.md, then the folder
    assert (run.path / "summary.md").read_text() in out and "Spearman(P1, λ)" in out
    assert out.splitlines()[-1] == f"run folder: {run.path}"
    assert main(["sweep", "--resume", str(run.path), "--n-prompts", "5"]) == 2
    assert "n_prompts (2 -> 5) differs from the run's" in capsys.readouterr().err


# --- the training-length guard and position control (issue #12) -----------------------------------

def test_guard_fires_on_a_prompt_longer_than_training(tmp_path, scratch_lm, capsys):
    """The shipped checkpoint saw 84-token sequences (20 examples): 30 examples warn once, and the
    summary says so; 20 examples do not."""
    assert scratch_lm.trained_length == 84
    cfg = SweepConfig(model="scratch-plus-cpu", task1="plus_4", task2="plus_9", n_examples=30,
                      n_prompts=2, lambdas=[0.0, 0.5])
    _, s = run_sweep(cfg, root=tmp_path, progress=False, backend=scratch_lm)
    err = capsys.readouterr().err
    assert err.count("was trained on sequences of at most 84 tokens") == 1  # once, not per prompt
    assert s["beyond_trained_length"] == 1.0 and s["trained_length"] == 84
    assert s["longest_prompt"] > 84 and "extrapolation" in s["warnings"][0]
    ok = cfg.model_copy(update={"n_examples": 20})
    _, s = run_sweep(ok, root=tmp_path, progress=False, backend=scratch_lm)
    assert s["beyond_trained_length"] == 0.0 and "warnings" not in s


def _rule_records(cfg: SweepConfig, rule) -> list[dict]:
    """Records a rule would write: its P(task 1) from the prompt's example tasks alone."""
    from superpose.prompts import build_prompt

    out = []
    for m in cfg.fixed_last:
        for lam in cfg.lambdas:
            for i in range(cfg.n_prompts):
                tasks = "".join(str(t + 1) for t in build_prompt(cfg.spec(lam, m), cfg.seed, i).example_tasks)
                p1 = rule(tasks)
                out.append({"lambda": lam, "index": i, "fixed_last": m, "p1": p1, "p2": 1 - p1,
                            "example_tasks": tasks})
    return out


def test_position_control_tells_recency_from_aggregation():
    """Fed two reference rules: answering with the last example's task gives flat lines once the last
    m examples are fixed; answering in proportion to the counts (the construction) rises with λ."""
    from superpose.experiments.sweep import position_control

    cfg = SweepConfig(model="scratch-plus-cpu", task1="plus_2", task2="plus_7", n_examples=20,
                      n_prompts=10, fixed_last=[0, 1, 2, 4])
    last = position_control(_rule_records(cfg, lambda t: float(t[-1] == "1")))
    counts = position_control(_rule_records(cfg, lambda t: t.count("1") / len(t)))
    for rec, cnt in zip(last["by_fixed_last"][1:], counts["by_fixed_last"][1:]):
        m = rec["fixed_last"]
        assert rec["slope"] == 0.0 and rec["rise"] == 0.0  # flat at 0: the last m are task 2
        assert all(c["p1"] == 0.0 for c in rec["curve"])
        assert abs(cnt["slope"] - (20 - m) / 20) < 0.03 and cnt["rise"] > 0.75  # counts are rounded
    # plain sweep: both rules follow λ on average, the difference is inside prompts
    assert last["by_fixed_last"][0]["slope"] > 0.7 and counts["by_fixed_last"][0]["slope"] > 0.95
    near_last = {b["distance"]: b["p1"] for b in last["by_nearest_task1"]}
    assert near_last[1] == 1.0 and all(p == 0.0 for d, p in near_last.items() if d > 1)
    near_counts = {b["distance"]: b["p1"] for b in counts["by_nearest_task1"]}
    assert 0 < near_counts[1] < 1 and near_counts[5] > 0


def test_position_controlled_sweep_runs_and_fixes_the_last_examples(tmp_path, scratch_lm):
    cfg = SweepConfig(model="scratch-plus-cpu", task1="plus_2", task2="plus_7", n_examples=20,
                      n_prompts=4, lambdas=[0.0, 0.5, 1.0], fixed_last=[0, 2])
    run, s = run_sweep(cfg, root=tmp_path, progress=False, backend=scratch_lm)
    records = run.read_records()
    assert len(records) == 2 * 3 * 4
    assert all(r["example_tasks"].endswith("22") for r in records if r["fixed_last"] == 2)
    assert [b["fixed_last"] for b in s["position"]["by_fixed_last"]] == [0, 2]
    assert [c["n"] for c in s["curve"]] == [4, 4, 4]  # the λ curve is the plain sweep's
    fixed = s["position"]["by_fixed_last"][1]
    assert max(c["p1"] for c in fixed["curve"]) < 0.01  # the shipped checkpoint follows recency
    assert (run.path / "figures" / "position.png").stat().st_size > 10_000


def test_position_control_config_errors(tmp_path):
    def load(text: str):
        p = tmp_path / "s.yaml"
        p.write_text("model: scratch-plus-cpu\ntask1: plus_1\ntask2: plus_2\nn_examples: 10\n" + text)
        return load_sweep_config(p)

    with pytest.raises(ConfigError, match=r"fixed_last.*must include 0"):
        load("fixed_last: [1, 2]\n")
    with pytest.raises(ConfigError, match=r"fixed_last.*none of the n_examples=10"):
        load("fixed_last: [0, 10]\n")
    with pytest.raises(ConfigError, match=r"fixed_task"):
        load("fixed_task: 3\n")


def test_sweep_curve_has_intervals_and_seeds_have_a_spread(tmp_path, scratch_lm):
    """Each λ's mean carries its bootstrap interval; two seeds give a spread per λ (issue #30)."""
    import superpose

    runs = []
    for seed in (1, 2):
        cfg = SweepConfig(model="scratch-plus-cpu", task1="plus_3", task2="plus_8", n_examples=20, n_prompts=6,
                          lambdas=[0.0, 0.5, 1.0], seed=seed)
        run, s = run_sweep(cfg, root=tmp_path, progress=False, backend=scratch_lm)
        runs.append((run, s))
        for c in s["curve"]:
            assert c["p1_lo"] <= c["p1"] <= c["p1_hi"] and c["other_lo"] <= c["other"] <= c["other_hi"]
        half = next(c for c in s["curve"] if c["lambda"] == 0.5)
        assert half["p1_hi"] > half["p1_lo"]  # six prompts that differ: a real interval
    spread = superpose.seed_spread([r.path for r, _ in runs])
    row = spread[(spread["where"] == "λ=0.5") & (spread["number"] == "p1")].iloc[0]
    p1s = [next(c["p1"] for c in s["curve"] if c["lambda"] == 0.5) for _, s in runs]
    assert row["n_seeds"] == 2 and row["mean"] == pytest.approx(sum(p1s) / 2)
    assert row["min"] == min(p1s) and row["max"] == max(p1s)
    with pytest.raises(SuperposeError, match="repeat a seed"):
        superpose.seed_spread([runs[0][0].path, runs[0][0].path])
