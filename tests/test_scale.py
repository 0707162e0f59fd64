"""Top-K solved, calibration and the scaling run: ranking rules, Table 2, configs, an end-to-end run."""

import json
import math

import pytest

from superpose.config import validate
from superpose.enumerate import EnumerateSettings, Enumeration, OutputEnumerator, Output
from superpose.errors import ConfigError
from superpose.experiments.scale import ScaleConfig, copy_figures, load_scale_config, run_scale
from superpose.experiments.topk import (analyse_prompt, answer_probabilities, answer_ranks, summarize_mixture,
                                        table2_rows, topk_is_exact)
from superpose.prompts import MixtureSpec, build_prompt


def fake_enumeration(outputs: dict[str, float]) -> Enumeration:
    outs = [Output(t, p, "terminator", [[i]], [math.log(p)]) for i, (t, p) in enumerate(outputs.items())]
    covered = sum(outputs.values())
    return Enumeration(prompt_tokens=5, outputs=outs, covered_mass=covered, frontier_mass=0.0,
                       pruned_mass=1 - covered, truncated_mass=0.0, n_expansions=1, n_forward_passes=2,
                       stop_reason="exhausted", n_found=len(outs))


def test_answer_ranks_count_strictly_more_probable_strings():
    e = fake_enumeration({"23": 0.5, "72": 0.3, "27": 0.1, "95": 0.05})
    probs = answer_probabilities(e, ["23", "72", "95"], [math.log(0.5), math.log(0.3), math.log(0.04)])
    assert probs == pytest.approx([0.5, 0.3, 0.05])  # the enumerated value sums all paths: larger wins
    ranks, pool = answer_ranks(e, ["23", "72", "95"], probs)
    assert ranks == [0, 1, 3]  # "27" outranks "95": with K = 3 tasks, two are solved
    assert pool == sorted(pool, reverse=True)
    # An answer the search never reached competes with its scored probability.
    ranks, _ = answer_ranks(e, ["23", "99"], [0.5, 0.2])
    assert ranks == [0, 2]


def test_ties_count_in_the_answers_favour_and_exactness_needs_a_gap():
    e = fake_enumeration({"a": 0.4, "b": 0.4, "c": 0.1})
    ranks, pool = answer_ranks(e, ["a", "b"], [0.4, 0.4])
    assert ranks == [0, 0]
    assert topk_is_exact(pool, 2, unexplored=0.1)  # 0.4 >= 0.1 + 0.1 + ...
    assert not topk_is_exact(pool, 2, unexplored=0.35)
    assert not topk_is_exact([0.5], 2, unexplored=0.0)


def _summary(tasks, k, solved, shares=None, n=10):
    shares = shares or [1.0 / k] * k
    recs = [{"K": k, "tasks": tasks, "solved": solved, "n_solved": sum(solved), "shares": shares,
             "logprobs": [math.log(0.2)] * k, "kl": 0.5, "kl_normalized": 0.1, "covered_mass": 0.9,
             "topk_exact": True} for _ in range(n)]
    return summarize_mixture(recs)


def test_table2_pairs_single_task_top1_with_uniform_mixed_topk():
    mixtures = {
        "mix": _summary(["a", "b"], 2, [True, False]),
        "mix skewed": _summary(["a", "b"], 2, [False, False], shares=[0.8, 0.2]),
        "a alone": _summary(["a"], 1, [True]),
        "b alone": _summary(["b"], 1, [False]),
    }
    assert mixtures["mix"]["uniform"] and not mixtures["mix skewed"]["uniform"]
    rows = {r["task"]: r for r in table2_rows(mixtures)}
    assert rows["a"]["single_top1"] == 1.0 and rows["a"]["mixed_topk"] == 1.0  # uniform mixture only
    assert rows["b"]["single_top1"] == 0.0 and rows["b"]["mixed_topk"] == 0.0
    assert rows["a"]["mixed_K"] == [2] and rows["a"]["mixed_prompts"] == 10


def test_analyse_prompt_on_a_real_model(smollm):
    prompt = build_prompt(MixtureSpec(tasks=["copy_op1", "copy_op2", "op1_plus_op2"], n_examples=12), 0, 0)
    enumerator = OutputEnumerator(smollm, EnumerateSettings(min_prob=1e-3, max_expansions=48, max_outputs=8))
    r = analyse_prompt(enumerator, prompt)
    assert r["K"] == 3 and len(r["ranks"]) == 3 and r["n_solved"] == sum(r["solved"])
    assert all(s == (rank < 3) for s, rank in zip(r["solved"], r["ranks"]))
    assert r["kl"] >= r["kl_normalized"] - 1e-9 >= -1e-9  # the raw KL also charges the other mass
    top = [t for t, _ in r["top_outputs"]]
    for answer, rank in zip(prompt.answers, r["ranks"]):
        if answer in top:
            assert rank <= top.index(answer)
    json.dumps(r)  # a record must be JSON


def test_config_errors_name_the_field(tmp_path):
    base = {"models": ["smollm2-135m"], "mixtures": [{"name": "m", "tasks": ["copy_op1", "copy_op2"]}]}
    validate(ScaleConfig, base, "c.yaml")
    with pytest.raises(ConfigError, match="max_outputs"):
        validate(ScaleConfig, {**base, "enumerate": {"max_outputs": 2}}, "c.yaml")
    with pytest.raises(ConfigError, match="mixtures.0.tasks"):
        validate(ScaleConfig, {**base, "mixtures": [{"name": "m", "tasks": ["copy_op1", "capital"]}]}, "c.yaml")
    with pytest.raises(ConfigError, match="needs models"):
        validate(ScaleConfig, {"mixtures": base["mixtures"]}, "c.yaml")
    path = tmp_path / "bad.yaml"
    path.write_text("mixtures: [{name: m, tasks: [plus_1, plus_2]}]\n"
                    "scratch: {train: {tasks: [plus_1], steps: 2, warmup_steps: 0, decay_steps: 0},\n"
                    "          sizes: [{d_model: 30, n_heads: 4}]}\n")
    with pytest.raises(ConfigError, match=r"scratch.sizes\[0\].*d_model=30"):
        load_scale_config(path)


@pytest.mark.parametrize("config_file", ["embedded.yaml", "scratch.yaml", "qwen15.yaml", "demo.yaml"])
def test_shipped_configs_validate(config_file):
    from pathlib import Path

    cfg = load_scale_config(Path(__file__).resolve().parents[1] / "configs" / "scale" / config_file)
    assert cfg.all_mixtures()


def test_scratch_family_end_to_end_with_resume_and_a_skipped_model(tmp_path):
    """Train two tiny sizes, measure them, skip an optional model that is missing, then resume."""
    mix = {"tasks": ["plus_1", "plus_3"], "n_examples": 6}
    cfg = validate(ScaleConfig, {
        "name": "t", "n_prompts": 3, "threads": 1, "figure_name": "t",
        "models": [{"name": "no-such/model-x", "optional": True, "label": "missing"}],
        "mixtures": [{"name": "even", **mix}, {"name": "skewed", "weights": [0.8, 0.2], **mix}],
        "enumerate": {"min_prob": 1e-3, "max_tokens": 3, "max_outputs": 5},
        "scratch": {
            "name": "tiny", "out_dir": str(tmp_path / "family"),
            "train": {"tasks": ["plus_1", "plus_3"], "n_examples": 6, "steps": 2, "batch_size": 4,
                      "warmup_steps": 1, "decay_steps": 1, "threads": 1,
                      "model": {"n_layers": 1, "max_position_embeddings": 64}},
            "sizes": [{"d_model": 16, "n_heads": 2, "d_mlp": 32}, {"d_model": 32, "n_heads": 2, "d_mlp": 64}],
        },
    }, "test")
    run, summary = run_scale(cfg, root=tmp_path / "runs", progress=False)
    copy_figures(run, tmp_path / "figs")
    assert list(summary["models"]) == ["tiny w16", "tiny w32"]  # ordered by size
    assert summary["models"]["tiny w16"]["n_parameters"] < summary["models"]["tiny w32"]["n_parameters"]
    assert "missing" in summary["skipped"]
    records = run.read_records()
    assert len(records) == 2 * 3 * 4  # models x prompts x (2 mixed + 2 single-task mixtures)
    assert {r["mixture"] for r in records} == {"even", "skewed", "plus_1 alone", "plus_3 alone"}
    for m in summary["models"].values():
        assert 0.0 <= m["fraction_solved"] <= 1.0 and m["kl"] >= 0 and m["single_top1"] is not None
        assert [r["task"] for r in m["table2"]] == ["plus_1", "plus_3"]
        assert m["kl_lo"] <= m["kl"] <= m["kl_hi"] and m["ci_level"] == 0.95  # the curves' bands (issue #30)
        assert m["fraction_solved_lo"] <= m["fraction_solved"] <= m["fraction_solved_hi"]
    assert (tmp_path / "figs" / "scale_t.png").stat().st_size > 0
    assert (tmp_path / "figs" / "scale_t_reliability.png").stat().st_size > 0
    assert "Table 2" in (run.path / "summary.md").read_text()

    again, summary2 = run_scale(None, resume=run.path, progress=False)  # nothing left: same numbers
    assert len(again.read_records()) == len(records)
    assert summary2["models"] == json.loads(json.dumps(summary["models"]))
