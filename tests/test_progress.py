"""One progress mechanism (superpose.progress): True, False or a callable, passed in -- training included."""

from __future__ import annotations

import json

import pytest

from superpose import progress
from superpose.progress import track


@pytest.fixture(autouse=True)
def shown(monkeypatch):
    monkeypatch.setitem(progress._default, "enabled", True)  # an earlier --no-progress in this process
    monkeypatch.setitem(progress._default, "prefix", "")


def test_true_in_a_pipe_prints_a_line_per_tenth_and_false_nothing(capsys):
    assert list(track(range(20), "scoring", progress=True)) == list(range(20))
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(" (")[0] for line in lines] == [f"scoring: {n}/20" for n in range(2, 21, 2)]
    assert list(track(range(20), "scoring", progress=False)) == list(range(20))
    progress.set_progress(False)  # --no-progress: True shows nothing either
    assert list(track(range(20), "scoring")) == list(range(20))
    assert capsys.readouterr().err == ""


def test_a_callable_receives_done_total_and_the_description(capsys):
    calls = []
    assert list(track("abc", "letters", progress=lambda *a: calls.append(a))) == ["a", "b", "c"]
    assert calls == [(1, 3, "letters"), (2, 3, "letters"), (3, 3, "letters")]
    assert capsys.readouterr().err == ""  # a callable replaces the bar


def test_training_reports_every_step_and_its_losses_to_a_callable(tmp_path, capsys):
    from superpose.scratch import ModelConfig, TrainConfig
    from superpose.experiments.train import run_train

    cfg = TrainConfig(name="tiny", tasks=["plus_1"], n_examples=3, steps=6, batch_size=4, lr=1e-2, warmup_steps=1,
                      decay_steps=1, checkpoint_every=3, log_every=2, seed=5, threads=1,
                      model=ModelConfig(n_layers=1, d_model=16, n_heads=2, d_mlp=32, max_position_embeddings=64))
    calls = []
    run, result = run_train(cfg, root=tmp_path, progress=lambda *a: calls.append(a))
    assert run.path.parent == tmp_path and run.path.name.startswith("tiny-") and result.model_dir is not None
    assert [done for done, _, _ in calls] == [1, 2, 3, 4, 5, 6] and {total for _, total, _ in calls} == {6}
    records = [json.loads(line) for line in (run.path / "records.jsonl").read_text().splitlines()]
    metrics = [(done, what) for done, _, what in calls if isinstance(what, dict)]  # read every log_every steps and at checkpoints;
    assert metrics == [(s, {"loss": records[s - 1]["loss"], "lr": records[s - 1]["lr"]}) for s in (2, 3, 4, 6)]
    assert [what for _, _, what in calls if not isinstance(what, dict)] == ["tiny", "tiny"]  # steps 1 and 5
    assert capsys.readouterr().err == ""
    with pytest.raises(Exception, match="backend: training builds its own model"):
        run_train(cfg, root=tmp_path, backend="smollm2-135m", progress=False)
