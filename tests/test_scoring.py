"""The shared-prefix scorer against the naive oracle, on the real SmolLM2-135M."""

import math

import pytest
import torch

from superpose.errors import PromptTooLong, SuperposeError
from superpose.prompts import MixtureSpec, build_prompt
from superpose.backends import ScoreRequest, encode_continuation, encode_prompt
from superpose.naive import NaiveScorer

FAMILIES = {
    "copy": ["copy_op1", "copy_op2", "op1_plus_op2"],
    "sum_languages": ["sum_numeral", "sum_english", "sum_french", "sum_spanish"],
    "country": ["capital", "continent", "country_upper"],
    "letters": ["first_letter", "first_letter_upper", "last_letter", "last_letter_upper"],
    "maps": ["identity", "negate", "plus_one", "minus_one", "double", "square"],
}


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("terminator", ["", "\n"])
def test_shared_prefix_equals_naive_oracle(smollm, family, terminator):
    spec = MixtureSpec(tasks=FAMILIES[family], n_examples=24)
    naive = NaiveScorer(smollm)
    for index in range(2):
        p = build_prompt(spec, seed=0, index=index)
        answers = [a + terminator for a in p.answers]
        fast, slow = smollm.score_one(p.text, answers), naive.score(p.text, answers)
        for f, s in zip(fast, slow):
            assert f.token_ids == s.token_ids and len(f.token_ids) >= 1
            assert abs(f.prob - s.prob) < 1e-4
            assert f.logprob == pytest.approx(s.logprob, abs=1e-3)


def test_multi_token_answers_use_the_chain_rule(smollm):
    """log P("173") = log P("1") + log P("7" | "1") + log P("3" | "17"), each from its own context."""
    prompt = "86+87->173\n12+45->57\n86+87->"
    (score,) = smollm.score_one(prompt, ["173"])
    ids = encode_prompt(smollm.tokenizer, prompt)
    assert len(score.token_ids) == 3  # digits are single tokens in SmolLM2
    total = 0.0
    with torch.no_grad():
        for t in score.token_ids:
            logits = smollm.model(input_ids=torch.tensor([ids])).logits[0, -1]
            total += torch.log_softmax(logits.float(), -1)[t].item()
            ids = ids + [t]
    assert score.logprob == pytest.approx(total, abs=1e-4)


def test_token_straddling_the_boundary_falls_back_to_separate_encoding(smollm):
    prompt_ids = encode_prompt(smollm.tokenizer, "hello wor")
    ids, straddles = encode_continuation(smollm.tokenizer, "hello wor", prompt_ids, "ld")
    assert straddles  # "hello world" merges " wor" + "ld" into " world"
    assert ids == smollm.tokenizer("ld", add_special_tokens=False).input_ids
    fast = smollm.score_one("hello wor", ["ld", "m"])
    slow = NaiveScorer(smollm).score("hello wor", ["ld", "m"])
    assert fast[0].straddles and fast[0].prob == pytest.approx(slow[0].prob, abs=1e-5)


def test_answer_alone_is_at_least_answer_plus_newline(smollm):
    p = build_prompt(MixtureSpec(tasks=FAMILIES["copy"], n_examples=20), 0, 0)
    alone = smollm.score_one(p.text, p.answers)
    with_nl = smollm.score_one(p.text, [a + "\n" for a in p.answers])
    for a, b in zip(alone, with_nl):
        assert b.token_ids[: len(a.token_ids)] == a.token_ids
        assert b.logprob < a.logprob <= 0.0


def test_prompt_longer_than_the_context_is_refused_before_running(smollm):
    spec = MixtureSpec(tasks=["copy_op1", "copy_op2"], n_examples=1500)  # ~12k tokens > 8192
    p = build_prompt(spec, 0, 0)
    with pytest.raises(PromptTooLong, match=r"does not fit in the context of model 'smollm2-135m' \(8192 tokens\)"):
        smollm.score_one(p.text, p.answers)


def test_empty_inputs_are_refused(smollm):
    with pytest.raises(SuperposeError, match="empty continuation"):
        smollm.score_one("1@2=", [""])
    with pytest.raises(SuperposeError, match="no continuations"):
        smollm.score_one("1@2=", [])


def test_probabilities_are_a_distribution_over_single_tokens(smollm):
    digits = [str(d) for d in range(10)]
    scores = smollm.score_one("x: 1 2 3 4 5 6 7 8 9 0\ny:", [" " + d for d in digits])
    assert all(0.0 < s.prob < 1.0 for s in scores)
    assert sum(s.prob for s in scores) <= 1.0 + 1e-6
    assert not any(math.isnan(s.logprob) for s in scores)


def _mixed_requests(n_per_family: int = 2) -> list[ScoreRequest]:
    """Prompts of different lengths and answers of different token counts (1 to 5 tokens)."""
    requests = []
    for family, n_examples in [("copy", 6), ("sum_languages", 14), ("country", 3), ("maps", 9)]:
        for index in range(n_per_family):
            p = build_prompt(MixtureSpec(tasks=FAMILIES[family], n_examples=n_examples), 0, index)
            requests.append(ScoreRequest(p.text, p.answers))
    return requests


def test_batching_across_prompts_changes_no_score(smollm):
    """Left-padded prompts and right-padded answers in one pass give the one-at-a-time numbers."""
    requests = _mixed_requests()
    assert len({len(encode_prompt(smollm.tokenizer, r.prompt)) for r in requests}) > 4  # padding is exercised
    before = smollm.batch_size
    try:
        smollm.batch_size = 1
        alone = smollm.score(requests)
        smollm.batch_size = len(requests)
        together = smollm.score(requests)
    finally:
        smollm.batch_size = before
    naive = NaiveScorer(smollm)
    for request, a, b in zip(requests, alone, together):
        oracle = naive.score(request.prompt, request.continuations)
        for x, y, z in zip(a, b, oracle):
            assert x.token_ids == y.token_ids == z.token_ids
            assert abs(x.prob - y.prob) < 1e-5
            assert abs(y.prob - z.prob) < 1e-4 and y.logprob == pytest.approx(z.logprob, abs=1e-3)
