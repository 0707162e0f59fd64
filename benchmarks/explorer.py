"""Explorer latency: one interactive re-score through `superpose serve`'s HTTP API against one scoring call.

The explorer keeps one model warm, so re-scoring an edited prompt should cost the backend's scoring
call plus a little HTTP and JSON: no model load, no tokenizer load per request. For mixed prompts of
30 examples (copy_op1 / copy_op2 / op1_plus_op2), times, interleaved and as medians:

* backend  -- ``backend.score_one(prompt, answers)`` in this process (the baseline);
* re-score -- ``POST /api/score`` to the explorer app served by uvicorn on 127.0.0.1 in this process,
              on the same backend (what the page sends after a hand edit);
* redraw   -- ``POST /api/prompt`` then ``POST /api/score`` (what the page sends after a change of
              the setting: a new seeded prompt, then its scores).

It prints re-score / backend (goal <= 1.3) and redraw / backend. Only ratios; absolute times on a
shared machine mean little.

    python benchmarks/explorer.py [--model smollm2-135m] [--prompts 4] [--reps 3] [--examples 30]
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import threading
import time
import urllib.request

import torch
import uvicorn

from superpose import MixtureSpec, load_backend
from superpose.explore import Explorer, create_app
from superpose.prompts import build_prompt
from timing import timed

TASKS = ["copy_op1", "copy_op2", "op1_plus_op2"]


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=300) as r:
        return json.loads(r.read())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--examples", type=int, default=30)
    args = parser.parse_args()

    backend = load_backend(args.model, args.dtype)
    explorer = Explorer(backend, args.model, args.dtype)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(explorer), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}/api"

    settings = [{"tasks": TASKS, "n_examples": args.examples, "seed": i} for i in range(args.prompts)]
    prompts = [build_prompt(MixtureSpec(tasks=TASKS, n_examples=args.examples), i, 0) for i in range(args.prompts)]
    n_tokens = statistics.mean(backend.count_tokens(p.text) for p in prompts)
    print(f"model {args.model} ({args.dtype}), {args.examples} examples per prompt ({n_tokens:.0f} tokens), "
          f"{args.prompts} prompts x {args.reps} reps, torch threads {torch.get_num_threads()}")
    _post(url + "/score", {"prompt": prompts[0].text, "answers": prompts[0].answers})  # warm-up
    backend.score_one(prompts[0].text, prompts[0].answers)
    times: dict[str, list[float]] = {"backend": [], "re-score": [], "redraw": []}
    for _ in range(args.reps):
        for setting, p in zip(settings, prompts):
            times["backend"].append(timed(lambda: backend.score_one(p.text, p.answers)))
            times["re-score"].append(timed(lambda: _post(url + "/score", {"prompt": p.text, "answers": p.answers})))

            def redraw() -> None:
                drawn = _post(url + "/prompt", setting)
                assert drawn["text"] == p.text  # the server draws the prompt this benchmark scores
                _post(url + "/score", {"prompt": drawn["text"], "answers": drawn["answers"]})

            times["redraw"].append(timed(redraw))
    server.should_exit = True
    thread.join(timeout=30)
    explorer.close()
    med = {key: statistics.median(v) for key, v in times.items()}
    print(f"{'re-score / backend':<22} {med['re-score'] / med['backend']:>6.2f}   goal <= 1.3")
    print(f"{'redraw / backend':<22} {med['redraw'] / med['backend']:>6.2f}")


if __name__ == "__main__":
    main()
