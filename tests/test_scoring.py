"""The shared-prefix scorer against the naive oracle, on the real SmolLM2-135M."""

import math

import pytest
import torch

from superpose.errors import PromptTooLong, SuperposeError
from superpose.prompts import MixtureSpec, build_prompt
from superpose.scoring import NaiveScorer, SharedPrefixScorer, encode_continuation, encode_prompt

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
    shared, naive = SharedPrefixScorer(smollm), NaiveScorer(smollm)
    for index in range(2):
        p = build_prompt(spec, seed=0, index=index)
        answers = [a + terminator for a in p.answers]
        fast, slow = shared.score(p.text, answers), naive.score(p.text, answers)
        for f, s in zip(fast, slow):
            assert f.token_ids == s.token_ids and len(f.token_ids) >= 1
            assert abs(f.prob - s.prob) < 1e-4
            assert f.logprob == pytest.approx(s.logprob, abs=1e-3)


def test_multi_token_answers_use_the_chain_rule(smollm):
    """log P("173") = log P("1") + log P("7" | "1") + log P("3" | "17"), each from its own context."""
    prompt = "86+87->173\n12+45->57\n86+87->"
    (score,) = SharedPrefixScorer(smollm).score(prompt, ["173"])
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
    fast = SharedPrefixScorer(smollm).score("hello wor", ["ld", "m"])
    slow = NaiveScorer(smollm).score("hello wor", ["ld", "m"])
    assert fast[0].straddles and fast[0].prob == pytest.approx(slow[0].prob, abs=1e-5)


def test_answer_alone_is_at_least_answer_plus_newline(smollm):
    p = build_prompt(MixtureSpec(tasks=FAMILIES["copy"], n_examples=20), 0, 0)
    alone = SharedPrefixScorer(smollm).score(p.text, p.answers)
    with_nl = SharedPrefixScorer(smollm).score(p.text, [a + "\n" for a in p.answers])
    for a, b in zip(alone, with_nl):
        assert b.token_ids[: len(a.token_ids)] == a.token_ids
        assert b.logprob < a.logprob <= 0.0


def test_prompt_longer_than_the_context_is_refused_before_running(smollm):
    spec = MixtureSpec(tasks=["copy_op1", "copy_op2"], n_examples=1500)  # ~12k tokens > 8192
    p = build_prompt(spec, 0, 0)
    with pytest.raises(PromptTooLong, match=r"does not fit in the context of model 'smollm2-135m' \(8192 tokens\)"):
        SharedPrefixScorer(smollm).score(p.text, p.answers)


def test_empty_inputs_are_refused(smollm):
    with pytest.raises(SuperposeError, match="empty continuation"):
        SharedPrefixScorer(smollm).score("1@2=", [""])
    with pytest.raises(SuperposeError, match="no continuations"):
        SharedPrefixScorer(smollm).score("1@2=", [])


def test_probabilities_are_a_distribution_over_single_tokens(smollm):
    digits = [str(d) for d in range(10)]
    scores = SharedPrefixScorer(smollm).score("x: 1 2 3 4 5 6 7 8 9 0\ny:", [" " + d for d in digits])
    assert all(0.0 < s.prob < 1.0 for s in scores)
    assert sum(s.prob for s in scores) <= 1.0 + 1e-6
    assert not any(math.isnan(s.logprob) for s in scores)
