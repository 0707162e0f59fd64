"""Train a small character-level transformer on one task per sequence: the loop, read top to bottom.

    superpose train configs/scratch/plus_cpu.yaml             # a new run folder runs/scratch/plus_cpu-<time>
    superpose train --resume runs/scratch/plus_cpu-<time>     # continue an interrupted run exactly

Everything is a function of the config's seed: the weights are drawn from a ``torch.Generator``,
and batch ``s`` is built from sequence seeds ``(seed, s*batch .. )`` (see :mod:`.data`), so two runs
with one seed give the same loss curve, and a resumed run continues the uninterrupted one. The
schedule is a pure function of the step, so "scheduler state" is just the step number.

The pieces: :mod:`.recipe` (the config), :mod:`.step` (one optimizer step), :mod:`.checkpoint`
(state on disk). A run folder holds::

    config.yaml    the recipe and the environment (a folder made by run_train; superpose.runs)
    config.json    the recipe, as the trainer reads it back on resume
    lock           while a process trains in the folder (a second one is refused)
    checkpoint/    the latest checkpoint, and checkpoint.old/ the one before (superpose.scratch.checkpoint)
    records.jsonl  one line per step: loss, learning rate, tokens, elapsed seconds (log.jsonl in
                   folders of older versions, which still resume and render)
    observatory.jsonl  the held-out measurements, with eval_every (superpose.scratch.observatory)
    status.json    "running"; "stopped" with the step when a time limit, stop_at or Ctrl-C ended
                   the call at a checkpoint (--resume continues); "complete" once model/ is written
    model/         the final model, a Hugging Face folder (any command's --model accepts its path)
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

from superpose.errors import ConfigError, SuperposeError
from superpose.files import read_jsonl
from superpose.progress import Bar, Progress
from superpose.runs import DEFAULT_ROOT, RunFolder, training_log, write_status
from superpose.scratch.checkpoint import export_model, load_checkpoint, load_init, save_checkpoint, write_stopped
from superpose.scratch.data import BatchStream
from superpose.scratch.model import build_model
from superpose.scratch.recipe import (SPEED_ONLY, TrainConfig, load_train_config, lr_at, read_run_config,
                                      refuse_changes, trained_length)
from superpose.scratch.schedule import ScheduledBatches, uses_schedule
from superpose.scratch.step import LossFunction, autocast_for, fast_train_step, make_optimizer, rebuild_moments
from superpose.scratch.summary import summarise_training
from superpose.scratch.tokenizer import build_tokenizer, char_vocab

__all__ = ["TrainConfig", "TrainResult", "SPEED_ONLY", "load_train_config", "read_run_config", "trained_length",
           "lr_at", "train", "run_train"]

@dataclass
class TrainResult:
    """What a training run produced."""

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


def run_train(config: TrainConfig | None, *, root: str | Path = DEFAULT_ROOT, resume: str | Path | None = None,
              backend: None = None, progress: Progress = True, stop_at: int | None = None,
              export_dir: str | Path | None = None, time_limit_s: float | None = None) -> tuple[RunFolder, TrainResult]:
    """Train ``config`` in a new folder ``root/<name>-<time>``, or continue the folder ``resume`` exactly.

    Resuming, the folder's own recipe runs (``config``, if given, may differ from it only in the
    speed-only fields, :data:`SPEED_ONLY`). Training builds its own model: ``backend`` must be None.
    """
    if backend is not None:
        raise ConfigError("backend: training builds its own model from the recipe; pass no backend")
    if resume is not None:
        folder = Path(resume)
        if not (folder / "config.json").is_file():
            raise SuperposeError(f"--resume {resume}: not a training run folder (no config.json)")
        cfg = config if config is not None else read_run_config(folder / "config.json")
        # Train exactly the folder given: config.json's out_dir is where the run started (relative to
        # the directory it started from), not where a copied or moved folder is now.
        cfg = cfg.model_copy(update={"out_dir": str(folder)})
        result = train(cfg, resume=True, stop_at=stop_at, progress=progress, export_dir=export_dir,
                       time_limit_s=time_limit_s)
        return RunFolder(folder, kind="train"), result
    if config is None:
        raise ConfigError("give a training recipe (e.g. configs/scratch/plus_cpu.yaml) or a folder to resume")
    result = train(config, stop_at=stop_at, progress=progress, export_dir=export_dir, time_limit_s=time_limit_s,
                   root=root)
    return RunFolder(result.out_dir, kind="train"), result


def train(cfg: TrainConfig, resume: bool = False, stop_at: int | None = None, progress: Progress = True,
          export_dir: str | Path | None = None, time_limit_s: float | None = None,
          root: str | Path | None = None) -> TrainResult:
    """Train (or resume) per ``cfg`` in exactly ``cfg.out_dir``; ``stop_at`` checkpoints and returns after
    that many steps.

    ``time_limit_s`` does the same once this call has trained that many seconds (a lease on a shared
    GPU, say); ``resume`` continues either, exactly (or, from a checkpoint without optimizer state,
    after :func:`~superpose.scratch.step.rebuild_moments`). With ``root`` (:func:`run_train`), a new
    folder ``root/<name>-<time>`` instead of ``cfg.out_dir``, made once the recipe's checks passed.
    """
    out_dir = Path(cfg.out_dir)
    device = _training_device(cfg)
    if cfg.threads and device.type == "cpu":
        torch.set_num_threads(cfg.threads)
    if resume:
        RunFolder(out_dir).refuse_if_written()  # a second trainer is refused before it reads anything
    if resume and (out_dir / "config.json").is_file():
        refuse_changes(read_run_config(out_dir / "config.json"), cfg, out_dir)  # before the folder is taken
    elif not resume and root is None and ((out_dir / "checkpoint").exists() or (out_dir / "model").exists()):
        raise SuperposeError(f"{out_dir} already holds a run; pass --resume to continue it, or set another out_dir")

    # The model, its optimizer and the random stream: fresh, or as the checkpoint left them.
    tokenizer = build_tokenizer()
    model = build_model(cfg.model, torch.Generator().manual_seed(cfg.seed)).to(device)
    model.set_attn_implementation(cfg.attention)  # not saved with the model: scoring picks its own
    if cfg.init_from is not None and not resume:
        load_init(model, cfg.init_from, device)
    torch.manual_seed(cfg.seed)  # dropout draws from the global generator (restored on resume)
    optimizer = make_optimizer(model, cfg, device)
    start, seconds, tokens, moments_kept = 0, 0.0, 0, True
    if resume:
        state = load_checkpoint(out_dir, cfg, model, optimizer, device)
        torch.set_rng_state(state["torch_rng"])
        start, seconds, tokens = state["step"], state["seconds"], state["tokens"]
        moments_kept = state["optimizer"] is not None
    if root is not None:  # a new folder, locked; its recipe records where it is
        folder = RunFolder.create(cfg.name, cfg.model_dump(mode="json"), root, kind="train")
        out_dir, cfg = folder.path, cfg.model_copy(update={"out_dir": str(folder.path)})
        folder.update_config("config", cfg.model_dump(mode="json"))
    else:
        folder = _take_folder(out_dir)  # a second trainer in this folder stops here

    # The folder: the recipe, "running", the log and observatory cut back to the checkpoint's step.
    (out_dir / "config.json").write_text(json.dumps(cfg.model_dump(mode="json"), indent=2) + "\n")
    write_status(out_dir, "running", kind="train")
    log_path = training_log(out_dir)
    log = [row for row in read_jsonl(log_path) if row["step"] < start]  # steps logged after the checkpoint go
    log_path.write_text("".join(json.dumps(r) + "\n" for r in log))
    observatory = _observatory(cfg, out_dir, start)

    end = cfg.steps if stop_at is None else min(stop_at, cfg.steps)
    autocast = autocast_for(cfg, device)
    bar = Bar(progress, cfg.steps, cfg.name, initial=start)
    loss_fn = LossFunction(cfg.compile, bar.say)
    interrupt = DeferredInterrupt(bar.say)
    model.train()
    step, in_step = start, False  # in_step: the weights may be half-updated (no checkpoint now)
    session_seconds = 0.0  # trained in this call (time_limit_s)
    pending: list[tuple[int, float, torch.Tensor, torch.Tensor]] = []  # (step, lr, loss, tokens), not yet read
    with open(log_path, "a") as log_file, _batches(cfg, device) as batches, interrupt, bar:
        try:
            if not moments_kept:
                k = rebuild_moments(model, optimizer, batches, start, cfg, autocast, loss_fn)
                bar.say(f"resumed at step {start} without optimizer state: Adam's second moment rebuilt from "
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
            if step > start and not in_step:  # keep the work done: the next --resume starts here
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
    summarise_training(out_dir)  # before "complete": a complete folder always has its summary
    write_status(out_dir, "complete", kind="train")
    folder.unlock()
    if export_dir is not None:
        export_model(model, tokenizer, Path(export_dir), cfg, losses, seconds, tokens, extra)
    return TrainResult(out_dir, model_dir, step, losses, seconds, tokens)


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


def _take_folder(out_dir: Path) -> RunFolder:
    """Make ``out_dir`` and lock it for this process (a second trainer there is refused)."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # a file where the folder should be, a read-only place
        raise SuperposeError(f"out_dir {out_dir}: cannot make the run folder there ({e.strerror})") from None
    folder = RunFolder(out_dir, kind="train")
    folder.lock()  # from here an error marks the folder failed (superpose.cli), never a complete one
    return folder


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
