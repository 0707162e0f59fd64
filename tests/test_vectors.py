"""Task vectors on the real test model (SmolLM2-135M): hooks, early stop, patching, interpolation, CLI."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from superpose.errors import ConfigError, SuperposeError
from superpose.backends import encode_continuation, encode_prompt
from superpose.vectors import (Patch, VectorStore, capture_residuals, extract_prompts, find_decoder_layers,
                               interpolation_vectors, make_group, patched_logprobs, patching, zero_shot_queries)
from superpose.vectors.config import vectors_config_from_dict
from superpose.backends.residual import _hidden, _replace_hidden
from superpose.vectors.interpolate import interpolate_query, monotonicity
from superpose.vectors.project import affine_coordinates, fit_projection
from superpose.vectors.steer import steering_vectors

QUERY = "57@23="
ANSWERS = ["57", "23", "80"]
ONE_SHOT_OP2 = "12@34=34\n91@58=58\n40@16=16\n57@23="


def _ids(lm, text: str) -> torch.Tensor:
    return torch.tensor([encode_prompt(lm.tokenizer, text)])


# -- hooks -----------------------------------------------------------------------------------------

def test_finds_decoder_layers(smollm):
    layers = find_decoder_layers(smollm.model)
    assert len(layers) == smollm.model.config.num_hidden_layers == 30


def test_generic_layer_search_and_tuple_outputs():
    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.config = SimpleNamespace(num_hidden_layers=3)
            self.heads = nn.ModuleList([nn.Linear(2, 2)])  # a shorter list that must not be picked
            self.blocks = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])

    odd = Odd()
    assert find_decoder_layers(odd) is odd.blocks
    h = torch.zeros(1, 2, 4)
    assert _hidden((h, "cache")) is h
    new = torch.ones(1, 2, 4)
    out = _replace_hidden((h, "cache"), new)
    assert isinstance(out, tuple) and out[0] is new and out[1] == "cache"
    assert _replace_hidden(h, new) is new


def test_early_stop_equals_full_forward_capture(smollm):
    model = smollm.model
    texts = ["12@34=12\n56@78=56\n91@23=", QUERY]  # different lengths: right padding in one batch
    enc = [encode_prompt(smollm.tokenizer, t) for t in texts]
    width = max(map(len, enc))
    ids = torch.tensor([e + [0] * (width - len(e)) for e in enc])
    last = [len(e) - 1 for e in enc]

    later_calls = []
    handle = find_decoder_layers(model)[12].register_forward_hook(lambda *a: later_calls.append(1))
    try:
        early = capture_residuals(model, ids, last, [3, 7])
    finally:
        handle.remove()
    assert later_calls == []  # nothing above layer 7 ran
    full = capture_residuals(model, ids, last, [3, 7], stop_early=False)
    for layer in (3, 7):
        assert torch.equal(early[layer], full[layer])
    # Against Hugging Face's own hidden states, one unpadded prompt at a time (hidden_states[l + 1]).
    for row, e in enumerate(enc):
        with torch.inference_mode():
            hs = model(input_ids=torch.tensor([e]), output_hidden_states=True).hidden_states
        for layer in (3, 7):
            torch.testing.assert_close(early[layer][row], hs[layer + 1][0, -1].float(), atol=1e-4, rtol=1e-4)
    with pytest.raises(SuperposeError, match="out of range"):
        capture_residuals(model, ids, last, [30])


def _logits(lm, text: str, patches) -> torch.Tensor:
    with torch.inference_mode(), patching(lm.model, patches) as fired:
        logits = lm.model(input_ids=_ids(lm, text)).logits[0].float()  # [seq, vocab]
    return logits, fired


def test_patching_own_activation_leaves_logits_unchanged(smollm):
    layer = 9
    ids = _ids(smollm, QUERY)
    own = capture_residuals(smollm.model, ids, [ids.shape[1] - 1], [layer])[layer]  # [1, d_model]
    clean, _ = _logits(smollm, QUERY, [])
    patched, fired = _logits(smollm, QUERY, [Patch(layer=layer, vectors=own)])
    assert fired == [1]
    torch.testing.assert_close(patched, clean, atol=1e-5, rtol=0)
    # the same through the patched scorer (prompt pass patched, answers on the cache)
    np.testing.assert_allclose(patched_logprobs(smollm, QUERY, ANSWERS, 1, [Patch(layer, own)]),
                               patched_logprobs(smollm, QUERY, ANSWERS, 1, []), atol=1e-5)


def test_patching_another_tasks_vector_changes_logits(smollm):
    layer = 9
    ids = _ids(smollm, ONE_SHOT_OP2)
    other = capture_residuals(smollm.model, ids, [ids.shape[1] - 1], [layer])[layer]  # [1, d_model]
    clean, _ = _logits(smollm, QUERY, [])
    patched, fired = _logits(smollm, QUERY, [Patch(layer=layer, vectors=other)])
    assert fired == [1]
    assert (patched[-1] - clean[-1]).abs().max() > 1.0  # the separator's next-token logits moved
    torch.testing.assert_close(patched[:-1], clean[:-1], atol=1e-5, rtol=0)  # earlier positions untouched
    # and it moves the answer the way the few-shot prompt does: toward copying the second operand
    p_clean = patched_logprobs(smollm, QUERY, ANSWERS, 1, [])[0]
    p_patch = patched_logprobs(smollm, QUERY, ANSWERS, 1, [Patch(layer, other)])[0]
    assert p_patch[1] - p_patch[0] > p_clean[1] - p_clean[0]


def test_only_the_named_rows_are_patched(smollm):
    ids = _ids(smollm, ONE_SHOT_OP2)
    other = capture_residuals(smollm.model, ids, [ids.shape[1] - 1], [5])[5]
    lp = patched_logprobs(smollm, QUERY, ANSWERS, 3, [Patch(layer=5, vectors=other, rows=[1])])
    clean = patched_logprobs(smollm, QUERY, ANSWERS, 1, [])[0]
    np.testing.assert_allclose(lp[0], clean, atol=1e-5)
    np.testing.assert_allclose(lp[2], clean, atol=1e-5)
    assert np.abs(lp[1] - clean).max() > 0.1


def test_patched_cache_scoring_equals_full_pass_with_patch(smollm):
    """Patch in the prompt pass, then score on the cache == one pass over prompt+answer patched at the separator."""
    layer = 6
    ids = _ids(smollm, ONE_SHOT_OP2)
    vec = capture_residuals(smollm.model, ids, [ids.shape[1] - 1], [layer])[layer][0]  # [d_model]
    prompt_ids = encode_prompt(smollm.tokenizer, QUERY)
    n = len(prompt_ids)
    got = patched_logprobs(smollm, QUERY, ["5723", "80"], 1, [Patch(layer, vec)])[0]
    for j, answer in enumerate(["5723", "80"]):
        cont, _ = encode_continuation(smollm.tokenizer, QUERY, prompt_ids, answer)
        assert len(cont) >= 2  # multi-token: later tokens see the patched separator only through attention
        with torch.inference_mode(), patching(smollm.model, [Patch(layer, vec, position=n - 1)]):
            logits = smollm.model(input_ids=torch.tensor([prompt_ids + cont])).logits[0].float()
        lp = torch.log_softmax(logits[n - 1: n - 1 + len(cont)], dim=-1)
        want = lp.gather(1, torch.tensor(cont)[:, None]).sum().item()
        assert got[j] == pytest.approx(want, abs=1e-4)


def test_unpatched_scores_match_shared_prefix_scorer(smollm):
    lp = patched_logprobs(smollm, ONE_SHOT_OP2, ANSWERS, 2, [])
    want = [s.logprob for s in smollm.score_one(ONE_SHOT_OP2, ANSWERS)]
    np.testing.assert_allclose(lp, np.array([want, want]), atol=1e-4)


# -- extraction, interpolation ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def pure_vectors(smollm):
    """Mean separator states of 3 short single-task prompts each, at layers 4 and 8: {task: [2, d_model]}."""
    from superpose.vectors.extract import group_prompts

    out = {}
    for t in ("copy_op1", "copy_op2"):
        prompts = group_prompts(make_group([t]), 3, 4, seed=0)
        out[t] = extract_prompts(smollm, [p.text for p in prompts], [8, 4], batch_size=2).mean(dim=0)
    return out


def test_extraction_batches_equal_single_prompts(smollm):
    texts = ["12@34=12\n91@23=", "5@6=5\n70@81=70\n3@4="]
    batched = extract_prompts(smollm, texts, [2, 5], batch_size=2)  # [2, 2, d_model]
    for i, t in enumerate(texts):
        single = extract_prompts(smollm, [t], [2, 5], batch_size=1)[0]
        torch.testing.assert_close(batched[i], single, atol=1e-4, rtol=1e-4)


def test_interpolation_endpoints_equal_pure_vectors(smollm, pure_vectors):
    v1, v2 = pure_vectors["copy_op1"][1], pure_vectors["copy_op2"][1]  # layer 8
    q = zero_shot_queries(["copy_op1", "copy_op2"], 1, seed=3)[0]
    answers = [q.answers["copy_op1"], q.answers["copy_op2"]]
    vectors = interpolation_vectors(v1, v2, [0.0, 0.5, 1.0])
    assert torch.equal(vectors[0], v1) and torch.equal(vectors[2], v2)
    grid = interpolate_query(smollm, q, answers, 8, vectors)  # [3, 2], one batched pass
    at0 = patched_logprobs(smollm, q.text, answers, 1, [Patch(8, v1)])[0]
    at1 = patched_logprobs(smollm, q.text, answers, 1, [Patch(8, v2)])[0]
    np.testing.assert_allclose(grid[0], at0, atol=1e-4)
    np.testing.assert_allclose(grid[2], at1, atol=1e-4)
    assert np.abs(at0 - at1).max() > 5e-3  # the two vectors do differ in effect
    # each row got its own vector: the middle row matches neither end
    assert min(np.abs(grid[1] - grid[0]).max(), np.abs(grid[1] - grid[2]).max()) > 1e-4


def test_vector_store_roundtrip(tmp_path, pure_vectors):
    store = VectorStore(tmp_path / "v.safetensors")
    g = make_group(["copy_op1"])
    states = torch.stack([pure_vectors["copy_op1"]] * 2)  # [2 prompts, 2 layers, d_model]
    store.add(g, states, [4, 8])
    again = VectorStore(tmp_path / "v.safetensors")
    assert again.layers == [4, 8] and again.groups["copy_op1"] == g
    torch.testing.assert_close(again.mean("copy_op1", 8), pure_vectors["copy_op1"][1])
    with pytest.raises(SuperposeError, match="layer 3"):
        again.states("copy_op1", 3)


# -- pure functions ----------------------------------------------------------------------------------

def test_affine_coordinates_and_projection():
    rng = np.random.default_rng(0)
    a, b, c = rng.normal(size=(3, 16))
    coords, resid = affine_coordinates(0.25 * a + 0.75 * b, np.stack([a, b]))
    np.testing.assert_allclose(coords, [0.25, 0.75], atol=1e-9)
    assert resid < 1e-9
    coords, _ = affine_coordinates((a + b + c) / 3, np.stack([a, b, c]))
    np.testing.assert_allclose(coords, [1 / 3] * 3, atol=1e-9)
    # two well separated clusters: LDA's first axis separates them, and a midpoint projects between
    x = np.concatenate([a + 0.1 * rng.normal(size=(20, 16)), b + 0.1 * rng.normal(size=(20, 16))])
    proj = fit_projection(x, [0] * 20 + [1] * 20, "lda")
    xy = proj.transform(x)
    assert xy.shape == (40, 2)
    ca, cb = xy[:20].mean(0), xy[20:].mean(0)
    t, _ = affine_coordinates(proj.transform(((a + b) / 2)[None])[0], np.stack([ca, cb]))
    assert 0.3 < t[1] < 0.7
    assert fit_projection(x, [0] * 20 + [1] * 20, "pca").transform(x).shape == (40, 2)


def test_steering_vectors_and_monotonicity():
    d = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    v = steering_vectors(d, [0, 0.5, 2])
    assert v.shape == (6, 2)
    torch.testing.assert_close(v[4], torch.tensor([0.0, 1.0]))  # target 1, α = 0.5
    assert monotonicity([0.9, 0.5, 0.5, 0.1])["monotone"]
    m = monotonicity([0.9, 0.5, 0.6, 0.1])
    assert not m["monotone"] and m["steps_against"] == 1 and m["direction"] == "decreasing"


def test_config_errors_name_the_field():
    base = {"tasks": ["copy_op1", "copy_op2"]}
    with pytest.raises(ConfigError, match="interpolate.pair"):
        vectors_config_from_dict({**base, "interpolate": {"pair": ["copy_op1", "capital"]}}, "x.yaml")
    with pytest.raises(ConfigError, match="steer.mixture"):
        vectors_config_from_dict({**base, "steer": {"mixture": "nope"}}, "x.yaml")
    with pytest.raises(ConfigError, match="extract.n_prompts"):
        vectors_config_from_dict({**base, "extract": {"n_prompts": 0}}, "x.yaml")
    with pytest.raises(ConfigError, match="tasks"):
        vectors_config_from_dict({"tasks": ["copy_op1", "capital"]}, "x.yaml")
    cfg = vectors_config_from_dict(base, "x.yaml")
    assert [g.name for g in cfg.groups()] == ["copy_op1", "copy_op2", "copy_op1=50+copy_op2=50"]


# -- the whole experiment through the CLI -------------------------------------------------------------

def test_cli_runs_every_step_and_resumes(tmp_path):
    import yaml

    import superpose.cli as cli

    config = {
        "name": "t", "model": "smollm2-135m", "tasks": ["copy_op1", "copy_op2"],
        "extract": {"n_prompts": 2, "n_examples": 3, "layers": [2, 4, 6], "batch_size": 2},
        "layers": {"n_queries": 1},
        "interpolate": {"n_points": 3, "n_queries": 1, "n_prompts": 1, "real_lambdas": [0, 1]},
        "steer": {"alphas": [0, 1], "n_prompts": 1},
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    assert cli.main(["vectors", str(path), "--out", str(tmp_path / "runs")]) == 0
    run = next((tmp_path / "runs").iterdir())
    assert json.loads((run / "status.json").read_text())["status"] == "complete"
    for f in ("vectors.safetensors", "layers.json", "projection.json", "interpolation.json", "steering.json",
              "summary.md", "figures/vectors_layers.png", "figures/vectors_projection.png",
              "figures/vectors_interpolation.png", "figures/vectors_steering.png"):
        assert (run / f).is_file(), f
    layers = json.loads((run / "layers.json").read_text())
    assert layers["layers"] == [2, 4, 6] and layers["chosen_layer"] in (2, 4, 6)
    inter = json.loads((run / "interpolation.json").read_text())
    assert inter["lambdas"] == [0.0, 0.5, 1.0] and len(inter["p_patched"]["copy_op1"]) == 3
    steer = json.loads((run / "steering.json").read_text())
    assert steer["p"]["copy_op1"]["copy_op1"][0] == steer["p"]["copy_op2"]["copy_op1"][0]  # α = 0 is no change
    # re-running one step on the run folder reuses the stored vectors
    before = (run / "vectors.safetensors").stat().st_mtime_ns
    assert cli.main(["vectors", "--resume", str(run), "--step", "project", "--layer", "4"]) == 0
    assert (run / "vectors.safetensors").stat().st_mtime_ns == before
    assert json.loads((run / "projection.json").read_text())["layer"] == 4
    assert cli.main(["vectors", "--resume", str(run), "--step", "project", "--layer", "5"]) == 2  # not extracted: a clear error
