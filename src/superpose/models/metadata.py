"""What a model folder says about itself, read in one place for every backend.

Weight hashes, the architecture and the number of positions its ``config.json`` names, and -- for a model that ``superpose train``
made -- the longest sequence it was trained on (its ``training.json``), past which scores are
extrapolation and the backends warn.
"""

from __future__ import annotations

import json
from pathlib import Path

from superpose.models.loading import weight_hashes


def folder_metadata(folder: Path | str) -> dict:
    """``sha256``, ``architecture``, ``max_positions`` and ``trained_length`` of a local model folder,
    where known; nothing for a hub id (its files are not here)."""
    if not isinstance(folder, Path) or not folder.is_dir():
        return {}
    info: dict = {"sha256": weight_hashes(folder)}
    config = _read_json(folder / "config.json")
    if config.get("architectures"):
        info["architecture"] = str(config["architectures"][0])
        from superpose.models.columns import column_label

        if column_label(config):  # an architecture change is named wherever the model is shown
            info["architecture"] += " + " + column_label(config)
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length"):  # names vary by family
        if isinstance(config.get(key), int) and config[key] > 0:
            info["max_positions"] = config[key]
            break
    trained = trained_sequence_length(folder)
    if trained is not None:
        info["trained_length"] = trained
    return info


def trained_sequence_length(folder: Path | str) -> int | None:
    """Tokens of the longest sequence a ``superpose train`` model saw (its ``training.json``); None
    for other models, and for a training.json written before it recorded the length (reading never
    computes or writes it)."""
    value = _read_json(Path(folder) / "training.json").get("trained_sequence_length")
    return int(value) if value is not None else None


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}
