"""Convert a GGUF file once into a Hugging Face folder (safetensors, float32), cached by the file's sha256.

transformers dequantizes every GGUF tensor on every load (~50 s for gemma-3-270m on 2 cores), and vLLM
loads a plain folder far more reliably than a GGUF file. So the first load of a GGUF model writes the
dequantized weights and the tokenizer to ``<cache>/converted/<sha256 prefix>-v<VERSION>/``; every later load, by
any backend, reads that folder (5 s instead of 85 s for gemma-3-270m, benchmarks/loading.py). The folder is built under a temporary name and
renamed into place, so a conversion killed half-way leaves nothing that looks finished.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from superpose.models.registry import cache_dir, file_sha256

MARKER = "superpose-converted.json"  # written last inside the folder: its presence means complete
VERSION = 2  # part of the folder name: bump it when a conversion fix must replace old folders


def converted_folder(gguf: Path, sha256: str | None = None) -> Path:
    """The cached Hugging Face folder for ``gguf``, converting it first when missing."""
    digest = sha256 or file_sha256(gguf)
    target = cache_dir() / "converted" / f"{digest[:16]}-v{VERSION}"
    _remove_stale_work(target)
    if (target / MARKER).exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    print(f"converting {gguf.name} once into {target} (later loads read that folder)", file=sys.stderr)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    work.chmod(0o755)  # mkdtemp makes it private; the finished folder is an ordinary cache entry
    try:
        _convert(gguf, work)
        (work / MARKER).write_text(json.dumps({"gguf": gguf.name, "sha256": digest, "dtype": "float32"}))
        try:
            os.replace(work, target)  # atomic; fails if another process finished first
        except OSError:
            if not (target / MARKER).exists():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


STALE_AFTER = 3600  # seconds; a conversion takes minutes, so an older work folder's process was killed


def _remove_stale_work(target: Path) -> None:
    """Remove ``.<target>-*`` work folders that a killed conversion left (its ``finally`` never ran)."""
    if not target.parent.is_dir():
        return
    for work in target.parent.glob(f".{target.name}-*"):
        try:
            if time.time() - work.stat().st_mtime > STALE_AFTER:
                shutil.rmtree(work, ignore_errors=True)
        except OSError:  # another process removed it first
            pass


def quiet_transformers_in_logs() -> None:
    """transformers' own progress bars only on a terminal: in a pipe or a log file they are noise."""
    if not sys.stderr.isatty():
        from transformers.utils import logging

        logging.disable_progress_bar()


def _convert(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    quiet_transformers_in_logs()

    where, name = str(gguf.parent), gguf.name
    tokenizer = AutoTokenizer.from_pretrained(where, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(where, gguf_file=name, dtype=torch.float32)
    # A GGUF-loaded model refuses save_pretrained ("quantized with gguf"), though its weights are
    # already dense float32: drop the quantizer so it saves as an ordinary model.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out, safe_serialization=True)
    # Some transformers releases (5.19) drop the GGUF's tokenizer.ggml.add_bos_token when converting the
    # tokenizer: Gemma then loses its <bos>, and its probabilities change completely. Follow the file.
    add_bos = _gguf_field(gguf, "tokenizer.ggml.add_bos_token")
    if add_bos is not None:
        tokenizer.add_bos_token = bool(add_bos)
    tokenizer.save_pretrained(out)
    reloaded = AutoTokenizer.from_pretrained(str(out))
    if add_bos and reloaded("a").input_ids[0] != reloaded.bos_token_id:
        raise RuntimeError(f"{gguf.name}: the converted tokenizer does not prepend its BOS token")


def _gguf_field(gguf: Path, key: str):
    """A metadata value of a GGUF file, or None."""
    from gguf import GGUFReader

    field = GGUFReader(str(gguf)).fields.get(key)
    return None if field is None else field.contents()
