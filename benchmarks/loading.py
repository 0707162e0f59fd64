"""Model load time: the first load of a GGUF model (dequantize and convert) against a cached load.

The first load of an embedded GGUF model converts it into a cached Hugging Face folder
(superpose.models.convert); every later load reads that folder. This times both in one run, with a
fresh, empty cache folder (SUPERPOSE_CACHE) for the first, each in a new Python process so that
nothing stays imported or memoised, and prints cached / first (goal <= 0.1).

    python benchmarks/loading.py [--model gemma-3-270m] [--reps 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

LOAD = "from superpose import load_backend; import sys; load_backend(sys.argv[1])"


def timed_load(model: str, cache: str) -> float:
    """Seconds for a fresh process to load ``model`` with cache folder ``cache``.

    Imports are excluded (transformers imports its Auto classes lazily, ~7 s here, paid alike by both).
    """
    code = ("import time, superpose.backends.hf, torch; "
            "from transformers import AutoModelForCausalLM, AutoTokenizer; t = time.perf_counter(); " + LOAD +
            "; print(time.perf_counter() - t)")
    env = {**os.environ, "SUPERPOSE_CACHE": cache, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code, model], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="superpose-cache-") as cache:
        start = time.perf_counter()
        first = timed_load(args.model, cache)
        cached = [timed_load(args.model, cache) for _ in range(args.reps)]
        wall = time.perf_counter() - start
    med = statistics.median(cached)
    print(f"model {args.model}: first load (conversion) {first:.1f} s, cached load median {med:.2f} s "
          f"over {args.reps}; cached / first = {med / first:.3f} (goal <= 0.1); {wall:.0f} s in all")


if __name__ == "__main__":
    main()
