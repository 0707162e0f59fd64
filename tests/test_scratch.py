"""Scratch training: character tokenizer, answer-only loss, determinism, exact resume, configs."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml

from superpose.errors import ConfigError
from superpose.experiments.train import run_train
from superpose.report.html import read_run_view
from superpose.runs import read_status
from superpose.scratch import (CHARACTERS, ModelConfig, TrainConfig, build_model, build_tokenizer,
                               char_vocab, make_batch, make_sequence)
from superpose.scratch.data import sequence_rng
from superpose.scratch.step import answer_loss
from superpose.scratch.train import load_train_config, lr_at
from superpose.tasks import get_task
from training_runs import train_at

CHECKPOINT = Path(__file__).resolve().parents[1] / "src/superpose/checkpoints/scratch-plus-cpu"


def tiny_config(out_dir: Path, attention_dropout: float = 0.0, architecture: str = "llama", **kw) -> TrainConfig:
    """A model and batch small enough that a few steps take a second."""
    base = dict(name="tiny", tasks=["plus_[0-9]", "ret_1", "ret_8"], n_examples=5,
                model=ModelConfig(architecture=architecture, n_layers=1, d_model=16, n_heads=2, d_mlp=32,
                                  max_position_embeddings=96, attention_dropout=attention_dropout),
                steps=6, batch_size=4, lr=1e-2, warmup_steps=2, decay_steps=2,
                checkpoint_every=3, out_dir=str(out_dir), seed=7, threads=1)
    base.update(kw)
    return TrainConfig(**base)


# --- tasks and tokenizer --------------------------------------------------------------------------

def test_char_tasks_answers():
    assert get_task("plus_3").answer("8") == "1"
    assert get_task("plus_0").answer("5") == "5"
    x = get_task("ret_1").space.draw_one(random.Random(0))
    assert len(x) == 8 and len(set(x)) == 8 and x.isalpha()
    assert [get_task(f"ret_{k}").answer(x) for k in range(1, 9)] == list(x)
    assert get_task("ret_2").example("abcdefgh") == "abcdefgh>b"


def test_tokenizer_round_trip_and_prefix():
    tok = build_tokenizer()
    text = "".join(CHARACTERS) + "Qz>3\n7>0\n"
    ids = tok(text).input_ids
    assert len(ids) == len(text)  # one token per character, no BOS/EOS added
    assert tok.decode(ids) == text
    assert ids == [char_vocab()[c] for c in text]  # the training loop's fast path agrees
    prompt = "3>5\n9>1\n4>"
    assert tok(prompt + "6").input_ids[: len(prompt)] == tok(prompt).input_ids  # the scorer's prefix


def test_shipped_tokenizer_loads_with_autotokenizer():
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(CHECKPOINT)
    s = "abcdefgh>c\nQWERTYUI>E\n"
    assert tok(s).input_ids == build_tokenizer()(s).input_ids
    assert tok.decode(tok(s).input_ids) == s


# --- data and loss ---------------------------------------------------------------------------------

def test_sequence_is_single_task_and_mask_covers_answers_only():
    tasks = [get_task(f"plus_{k}") for k in range(10)]
    seq = make_sequence(tasks, 30, random.Random(3))
    lines = seq.text.split("\n")[:-1]
    assert len(lines) == 31 and seq.text.endswith("\n")
    k = int(seq.task.split("_")[1])
    assert all((int(x) + k) % 10 == int(y) for x, y in (line.split(">") for line in lines))
    # per line "x>y\n": x and ">" carry no loss; the answer and its newline do
    assert seq.loss_mask == [False, False, True, True] * 31

    ret = make_sequence([get_task("ret_5")], 3, random.Random(0))
    masked = "".join(c for c, m in zip(ret.text, ret.loss_mask) if m)
    assert masked == "".join(line.split(">")[1] + "\n" for line in ret.text.split("\n")[:-1])


def test_batches_are_a_function_of_seed_and_index():
    tasks = [get_task("ret_3"), get_task("plus_2")]
    a = make_batch(tasks, 4, seed=1, start=8, batch_size=3, vocab=char_vocab())
    b = make_batch(tasks, 4, seed=1, start=8, batch_size=3, vocab=char_vocab())
    c = make_batch(tasks, 4, seed=2, start=8, batch_size=3, vocab=char_vocab())
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and not torch.equal(a[0], c[0])
    # mixed lengths (ret lines are longer): padding never carries loss
    ids, mask = a
    assert not mask[ids == 0].any()


@pytest.mark.parametrize("architecture", ["llama", "gpt2"])
def test_answer_loss_equals_masked_full_cross_entropy(architecture):
    model = build_model(ModelConfig(architecture=architecture, n_layers=1, d_model=16, n_heads=2, d_mlp=32,
                                    max_position_embeddings=64), torch.Generator().manual_seed(0))
    tasks = [get_task("ret_2"), get_task("plus_5")]
    ids, mask = make_batch(tasks, 3, seed=0, start=0, batch_size=4, vocab=char_vocab())
    total, n = answer_loss(model, ids, mask)
    labels = torch.where(mask, ids, torch.full_like(ids, -100))  # [batch, seq]
    logits = model(input_ids=ids).logits  # [batch, seq, vocab]
    ref = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
                          labels[:, 1:].reshape(-1), ignore_index=-100, reduction="sum")
    assert n == int(mask[:, 1:].sum()) and n < int((ids != 0).sum()) / 2
    torch.testing.assert_close(total, ref, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("architecture", ["llama", "gpt2"])
def test_init_depends_only_on_generator(architecture):
    cfg = ModelConfig(architecture=architecture, n_layers=1, d_model=16, n_heads=2, d_mlp=32,
                      max_position_embeddings=32)
    torch.manual_seed(123)
    a = build_model(cfg, torch.Generator().manual_seed(5)).state_dict()
    torch.manual_seed(456)  # the global RNG must not matter
    b = build_model(cfg, torch.Generator().manual_seed(5)).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_wsd_schedule():
    cfg = TrainConfig(tasks=["plus_1"], n_examples=4, steps=100, warmup_steps=10, decay_steps=20,
                      lr=1e-3, min_lr=1e-4,
                      model=ModelConfig(n_layers=1, d_model=16, n_heads=2, d_mlp=32, max_position_embeddings=32))
    lrs = [lr_at(s, cfg) for s in range(100)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)
    assert all(x == pytest.approx(1e-3) for x in lrs[10:80])
    assert lrs[-1] == pytest.approx(1e-4) and all(b < a for a, b in zip(lrs[80:], lrs[81:]))


# --- training loop ---------------------------------------------------------------------------------

@pytest.mark.parametrize("dropout", [0.0, 0.3])  # dropout masks come from the seeded global RNG
def test_same_seed_same_loss_curve(tmp_path, dropout):
    a = train_at(tiny_config(tmp_path / "a", dropout))
    b = train_at(tiny_config(tmp_path / "b", dropout))
    c = train_at(tiny_config(tmp_path / "c", dropout, seed=8))
    assert len(a.losses) == 6
    assert a.losses == b.losses
    assert a.losses != c.losses
    assert a.losses[-1] < a.losses[0]  # it learns something even in 6 steps


@pytest.mark.parametrize("dropout", [0.0, 0.3])  # with dropout, the RNG state must resume too
def test_resume_continues_the_same_run(tmp_path, dropout):
    full = train_at(tiny_config(tmp_path / "full", dropout))
    cut, first = run_train(tiny_config(tmp_path / "cut", dropout, stop_at=3), root=tmp_path / "runs", progress=False)
    assert first.steps_done == 3 and first.model_dir is None and cut.path.name.startswith("tiny-20")
    again, _ = run_train(tiny_config(tmp_path / "cut", dropout, stop_at=1), root=tmp_path / "runs", progress=False)
    assert again.path != cut.path  # a new run never clobbers one: it gets its own folder
    # as an older version wrote it: the recipe only in config.json, the log in log.jsonl
    (cut.path / "config.yaml").unlink()
    (cut.path / "records.jsonl").rename(cut.path / "log.jsonl")
    _, resumed = run_train(None, resume=cut.path, progress=False)
    assert resumed.losses == full.losses  # stop_at was that call's limit: the resume runs to the end
    assert not (cut.path / "records.jsonl").exists()  # the older folder's log goes on
    assert (cut.path / "log.jsonl").read_text().count("\n") == 6
    assert "adopted" in yaml.safe_load((cut.path / "config.yaml").read_text())
    view = read_run_view(cut.path)  # and renders
    assert view.kind == "train" and view.status == "complete" and "6 steps in" in view.blocks[0].markdown
    from safetensors.torch import load_file

    wa = load_file(full.model_dir / "model.safetensors")
    wb = load_file(resumed.model_dir / "model.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_time_limit_checkpoints_and_resume_continues(tmp_path):
    full = train_at(tiny_config(tmp_path / "full"))
    cut = train_at(tiny_config(tmp_path / "cut"), time_limit_minutes=1e-11)  # out of time after a step
    assert cut.steps_done == 1 and cut.model_dir is None
    assert (tmp_path / "cut" / "checkpoint" / "state.pt").is_file()
    status = read_status(tmp_path / "cut")  # says it stopped where --resume continues, not "running"
    assert (status["status"], status["step"]) == ("stopped", 1) and "out of time at step 1 of 6" in status["reason"]
    view = read_run_view(tmp_path / "cut")
    assert (view.status, view.status_class) == ("stopped", "stopped") and "--resume" in view.reason
    resumed = train_at(tiny_config(tmp_path / "cut"))
    assert resumed.steps_done == 6 and resumed.losses == full.losses
    assert read_status(tmp_path / "cut")["status"] == "complete"


def test_ctrl_c_finishes_the_step_checkpoints_and_resume_continues(tmp_path, capsys):
    """Ctrl-C as a terminal sends it (SIGINT to the whole process group, data workers included):
    the step in flight finishes, a checkpoint is written, status.json says "stopped", nothing
    prints a traceback, and --resume continues the same run: its records equal an uninterrupted
    run's but for the time. The run gets a new folder <name>-<time> beside the recipe's out_dir,
    locked: a second process on it is refused while the first trains."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import yaml

    from superpose.cli import main
    from superpose.experiments.base import resume_config

    cfg = tiny_config(tmp_path / "w", tasks=["copy_op1"], steps=100_000, warmup_steps=0, decay_steps=0,
                      checkpoint_every=100_000, data_workers=2)  # copy_op1: string batches, from the workers
    (tmp_path / "w.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    run = subprocess.Popen([sys.executable, "-m", "superpose.cli", "train", "w.yaml", "--no-progress"], cwd=tmp_path,
                           stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and not any(
            p.read_text().count("\n") >= 50 for p in tmp_path.glob("tiny-*/records.jsonl")):
        time.sleep(0.2)
    (folder,) = tmp_path.glob("tiny-*")
    assert folder.name.startswith("tiny-20") and not (folder / "log.jsonl").exists()
    code = main(["train", "--resume", str(folder), "--no-progress"])  # a second trainer on the same folder
    err = capsys.readouterr().err
    assert code == 2 and err.strip() == (f"error: {folder} is being written by process {run.pid} (its lock file "
                                         f"{folder / 'lock'}); wait for it to finish or stop it")
    os.killpg(run.pid, signal.SIGINT)
    err = run.communicate(timeout=180)[1]
    assert run.returncode == 130 and "Traceback" not in err, err
    assert "finishing this step and checkpointing" in err
    status = read_status(folder)
    step = status["step"]
    assert status["status"] == "stopped" and step >= 50 and f"interrupted at step {step}" in status["reason"]
    assert not (folder / "lock").exists()
    log = folder / "records.jsonl"
    assert log.read_text().count("\n") == step  # every step up to the checkpoint is logged
    limited = resume_config(TrainConfig, folder, None, {"stop_at": step + 3})
    _, resumed = run_train(limited, resume=folder, progress=False)
    straight = train_at(cfg.model_copy(update={"out_dir": str(tmp_path / "straight")}), stop_at=step + 3)
    assert resumed.losses == straight.losses and len(resumed.losses) == step + 3

    def untimed(path):  # the records, but for the field that records time
        return [json.dumps({k: v for k, v in json.loads(line).items() if k != "seconds"})
                for line in path.read_text().splitlines()]

    assert untimed(log) == untimed(tmp_path / "straight" / "records.jsonl")


def test_the_training_summary_reads_the_log_of_old_and_new_folders(tmp_path, capsys):
    """summarise_training writes summary.md and figures/ from log.jsonl (older folders) or records.jsonl,
    the same either way; `superpose train` prints it, then the folder."""
    from superpose.cli import main
    from superpose.scratch.summary import summarise_training, training_markdown

    cut = train_at(tiny_config(tmp_path / "cut"), stop_at=3)
    assert "Stopped at step 3 of 6: continue with superpose train --resume" in training_markdown(cut.out_dir)
    result = train_at(tiny_config(tmp_path / "run"))
    text = summarise_training(result.out_dir).read_text()
    tail = sum(result.losses) / len(result.losses)  # 6 steps: all of them are the last 50
    assert "6 steps in" in text and f"mean loss of the last 6 steps {tail:.4f}" in text and "Model:" in text
    assert (result.out_dir / "figures" / "loss.png").read_bytes()[:4] == b"\x89PNG"
    (result.out_dir / "records.jsonl").rename(result.out_dir / "log.jsonl")  # an older version's name for the log
    assert training_markdown(result.out_dir) == text
    assert main(["train", "--resume", str(cut.out_dir), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert out == (cut.out_dir / "summary.md").read_text() + f"\nrun folder: {cut.out_dir}\n" and "6 steps in" in out


def test_data_workers_build_the_same_batches_and_run(tmp_path):
    from superpose.scratch.data import BatchStream

    cfg = tiny_config(tmp_path / "w", data_workers=2)
    tasks = [get_task(n) for n in cfg.tasks]
    with BatchStream(cfg.tasks, cfg.n_examples, cfg.seed, cfg.batch_size, char_vocab(), workers=2) as stream:
        for step in (0, 1, 5, 2):  # out of order too: a resumed stream starts anywhere
            ids, mask = stream.batch(step)
            want = make_batch(tasks, cfg.n_examples, cfg.seed, step * cfg.batch_size, cfg.batch_size, char_vocab())
            assert ids.dtype == torch.long and torch.equal(ids, want[0]) and torch.equal(mask, want[1])
    in_line = train_at(tiny_config(tmp_path / "a"))
    workers = train_at(cfg)
    assert workers.losses == in_line.losses


def test_resume_refuses_a_changed_config(tmp_path, capsys):
    import yaml

    from superpose.cli import main

    def deeper(cfg: TrainConfig) -> TrainConfig:
        return cfg.model_copy(update={"model": cfg.model.model_copy(update={"n_layers": 2})})

    run, _ = run_train(tiny_config(tmp_path / "r", stop_at=3), root=tmp_path, progress=False)
    with pytest.raises(ConfigError, match=r"lr \(0.01 -> 0.005\) differs from the run's"):
        run_train(tiny_config(tmp_path / "r", lr=5e-3), resume=run.path, progress=False)
    before = {p: p.read_bytes() for p in run.path.rglob("*") if p.is_file()}
    code = main(["train", "--resume", str(run.path), "--seed", "8", "--no-progress"])  # not a speed-only field
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith(f"error: --resume {run.path}: seed (7 -> 8) differs from "
                                                                 "the run's; a resume may change only "), err
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(deeper(tiny_config(tmp_path / "r")).model_dump(mode="json")))
    code = main(["train", str(tmp_path / "r.yaml"), "--resume", str(run.path), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "model.n_layers (1 -> 2) differs from the run's" in err and err.count("\n") == 1, err
    assert {p: p.read_bytes() for p in run.path.rglob("*") if p.is_file()} == before  # nothing written
    assert read_status(run.path)["status"] == "stopped"
    code = main(["train", "--resume", str(run.path), "--no-progress"])  # the same recipe goes on
    assert code == 0 and read_status(run.path)["status"] == "complete"


@pytest.mark.parametrize("architecture, hf_class", [("llama", "LlamaForCausalLM"), ("gpt2", "GPT2LMHeadModel")])
def test_trained_folder_loads_with_load_model(tmp_path, architecture, hf_class):
    from superpose.backends import load_backend
    from superpose.naive import NaiveScorer

    result = train_at(tiny_config(tmp_path / "m", architecture=architecture))
    lm = load_backend(str(result.model_dir))
    assert lm.info["architecture"] == hf_class and lm.max_context == 96
    assert result.losses[-1] < result.losses[0]
    fast = lm.score_one("3>5\n4>", ["6", "7x"])
    slow = NaiveScorer(lm).score("3>5\n4>", ["6", "7x"])
    for f, s in zip(fast, slow):
        assert not f.straddles and f.logprob == pytest.approx(s.logprob, abs=1e-4)


# --- configs ---------------------------------------------------------------------------------------

def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_bad_config_errors_name_the_field(tmp_path):
    with pytest.raises(ConfigError, match=r"n_examples"):
        load_train_config(_write(tmp_path, "tasks: [plus_1]\nn_examples: 0\n"))
    with pytest.raises(ConfigError, match=r"lr_max: unknown field"):
        load_train_config(_write(tmp_path, "tasks: [plus_1]\nlr_max: 0.1\n"))
    with pytest.raises(ConfigError, match=r"model\.n_heads"):
        load_train_config(_write(tmp_path, "tasks: [plus_1]\nmodel: {n_heads: 0}\n"))
    with pytest.raises(ConfigError, match=r"tasks.*plus_42"):
        load_train_config(_write(tmp_path, "tasks: [plus_42]\n"))
    with pytest.raises(ConfigError, match=r"max_position_embeddings"):
        load_train_config(_write(tmp_path, "tasks: [ret_1]\nn_examples: 100\nmodel: {max_position_embeddings: 512}\n"))
    with pytest.raises(ConfigError, match=r"autocast"):
        load_train_config(_write(tmp_path, "tasks: [plus_1]\nautocast: fp8\n"))


def test_shipped_recipes_validate():
    root = Path(__file__).resolve().parents[1] / "configs/scratch"
    cfgs = {p.stem: load_train_config(p) for p in root.glob("**/*.yaml")}  # attempts/ too
    assert {"plus_cpu", "plus_paper", "ret_paper"} <= set(cfgs)
    paper = cfgs["ret_paper"]
    assert (paper.model.n_layers, paper.model.d_model, paper.model.n_heads, paper.model.d_mlp) == (6, 384, 6, 1536)
    assert (paper.n_examples, paper.lr, paper.steps, paper.batch_size) == (100, 5e-4, 5000, 400)
    assert cfgs["plus_paper"].batch_size == 800 and cfgs["plus_cpu"].tasks == [f"plus_{k}" for k in range(10)]


# --- issue #12: varied lengths, the trained length, init_from ---------------------------------------

def test_varied_lengths_and_the_recorded_training_length(tmp_path):
    from superpose.scratch.recipe import trained_length

    tasks = [get_task("plus_3")]
    sizes = {len(make_sequence(tasks, 12, sequence_rng(0, i), min_examples=4).text.split("\n")) - 2
             for i in range(200)}
    assert sizes == set(range(4, 13))  # examples per sequence, the query excluded
    fixed = make_sequence(tasks, 12, sequence_rng(0, 5))  # no min_examples: the same stream as before
    assert fixed.text == make_sequence(tasks, 12, sequence_rng(0, 5), min_examples=None).text
    cfg = tiny_config(tmp_path / "v", min_examples=2, tasks=["plus_1"])
    assert trained_length(cfg) == 6 * 4  # 5 examples + the query, 4 characters each
    result = train_at(cfg)

    info = json.loads((result.model_dir / "training.json").read_text())
    assert info["trained_sequence_length"] == 24 and info["config"]["min_examples"] == 2

    status = json.loads((result.out_dir / "status.json").read_text())
    assert (status["kind"], status["status"]) == ("train", "complete")
    assert read_run_view(result.out_dir).kind == "train" and read_run_view(result.out_dir).status == "complete"
    (result.out_dir / "status.json").unlink()  # a training folder of an older version
    view = read_run_view(result.out_dir)
    assert (view.kind, view.status) == ("train", "complete") and view.figures
    from superpose.models.metadata import trained_sequence_length

    assert trained_sequence_length(CHECKPOINT) == 84  # the shipped checkpoint: 21 lines x 4


def test_init_from_copies_weights_and_checks_the_shape(tmp_path):
    from safetensors.torch import load_file

    from superpose.scratch.checkpoint import load_init

    shipped = load_file(CHECKPOINT / "model.safetensors")
    cfg = load_train_config(Path(__file__).resolve().parents[1] / "configs/scratch/plus_cpu_long.yaml")
    model = build_model(cfg.model, torch.Generator().manual_seed(0))
    load_init(model, cfg.init_from, torch.device("cpu"))
    assert all(torch.equal(p, shipped[n]) for n, p in model.state_dict().items())
    with pytest.raises(ConfigError, match="init_from: the weights of scratch-plus-cpu do not fit"):
        run_train(tiny_config(tmp_path / "i", init_from="scratch-plus-cpu"), root=tmp_path / "runs", progress=False)
    with pytest.raises(ConfigError, match=r"init_from: .*no_such_folder"):
        run_train(tiny_config(tmp_path / "j", init_from=str(tmp_path / "no_such_folder")), root=tmp_path / "runs",
                  progress=False)
    assert not (tmp_path / "runs").exists()  # checked before the run folder exists
    with pytest.raises(ConfigError, match=r"min_examples=9 exceeds n_examples=5"):
        load_train_config(_write(tmp_path, "tasks: [plus_1]\nn_examples: 5\nmin_examples: 9\n"))


def test_loss_by_example_falls_only_for_a_model_that_learns_in_context():
    from transformers import AutoModelForCausalLM

    from superpose.scratch.diagnose import loss_by_example

    plus = [f"plus_{k}" for k in range(10)]
    trained = loss_by_example(AutoModelForCausalLM.from_pretrained(CHECKPOINT), plus, 20, n_sequences=8)
    assert len(trained) == 21
    assert trained[0] > 2.0  # the first answer: k unknown, a guess among 10 digits (ln 10 = 2.30)
    assert max(trained[2:]) < 0.05  # k read off the examples before
    untrained = build_model(ModelConfig(n_layers=1, d_model=16, n_heads=2, d_mlp=32, max_position_embeddings=96),
                            torch.Generator().manual_seed(0))
    flat = loss_by_example(untrained, plus, 20, n_sequences=8)
    assert min(flat) > 4.0 and max(flat) - min(flat) < 0.2  # ≈ ln(vocabulary) everywhere


def test_plot_training_draws_runs_and_refuses_a_folder_without_a_log(tmp_path):
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "scripts" / "plot_training.py"
    runs = [train_at(tiny_config(tmp_path / name, seed=seed)).out_dir for name, seed in (("a", 1), ("b", 2))]
    out = tmp_path / "curves.png"
    done = subprocess.run([sys.executable, str(script), *map(str, runs), "--smooth", "2", "--color-by", "seed",
                           "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 0 and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = subprocess.run([sys.executable, str(script), str(runs[0]), str(tmp_path), "--out", str(tmp_path / "x.png")],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.strip() == f"error: {tmp_path}: not a training run folder (no records.jsonl or log.jsonl)"
    assert not (tmp_path / "x.png").exists()  # nothing drawn


def test_stop_at_is_the_limit_of_one_call(tmp_path, capsys):
    """`--stop-at` checkpoints and stops; the resume does not inherit it and runs to the recipe's end,
    and config.yaml says what each call ran with."""
    from superpose.cli import main

    (tmp_path / "t.yaml").write_text(yaml.safe_dump(tiny_config(tmp_path / "unused").model_dump(mode="json")))
    assert main(["train", str(tmp_path / "t.yaml"), "--out", str(tmp_path / "runs"), "--stop-at", "3",
                 "--no-progress"]) == 0
    (folder,) = (tmp_path / "runs").iterdir()
    assert (read_status(folder)["status"], read_status(folder)["step"]) == ("stopped", 3)
    assert yaml.safe_load((folder / "config.yaml").read_text())["config"]["stop_at"] == 3
    assert main(["train", "--resume", str(folder), "--no-progress"]) == 0
    assert read_status(folder)["status"] == "complete" and (folder / "records.jsonl").read_text().count("\n") == 6
    assert yaml.safe_load((folder / "config.yaml").read_text())["config"]["stop_at"] is None
    assert json.loads((folder / "summary.json").read_text())["steps"] == 6
