"""What the benchmark scripts share: one timed call (they import it as a sibling module)."""

import time


def timed(fn) -> float:
    """Seconds that ``fn()`` took on the wall clock."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start
