"""One meaning of ``--device`` / ``device:`` for every command: ``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``."""

from __future__ import annotations

import re
import sys

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


# x86 flags for bfloat16 arithmetic (AVX512_BF16 dot products, AMX tiles); "bf16" is an ARM CPU's.
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> set[str] | None:
    """The CPU's feature flags (x86 ``flags``, ARM ``Features``); None where the file is missing (macOS)."""
    try:
        text = open(cpuinfo, encoding="utf-8", errors="replace").read()
    except OSError:
        return None
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    return flags


def bfloat16_cpu_warning(flags: set[str] | None) -> str | None:
    """Why bfloat16 on a CPU with these ``flags`` will be slow, or None (it has bf16 instructions, or
    the flags are unknown)."""
    if flags is None or flags & BF16_FLAGS:
        return None
    return ("bfloat16 on this CPU, which has no bf16 instructions (avx512_bf16, amx_bf16 or bf16 in "
            "/proc/cpuinfo), runs slower than float32: the docs' bfloat16 speed-ups were measured on CPUs "
            "that have them; float32 is the faster choice here")


_warned_bfloat16 = False


def warn_bfloat16_on_cpu(flags: set[str] | None = None) -> bool:
    """Print :func:`bfloat16_cpu_warning` for this CPU (or ``flags``) on stderr, once per process;
    returns whether it printed."""
    global _warned_bfloat16
    message = bfloat16_cpu_warning(cpu_flags() if flags is None else flags)
    if message is None or _warned_bfloat16:
        return False
    _warned_bfloat16 = True
    print(f"warning: {message}", file=sys.stderr)
    return True
