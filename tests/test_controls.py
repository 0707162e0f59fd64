"""Controls on the real SmolLM2-135M: leave-one-task-out and single-task prompts, the in-context effect,
and summary.json's intervals against a direct scipy.stats.bootstrap call on the records."""

import json

import numpy as np
import pytest
import yaml
from scipy import stats as sps

from superpose.experiments.probe import load_probe_config, run_probe

CONFIG = {
    "name": "controls", "models": ["smollm2-135m"], "seed": 3, "n_prompts": 4, "controls": True,
    "mixtures": [{"name": "copy", "tasks": ["copy_op1", "copy_op2", "op1_plus_op2"], "n_examples": 9}],
}


def _run(root, smollm):
    root.mkdir(parents=True, exist_ok=True)
    (root / "c.yaml").write_text(yaml.safe_dump(CONFIG))
    return run_probe(load_probe_config(root / "c.yaml"), root=root / "runs", backend=smollm)[0]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, smollm):
    root = tmp_path_factory.mktemp("controls")
    return _run(root / "a", smollm), _run(root / "b", smollm)


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_control_prompts_keep_positions_and_query_and_drop_the_left_out_task(two_runs):
    run = two_runs[0]
    mixed = {p["index"]: p for p in _lines(run.path / "prompts.jsonl")}
    controls = _lines(run.path / "controls.jsonl")
    assert len(controls) == 4 * 2 * 3  # 2K controls per prompt
    for c in controls:
        p, k = mixed[c["index"]], c["control_task"]
        assert c["query_input"] == p["query_input"] and c["answers"] == p["answers"]
        assert c["example_inputs"] == p["example_inputs"]  # same inputs at the same positions
        assert c["text"].splitlines()[-1] == p["text"].splitlines()[-1]  # the query line
        if c["control"] == "without":
            assert k not in c["example_tasks"]
            for pos, (before, after) in enumerate(zip(p["example_tasks"], c["example_tasks"])):
                if before != k:  # every other example unchanged, line for line
                    assert after == before
                    assert c["text"].splitlines()[pos] == p["text"].splitlines()[pos]
        else:
            assert set(c["example_tasks"]) == {k}


def test_controls_are_byte_identical_across_runs_and_records_are_scored(two_runs):
    a, b = two_runs
    for name in ("prompts.jsonl", "controls.jsonl", "records.jsonl"):
        assert (a.path / name).read_bytes() == (b.path / name).read_bytes()
    records = a.read_records()
    assert len(records) == 4 * 7
    assert {(r.get("control"), r.get("control_task")) for r in records if "control" in r} == {
        (kind, t) for kind in ("without", "single") for t in CONFIG["mixtures"][0]["tasks"]}
    assert (a.path / "summary.json").read_bytes() == (b.path / "summary.json").read_bytes()


def test_summary_has_effects_and_intervals_equal_to_a_direct_bootstrap(two_runs):
    run = two_runs[0]
    s = json.loads((run.path / "summary.json").read_text())["models"]["smollm2-135m"]["copy"]
    records = sorted((r for r in run.read_records() if "control" not in r), key=lambda r: r["index"])
    p = np.exp(np.array([r["logprobs"] for r in records]))  # [N, K]
    for k, task in enumerate(CONFIG["mixtures"][0]["tasks"]):
        v = s["tasks"][task]
        direct = sps.bootstrap((p[:, k],), np.mean, n_resamples=9999, method="BCa",
                               rng=np.random.default_rng(99)).confidence_interval
        width = direct.high - direct.low
        assert v["mean_lo"] == pytest.approx(direct.low, abs=0.05 * width + 1e-9)
        assert v["mean_hi"] == pytest.approx(direct.high, abs=0.05 * width + 1e-9)
        c = s["controls"][task]
        without = sorted((r for r in run.read_records() if r.get("control") == "without" and r["control_task"] == task),
                         key=lambda r: r["index"])
        effect = (p[:, k] - np.exp([r["logprobs"][k] for r in without])).mean()
        assert c["effect"] == pytest.approx(effect)
        assert c["effect_lo"] <= c["effect"] <= c["effect_hi"]
        assert c["superposed"] == (c["effect_lo"] > 0)
    md = (run.path / "summary.md").read_text()
    assert "in-context effect [CI]" in md and "no controls run" not in md.lower()
    assert (run.path / "figures" / "controls.png").stat().st_size > 10_000


def test_dataframes_carry_the_same_intervals_and_effects(two_runs):
    import superpose

    run = two_runs[0]
    s = json.loads((run.path / "summary.json").read_text())["models"]["smollm2-135m"]["copy"]
    res = superpose.load_run(run.path)
    table = res.summary().set_index("task")
    for task, v in s["tasks"].items():
        for key in ("mean", "mean_lo", "mean_hi", "top1_rate_lo", "mean_normalized_hi"):
            assert table.loc[task, key] == pytest.approx(v[key])
        for key in ("effect", "effect_lo", "effect_hi", "ratio_to_single", "superposed"):
            assert table.loc[task, key] == pytest.approx(s["controls"][task][key])
        assert table.loc[task, "kl_lo"] == pytest.approx(s["kl_lo"])
    records = res.records()
    assert set(records["control"]) == {"", "without", "single"}
    assert len(records[records["control"] == ""]) == 4 * 3


def test_two_models_on_the_same_prompts_are_compared_pairwise(tmp_path, smollm):
    """The same model under two labels: every per-prompt difference is 0, so the paired interval is [0, 0]
    and the sign test sees no prompt either way (a comparison that misaligned prompts would not)."""
    config = {**CONFIG, "controls": False, "n_prompts": 3,
              "models": [{"name": "smollm2-135m", "label": "a"}, {"name": "smollm2-135m", "label": "b"}]}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    run, _ = run_probe(load_probe_config(tmp_path / "c.yaml"), root=tmp_path / "runs", backend=smollm)
    comparisons = json.loads((run.path / "summary.json").read_text())["comparisons"]
    assert [(c["model_a"], c["model_b"], c["task"]) for c in comparisons] == [
        ("a", "b", t) for t in CONFIG["mixtures"][0]["tasks"]]
    for c in comparisons:
        assert c["difference"] == 0.0 and (c["difference_lo"], c["difference_hi"]) == (0.0, 0.0)
        assert (c["n_above"], c["n_below"], c["p_value"]) == (0, 0, 1.0)
    md = (run.path / "summary.md").read_text()
    assert "Models compared on the same prompts" in md and "No controls run" in md
