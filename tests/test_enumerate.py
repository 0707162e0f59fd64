"""Output enumeration on the real SmolLM2-135M: exact probabilities, coverage, cache reuse, limits."""

import math

import pytest

from superpose.enumerate import EnumerateSettings, OutputEnumerator, format_enumeration
from superpose.errors import ConfigError
from superpose.config import validate
from superpose.prompts import MixtureSpec, build_prompt

MIXED = MixtureSpec(tasks=["copy_op1", "copy_op2", "op1_plus_op2"], n_examples=12)
SINGLE = MixtureSpec(tasks=["copy_op1"], n_examples=40)  # long and concentrated: outputs all enumerable


def buckets(e) -> float:
    return e.covered_mass + e.frontier_mass + e.pruned_mass + e.truncated_mass


@pytest.fixture(scope="module")
def mixed(smollm):
    prompt = build_prompt(MIXED, seed=0, index=0)
    settings = EnumerateSettings(min_prob=1e-3, max_outputs=12, max_expansions=80)
    return prompt, OutputEnumerator(smollm, settings).enumerate(prompt.text)


def test_probabilities_equal_the_scorers(smollm, mixed):
    """Each token path found has exactly the probability the scorer gives its string + newline."""
    prompt, e = mixed
    scores = smollm.score_one(prompt.text, [o.text + "\n" for o in e.outputs])
    compared = 0
    for o, s in zip(e.outputs, scores):
        assert o.ended_by == "terminator"
        # The scorer rates one tokenization (the canonical one); compare with that path.
        assert s.token_ids in o.paths, f"canonical tokens of {o.text!r} not among the paths found"
        lp = o.path_logprobs[o.paths.index(s.token_ids)]
        assert lp == pytest.approx(s.logprob, abs=1e-4)
        assert math.exp(lp) == pytest.approx(s.prob, abs=1e-6)
        if len(o.paths) == 1:
            assert o.prob == pytest.approx(s.prob, abs=1e-6)
        compared += 1
    assert compared >= 8


def test_outputs_are_distinct_best_first_and_merged_by_string(mixed):
    _, e = mixed
    texts = [(o.text, o.ended_by) for o in e.outputs]
    assert len(set(texts)) == len(texts)
    probs = [o.prob for o in e.outputs]
    assert probs == sorted(probs, reverse=True)
    for o in e.outputs:
        assert o.prob == pytest.approx(math.fsum(math.exp(lp) for lp in o.path_logprobs), rel=1e-9)
        assert "\n" not in o.text
    assert buckets(e) == pytest.approx(1.0, abs=1e-4)


def test_covered_mass_when_all_outputs_are_enumerable(smollm):
    prompt = build_prompt(SINGLE, seed=0, index=1)
    e = OutputEnumerator(smollm, EnumerateSettings(min_prob=1e-4, max_outputs=200)).enumerate(prompt.text)
    assert e.stop_reason == "exhausted" and e.frontier_mass == 0.0 and e.truncated_mass == 0.0
    assert e.covered_mass >= 0.99
    assert e.texts(1) == prompt.answers
    top = e.outputs[0]  # the answer, then "\n", "\n\n", ...: several token paths, one string
    assert len(top.paths) > 1 and len({tuple(p[:-1]) for p in top.paths}) == 1
    assert top.prob == pytest.approx(math.fsum(math.exp(lp) for lp in top.path_logprobs), rel=1e-9)
    assert buckets(e) == pytest.approx(1.0, abs=1e-4)


def test_cache_reuse_gives_the_same_outputs_as_rerunning_the_prompt(smollm):
    prompt = "".join(f"{i}\n" for i in range(1, 13))
    settings = EnumerateSettings(min_prob=1e-2, max_expansions=12, batch_size=4)
    fast = OutputEnumerator(smollm, settings, reuse_cache=True).enumerate(prompt)
    slow = OutputEnumerator(smollm, settings, reuse_cache=False).enumerate(prompt)
    assert [o.text for o in fast.outputs] == [o.text for o in slow.outputs]
    for a, b in zip(fast.outputs, slow.outputs):
        assert a.paths == b.paths
        assert a.prob == pytest.approx(b.prob, abs=1e-5)
    assert fast.n_expansions == slow.n_expansions
    assert fast.n_forward_passes < slow.n_forward_passes
    assert fast.texts(1) == ["13"]


def test_limits_stop_the_search_and_keep_the_mass_accounted(smollm):
    prompt = build_prompt(MIXED, seed=0, index=1).text
    e = OutputEnumerator(smollm, EnumerateSettings(min_prob=1e-3, max_expansions=3, batch_size=1)).enumerate(prompt)
    assert e.stop_reason == "max_expansions" and e.n_expansions == 3 and e.frontier_mass > 0
    assert buckets(e) == pytest.approx(1.0, abs=1e-4)
    # Numbers take at least 2 digit tokens plus the newline: with 2 tokens no number completes.
    e = OutputEnumerator(smollm, EnumerateSettings(min_prob=1e-3, max_tokens=2)).enumerate(prompt)
    assert e.truncated_mass > 0.5 and all(not o.text.isdigit() or len(o.text) < 2 for o in e.outputs)
    e = OutputEnumerator(smollm, EnumerateSettings(min_prob=1e-4, max_outputs=2)).enumerate(prompt)
    assert e.stop_reason == "max_outputs" and len(e.outputs) == 2
    assert "covered" in format_enumeration(e, smollm.tokenizer)


def test_settings_are_validated_with_the_field_named():
    with pytest.raises(ConfigError, match="min_prob"):
        validate(EnumerateSettings, {"min_prob": 0}, "decode options")
    with pytest.raises(ConfigError, match="max_tokens"):
        validate(EnumerateSettings, {"max_tokens": 0}, "decode options")
    with pytest.raises(ConfigError, match="unknown field"):
        validate(EnumerateSettings, {"max_token": 3}, "decode options")


def test_decode_and_scale_commands_parse(monkeypatch):
    import superpose.cli as cli

    parser = cli.build_parser()
    args = parser.parse_args(["decode", "--model", "smollm2-135m", "--prompt-file", "p.txt", "--min-prob", "1e-3"])
    assert args.func.__module__ == "superpose.cli.decode" and args.min_prob == 1e-3 and args.terminator == "\n"
    args = parser.parse_args(["scale", "configs/scale/demo.yaml", "--n-prompts", "2"])
    assert args.func.__module__ == "superpose.cli.scale" and args.n_prompts == 2
