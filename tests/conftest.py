"""Shared fixtures: the real embedded test model (SmolLM2-135M, float32), loaded once per session."""

import os

import pytest

os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

TEST_MODEL = "smollm2-135m"


@pytest.fixture(scope="session")
def smollm():
    """SmolLM2-135M-Instruct from its pip package (real weights, real tokenizer)."""
    from superpose import load_backend

    return load_backend(TEST_MODEL, "float32")


@pytest.fixture(scope="session")
def vllm_server(smollm, tmp_path_factory):
    """One real vLLM OpenAI-compatible server (SmolLM2, on 127.0.0.1) shared by every API test: each start
    costs a minute and ~5 GiB. It accepts only ``servers.TEST_KEY``."""
    from servers import TEST_KEY, VLLMServer

    s = VLLMServer(smollm.provenance["converted_folder"], "smollm2-135m", TEST_KEY,
                   tmp_path_factory.mktemp("vllm") / "server.log")
    try:
        s.wait_ready()
        yield s
    finally:
        s.stop()
