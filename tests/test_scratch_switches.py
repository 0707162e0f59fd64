"""Issue #32's training switches: explicit-k retrieval, family mixtures, curricula, phases, the observatory."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from pathlib import Path

import pytest
import torch

from superpose.errors import ConfigError
from superpose.scratch import ModelConfig, TrainConfig, char_vocab, make_batch, make_sequence
from superpose.scratch.data import sequence_rng
from superpose.scratch.families import DataSpec, make_spec_batch, sequence_tasks
from superpose.scratch.observatory import Observatory, answer_columns, heldout_sequences
from superpose.scratch.schedule import spec_at
from superpose.scratch.snapshot import verdict
from superpose.scratch.train import load_train_config, lr_at
from superpose.tasks import get_task
from training_runs import train_at

CHECKPOINT = Path(__file__).resolve().parents[1] / "src/superpose/checkpoints/scratch-plus-cpu"
RET = [f"ret_{k}" for k in range(1, 9)]
PLUS = [f"plus_{k}" for k in range(10)]


def tiny(out_dir, **kw) -> TrainConfig:
    """A model small enough that a few steps take a second."""
    base = dict(name="tiny", tasks=["ret_[1-8]"], n_examples=6,
                model=ModelConfig(n_layers=1, d_model=16, n_heads=2, d_mlp=32, max_position_embeddings=128),
                batch_size=4, lr=1e-2, warmup_steps=1, decay_steps=1, checkpoint_every=2,
                out_dir=str(out_dir), seed=3, threads=1)
    base.update(kw)
    return TrainConfig(**base)


def test_explicit_k_lines_write_k_then_eight_letters_and_answer_the_kth():
    task = get_task("kret")
    seen_k = Counter()
    for i in range(50):
        seq = make_sequence([task], 10, sequence_rng(0, i))
        for line in seq.text.splitlines():
            m = re.fullmatch(r"([1-8])([a-zA-Z]{8})>([a-zA-Z])", line)
            assert m, line
            k, letters, answer = int(m[1]), m[2], m[3]
            assert len(set(letters)) == 8 and answer == letters[k - 1]
            seen_k[k] += 1
    assert set(seen_k) == set(range(1, 9))  # k varies line by line, every value appears
    assert get_task("kret").answer("3abcdefgh") == "c"


def test_a_plain_spec_is_the_string_generators_batch():
    vocab = char_vocab()
    spec = DataSpec((tuple(RET),), (1.0,), 7)
    ids, mask = make_spec_batch(spec, 5, 40, 8, vocab)
    ref_ids, ref_mask = make_batch([get_task(n) for n in RET], 7, 5, 40, 8, vocab)
    assert torch.equal(ids, ref_ids) and torch.equal(mask, ref_mask)


def test_the_mixture_draws_one_family_per_sequence_in_its_proportions():
    spec = DataSpec((tuple(RET), tuple(PLUS), ("kret",)), (0.5, 0.3, 0.2), 4)
    n = 4000
    tasks = sequence_tasks(spec, 0, 0, n)
    family = Counter("ret" if t.startswith("ret") else "plus" if t.startswith("plus") else "kret" for t in tasks)
    for name, share in (("ret", 0.5), ("plus", 0.3), ("kret", 0.2)):
        sd = math.sqrt(share * (1 - share) / n)
        assert abs(family[name] / n - share) < 4 * sd, (name, family)
    # one task per sequence: every line of a sequence is of the task it was drawn as
    rng = sequence_rng(0, 0)
    from superpose.scratch.families import make_mixed_sequence

    for i in range(200):
        seq = make_mixed_sequence(spec, sequence_rng(0, i, rng))
        task = get_task(seq.task)
        for line in seq.text.splitlines():
            x, y = line.split(">")
            assert task.answer(x) == y, (seq.task, line)


def test_the_curriculum_gives_the_scheduled_letters_and_examples(tmp_path):
    cfg = tiny(tmp_path, steps=30, tasks=["ret_[1-8]"],
               curriculum={"letters": [[0, 2], [10, 5], [20, 8]], "examples": [[0, 3], [15, 6]]})
    vocab = char_vocab()
    expect = {0: (2, 3), 9: (2, 3), 10: (5, 3), 14: (5, 3), 15: (5, 6), 20: (8, 6), 29: (8, 6)}
    for step, (letters, examples) in expect.items():
        spec = spec_at(cfg, step)
        assert (spec.letters, spec.n_examples) == (letters, examples)
        ids, mask = make_spec_batch(spec, cfg.seed, step * cfg.batch_size, 16, vocab)
        inverse = {v: c for c, v in vocab.items()}
        for row in ids:
            text = "".join(inverse[int(t)] for t in row if int(t) != 0)
            lines = text.splitlines()
            assert len(lines) == examples + 1
            for line in lines:
                x, y = line.split(">")
                assert len(x) == letters and len(set(x)) == letters and y in x
    # at 8 letters the curriculum's data is the study's ret_k, exactly
    ids, mask = make_spec_batch(spec_at(cfg, 25), cfg.seed, 100, 8, vocab)
    ref = make_batch([get_task(n) for n in RET], 6, cfg.seed, 100, 8, vocab)
    assert torch.equal(ids, ref[0]) and torch.equal(mask, ref[1])


def test_a_letters_curriculum_keeps_only_the_ks_a_short_string_has():
    spec = DataSpec((tuple(RET),), (1.0,), 4, letters=3)
    assert set(sequence_tasks(spec, 1, 0, 300)) == {"ret_1", "ret_2", "ret_3"}


def test_phases_switch_tasks_and_restart_the_schedule(tmp_path):
    cfg = tiny(tmp_path, phases=[{"name": "warm", "tasks": ["kret"], "steps": 4},
                                 {"name": "ret", "steps": 6, "lr": 5e-3}])
    assert cfg.steps == 10
    assert spec_at(cfg, 3).task_names == ["kret"] and spec_at(cfg, 4).task_names == RET
    lrs = [lr_at(s, cfg) for s in range(10)]
    assert lrs[0] == 1e-2 and lrs[3] == 0.0  # phase 1 warms up and decays to min_lr
    assert lrs[4] == 5e-3 and lrs[9] == 0.0  # phase 2 has its own schedule


def test_a_run_stopped_at_the_phase_boundary_and_resumed_equals_an_uninterrupted_one(tmp_path):
    phases = [{"name": "warm", "tasks": ["kret"], "steps": 4}, {"name": "ret", "steps": 4}]
    full = train_at(tiny(tmp_path / "full", phases=phases, eval_every=2))
    cut = train_at(tiny(tmp_path / "cut", phases=phases, eval_every=2), stop_at=4)
    assert cut.steps_done == 4 and cut.model_dir is None
    resumed = train_at(tiny(tmp_path / "cut", phases=phases, eval_every=2))
    assert resumed.losses == full.losses
    from safetensors.torch import load_file

    wa, wb = (load_file(r.model_dir / "model.safetensors") for r in (full, resumed))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    rows = [json.loads(x) for x in (tmp_path / "cut/observatory.jsonl").read_text().splitlines()]
    ref = [json.loads(x) for x in (tmp_path / "full/observatory.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4, 6, 8]
    assert [r["loss_by_example"] for r in rows] == [r["loss_by_example"] for r in ref]


def test_bad_switches_name_the_field(tmp_path):
    with pytest.raises(Exception, match="steps=5 is not the phases' total"):
        tiny(tmp_path, steps=5, phases=[{"tasks": ["kret"], "steps": 4}, {"steps": 4}])
    with pytest.raises(Exception, match="letters"):
        tiny(tmp_path, steps=10, curriculum={"letters": [[0, 1]]})
    with pytest.raises(Exception, match="start at 0"):
        tiny(tmp_path, steps=10, curriculum={"examples": [[5, 3]]})
    with pytest.raises(Exception, match="matches no task"):
        tiny(tmp_path, steps=10, mixture=[{"tasks": ["nope_*"], "weight": 1}])
    bad = tmp_path / "bad.yaml"
    bad.write_text("tasks: [ret_1]\nsteps: 9\nphases: [{tasks: [kret], steps: 4}]\n")
    with pytest.raises(ConfigError, match="steps"):
        load_train_config(bad)


def test_the_observatory_points_at_the_querys_answer_column():
    seqs = heldout_sequences(RET + ["kret"], 5, 0, 40)
    for seq, (q, c) in zip(seqs, answer_columns(seqs)):
        assert seq.text[q] == ">" and seq.text[q + 1] == seq.text[c]  # the answer is a copy of column c
        assert seq.text.rfind("\n", 0, q) < c < q  # in the query's own line
    assert answer_columns(heldout_sequences(PLUS, 5, 0, 3)) == [None] * 3


def test_the_observatory_measures_a_model_that_learned_in_context(tmp_path):
    from transformers import AutoModelForCausalLM

    from superpose.scratch.snapshot import snapshot_for

    # scratch-plus-cpu learned plus_k in context: low after example 1
    model = AutoModelForCausalLM.from_pretrained(CHECKPOINT)
    obs = Observatory(PLUS, 20, 0, 32, "sdpa", tmp_path / "observatory.jsonl", snapshot=snapshot_for(PLUS, 20, 0))
    row = obs.observe(model, 7)
    assert row["loss_by_example"][0] > 1.0 and row["loss_from_5"] < 0.01 and row["icl_accuracy"] > 0.99
    assert row["lambda_snapshot"]["verdict"] == "recency"  # docs/scratch.md: slope 0.000 once fixed
    assert json.loads((tmp_path / "observatory.jsonl").read_text())["step"] == 7


def test_verdict_of_the_two_reference_rules():
    n = 20
    assert verdict({0: 1.0, 2: 0.0}, n) == "recency"
    assert verdict({0: 1.0, 2: (n - 2) / n}, n) == "aggregation"
    assert verdict({0: 0.0, 2: 0.0}, n) == "neither"  # a model on a plateau follows nothing


# --- the architecture change: a column-position embedding -------------------------------------------

def test_columns_count_characters_since_the_last_newline():
    from superpose.models.columns import columns_of

    vocab = char_vocab()
    text = "ab>c\nxyz>q\n5"
    ids = torch.tensor([[vocab[c] for c in text]])
    assert columns_of(ids, vocab["\n"], 32)[0].tolist() == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 5, 0]
    assert columns_of(ids, vocab["\n"], 3)[0].max() == 2  # capped


def test_a_column_model_is_labelled_and_loads_with_its_column_weights(tmp_path, monkeypatch, capsys):
    from superpose.backends.hf import HFBackend
    from superpose.models.columns import LABEL, ColumnEmbedding
    from superpose.models.metadata import folder_metadata

    cfg = tiny(tmp_path / "col", steps=3, model=ModelConfig(n_layers=1, d_model=16, n_heads=2, d_mlp=32,
                                                              max_position_embeddings=128, column_embedding=16))
    result = train_at(cfg)
    info = json.loads((result.model_dir / "training.json").read_text())
    assert info["architecture_change"] == LABEL
    assert LABEL in folder_metadata(result.model_dir)["architecture"]
    assert f"Architecture: {LABEL}" in (result.out_dir / "summary.md").read_text()  # the run's summary says it too
    backend = HFBackend.load(str(result.model_dir))
    assert LABEL in backend.provenance["architecture"]
    embed = backend.model.get_input_embeddings()
    assert isinstance(embed, ColumnEmbedding)
    from safetensors.torch import load_file

    saved = load_file(result.model_dir / "model.safetensors")
    assert torch.equal(embed.column.weight.cpu(), saved["model.embed_tokens.column.weight"])
    # the column signal changes the output: zeroing it moves the logits
    ids = torch.tensor([[char_vocab()[c] for c in "abcdefgh>c\nijklmnop>"]])
    with torch.no_grad():
        before = backend.model(input_ids=ids).logits
        embed.column.weight.zero_()
        after = backend.model(input_ids=ids).logits
    assert not torch.allclose(before, after)
    with pytest.raises(Exception, match="column_embedding"):
        ModelConfig(architecture="gpt2", column_embedding=8)
    # `superpose models` names the change for an embedded model that has it, and not for a stock one
    import argparse

    from superpose.cli.models import main as models_main
    from superpose.models import EMBEDDED_MODELS
    from superpose.models.registry import EmbeddedModel

    monkeypatch.setitem(EMBEDDED_MODELS, "scratch-col-test", EmbeddedModel(
        "scratch-col-test", "a test folder", ("superpose",), "pip install superpose", None, lambda: result.model_dir))
    models_main(argparse.Namespace())
    listing = capsys.readouterr().out
    block = listing[listing.index("scratch-col-test"):]
    assert f"architecture: {LABEL}" in block.split("\n\n")[0].splitlines()[2]
    plus = listing[listing.index("scratch-plus-cpu"):listing.index("scratch-plus-cpu") + 400]
    assert "architecture:" not in plus.split("scratch-col-test")[0]


def test_the_snapshot_slope_is_the_sweeps_position_control_slope():
    import random

    from superpose.experiments.sweep import position_control
    from superpose.scratch.snapshot import slope

    rng = random.Random(0)
    records = [{"lambda": lam, "fixed_last": m, "p1": min(1, max(0, lam * (1 - m / 10) + rng.gauss(0, .1))),
                "example_tasks": "12"} for m in (0, 2) for lam in (0, .25, .5, .75, 1) for _ in range(5)]
    ref = {b["fixed_last"]: b["slope"] for b in position_control(records)["by_fixed_last"]}
    for m in (0, 2):
        rows = [r for r in records if r["fixed_last"] == m]
        assert slope([r["lambda"] for r in rows], [r["p1"] for r in rows]) == pytest.approx(ref[m], abs=1e-12)


def test_the_observatory_figure_of_a_column_run_carries_the_label(tmp_path):
    from superpose.models.columns import LABEL
    from superpose.report.html import read_run_view
    from superpose.scratch.observatory import run_title

    title, bounds = run_title({"name": "r", "model": {"column_embedding": 16},
                               "phases": [{"steps": 30}, {"steps": 70}]})
    assert LABEL in title and bounds == [30]
    assert LABEL not in run_title({"name": "r", "model": {"column_embedding": 0}})[0]
    cfg = tiny(tmp_path / "run", steps=4, eval_every=2,
               model=ModelConfig(n_layers=1, d_model=16, n_heads=2, d_mlp=32, max_position_embeddings=128,
                                 column_embedding=8))
    train_at(cfg)
    view = read_run_view(tmp_path / "run")
    assert {"loss", "observatory"} <= {f["name"] for f in view.figures}
    assert any("Training observatory" in b.markdown for b in view.blocks)


# --- the shipped ret_k checkpoint (docs/scratch.md, "Switches, a training observatory, and ret_k again") ----

RET_CHECKPOINT = CHECKPOINT.parent / "scratch-ret-cpu"


def test_the_shipped_ret_checkpoint_left_the_plateau_and_says_it_changed_the_architecture(tmp_path, capsys):
    import argparse

    from transformers import AutoModelForCausalLM

    from superpose.cli.models import main as models_main
    from superpose.models.columns import LABEL, attach_columns
    from superpose.scratch.snapshot import snapshot_for

    model = AutoModelForCausalLM.from_pretrained(RET_CHECKPOINT)
    assert attach_columns(model, RET_CHECKPOINT)  # without its column weights it is not the trained model
    obs = Observatory(RET, 8, 0, 64, "sdpa", tmp_path / "observatory.jsonl", snapshot=snapshot_for(RET, 8, 0))
    row = obs.measure(model)
    # the bar: loss from example 5 on at most half of the copying plateau ln 8 / 2
    assert row["loss_from_5"] <= math.log(8) / 4 and row["icl_accuracy"] > 0.95
    assert row["loss_by_example"][0] > 0.5  # one example cannot tell k: it learned k in context
    assert row["column_attention_max"] > 0.9
    assert row["lambda_snapshot"]["verdict"] == "recency"  # docs/scratch.md: it reads k off the last example
    training = json.loads((RET_CHECKPOINT / "training.json").read_text())
    assert training["architecture_change"]
    models_main(argparse.Namespace())
    listing = capsys.readouterr().out
    block = listing[listing.index("scratch-ret-cpu"):].split("\n\n")[0]
    assert f"architecture: {LABEL}" in block
    # and its sweep's summary says so, beside its numbers
    from superpose.experiments.sweep import SweepConfig, run_sweep

    cfg = SweepConfig(name="s", model="scratch-ret-cpu", task1="ret_2", task2="ret_6", n_examples=8, n_prompts=1,
                      lambdas=[0.0, 1.0])
    run, summary = run_sweep(cfg, root=tmp_path / "sweep", progress=False)
    assert "column-position embedding (architecture changed" in (run.path / "summary.md").read_text()
    assert [c["p1"] for c in summary["curve"]] == pytest.approx([0.0, 1.0], abs=0.05)  # it reads k off the examples
