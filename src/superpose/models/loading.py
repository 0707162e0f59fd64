"""Load a causal LM and its tokenizer from a name, a GGUF file, a folder or a hub id."""

from __future__ import annotations

import importlib.metadata
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from superpose.errors import ModelNotAvailable, SuperposeError
from superpose.models.registry import EMBEDDED_MODELS, file_sha256

DTYPES = ("float32", "bfloat16", "float16")
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


@dataclass
class LoadedModel:
    """A model ready to score: ``model`` (HF causal LM, eval mode), ``tokenizer``, provenance ``info``."""

    name: str
    model: Any
    tokenizer: Any
    info: dict = field(default_factory=dict)

    @property
    def max_context(self) -> int:
        """The longest token sequence the model accepts."""
        return int(self.info["max_context"])

    @property
    def device(self):
        """Device of the model's parameters."""
        return next(self.model.parameters()).device


def _torch_dtype(dtype: str):
    import torch

    if dtype not in DTYPES:
        raise SuperposeError(f"dtype must be one of {', '.join(DTYPES)}; got '{dtype}'")
    return getattr(torch, dtype)


def resolve_model(name_or_path: str) -> tuple[str, Path | str, dict]:
    """(display name, local path or hub id, provenance) for any accepted model reference."""
    if name_or_path in EMBEDDED_MODELS:
        entry = EMBEDDED_MODELS[name_or_path]
        path = entry.locate()
        return name_or_path, path, {"embedded": name_or_path, "packages": list(entry.packages)}
    path = Path(name_or_path).expanduser()
    if path.exists():
        if path.is_file() and path.suffix != ".gguf":
            raise ModelNotAvailable(f"model file {path}: expected a .gguf file or a model folder")
        if path.is_dir() and not (path / "config.json").exists():
            raise ModelNotAvailable(f"model folder {path}: no config.json (is this a Hugging Face model folder?)")
        return path.stem if path.is_file() else path.name, path, {}
    if _HUB_ID.match(name_or_path):
        return name_or_path, name_or_path, {"hub_id": name_or_path}
    known = ", ".join(EMBEDDED_MODELS)
    raise ModelNotAvailable(
        f"unknown model '{name_or_path}': not an embedded model ({known}), an existing file or folder, "
        "or a Hugging Face id like 'Qwen/Qwen1.5-0.5B'. Run `superpose models` to list them.")


def _weight_hashes(path: Path) -> dict[str, str]:
    if path.is_file():
        return {path.name: file_sha256(path)}
    files = sorted(p for p in path.iterdir() if p.suffix in (".safetensors", ".bin", ".gguf"))
    return {p.name: file_sha256(p) for p in files}


def load_model(name_or_path: str, dtype: str = "float32", device: str | None = None) -> LoadedModel:
    """Load a causal LM for scoring (eval mode, no grad) with its tokenizer and provenance."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    torch_dtype = _torch_dtype(dtype)
    name, source, info = resolve_model(name_or_path)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, Any] = {}
    if isinstance(source, Path) and source.is_file():  # GGUF: weights dequantised to `dtype`
        where, kwargs["gguf_file"] = str(source.parent), source.name
    else:
        where = str(source)
    try:
        tokenizer = AutoTokenizer.from_pretrained(where, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(where, dtype=torch_dtype, **kwargs)
    except (OSError, ValueError) as e:
        raise ModelNotAvailable(f"could not load model '{name_or_path}' from {where}: {e}") from None
    model.eval()
    if device is not None:
        model.to(device)
    config = model.config
    info.update({
        "name": name,
        "source": str(source),
        "dtype": dtype,
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "architecture": type(model).__name__,
        "max_context": _max_context(config, tokenizer),
        "hub_commit": getattr(config, "_commit_hash", None),
        "versions": {p: importlib.metadata.version(p) for p in ("torch", "transformers")},
    })
    if isinstance(source, Path):
        info["sha256"] = _weight_hashes(source)
    return LoadedModel(name=name, model=model, tokenizer=tokenizer, info=info)


def _max_context(config, tokenizer) -> int:
    for attr in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    limit = getattr(tokenizer, "model_max_length", None)
    return int(limit) if isinstance(limit, int) and limit < 10**8 else 2048
