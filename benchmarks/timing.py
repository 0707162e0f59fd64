"""What the benchmark scripts share: one timed call (they import it as a sibling module)."""

import time


def sync(device=None) -> None:
    """Wait for a CUDA device's queued work (nothing to wait for elsewhere)."""
    if device is not None and device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)


def timed(fn, device=None) -> float:
    """Seconds that ``fn()`` took on the wall clock; on a CUDA ``device``, its queued work included."""
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start
