"""A training run in pieces small enough to come back from a short GPU lease, and back again.

    pack(run_dir, out)        out/<name>.tar.000, .001, ... (each < 16 MiB) and out/<name>.manifest.json
    unpack(manifest, run_dir) a run folder that ``superpose train --resume run_dir`` continues

The small checkpoint holds the weights in float32 (exactly the run's), the step, the time and
tokens so far, the RNG states, the config, the tokenizer and the loss log. Adam's moments go in
only if everything then still fits in :data:`SMALL_CHECKPOINT_BYTES`: for the study's 14.2M-parameter
model the float32 weights alone are 57 MB, so its moments (114 MB more) stay behind and
:func:`superpose.scratch.step.rebuild_moments` re-estimates them on resume. A tiny model keeps
them, and then resuming is exact.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import tarfile
from pathlib import Path

import torch

from superpose.errors import SuperposeError
from superpose.runs import training_log

SMALL_CHECKPOINT_BYTES = 60_000_000  # 60 MB: what may come back from a lease, with room to spare
PIECE_BYTES = 15 * 2**20  # under the 16 MiB a lease returns per file


def small_checkpoint(run_dir: str | Path, budget: int = SMALL_CHECKPOINT_BYTES) -> tuple[bytes, dict]:
    """The run's latest checkpoint as one uncompressed tar (weights do not compress), and its facts."""
    run_dir = Path(run_dir)
    ckpt = run_dir / "checkpoint"
    if not (ckpt / "state.pt").is_file():
        raise SuperposeError(f"{run_dir}: no checkpoint/state.pt to pack (train first)")
    state = torch.load(ckpt / "state.pt", map_location="cpu", weights_only=True)
    log_path = training_log(run_dir)
    log = [line for line in log_path.read_text().splitlines()
           if line.strip() and json.loads(line)["step"] < state["step"]]
    files = {f"checkpoint/{p.name}": p.read_bytes() for p in sorted(ckpt.iterdir())
             if p.is_file() and p.name != "state.pt"}
    files["config.json"] = (run_dir / "config.json").read_bytes()
    if (run_dir / "config.yaml").is_file():  # the config and environment (older versions' folders: none)
        files["config.yaml"] = (run_dir / "config.yaml").read_bytes()
    files[log_path.name] = "".join(line + "\n" for line in log).encode()

    def saved(s: dict) -> bytes:
        buf = io.BytesIO()
        torch.save(s, buf)
        return buf.getvalue()

    files["checkpoint/state.pt"] = saved(state)
    moments = "kept"
    if sum(map(len, files.values())) > budget:  # leave the moments out: rebuilt on resume
        files["checkpoint/state.pt"] = saved({**state, "optimizer": None})
        moments = "rebuilt on resume"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    blob = buf.getvalue()
    if len(blob) > budget:
        raise SuperposeError(f"{run_dir}: the weights alone make a checkpoint of {len(blob) / 1e6:.1f} MB, "
                             f"over the {budget / 1e6:.0f} MB budget")
    return blob, {"step": state["step"], "bytes": len(blob), "moments": moments,
                  "weights_bytes": len(files["checkpoint/model.safetensors"])}


def pack(run_dir: str | Path, out: str | Path, name: str | None = None,
         budget: int = SMALL_CHECKPOINT_BYTES, piece_bytes: int = PIECE_BYTES) -> Path:
    """Write the small checkpoint of ``run_dir`` as pieces under 16 MiB and a manifest; returns the manifest."""
    run_dir, out = Path(run_dir), Path(out)
    name = name or run_dir.name
    blob, facts = small_checkpoint(run_dir, budget)
    out.mkdir(parents=True, exist_ok=True)
    pieces = []
    for i in range(math.ceil(len(blob) / piece_bytes)):
        piece = blob[i * piece_bytes:(i + 1) * piece_bytes]
        path = out / f"{name}.tar.{i:03d}"
        path.write_bytes(piece)
        pieces.append({"file": path.name, "bytes": len(piece), "sha256": hashlib.sha256(piece).hexdigest()})
    manifest = out / f"{name}.manifest.json"
    manifest.write_text(json.dumps({**facts, "name": name, "sha256": hashlib.sha256(blob).hexdigest(),
                                    "pieces": pieces}, indent=1) + "\n")
    return manifest


def unpack(manifest: str | Path, run_dir: str | Path) -> dict:
    """Join and check the pieces named by ``manifest`` (beside it) into a resumable ``run_dir``.

    ``manifest``: the ``<name>.manifest.json`` that :func:`pack` wrote, or the folder holding it
    (and no other manifest).
    """
    manifest, run_dir = Path(manifest), Path(run_dir)
    if manifest.is_dir():
        found = sorted(manifest.glob("*.manifest.json"))
        if len(found) != 1:
            raise SuperposeError(f"{manifest}: expected one <name>.manifest.json in the folder, found {len(found)}"
                                 + (f" ({', '.join(f.name for f in found)}); name one" if found else ""))
        manifest = found[0]
    if not manifest.is_file():
        raise SuperposeError(f"{manifest}: no such manifest (expected <name>.manifest.json from pack)")
    facts = json.loads(manifest.read_text())
    parts = []
    for piece in facts["pieces"]:
        path = manifest.parent / piece["file"]
        if not path.is_file():
            raise SuperposeError(f"{path}: piece missing ({len(facts['pieces'])} expected)")
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != piece["sha256"]:
            raise SuperposeError(f"{path}: sha256 differs from the manifest's (a damaged copy?)")
        parts.append(data)
    blob = b"".join(parts)
    if hashlib.sha256(blob).hexdigest() != facts["sha256"]:
        raise SuperposeError(f"{manifest}: the joined pieces' sha256 differs from the manifest's")
    if (run_dir / "checkpoint").exists():
        raise SuperposeError(f"{run_dir} already holds a checkpoint; unpack into a new folder")
    run_dir.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r") as tar:
        tar.extractall(run_dir, filter="data")
    config = json.loads((run_dir / "config.json").read_text())
    config["out_dir"] = str(run_dir)  # `superpose train --resume run_dir` reads out_dir from here
    (run_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return facts
