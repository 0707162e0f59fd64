"""The hand-built superposition transformer: shares, noise, layer jobs, dimension, errors, CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from superpose.cli import build_parser
from superpose.construction import score_prompts
from superpose.experiments.construct import TOLERANCE, load_config, mixture_plan
from superpose.construction.prompts import SymbolPrompt, check_prompt, sample_prompt
from superpose.construction.tasks import default_tasks, parse_tasks
from superpose.construction.weights import (
    ConstructionSpec,
    build_transformer,
    chord_error,
    chord_ratio,
    dimension_formula,
)
from superpose.errors import ConfigError, SuperposeError

REPO = Path(__file__).resolve().parents[1]
TASK_SETS = {
    2: "plus_1,plus_3",
    3: "plus_1,times_3,mirror",
    4: "plus_1,plus_4,mirror,times_7",
}


def _built(names: str, m: int, vocab: int = 10):
    tasks = parse_tasks(names, vocab)
    spec = ConstructionSpec(tasks, vocab, m)
    return tasks, spec, build_transformer(spec)


@pytest.mark.parametrize("k", [2, 3, 4])
def test_probability_of_each_answer_equals_its_share(k: int) -> None:
    m = 12
    tasks, spec, model = _built(TASK_SETS[k], m)
    rng = np.random.default_rng(100 + k)
    plan = mixture_plan(k, m, 16, rng)  # each task alone, an even split, random mixtures
    prompts = [sample_prompt(tasks, counts, 0, 10, rng) for counts in plan]
    for prompt, counts in zip(prompts, plan):
        assert prompt.counts(k) == counts  # exact per-task counts
    records = score_prompts(model, spec, prompts)
    worst = max(r["max_abs_error"] for r in records)
    assert worst < TOLERANCE
    assert worst <= spec.error_bound()
    for r in records:
        assert sum(r["probs"]) == pytest.approx(1.0, abs=1e-4)  # nothing left for wrong tokens


def test_noise_examples_are_left_out_of_the_shares() -> None:
    tasks, spec, model = _built(TASK_SETS[3], 16)
    rng = np.random.default_rng(7)
    prompts = [sample_prompt(tasks, [6, 3, 1], 6, 10, rng) for _ in range(6)]
    for prompt in prompts:
        assert sum(1 for lab in prompt.labels if lab < 0) == 6
        for (x, y), lab in zip(prompt.examples, prompt.labels):
            if lab < 0:
                assert all(t(x) != y for t in tasks)
    records = score_prompts(model, spec, prompts)
    for r in records:
        # Shares over the 10 task-consistent examples, not over all 16.
        assert r["probs"] == pytest.approx([0.6, 0.3, 0.1], abs=TOLERANCE)
        assert r["max_abs_error"] < TOLERANCE


def test_all_noise_prompt_gives_uniform_symbols() -> None:
    tasks, spec, model = _built(TASK_SETS[2], 5)
    prompt = sample_prompt(tasks, [0, 0], 5, 10, np.random.default_rng(3))
    probs = model.next_token_probs(torch.tensor([prompt.tokens(10)]))[0]
    assert probs[:10].numpy() == pytest.approx(np.full(10, 0.1), abs=1e-9)
    assert float(probs[10:].sum()) < 1e-9  # BOS and SEP are never predicted


def test_each_layer_writes_what_its_docstring_says() -> None:
    tasks, spec, model = _built(TASK_SETS[3], 8)
    lay = spec.layout
    prompt = SymbolPrompt(examples=((2, 3), (6, 7), (1, 2), (5, 4), (0, 5), (6, 8)),
                    labels=(0, 0, 0, 2, -1, 1), query=3)
    check_prompt(prompt, tasks, 10)
    tokens = torch.tensor([prompt.tokens(10)])
    x1 = model.residual(tokens, upto=1)[0]  # [seq, d_model]
    is_y = x1[:, lay["is_y"]].squeeze(-1).round().tolist()
    is_x = x1[:, lay["is_x"]].squeeze(-1).round().tolist()
    seq = tokens.shape[1]
    assert is_y == [1.0 if t % 3 == 2 and t < seq - 1 else 0.0 for t in range(seq)]
    assert is_x == [1.0 if t % 3 == 1 else 0.0 for t in range(seq)]
    x3 = model.residual(tokens, upto=3)[0]
    cls = x3[2::3, lay["cls"]][: len(prompt.examples)]  # answer positions
    expected = torch.zeros(len(prompt.examples), 3, dtype=torch.float64)
    for i, lab in enumerate(prompt.labels):
        if lab >= 0:
            expected[i, lab] = 1.0
    assert torch.allclose(cls, expected, atol=1e-12)
    x4 = model.residual(tokens, upto=4)[0]
    assert x4[-1, lay["share"]].tolist() == pytest.approx([3 / 5, 1 / 5, 1 / 5], abs=1e-12)
    x6 = model.residual(tokens, upto=6)[0]
    mix = x6[-1, lay["mix"]]
    target = torch.zeros(10, dtype=torch.float64)
    for t, s in zip(tasks, [3 / 5, 1 / 5, 1 / 5]):
        target[t(3)] += s
    assert torch.allclose(mix, target, atol=1e-12)


def test_layer_count_heads_and_dimension_formula() -> None:
    for vocab, names in [(10, TASK_SETS[2]), (10, TASK_SETS[4]), (16, "plus_1,plus_2,plus_3")]:
        tasks = parse_tasks(names, vocab)
        k = len(tasks)
        widths = []
        for m in [1, 2, 5, 16, 100, 1000, 10**5]:
            spec = ConstructionSpec(tasks, vocab, m)
            model = build_transformer(spec)
            assert len(model.blocks) <= 7
            assert max(b.attn.n_heads for b in model.blocks if b.attn is not None) <= k
            assert model.d_model == spec.layout.d_model == dimension_formula(vocab, k, m)
            n_freq = math.ceil(math.log2(3 * m + 2))
            assert model.d_model == (2 * k + 3) * vocab + 2 * n_freq + 2 * k + 6
            # The constant of O(d + log mn): d_model <= (3K + 8)(d + log2(m n)).
            assert model.d_model <= (3 * k + 8) * (vocab + math.log2(3 * m))
            widths.append(model.d_model)
        assert widths == sorted(widths)
        assert widths[-1] - widths[0] <= 2 * math.ceil(math.log2(3 * 10**5 + 2))


def test_piecewise_log_tolerance() -> None:
    r = chord_ratio(1e-5)
    assert chord_error(r) <= 1e-5 < chord_error(r * 1.001)
    spec = ConstructionSpec(default_tasks(2, 10), 10, 50)
    assert spec.error_bound() < 2e-5


@pytest.mark.parametrize("call, match", [
    (lambda: parse_tasks("plus_1,reverse", 10), "unknown task 'reverse'"),
    (lambda: parse_tasks("plus_12", 10), "0 <= k < vocab"),
    (lambda: parse_tasks(",".join(f"plus_{k}" for k in range(10)) + ",mirror", 10), "at most vocab"),
    (lambda: parse_tasks("times_1,plus_0", 10), "same map"),
    (lambda: parse_tasks("const_0,plus_0,mirror", 3), "no input symbol"),
    (lambda: parse_tasks("plus_1", 1), "vocab must be at least 2"),
    (lambda: default_tasks(10, 10), "1 <= k < vocab"),
    (lambda: ConstructionSpec(default_tasks(2, 10), 10, 0), "examples"),
    (lambda: load_config({"examples": 0}), "examples"),
    (lambda: load_config({"examples": 8, "noise": 8}), "noise"),
    (lambda: load_config({"tasks": ["plus_1"], "k": 2}).resolve_tasks(), "k=2"),
    (lambda: load_config({"vocab": 10, "bogus": 1}), "bogus"),
    (lambda: sample_prompt(parse_tasks("plus_0,plus_1,plus_2", 3), [1, 1, 1], 1, 3,
                          np.random.default_rng(0)), "noise"),
])
def test_unsupported_configurations_raise(call, match: str) -> None:
    with pytest.raises(SuperposeError, match=match):
        call()


def test_unsupported_prompts_raise() -> None:
    tasks, spec, model = _built("plus_1,times_2", 4)
    # 1 -> 2 fits both plus_1 and times_2.
    with pytest.raises(SuperposeError, match="fits several tasks"):
        check_prompt(SymbolPrompt(((1, 2),), (0,), 3), tasks, 10)
    # Query 1: both tasks answer 2.
    with pytest.raises(SuperposeError, match="query 1"):
        check_prompt(SymbolPrompt(((3, 4),), (0,), 1), tasks, 10)
    long = SymbolPrompt(tuple((3, 4) for _ in range(5)), (0,) * 5, 3)
    with pytest.raises(SuperposeError, match="at most m=4"):
        score_prompts(model, spec, [long])
    assert issubclass(ConfigError, SuperposeError)


def test_cli_writes_run_folder(tmp_path: Path, capsys) -> None:
    argv = ["construct", "--tasks", "plus_1,plus_3,mirror", "--examples", "10", "--noise", "2",
            "--prompts", "12", "--seed", "1", "--dims", "1,4,16", "--out", str(tmp_path)]
    args = build_parser(argv).parse_args(argv)
    assert args.func(args) == 0
    (folder,) = list(tmp_path.iterdir())
    summary = json.loads((folder / "summary.json").read_text())
    assert json.loads((folder / "status.json").read_text())["status"] == "complete"
    assert summary["layers"] == 7 and summary["passed"] and summary["max_abs_error"] < TOLERANCE
    assert summary["heads_per_layer"] == [1, 3, 0, 1, 3, 0, 0]
    assert [r["m"] for r in summary["dimension_table"]] == [1, 4, 16]
    assert (folder / summary["figure"]).stat().st_size > 10_000
    assert len((folder / "records.jsonl").read_text().splitlines()) == 12
    out = capsys.readouterr().out  # the command prints the summary.md it wrote, then the folder
    assert out == (folder / "summary.md").read_text() + f"\nrun folder: {folder}\n"
    assert "Embedding dimension against the bound" in out and "→ **OK**" in out  # the m table, the verdict


def test_config_file_validates(tmp_path: Path) -> None:
    import yaml

    for path in sorted((REPO / "configs" / "construct").glob("*.yaml")):
        load_config(yaml.safe_load(path.read_text()), source=str(path)).resolve_tasks()
    bad = tmp_path / "bad.yaml"
    bad.write_text("examples: many\n")
    argv = ["construct", str(bad), "--out", str(tmp_path)]
    args = build_parser(argv).parse_args(argv)
    with pytest.raises(ConfigError, match="examples"):
        args.func(args)


def test_packaged_config_runs_from_any_folder(tmp_path: Path, monkeypatch) -> None:
    """`superpose construct configs/construct/demo.yaml` finds the packaged config outside the checkout."""
    from superpose.cli import main

    monkeypatch.chdir(tmp_path)
    assert not Path("configs").exists()
    assert main(["construct", "configs/construct/demo.yaml", "--prompts", "6", "--dims", "1,4", "--no-progress"]) == 0
    (folder,) = list((tmp_path / "runs").iterdir())
    assert json.loads((folder / "status.json").read_text())["status"] == "complete"
    assert main(["construct", "configs/construct/nothing.yaml"]) == 2  # one line, exit 2, as before
