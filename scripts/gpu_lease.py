"""One GPU lease of the study's scratch recipe: the fast step's speed, then ret_k training, back in pieces.

Here, once per session (the device image lacks pydantic; .whl/ is git-ignored):

    python -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \\
        --platform manylinux_2_17_x86_64 -d .whl pydantic==2.14.3 pydantic-core==2.50.4 \\
        annotated-types==0.8.0 typing-inspection==0.4.5

Then one device call, ``carry: [".whl", "leases"]``, ``timeout_s: 600``:

    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && \\
    PYTHONPATH=/tmp/site:src PYTHONUNBUFFERED=1 python3 scripts/gpu_lease.py --out $OUT

It (1) times the fast step (torch.compile, bfloat16 autocast, tensor batches on the GPU) of the
study's ret_k and plus_k models against today's step, with MFU against a bf16 matrix-product peak
measured there, and checks that the step makes no host sync; (2) trains ``ret_paper`` (or
``--recipe plus``) until the lease's minutes run out -- from scratch, or from ``leases/ret_paper/``
(the last lease's pieces) -- and (3) writes into ``$OUT``: ``ret_paper.tar.NNN`` (pieces < 16 MiB),
``ret_paper.manifest.json`` and ``lease.json`` (device, date, every figure). ``--no-speed`` skips
(1), for the leases that only continue the run. Back here, copy them into ``leases/ret_paper/``
(the next lease starts from there) and ``python scripts/lease_checkpoint.py unpack
leases/ret_paper/ret_paper.manifest.json runs/scratch/ret_paper`` gives a run folder (its
``checkpoint/`` is a model folder for ``superpose sweep``). ``--dry-run`` runs it all on a CPU with
a small model, to check the script before spending a lease.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from timing import timed  # noqa: E402  (benchmarks/timing.py)
from training import fresh_model, matmul_peak, training_flops_per_token  # noqa: E402  (benchmarks/training.py)

RECIPES = {"ret": ROOT / "configs/scratch/ret_paper.yaml", "plus": ROOT / "configs/scratch/plus_paper.yaml"}


def config(kind: str, args, **over):
    """The study's recipe on this device (compiled, loss read every 50 steps), small with --dry-run."""
    from superpose.scratch.train import load_train_config

    cfg = load_train_config(RECIPES[kind], device=args.device, compile=not args.no_compile, log_every=50,
                            seed=args.seed, **over)
    if args.dry_run:  # a small model and batch with the recipe's schedule: the script's path, in minutes on a CPU
        small = cfg.model.model_copy(update={"n_layers": 2, "d_model": 64, "n_heads": 2, "d_mlp": 128})
        cfg = cfg.model_copy(update={"batch_size": 4, "n_examples": 30, "checkpoint_every": 20, "model": small})
    return cfg


def speed(kind: str, args, peak: float) -> dict:
    """tokens/s and MFU of today's step and the fast one (eager, compiled) on the recipe's model and batch."""
    from superpose.scratch.tensor_data import TensorBatches
    from superpose.scratch.step import autocast_for, fast_train_step, masked_loss, train_step

    cfg = config(kind, args)
    device = torch.device(cfg.device)
    autocast = autocast_for(cfg, device)
    gen = TensorBatches(cfg.tasks, cfg.n_examples, cfg.seed, cfg.batch_size, device)
    data_s = statistics.median(timed(lambda: gen.batch(s), device) for s in range(6))
    ids, mask = gen.batch(0)
    tokens = int((ids != 0).sum())
    flops = training_flops_per_token(cfg, ids.shape[1]) * ids.numel()
    out = {"config": cfg.name, "batch": list(ids.shape), "tokens_per_batch": tokens,
           "data_seconds_per_batch_gpu": data_s, "steps": {}}
    variants = [("today", None), ("fast_eager", masked_loss)]
    if cfg.compile:
        variants.append(("fast_compiled", torch.compile(masked_loss, dynamic=False)))
    for name, fn in variants:
        model, opt = fresh_model(cfg, device)
        step = ((lambda: train_step(model, opt, ids, mask, cfg, autocast)) if fn is None
                else (lambda: fast_train_step(model, opt, ids, mask, cfg, autocast, fn)))
        first = timed(step, device)  # the compile, for the compiled one
        times = [timed(step, device) for _ in range(args.timed_steps)]
        sec = statistics.median(times)
        out["steps"][name] = {"seconds_per_step": sec, "first_step_seconds": first, "tokens_per_second": tokens / sec,
                              "tflops": flops / sec / 1e12, "mfu_measured_peak": flops / sec / peak,
                              "mfu_790": flops / sec / 790e12}
        print(f"[{kind}] {name:>13}: {sec * 1000:7.1f} ms/step, {tokens / sec:>11,.0f} tokens/s, "
              f"MFU {flops / sec / peak:.1%} of measured peak, {flops / sec / 790e12:.1%} of 790 TFLOP/s "
              f"(first step {first:.1f} s)", flush=True)
        if name == variants[-1][0] and device.type == "cuda":  # a host sync inside the step would warn here
            torch.cuda.set_sync_debug_mode("warn")
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                for s in range(2):
                    b_ids, b_mask = gen.batch(s + 1)
                    fast_train_step(model, opt, b_ids, b_mask, cfg, autocast, fn)
            torch.cuda.set_sync_debug_mode(0)
            out["host_syncs_in_two_steps"] = [str(w.message)[:160] for w in caught]
            print(f"[{kind}] host syncs in two fast steps (data included): {len(caught)}", flush=True)
        del model, opt
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return out


def main() -> None:
    from superpose.scratch.lease import pack, unpack
    from superpose.runs import RunFolder
    from superpose.scratch.train import train

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="the folder whose files come back ($OUT)")
    ap.add_argument("--minutes", type=float, default=9.0, help="wall clock for the whole script")
    ap.add_argument("--recipe", choices=sorted(RECIPES), default="ret", help="the recipe to train")
    ap.add_argument("--carried", type=Path, help="the last lease's pieces, resumed if its manifest is there "
                    "(default: leases/<recipe>_paper)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/lease"), help="scratch space for the run folder")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--timed-steps", type=int, default=8)
    ap.add_argument("--no-speed", action="store_true", help="train only (a lease that continues a run)")
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--seed", type=int, help="the recipe's seed (default: its own, 0). On a CPU the plus_k recipe "
                    "learned for one seed in four (docs/scratch.md); a lease's pieces resume only with their seed")
    ap.add_argument("--dry-run", action="store_true", help="a small model on this machine's CPU")
    args = ap.parse_args()
    t_end = time.time() + 60 * args.minutes
    args.out.mkdir(parents=True, exist_ok=True)
    device = torch.device(args.device)
    report = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "torch": torch.__version__,
              "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu", "dry_run": args.dry_run}
    import transformers

    report["transformers"] = transformers.__version__
    if not args.no_speed:
        peak = matmul_peak(device, n=8192 if device.type == "cuda" else 1024, reps=10 if device.type == "cuda" else 2)
        report["bf16_matmul_peak_tflops"] = peak / 1e12
        print(f"measured bf16 matrix-product peak: {peak / 1e12:.0f} TFLOP/s", flush=True)
        report["speed"] = {kind: speed(kind, args, peak) for kind in ("ret", "plus")}
        (args.out / "lease.json").write_text(json.dumps(report, indent=1) + "\n")

    name = f"{args.recipe}_paper"
    run_dir = args.work / name
    shutil.rmtree(run_dir, ignore_errors=True)
    manifest = (args.carried or ROOT / "leases" / name) / f"{name}.manifest.json"
    resume = manifest.is_file()
    if resume:
        report["resumed_from"] = unpack(manifest, run_dir)["step"]
        print(f"resuming {name} at step {report['resumed_from']}", flush=True)
    cfg = config(args.recipe, args, out_dir=str(run_dir))
    budget = t_end - time.time() - 60  # a minute for the last checkpoint and the pieces
    print(f"training {name} for {budget / 60:.1f} minutes", flush=True)
    run_dir.mkdir(parents=True, exist_ok=True)  # the lease's own folder: the loop resumes its checkpoint, if unpacked
    cfg = cfg.model_copy(update={"time_limit_minutes": max(budget, 1.0) / 60})
    result = train(cfg, RunFolder(run_dir, kind="train"), progress=False)
    start = report.get("resumed_from", 0)
    steps_now = result.steps_done - start
    tail = result.losses[-50:]
    report["train"] = {"steps_done": result.steps_done, "steps_this_lease": steps_now, "of": cfg.steps,
                       "seconds_total": result.seconds, "tokens_per_second_total": result.tokens_per_second,
                       "loss_mean_last_50": sum(tail) / len(tail), "losses_every_50": result.losses[::50]}
    print(f"{name}: step {result.steps_done} of {cfg.steps} ({steps_now} this lease), loss (last 50) "
          f"{sum(tail) / len(tail):.4f}", flush=True)
    facts = json.loads(pack(run_dir, args.out).read_text())
    report["checkpoint"] = {k: facts[k] for k in ("step", "bytes", "moments", "weights_bytes")}
    report["checkpoint"]["pieces"] = [p["file"] for p in facts["pieces"]]
    (args.out / "lease.json").write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {len(facts['pieces'])} pieces ({facts['bytes'] / 1e6:.1f} MB, moments {facts['moments']}) "
          f"and lease.json to {args.out}; {t_end - time.time():.0f} s of the lease left", flush=True)


if __name__ == "__main__":
    main()
