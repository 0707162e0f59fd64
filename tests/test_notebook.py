"""The notebook API: `load_run` reads a `superpose run` folder into DataFrames; `probe` computes the same in memory."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import yaml

import superpose
from conftest import TEST_MODEL
from superpose.cli import main

TASKS = ["copy_op1", "copy_op2", "op1_plus_op2"]
SEED, N_EXAMPLES, N_PROMPTS = 11, 12, 3


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """A finished `superpose run` folder: one mixture of three tasks on the test model."""
    tmp = tmp_path_factory.mktemp("notebook")
    config = tmp / "copy.yaml"
    config.write_text(yaml.safe_dump({
        "name": "nb", "models": [TEST_MODEL], "seed": SEED, "n_prompts": N_PROMPTS,
        "mixtures": [{"name": "copy3", "tasks": TASKS, "weights": [0.5, 0.25, 0.25], "n_examples": N_EXAMPLES}]}))
    assert main(["run", str(config), "--out", str(tmp / "runs"), "--no-progress"]) == 0
    (folder,) = (tmp / "runs").iterdir()
    return folder


def _lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_load_run_records_are_the_folders_records(run_folder):
    run = superpose.load_run(run_folder)
    df = run.records()
    records, prompts = _lines(run_folder / "records.jsonl"), _lines(run_folder / "prompts.jsonl")
    assert len(df) == len(records) * len(TASKS) == N_PROMPTS * len(TASKS)
    assert list(df.columns[:5]) == ["model", "mixture", "prompt", "task", "answer"]
    example_tasks = {p["index"]: p["example_tasks"] for p in prompts}
    for r in records:
        rows = df[(df.prompt == r["index"])].set_index("task").loc[r["tasks"]]
        assert (rows.model == TEST_MODEL).all() and (rows.mixture == "copy3").all()
        assert rows.logp.tolist() == r["logprobs"] and rows.answer.tolist() == r["answers"]
        assert np.allclose(rows.p, np.exp(r["logprobs"]), rtol=1e-12, atol=0)
        assert rows.share.tolist() == r["shares"]
        assert rows.p_normalized.sum() == pytest.approx(1.0)
        assert rows.other.iloc[0] == pytest.approx(1 - math.fsum(math.exp(x) for x in r["logprobs"]))
        assert rows.top1.tolist() == [k == int(np.argmax(r["logprobs"])) for k in range(len(TASKS))]
        order = example_tasks[r["index"]]
        for k, task in enumerate(r["tasks"]):  # counted from the end: 1 = the example just before the query
            last = max((i for i, t in enumerate(order) if t == k), default=None)
            expected = len(order) - last if last is not None else None
            got = rows.loc[task, "last_position"]
            assert (math.isnan(got) and expected is None) or got == expected

    summary, stored = run.summary(), json.loads((run_folder / "summary.json").read_text())
    for _, row in summary.iterrows():
        s = stored["models"][row.model][row.mixture]
        assert row["mean"] == pytest.approx(s["tasks"][row.task]["mean"], abs=1e-12)
        assert row["top1_rate"] == s["tasks"][row.task]["top1_rate"]
        assert row["kl"] == pytest.approx(s["kl"], abs=1e-12)
        assert row["other_mean"] == pytest.approx(s["other_mean"], abs=1e-12)
    assert run.prompts().text.tolist() == [p["text"] for p in prompts]


def test_probe_in_memory_gives_superpose_runs_numbers(run_folder, smollm):
    res = superpose.probe(smollm, TASKS, n_examples=N_EXAMPLES, n_prompts=N_PROMPTS, weights=[0.5, 0.25, 0.25],
                          seed=SEED)
    ran = superpose.load_run(run_folder)
    assert res.prompts().text.tolist() == ran.prompts().text.tolist()  # one seed, the same prompts
    mine, theirs = res.records(), ran.records()
    assert mine.task.tolist() == theirs.task.tolist() and mine.prompt.tolist() == theirs.prompt.tolist()
    assert np.abs(mine.logp.to_numpy() - theirs.logp.to_numpy()).max() < 1e-6
    assert mine.last_position.equals(theirs.last_position)
    cols = ["task", "mean", "median", "top1_rate"]
    assert np.allclose(res.summary()[cols[1:]].to_numpy(), ran.summary()[cols[1:]].to_numpy(), atol=1e-6, rtol=0)


def test_load_run_refuses_what_is_not_a_probe(tmp_path):
    with pytest.raises(superpose.SuperposeError, match="not a run folder"):
        superpose.load_run(tmp_path)
    with pytest.raises(superpose.SuperposeError, match="unknown task"):
        superpose.probe("smollm2-135m", ["copy_op1", "no_such_task"], n_prompts=1)
