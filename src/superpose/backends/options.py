"""Each backend's options as a typed model, checked with the config -- before anything loads or is written.

A config's model entry (``options: {...}``) and ``--model-option KEY=VALUE`` give them; the backend's
``load`` receives them validated. Only pydantic is imported here, so a misspelt option fails in
milliseconds, with one line naming it and the allowed ones, without torch or vLLM.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

# api_key_env names a variable whose value goes to base_url: only API-key variables, so a config someone
# hands you cannot send $GITHUB_TOKEN, $AWS_SECRET_ACCESS_KEY or any other secret of your shell to its server.
KEY_ENV = re.compile(r"^[A-Z][A-Z0-9_]*_API_KEY$")


class BackendOptions(BaseModel):
    """Options of one backend: unknown names are refused."""

    model_config = ConfigDict(extra="forbid")


class HFOptions(BackendOptions):
    """transformers, in-process."""

    batch_size: int | None = Field(None, ge=1)  # prompts per forward pass (None: 1 on a CPU, 16 on a GPU)
    threads: int | None = Field(None, ge=1)  # torch's CPU threads (None: torch's default)


class VLLMOptions(BackendOptions):
    """vLLM: ours (batch_size, scoring_path), then engine options passed through to ``vllm.LLM``."""

    batch_size: int = Field(1024, ge=1)  # prompts per score() call
    scoring_path: Literal["auto", "shared_prefix", "prompt_logprobs"] = "auto"  # see backends/vllm.py
    tensor_parallel_size: int | None = Field(None, ge=1)
    pipeline_parallel_size: int | None = Field(None, ge=1)
    distributed_executor_backend: str | None = None
    gpu_memory_utilization: float | None = Field(None, gt=0, le=1)
    max_model_len: int | None = Field(None, ge=1)
    enforce_eager: bool | None = None
    max_num_seqs: int | None = Field(None, ge=1)
    swap_space: float | None = Field(None, ge=0)
    seed: int | None = None
    trust_remote_code: bool | None = None
    download_dir: str | None = None
    quantization: str | None = None
    revision: str | None = None
    block_size: int | None = Field(None, ge=1)
    enable_prefix_caching: bool | None = None
    disable_log_stats: bool | None = None

    def engine(self) -> dict[str, Any]:
        """The engine options that were given (vLLM's defaults stand for the rest)."""
        return self.model_dump(exclude_unset=True, exclude={"batch_size", "scoring_path"})


class APIOptions(BackendOptions):
    """An OpenAI-compatible server (see backends/api.py for each option)."""

    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    mode: Literal["exact", "lower_bound"] = "exact"
    scoring_path: Literal["auto", "shared_prefix", "echo"] = "auto"
    concurrency: int = Field(8, ge=1)
    timeout: float = Field(60.0, gt=0)
    max_retries: int = Field(6, ge=0)
    max_requests: int = Field(20000, ge=1)
    top_logprobs: int = Field(10, ge=1)
    min_prob: float = Field(1e-3, ge=0, le=1)
    batch_size: int = Field(64, ge=1)
    price_per_1k_prompt_tokens: float | None = None
    price_per_1k_completion_tokens: float | None = None

    @field_validator("api_key_env")
    @classmethod
    def _key_variable(cls, env: str) -> str:
        if not KEY_ENV.match(env):
            raise ValueError(f"expected the name of an environment variable ending in _API_KEY, like OPENAI_API_KEY; "
                             f"got {env!r} (only API-key variables may be sent to a server)")
        return env


OPTIONS: dict[str, type[BackendOptions]] = {"hf": HFOptions, "vllm": VLLMOptions, "openai": APIOptions}


def option_error(model: str, kind: str, e: ValidationError) -> str:
    """pydantic's complaint about a model's options as one line naming the option (and, if unknown, the allowed)."""
    err = e.errors()[0]
    key = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        hint = "; engine options need a 'vllm:' model" if kind == "hf" else ""
        return (f"model '{model}': unknown option '{key}'; allowed: {', '.join(OPTIONS[kind].model_fields)}{hint}")
    if err["type"] == "value_error":  # our own validators name what they got
        return f"model '{model}': option {key}: {err['msg'].removeprefix('Value error, ')}"
    return f"model '{model}': option {key}: {err['msg']} (got {err.get('input')!r})"
