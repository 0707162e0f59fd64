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

import importlib
from typing import Any

from pydantic import ValidationError

from superpose.backends.base import (Backend, CapabilityError, ContinuationScore, ScoreRequest,
                                     encode_continuation, encode_prompt)
from superpose.backends.options import OPTIONS, option_error
from superpose.errors import SuperposeError

# The one table of backends: the model string's prefix -> "module:Class" (imported only when used).
BACKENDS = {"hf": "superpose.backends.hf:HFBackend",
            "vllm": "superpose.backends.vllm:VLLMBackend",
            "openai": "superpose.backends.api:APIBackend"}
PREFIXES = tuple(kind for kind in BACKENDS if kind != "hf")


def split_model(model: str) -> tuple[str, str]:
    """(backend kind, model reference): ``"vllm:x"`` -> ``("vllm", "x")``; anything else -> ``("hf", model)``."""
    head, sep, rest = model.partition(":")
    if sep and head in PREFIXES:
        if not rest:
            raise SuperposeError(f"model '{model}': name a model after '{head}:'")
        return head, rest
    return "hf", model


def backend_class(model: str) -> type[Backend]:
    """The backend class a model string selects (its module is imported; no model is loaded)."""
    module, _, name = BACKENDS[split_model(model)[0]].partition(":")
    return getattr(importlib.import_module(module), name)


def check_options(model: str, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` validated by the model's backend (:mod:`superpose.backends.options`), as given (typed):
    an unknown or ill-typed option raises one line naming it (and the allowed ones)."""
    kind, _ = split_model(model)
    try:
        return OPTIONS[kind].model_validate(options).model_dump(exclude_unset=True)
    except ValidationError as e:
        raise SuperposeError(option_error(model, kind, e)) from None


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
    """Load ``model`` (see the module doc) behind the :class:`Backend` interface: its backend's ``load``.

    ``options`` (:mod:`superpose.backends.options`) go to the backend: ``batch_size`` for all;
    ``threads`` for transformers; vLLM's engine options (``tensor_parallel_size``,
    ``pipeline_parallel_size``, ``distributed_executor_backend``, ``gpu_memory_utilization``,
    ``max_model_len``, ...); the API's (``base_url``, ``mode``, ..., :mod:`superpose.backends.api`).
    """
    from superpose.models.loading import DTYPES

    if dtype not in DTYPES:
        raise SuperposeError(f"dtype must be one of {', '.join(DTYPES)}; got '{dtype}'")
    options = check_options(model, options)
    _, name = split_model(model)
    return backend_class(model).load(name, dtype, device, **options)


__all__ = ["BACKENDS", "Backend", "CapabilityError", "ContinuationScore", "ScoreRequest", "backend_class",
           "check_model", "check_options", "encode_continuation", "encode_prompt", "load_backend", "split_model"]
