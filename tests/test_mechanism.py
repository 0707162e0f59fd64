"""The mechanism run on the real test model: lens, leave-one-out attribution, head ablation, the command."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from superpose.backends import ScoreRequest
from superpose.backends.heads import ablating_heads, out_projections
from superpose.mechanism.attribution import attribution_record, leave_one_out_texts, task_matrix
from superpose.mechanism.heads import induction_scores
from superpose.mechanism.lens import lens_records
from superpose.prompts import MixtureSpec, build_prompts

COPY = ["copy_op1", "copy_op2", "op1_plus_op2"]


@pytest.fixture(scope="module")
def prompts():
    spec = MixtureSpec(tasks=COPY, n_examples=6)
    return spec, build_prompts(spec, 2, 0)


def test_lens_at_last_layer_equals_exact_first_token_logprob(smollm, prompts):
    _, ps = prompts
    records = lens_records(smollm, ps)
    for p, r in zip(ps, records):
        exact = smollm.score_one(p.text, p.answers)  # the plain score path, its own pass
        assert len(r["lens"][0]) == smollm.n_layers
        for k, s in enumerate(exact):
            assert abs(r["lens"][k][-1] - s.token_logprobs[0]) < 1e-4
            assert abs(r["logprob"][k] - s.logprob) < 1e-4
        # a middle layer: the lens is the final norm and unembedding of that layer's captured residual
        ids = smollm.tokenizer(p.text).input_ids
        h = smollm.capture_residuals([ids], [len(ids) - 1], [10])[10]  # [1, d_model]
        with torch.inference_mode():
            manual = torch.log_softmax(smollm.model.lm_head(smollm.model.model.norm(h)).float(), -1)[0]
        first = [s.token_ids[0] for s in exact]
        assert np.allclose([r["lens"][k][10] for k in range(3)], manual[first].tolist(), atol=1e-4)


def test_packed_answers_equal_exact_scoring_token_by_token(smollm, prompts):
    """The lens's one pass packs every answer after its prompt under a tree mask: each answer token's
    log-prob equals Backend.score's (prompt pass + cache fork), for prompts of different lengths in one
    padded batch and answers of 1 to 7 tokens, and the residual kept is the prompt's last token's."""
    _, ps = prompts
    requests = [ScoreRequest(ps[0].text, ps[0].answers),
                ScoreRequest("12@34=", ["12", "46", "1234567", " twelve thirty"]),
                ScoreRequest("The capital of France is", [" Paris", " the city of light", " P"])]
    before = smollm.batch_size
    smollm.batch_size = 3  # one packed pass, left-padded
    try:
        packed, resid = smollm.score_with_residuals(requests, [0, smollm.n_layers - 1])
    finally:
        smollm.batch_size = before
    exact = smollm.score(requests)
    assert max(len(c.token_ids) for s in exact for c in s) >= 5
    for p_scores, e_scores in zip(packed, exact):
        for p, e in zip(p_scores, e_scores):
            assert p.token_ids == e.token_ids
            assert np.allclose(p.token_logprobs, e.token_logprobs, atol=1e-4)
            assert abs(p.logprob - e.logprob) < 1e-4
    for row, r in enumerate(requests):
        ids = smollm.tokenizer(r.prompt).input_ids
        alone = smollm.capture_residuals([ids], [len(ids) - 1], [0, smollm.n_layers - 1])
        for layer in alone:
            assert torch.allclose(resid[layer][row], alone[layer][0], rtol=1e-4, atol=1e-3)  # batch float noise


def test_leave_one_out_equals_scoring_the_edited_prompt(smollm, prompts):
    spec, ps = prompts
    p = ps[0]
    rec = attribution_record(smollm, p, spec)
    lines = p.text.split("\n")
    full = [s.logprob for s in smollm.score_one(p.text, p.answers)]
    for i in (0, 3, len(p.example_tasks) - 1):
        edited = "\n".join(lines[:i] + lines[i + 1:])
        assert leave_one_out_texts(p, spec)[i] == edited
        removed = [s.logprob for s in smollm.score_one(edited, p.answers)]
        assert np.allclose(rec["effect"][i], np.subtract(full, removed), atol=1e-5)


def test_kxk_matrix_of_a_one_task_prompt_has_the_expected_signs(smollm):
    spec = MixtureSpec(tasks=COPY, weights=[1.0, 0.0, 0.0], n_examples=5)
    mats = np.array([task_matrix(attribution_record(smollm, p, spec)) for p in build_prompts(spec, 3, 1)])
    m = mats.mean(axis=0)  # [K, K]
    assert np.isnan(m[1:]).all()  # no examples of tasks 1 and 2: no rows
    assert m[0, 0] > 0  # examples of copy_op1 raise its answer
    assert m[0, 0] > m[0, 1] and m[0, 0] > m[0, 2]
    assert (m[0, 1:] < 0).all()  # ... and lower the answers of the tasks absent from the prompt


def test_ablating_no_head_changes_nothing(smollm, prompts):
    _, ps = prompts
    p = ps[0]
    means = smollm.head_means([q.text for q in ps])
    plain = [s.logprob for s in smollm.score_one(p.text, p.answers)]
    rows = smollm.score_ablated(ScoreRequest(p.text, p.answers), [[]], means, rows_per_pass=1)
    assert np.allclose([s.logprob for s in rows[0]], plain, atol=1e-6, rtol=0)


def test_head_ablation_equals_a_manual_recomputation(smollm, prompts):
    """Hooked: the head's slice of o_proj's input replaced by its mean. Manual: o_proj's output corrected by
    W[:, slice] @ (mean - x[slice]), which is the same by linearity, on one full pass over prompt + answer."""
    _, ps = prompts
    p = ps[1]
    layer, head = 4, 2
    means = smollm.head_means([q.text for q in ps])  # [layers, heads, head_dim]
    dim = means.shape[2]
    proj = out_projections(smollm.model)[layer]
    answer = p.answers[0]
    scored = smollm.score_ablated(ScoreRequest(p.text, [answer]), [[(layer, head)]], means, rows_per_pass=1)[0][0]
    ids = smollm.tokenizer(p.text).input_ids + scored.token_ids
    x = torch.tensor([ids])

    def manual(module, args, output):
        slice_ = args[0][..., head * dim:(head + 1) * dim]  # [1, seq, head_dim]
        return output + (means[layer, head] - slice_) @ module.weight[:, head * dim:(head + 1) * dim].T

    with torch.inference_mode():
        plain = smollm.model(input_ids=x).logits[0].float()
        with ablating_heads(smollm.model, means, [[(layer, head)]]):
            hooked = smollm.model(input_ids=x).logits[0].float()
        handle = proj.register_forward_hook(manual)
        try:
            recomputed = smollm.model(input_ids=x).logits[0].float()
        finally:
            handle.remove()
    assert (hooked - plain).abs().max() > 1e-3  # the head matters to these logits
    assert torch.allclose(hooked, recomputed, atol=1e-4)
    n = len(smollm.tokenizer(p.text).input_ids)
    lp = torch.log_softmax(hooked, -1)
    manual_lp = sum(lp[n - 1 + j, t].item() for j, t in enumerate(scored.token_ids))
    assert abs(scored.logprob - manual_lp) < 1e-4  # the cached, batched score path agrees


def test_induction_scores_find_induction_heads(smollm):
    scores = induction_scores(smollm, np.random.default_rng(0), length=20, sequences=2)
    layers, heads, _ = smollm.head_shape
    assert scores.shape == (layers, heads)
    assert ((scores >= 0) & (scores <= 1)).all()
    assert scores.max() > 0.5 and np.median(scores) < 0.2  # a few heads copy, most do not


@pytest.mark.parametrize("model", ["vllm:smollm2-135m", "openai:gpt-3.5-turbo-instruct"])
def test_vllm_and_api_models_are_refused_before_a_folder(tmp_path, model):
    script = ("import sys; import superpose.cli as c; rc = c.main(sys.argv[1:]); "
              "print('vllm loaded' if 'vllm' in sys.modules else 'vllm not loaded'); sys.exit(rc)")
    out = tmp_path / "runs"
    r = subprocess.run([sys.executable, "-c", script, "mechanism", "configs/paper/copy.yaml", "--model", model,
                        "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and model.split(":")[0] in lines[0], r.stderr
    assert "vllm not loaded" in r.stdout
    assert not out.exists() or not any(out.iterdir())


def test_command_writes_a_run_folder_resumes_and_reports(tmp_path):
    import superpose.cli as cli
    from superpose.report.html import write_report

    config = {"name": "t", "models": ["smollm2-135m"], "n_prompts": 2, "seed": 0,
              "mixtures": [{"name": "copy", "tasks": COPY, "n_examples": 4}],
              "mechanism": {"batch_size": 2, "attribution": {"n_prompts": 2, "bins": 2},
                            "heads": {"n_prompts": 1, "ablate_top": [2], "top": 2}}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    assert cli.main(["mechanism", str(path), "--out", str(tmp_path / "runs"), "--no-progress"]) == 0
    run = next((tmp_path / "runs").iterdir())
    status = json.loads((run / "status.json").read_text())
    assert status["kind"] == "mechanism" and status["status"] == "complete"
    summary = json.loads((run / "summary.json").read_text())
    s = summary["models"]["smollm2-135m"]["copy"]
    assert s["lens"]["n_prompts"] == 2 and s["attribution"]["n_prompts"] == 2 and s["heads"]["n_prompts"] == 1
    for name in ("lens", "attribution_matrix", "attribution_recency", "attribution_prompt", "heads"):
        assert (run / "figures" / f"{name}_smollm2-135m_0.png").is_file(), name
    # resume after losing the last records: the same summary
    records = (run / "records.jsonl").read_text().splitlines()
    (run / "records.jsonl").write_text("\n".join(records[:3]) + "\n")
    (run / "summary.json").unlink()
    assert cli.main(["mechanism", "--resume", str(run), "--no-progress"]) == 0
    again = json.loads((run / "summary.json").read_text())
    assert again == summary
    page = write_report([run], tmp_path / "r.html").read_text()
    assert "Leave-one-out attribution" in page and page.count("data:image/png") >= 5
