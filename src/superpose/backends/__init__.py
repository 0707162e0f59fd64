"""The one model interface: a model string picks a backend, and experiments see only :class:`Backend`.

Model strings (the same in every command and config)::

    gemma-3-270m, ./my-model, Qwen/Qwen1.5-0.5B   -> transformers (in-process; every capability)
    vllm:gemma-3-270m, vllm:Qwen/Qwen1.5-72B      -> vLLM (exact scoring; large models, many GPUs)
    openai:gpt-3.5-turbo-instruct, openai:<name>  -> any OpenAI-compatible server (options: base_url, mode)

    backend = load_backend("vllm:Qwen/Qwen1.5-72B", dtype="bfloat16", tensor_parallel_size=4)
    scores = backend.score([ScoreRequest(prompt, ["57", "23"])])

See docs/backends.md.
"""

from __future__ import annotations

from typing import Any

from superpose.backends.base import (Backend, CapabilityError, ContinuationScore, ScoreRequest,
                                     encode_continuation, encode_prompt)
from superpose.errors import SuperposeError

PREFIXES = ("vllm", "openai")


def split_model(model: str) -> tuple[str, str]:
    """(backend kind, model reference): ``"vllm:x"`` -> ``("vllm", "x")``; anything else -> ``("hf", model)``."""
    head, sep, rest = model.partition(":")
    if sep and head in PREFIXES:
        if not rest:
            raise SuperposeError(f"model '{model}': name a model after '{head}:'")
        return head, rest
    return "hf", model


def backend_class(model: str) -> type[Backend]:
    """The backend class a model string selects (nothing is imported from torch or vLLM)."""
    kind, _ = split_model(model)
    if kind == "vllm":
        from superpose.backends.vllm import VLLMBackend

        return VLLMBackend
    if kind == "openai":
        from superpose.backends.api import APIBackend

        return APIBackend
    from superpose.backends.hf import HFBackend

    return HFBackend


def check_model(model: str, needs: tuple[str, ...] = (), purpose: str = "this command") -> None:
    """Everything knowable before loading: the model exists (or is a hub id) and can do what is needed."""
    from superpose.models.loading import resolve_model

    cls = backend_class(model)
    for capability in needs:
        cls.require(capability, purpose)
    kind, name = split_model(model)
    if kind != "openai":  # a served model's name means something only to its server
        resolve_model(name)


def load_backend(model: str, dtype: str = "float32", device: str | None = None, **options: Any) -> Backend:
    """Load ``model`` (see the module doc) behind the :class:`Backend` interface.

    ``options`` go to the backend: ``batch_size`` for all; ``threads`` for transformers; vLLM's engine
    options (``tensor_parallel_size``, ``pipeline_parallel_size``, ``distributed_executor_backend``,
    ``gpu_memory_utilization``, ``max_model_len``, ...); the API's (``base_url``, ``mode``, ...,
    :mod:`superpose.backends.api`).
    """
    from superpose.models.loading import DTYPES

    if dtype not in DTYPES:
        raise SuperposeError(f"dtype must be one of {', '.join(DTYPES)}; got '{dtype}'")
    kind, name = split_model(model)
    if kind == "vllm":
        from superpose.backends.vllm import VLLMBackend

        return VLLMBackend(name, dtype=dtype, device=device, **options)
    if kind == "openai":
        from superpose.backends.api import APIBackend

        return APIBackend(name, dtype=dtype, device=device, **options)
    from superpose.backends.hf import load_hf

    unknown = sorted(set(options) - {"batch_size", "threads"})
    if unknown:
        raise SuperposeError(f"model '{model}': unknown options {unknown} for a transformers model "
                             "(allowed: batch_size, threads; engine options need a 'vllm:' model)")
    return load_hf(name, dtype, device, **options)


__all__ = ["Backend", "CapabilityError", "ContinuationScore", "ScoreRequest", "backend_class", "check_model",
           "encode_continuation", "encode_prompt", "load_backend", "split_model"]
