"""Train a small character-level transformer on one task per sequence: the loop, read top to bottom.

    superpose train configs/scratch/plus_cpu.yaml             # a new run folder runs/scratch/plus_cpu-<time>
    superpose train --resume runs/scratch/plus_cpu-<time>     # continue an interrupted run exactly

Everything is a function of the config's seed: the weights are drawn from a ``torch.Generator``,
and batch ``s`` is built from sequence seeds ``(seed, s*batch .. )`` (see :mod:`.data`), so two runs
with one seed give the same loss curve, and a resumed run continues the uninterrupted one. The
schedule is a pure function of the step, so "scheduler state" is just the step number.

The pieces: :mod:`.recipe` (the config), :mod:`.step` (one optimizer step), :mod:`.checkpoint`
(state on disk); the run's folder is opened, like every kind's, by
:func:`superpose.experiments.train.run_train`. A run folder holds::

    config.yaml    the recipe (with the folder as out_dir) and the environment (superpose.runs)
    config.json    the recipe as JSON: what marks a training folder (not a model) to the loaders
    lock           while a process trains in the folder (a second one is refused)
    checkpoint/    the latest checkpoint, and checkpoint.old/ the one before (superpose.scratch.checkpoint)
    records.jsonl  one line per step: loss, learning rate, tokens, elapsed seconds (log.jsonl in
                   folders of older versions, which still resume and render)
    observatory.jsonl  the held-out measurements, with eval_every (superpose.scratch.observatory)
    status.json    "running"; "stopped" with the step when a time limit, stop_at or Ctrl-C ended
                   the call at a checkpoint (--resume continues); "complete" once model/ is written
    model/         the final model, a Hugging Face folder (any command's --model accepts its path)
    summary.md, figures/, summary.json  the summary (summary.json once complete)
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from superpose.errors import SuperposeError
from superpose.files import read_jsonl
from superpose.progress import Bar, Progress
from superpose.runs import RunFolder, training_log, write_status
from superpose.scratch.checkpoint import export_model, load_checkpoint, load_init, save_checkpoint, write_stopped
from superpose.scratch.data import BatchStream
from superpose.scratch.model import build_model
from superpose.scratch.recipe import TrainConfig, load_train_config, lr_at, read_run_config, trained_length
from superpose.scratch.schedule import ScheduledBatches, uses_schedule
from superpose.scratch.step import LossFunction, autocast_for, fast_train_step, make_optimizer, rebuild_moments
from superpose.scratch.summary import TAIL, summarise_training
from superpose.scratch.tokenizer import build_tokenizer, char_vocab

__all__ = ["TrainConfig", "TrainResult", "Start", "load_train_config", "read_run_config", "trained_length",
           "lr_at", "starting_point", "train"]


@dataclass
class TrainResult:
    """What a training run produced (its summary)."""

    out_dir: Path
    model_dir: Path | None  # the final Hugging Face folder (None if stopped early)
    steps_done: int
    losses: list[float] = field(default_factory=list)  # loss of every step from 0, resumed or not
    seconds: float = 0.0  # training time over all sessions (excludes checkpoint writing)
    tokens: int = 0  # tokens processed (non-padding) over all sessions

    @property
    def tokens_per_second(self) -> float:
        """Training throughput."""
        return self.tokens / self.seconds if self.seconds else 0.0

    def summary(self) -> dict:
        """summary.json of a finished run (``seconds`` and ``tokens_per_second`` record time)."""
        tail = self.losses[-TAIL:]
        return {"steps": self.steps_done, "tokens": self.tokens, f"loss_mean_last_{TAIL}_steps": sum(tail) / len(tail),
                "model": "model", "seconds": round(self.seconds, 3),
                "tokens_per_second": round(self.tokens_per_second, 1)}


@dataclass
class Start:
    """Where a run starts: its model and optimizer, fresh or as the checkpoint left them, on its device."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    device: torch.device
    step: int = 0
    seconds: float = 0.0
    tokens: int = 0
    moments_kept: bool = True  # False: a checkpoint without optimizer state (Adam's moments are rebuilt)


def starting_point(cfg: TrainConfig, folder: Path | None) -> Start:
    """The model and optimizer a run of ``cfg`` starts from: the checkpoint in ``folder`` when it holds
    one (``checkpoint/``, or ``checkpoint.old/``, which the error then names), else weights drawn from the
    seed (with ``init_from``'s copied in). Reads only: a missing GPU, an ``init_from`` that does not fit,
    or a damaged checkpoint is a one-line error before any folder is written. Seeds torch's global
    generator (dropout), or restores it from the checkpoint."""
    device = _training_device(cfg)
    if cfg.threads and device.type == "cpu":
        torch.set_num_threads(cfg.threads)
    model = build_model(cfg.model, torch.Generator().manual_seed(cfg.seed)).to(device)
    model.set_attn_implementation(cfg.attention)  # not saved with the model: scoring picks its own
    resume = folder is not None and any((folder / c).exists() for c in ("checkpoint", "checkpoint.old"))
    if cfg.init_from is not None and not resume:
        load_init(model, cfg.init_from, device)
    torch.manual_seed(cfg.seed)  # dropout draws from the global generator (restored on resume)
    optimizer = make_optimizer(model, cfg, device)
    if not resume:
        return Start(model, optimizer, device)
    state = load_checkpoint(folder, cfg, model, optimizer, device)
    torch.set_rng_state(state["torch_rng"])
    return Start(model, optimizer, device, state["step"], state["seconds"], state["tokens"],
                 moments_kept=state["optimizer"] is not None)


def train(cfg: TrainConfig, folder: RunFolder, start: Start | None = None, *, progress: Progress = True) -> TrainResult:
    """Train per ``cfg`` in ``folder``, which the caller made and holds
    (:func:`~superpose.experiments.train.run_train` opens it like every kind's; a scale run trains each
    size of its family in a folder it locks), from ``start`` (default :func:`starting_point`: the
    folder's checkpoint, if any).

    ``cfg.stop_at`` checkpoints and returns after that step, ``cfg.time_limit_minutes`` once this call
    has trained that long, Ctrl-C after the step it interrupts; a resume continues each exactly (or,
    from a checkpoint without optimizer state, after :func:`~superpose.scratch.step.rebuild_moments`).
    """
    out_dir = folder.path
    start = start if start is not None else starting_point(cfg, out_dir)
    model, optimizer, device = start.model, start.optimizer, start.device
    tokenizer = build_tokenizer()

    # The folder: the recipe, "running", the log and observatory cut back to the checkpoint's step.
    (out_dir / "config.json").write_text(json.dumps(cfg.model_dump(mode="json"), indent=2) + "\n")
    write_status(out_dir, "running", kind="train")
    log_path = training_log(out_dir)
    log = [row for row in read_jsonl(log_path) if row["step"] < start.step]  # steps logged after the checkpoint go
    log_path.write_text("".join(json.dumps(r) + "\n" for r in log))
    observatory = _observatory(cfg, out_dir, start.step)

    end = cfg.steps if cfg.stop_at is None else min(cfg.stop_at, cfg.steps)
    time_limit_s = None if cfg.time_limit_minutes is None else 60 * cfg.time_limit_minutes
    autocast = autocast_for(cfg, device)
    bar = Bar(progress, cfg.steps, cfg.name, initial=start.step)
    loss_fn = LossFunction(cfg.compile, bar.say)
    interrupt = DeferredInterrupt(bar.say)
    model.train()
    step, seconds, tokens = start.step, start.seconds, start.tokens
    in_step = False  # the weights may be half-updated (no checkpoint now)
    session_seconds = 0.0  # trained in this call (time_limit_minutes)
    pending: list[tuple[int, float, torch.Tensor, torch.Tensor]] = []  # (step, lr, loss, tokens), not yet read
    with open(log_path, "a") as log_file, _batches(cfg, device) as batches, interrupt, bar:
        try:
            if not start.moments_kept:
                k = rebuild_moments(model, optimizer, batches, start.step, cfg, autocast, loss_fn)
                bar.say(f"resumed at step {start.step} without optimizer state: Adam's second moment rebuilt from "
                        f"the last {k} batches, momentum restarted")
            clock = time.perf_counter()
            while step < end:
                lr = lr_at(step, cfg)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                ids, mask = batches.batch(step)  # [batch, seq] x2
                ids, mask = ids.to(device, non_blocking=True), mask.to(device, non_blocking=True)
                in_step = True
                loss = loss_fn.run(optimizer, lambda fn: fast_train_step(model, optimizer, ids, mask, cfg, autocast, fn))
                pending.append((step, lr, loss, (ids != 0).sum()))
                step += 1
                in_step = False
                out_of_time = (time_limit_s is not None
                               and session_seconds + time.perf_counter() - clock >= time_limit_s)
                stop_now = out_of_time or interrupt.requested
                checkpoint = step % cfg.checkpoint_every == 0 or step == end or stop_now
                rows = []
                if checkpoint or step % cfg.log_every == 0:
                    rows, now = _log_losses(pending, batches, log_file, tokens, seconds, clock)
                    seconds, session_seconds, clock = seconds + now - clock, session_seconds + now - clock, now
                    log += rows
                    tokens = rows[-1]["tokens"]
                bar.advance(1, {"loss": rows[-1]["loss"], "lr": rows[-1]["lr"]} if rows else None)
                if checkpoint:
                    save_checkpoint(out_dir, model, tokenizer, optimizer, step, seconds, tokens, cfg)
                    clock = time.perf_counter()  # writing the checkpoint is not training time
                if observatory is not None and step % cfg.eval_every == 0:
                    observatory.observe(model, step)
                if stop_now:
                    break
        except KeyboardInterrupt:  # a second Ctrl-C, or one before the loop
            if step > start.step and not in_step:  # keep the work done: the next --resume starts here
                rows, now = _log_losses(pending, batches, log_file, tokens, seconds, clock)
                seconds, tokens = seconds + now - clock, rows[-1]["tokens"] if rows else tokens
                save_checkpoint(out_dir, model, tokenizer, optimizer, step, seconds, tokens, cfg)
                write_stopped(out_dir, step, cfg, "interrupted")
                folder.unlock()
            raise

    losses = [r["loss"] for r in log]
    if step < cfg.steps:  # checkpointed above
        why = "interrupted" if interrupt.requested else "out of time" if step < end else "stopped"
        write_stopped(out_dir, step, cfg, why)
        summarise_training(out_dir)
        folder.unlock()
        if interrupt.requested:  # the caller sees the Ctrl-C
            raise KeyboardInterrupt
        return TrainResult(out_dir, None, step, losses, seconds, tokens)
    extra = {"loss_function": loss_fn.note}
    if cfg.model.column_embedding:
        from superpose.models.columns import LABEL

        extra["architecture_change"] = LABEL
    model_dir = export_model(model, tokenizer, out_dir / "model", cfg, losses, seconds, tokens, extra)
    if cfg.export_to is not None:
        export_model(model, tokenizer, Path(cfg.export_to), cfg, losses, seconds, tokens, extra)
    result = TrainResult(out_dir, model_dir, step, losses, seconds, tokens)
    summarise_training(out_dir)  # before "complete": a complete folder always has its summary
    folder.finish(result.summary())
    return result


def _log_losses(pending: list, batches, log_file, tokens: int, seconds: float, clock: float) -> tuple[list[dict], float]:
    """Read the pending steps' losses from the device (the loop's one host sync), append their rows to
    the log and empty ``pending``; returns the rows and the time now (from ``clock``, training time)."""
    if not pending:
        return [], clock
    values = torch.stack([torch.stack([loss.float(), n.float()]) for _, _, loss, n in pending]).tolist()
    batches.check()
    now = time.perf_counter()
    rows = []
    for (s, lr, _, _), (loss, n_tokens) in zip(pending, values):
        tokens += int(n_tokens)
        rows.append({"step": s, "loss": loss, "lr": lr, "tokens": tokens, "seconds": round(seconds + now - clock, 3)})
        log_file.write(json.dumps(rows[-1]) + "\n")
        if not math.isfinite(loss):
            log_file.flush()
            raise SuperposeError(f"loss became {loss} at step {s}; lower lr or raise warmup")
    log_file.flush()
    pending.clear()
    return rows, now


def _training_device(cfg: TrainConfig) -> torch.device:
    """The device ``cfg`` trains on (a missing GPU is a one-line error); warns once of slow bfloat16 on a CPU."""
    from superpose.backends.devices import resolve_device, warn_bfloat16_on_cpu

    where = resolve_device(cfg.device)
    device = torch.device("cuda" if where == "auto" else where)
    if cfg.autocast == "bfloat16" and device.type == "cpu":
        warn_bfloat16_on_cpu()
    return device


def _batches(cfg: TrainConfig, device: torch.device):
    """The run's batch source: tensors built on the device where the tasks allow, else strings."""
    from superpose.scratch.tensor_data import TensorBatches, supports

    if uses_schedule(cfg):
        return ScheduledBatches(cfg, device)
    if supports(cfg.tasks):
        return contextlib.nullcontext(TensorBatches(
            cfg.tasks, cfg.n_examples, cfg.seed, cfg.batch_size, device, min_examples=cfg.min_examples))
    return BatchStream(cfg.tasks, cfg.n_examples, cfg.seed, cfg.batch_size, char_vocab(),
                       workers=cfg.data_workers, min_examples=cfg.min_examples)


def _observatory(cfg: TrainConfig, out_dir: Path, start: int):
    """The run's observatory (None when eval_every is 0); on resume its log keeps rows up to ``start``."""
    if not cfg.eval_every:
        return None
    from superpose.scratch.observatory import Observatory, read_observatory
    from superpose.scratch.snapshot import snapshot_for

    path = out_dir / "observatory.jsonl"
    kept = read_observatory(out_dir, before=start) if start else []
    path.write_text("".join(json.dumps(r) + "\n" for r in kept))
    return Observatory(cfg.tasks, cfg.n_examples, cfg.seed, cfg.eval_sequences, cfg.attention, path,
                       snapshot=snapshot_for(cfg.tasks, cfg.n_examples, cfg.seed))


class DeferredInterrupt:
    """Ctrl-C in the training loop: finish the step, checkpoint, then stop (a second one stops at once).

    Most of a step's time is inside the step, where a checkpoint would hold half-updated weights,
    so an interrupt that arrived there was lost work. Handled in the main thread only (where
    Python delivers signals); elsewhere Ctrl-C keeps its usual meaning.
    """

    def __init__(self, say=print):
        self.requested, self.say, self._previous = False, say, None

    def __enter__(self) -> "DeferredInterrupt":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        self.say("interrupted: finishing this step and checkpointing (Ctrl-C again to stop at once)")

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
