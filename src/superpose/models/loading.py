"""Find a model's weights from a name, a GGUF file, a folder or a hub id (no loading here).

The backends load from what :func:`model_source` returns: a local Hugging Face folder (a GGUF file
is converted once into a cached folder, :mod:`superpose.models.convert`) or a hub id.
"""

from __future__ import annotations

import re
from pathlib import Path

from superpose.errors import ModelNotAvailable
from superpose.models.registry import EMBEDDED_MODELS, file_sha256

DTYPES = ("float32", "bfloat16", "float16")
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


def resolve_model(name_or_path: str) -> tuple[str, Path | str, dict]:
    """(display name, local path or hub id, provenance) for any accepted model reference."""
    if name_or_path in EMBEDDED_MODELS:
        entry = EMBEDDED_MODELS[name_or_path]
        path = entry.locate()
        info: dict = {"embedded": name_or_path, "packages": list(entry.packages)}
        if entry.sha256 is not None:
            info["sha256"] = {path.name: entry.sha256}  # locate() has checked it
        return name_or_path, path, info
    path = Path(name_or_path).expanduser()
    if path.exists():
        if path.is_file() and path.suffix != ".gguf":
            raise ModelNotAvailable(f"model file {path}: expected a .gguf file or a model folder")
        if path.is_file() and _magic(path) != b"GGUF":
            raise ModelNotAvailable(f"model file {path}: not a GGUF file (it does not start with the bytes 'GGUF')")
        if path.is_dir() and not (path / "config.json").exists():
            raise ModelNotAvailable(f"model folder {path}: no config.json (is this a Hugging Face model folder?)")
        if path.is_dir() and _is_training_run(path):
            model = path / "model"
            raise ModelNotAvailable(
                f"model folder {path}: a `superpose train` run folder, not a model; its model is {model}"
                + ("" if model.is_dir() else " once training completes (the latest checkpoint, "
                                             f"{path / 'checkpoint'}, loads as a model too)"))
        return path.stem if path.is_file() else path.name, path, {}
    if _HUB_ID.match(name_or_path):
        return name_or_path, name_or_path, {"hub_id": name_or_path}
    known = ", ".join(EMBEDDED_MODELS)
    raise ModelNotAvailable(
        f"unknown model '{name_or_path}': not an embedded model ({known}), an existing file or folder, "
        "or a Hugging Face id like 'Qwen/Qwen1.5-0.5B'. Run `superpose models` to list them.")


def _magic(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(4)


def _is_training_run(folder: Path) -> bool:
    """Whether ``folder`` is a `superpose train` run folder: its config.json is a recipe, not a model's."""
    import json

    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and "tasks" in config and "model_type" not in config


def model_source(name_or_path: str) -> tuple[str, Path | str, dict]:
    """(display name, Hugging Face folder or hub id to load, provenance); converts GGUF files once."""
    from superpose.models.convert import converted_folder

    name, source, info = resolve_model(name_or_path)
    info["source"] = str(source)
    if isinstance(source, Path) and source.is_file():
        if "sha256" not in info:
            info["sha256"] = {source.name: file_sha256(source)}
        folder = converted_folder(source, info["sha256"][source.name])
        info["converted_folder"] = str(folder)
        return name, folder, info
    return name, source, info


def weight_hashes(path: Path) -> dict[str, str]:
    """sha256 of every weight file of a model file or folder."""
    if path.is_file():
        return {path.name: file_sha256(path)}
    files = sorted(p for p in path.iterdir() if p.suffix in (".safetensors", ".bin", ".gguf"))
    return {p.name: file_sha256(p) for p in files}
