"""One meaning of ``--device`` / ``device:`` for every command: ``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``."""

from __future__ import annotations

import re

from superpose.errors import SuperposeError

DEVICE_HELP = "auto (every visible GPU, else CPU), cpu, cuda, cuda:N or mps"
_DEVICE = re.compile(r"^(auto|cpu|cuda|cuda:\d+|mps)$")


def check_device_name(device: str | None) -> str | None:
    """Validate the spelling only (no torch import): for config validation."""
    if device is not None and not _DEVICE.match(device):
        raise ValueError(f"device must be {DEVICE_HELP}; got '{device}'")
    return device


def resolve_device(device: str | None) -> str:
    """``cpu``, ``cuda[:N]``, ``mps``, or ``auto`` when several GPUs should share the model.

    ``None`` means ``cpu``. A GPU that is not there is a one-line error, before anything loads.
    """
    check_device_name(device)
    if device in (None, "cpu"):
        return "cpu"
    import torch

    if device == "auto":
        if not torch.cuda.is_available():
            return "cpu"
        return "auto" if torch.cuda.device_count() > 1 else "cuda"
    if device == "mps":
        if not torch.backends.mps.is_available():
            raise SuperposeError("device 'mps': this machine has no Apple GPU available; use --device cpu or auto")
        return device
    if not torch.cuda.is_available():
        why = "torch was built without CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
        raise SuperposeError(f"device '{device}': {why} on this machine; use --device cpu or auto")
    index = int(device.split(":")[1]) if ":" in device else 0
    if index >= torch.cuda.device_count():
        raise SuperposeError(f"device '{device}': only {torch.cuda.device_count()} CUDA GPU(s) visible (cuda:0.."
                             f"cuda:{torch.cuda.device_count() - 1})")
    return device
