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
