"""Train a small character-level transformer on one task per sequence (nanoGPT-style, top to bottom).

    superpose train configs/scratch/plus_cpu.yaml            # start (or fail if out_dir has a run)
    superpose train configs/scratch/plus_cpu.yaml --resume   # continue an interrupted run exactly

Everything is a function of the config's seed: the weights are drawn from a ``torch.Generator``,
and batch ``s`` is built from sequence seeds ``(seed, s*batch .. )`` (see :mod:`.data`), so two runs
with one seed give the same loss curve, and a resumed run continues the uninterrupted one. The
schedule is a pure function of the step, so "scheduler state" is just the step number.

``out_dir`` holds::

    checkpoint/    the latest checkpoint: model (safetensors + config + tokenizer) and state.pt
                   (optimizer, step, elapsed time, RNG states)
    checkpoint.old/  the one before (a fallback, should the latest be damaged)
    log.jsonl      one line per step: loss, learning rate, tokens, elapsed seconds
    status.json    "running"; "stopped" with the step when a time limit, stop_at or Ctrl-C ended
                   the call at a checkpoint (--resume continues); "complete" once model/ is written;
                   kind "train" (superpose.runs)
    model/         the final model, a Hugging Face folder (any command's --model accepts its path)
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from superpose.config import read_yaml, validate
from superpose.errors import ConfigError, SuperposeError
from superpose.files import read_jsonl
from superpose.runs import RunFolder, write_status
from superpose.scratch.data import BatchStream, make_sequence, sequence_rng
from superpose.scratch.model import ModelConfig, build_model
from superpose.scratch.tokenizer import build_tokenizer, char_vocab
from superpose.scratch.schedule import (Curriculum, FamilyWeight, Phase, ScheduledBatches, all_specs,
                                        expand_tasks, lr_in_phase, uses_schedule)
from superpose.tasks import get_task


class TrainConfig(BaseModel):
    """A training recipe (YAML). Defaults are the study's, except batch size and steps."""

    model_config = ConfigDict(extra="forbid")

    name: str = "scratch"
    tasks: list[str]  # task names or shell patterns: ["plus_*"] is plus_0 .. plus_9
    n_examples: int = Field(100, ge=1)  # in-context examples per sequence (plus one query)
    # Varied lengths: each sequence draws its number of examples from min_examples .. n_examples
    # (None: always n_examples). Positions past the longest sequence are never trained.
    min_examples: int | None = Field(None, ge=1)
    model: ModelConfig = Field(default_factory=ModelConfig)
    # Start from the weights of a trained model (an embedded name such as scratch-plus-cpu, or a
    # folder, e.g. another recipe's runs/.../model) instead of a random init; its size must equal
    # `model`'s. Checked when training starts, before out_dir is written. None: from scratch.
    init_from: str | None = None
    steps: int = Field(5000, ge=1)
    batch_size: int = Field(400, ge=1)
    micro_batches: int = Field(1, ge=1)  # split a batch to save memory; the gradient is unchanged
    lr: float = Field(5e-4, gt=0)
    warmup_steps: int = Field(250, ge=0)
    decay_steps: int = Field(1000, ge=0)  # the last decay_steps steps decay linearly to min_lr
    min_lr: float = Field(0.0, ge=0)
    weight_decay: float = Field(0.1, ge=0)
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = Field(1.0, gt=0)
    seed: int = 0
    checkpoint_every: int = Field(500, ge=1)
    out_dir: str = "runs/scratch/scratch"
    device: str = "auto"  # auto: cuda when available, else cpu
    autocast: Literal["none", "bfloat16"] = "none"  # bfloat16 autocast: GPUs, and CPUs with bf16 instructions
    threads: int | None = Field(None, ge=1)  # CPU threads for torch; None: torch's default
    fused_adamw: bool = True  # torch's fused AdamW kernel (CPU and CUDA)
    # torch.compile the model and loss (falls back to eager, saying so, where compiling fails).
    # It pays after a warm-up of 30 s to minutes, so it suits long runs (docs/scratch.md has numbers).
    compile: bool = False
    # The attention kernel, a speed-only choice (the same softmax attention either way): "sdpa" is
    # torch's fused kernel (flash attention on GPUs); "eager" is transformers' matrix products, which
    # on a CPU with bfloat16 autocast ran 2.4x faster, compiled, at 84 tokens (docs/scratch.md), but
    # keeps a [batch, heads, seq, seq] score tensor per layer (~6 GB in bfloat16 for the study's
    # 400 x 1111-token batch): keep "sdpa" for long sequences and on GPUs.
    attention: Literal["sdpa", "eager"] = "sdpa"
    # The loss is read from the device every log_every steps: one host sync per read, none in the
    # step. log.jsonl still holds every step's loss.
    log_every: int = Field(50, ge=1)
    # Processes that build string batches ahead of the loop, for tasks the tensor generator
    # (superpose.scratch.tensor_data: plus_k, ret_k) does not build. Batches are a pure function
    # of the step, so this changes speed, never the run.
    data_workers: int = Field(0, ge=0)

    # Switches that keep the study's setting (one task per sequence), see superpose.scratch.schedule:
    # a weighted mixture of task families, curricula on a step schedule, and phases (a warm start,
    # then the study's task) in one run. `tasks` stays the task the recipe is FOR (the observatory
    # measures it); phases and the mixture say what each step trains on.
    mixture: list[FamilyWeight] | None = None
    curriculum: Curriculum | None = None
    phases: list[Phase] | None = None
    # The training observatory (superpose.scratch.observatory): every eval_every steps, on a fixed
    # held-out batch of `tasks`, loss by example index, in-context accuracy, attention on the
    # answer's column (retrieval) and a small position-controlled λ snapshot, in observatory.jsonl.
    eval_every: int = Field(0, ge=0)  # 0: off
    eval_sequences: int = Field(64, ge=1)

    @field_validator("tasks")
    @classmethod
    def _expand_tasks(cls, patterns: list[str]) -> list[str]:
        return expand_tasks(patterns)

    @model_validator(mode="after")
    def _check(self) -> "TrainConfig":
        if self.phases:
            total = sum(p.steps for p in self.phases)
            if "steps" not in self.model_fields_set:
                self.steps = total
            elif self.steps != total:
                raise ValueError(f"steps={self.steps} is not the phases' total ({total}); leave steps out")
            for i, p in enumerate(self.phases):
                w = p.warmup_steps if p.warmup_steps is not None else self.warmup_steps
                d = p.decay_steps if p.decay_steps is not None else self.decay_steps
                if w + d > p.steps:
                    raise ValueError(f"phases[{i}]: warmup_steps + decay_steps ({w} + {d}) exceeds its "
                                     f"steps={p.steps}")
        elif self.batch_size % self.micro_batches:
            raise ValueError(f"batch_size={self.batch_size} must be a multiple of micro_batches={self.micro_batches}")
        if not self.phases and self.warmup_steps + self.decay_steps > self.steps:
            raise ValueError(f"warmup_steps + decay_steps ({self.warmup_steps} + {self.decay_steps}) "
                             f"exceeds steps={self.steps}")
        if self.min_examples is not None and self.min_examples > self.n_examples:
            raise ValueError(f"min_examples={self.min_examples} exceeds n_examples={self.n_examples}")
        if self.min_lr > self.lr:
            raise ValueError(f"min_lr={self.min_lr} exceeds lr={self.lr}")
        vocab = char_vocab()
        longest = 0
        for t, n in _task_lengths(self):
            for i in range(3):  # a few draws: inputs of some spaces vary in length
                s = make_sequence([t], n, sequence_rng(-1, i))
                longest = max(longest, len(s.text))
                bad = sorted({c for c in s.text if c not in vocab})
                if bad:
                    raise ValueError(f"task '{t.name}' writes characters outside the character "
                                     f"vocabulary: {bad!r}")
        if longest > self.model.max_position_embeddings:
            raise ValueError(
                f"model.max_position_embeddings={self.model.max_position_embeddings} is shorter than a "
                f"training sequence ({longest} characters for n_examples={self.n_examples})")
        return self


def _task_lengths(cfg: "TrainConfig") -> list[tuple]:
    """(task, examples per sequence) pairs that bound the run's sequence lengths (8 letters is the
    longest retrieval input, so a letters curriculum never makes a longer sequence)."""
    pairs = [(get_task(n), cfg.n_examples) for n in cfg.tasks]
    if uses_schedule(cfg):
        pairs += [(get_task(n), spec.n_examples) for spec in all_specs(cfg) for n in spec.task_names]
    return pairs


# Fields that change how fast a run goes, never its numbers: a resume may change them.
SPEED_ONLY = {"out_dir", "threads", "compile", "attention", "log_every", "data_workers", "eval_every",
              "eval_sequences"}


def load_train_config(path: str | Path, **overrides) -> TrainConfig:
    """A validated :class:`TrainConfig` from YAML; ``overrides`` replace top-level fields."""
    data = read_yaml(path)
    data.update({k: v for k, v in overrides.items() if v is not None})
    return validate(TrainConfig, data, str(path))


def read_run_config(path: Path) -> TrainConfig:
    """The recipe a training run folder recorded (its config.json); a damaged file is one line naming it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise SuperposeError(f"{path}: damaged, not the JSON recipe `superpose train` writes "
                             f"({str(e).splitlines()[0][:120]})") from None
    if not isinstance(data, dict):
        raise SuperposeError(f"{path}: damaged, expected the JSON recipe `superpose train` writes, "
                             f"got a {type(data).__name__}")
    return validate(TrainConfig, data, str(path))


def trained_length(cfg: TrainConfig) -> int:
    """Tokens in the longest training sequence of ``cfg`` (n_examples examples plus the query).

    The model never saw a position beyond it; scoring a longer prompt is extrapolation, which the
    backends warn about (``training.json``'s ``trained_sequence_length``).
    """
    longest = 0
    for t, n in _task_lengths(cfg):
        for i in range(3):  # a few draws: inputs of some spaces vary in length
            longest = max(longest, len(make_sequence([t], n, sequence_rng(-1, i)).text))
    return longest


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Warmup-stable-decay: linear warmup, constant, then linear decay to min_lr over the last steps."""
    if cfg.phases:
        return lr_in_phase(step, cfg)
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    decay_start = cfg.steps - cfg.decay_steps
    if step < decay_start:
        return cfg.lr
    frac = (step - decay_start + 1) / max(cfg.decay_steps, 1)  # reaches min_lr on the last step
    return cfg.lr + (cfg.min_lr - cfg.lr) * frac


def answer_loss(model, input_ids: torch.Tensor, loss_mask: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(sum of cross-entropies over answer targets, their number); logits only where loss is taken.

    input_ids, loss_mask: [batch, seq]. Only answer positions reach the output layer, which skips
    most of the logits of a plain causal-LM loss.
    """
    hidden = model.base_model(input_ids=input_ids).last_hidden_state  # [batch, seq, d_model]
    targets_mask = loss_mask[:, 1:]  # [batch, seq-1]: token t+1 is predicted at position t
    h = hidden[:, :-1][targets_mask]  # [n_targets, d_model]
    logits = model.lm_head(h).float()  # [n_targets, vocab]
    targets = input_ids[:, 1:][targets_mask]  # [n_targets]
    return F.cross_entropy(logits, targets, reduction="sum"), int(targets.numel())


def make_optimizer(model, cfg: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (norm gains are not decayed)."""
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, fused=cfg.fused_adamw or None)


def autocast_for(cfg: TrainConfig, device: torch.device):
    """The autocast context of ``cfg`` on ``device`` (a no-op unless ``autocast: bfloat16``)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.autocast == "bfloat16")


def train_step(model, optimizer, ids: torch.Tensor, mask: torch.Tensor, cfg: TrainConfig,
               autocast, loss_fn=answer_loss) -> float:
    """One optimizer step on a batch (ids, mask: [batch, seq]); returns the mean answer loss."""
    n_targets = int(mask[:, 1:].sum())
    micro = ids.shape[0] // cfg.micro_batches
    total = 0.0
    for m in range(cfg.micro_batches):
        rows = slice(m * micro, (m + 1) * micro)
        with autocast:
            loss_sum, _ = loss_fn(model, ids[rows], mask[rows])
        (loss_sum / n_targets).backward()  # mean over the whole batch's targets, not the micro-batch's
        total += loss_sum.item()
    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return total / n_targets


def masked_loss(model, input_ids: torch.Tensor, loss_mask: torch.Tensor) -> torch.Tensor:
    """Sum of cross-entropies over answer targets, with fixed shapes: no host sync, one compile.

    input_ids, loss_mask: [batch, seq]. The same sum as :func:`answer_loss`, but the output layer
    runs at every position (a vocabulary of 98 makes it ~1 % of the step) and the targets without
    loss are ignored, instead of a boolean selection whose size only the device knows.
    """
    # use_cache=False: by default the model also copies every layer's keys and values into a cache
    hidden = model.base_model(input_ids=input_ids, use_cache=False).last_hidden_state  # [batch, seq, d_model]
    logits = model.lm_head(hidden[:, :-1]).float()  # [batch, seq-1, vocab]
    targets = input_ids[:, 1:].masked_fill(~loss_mask[:, 1:], -100)  # [batch, seq-1]
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100, reduction="sum")


def accumulate_gradients(model, ids: torch.Tensor, mask: torch.Tensor, cfg: TrainConfig, autocast,
                         loss_fn=masked_loss) -> torch.Tensor:
    """Gradients of the batch's mean answer loss, clipped, in ``.grad``; returns that loss (on the device)."""
    n_targets = mask[:, 1:].sum()  # a tensor: reading it would wait for the device
    micro = ids.shape[0] // cfg.micro_batches
    total = torch.zeros((), device=ids.device)
    for m in range(cfg.micro_batches):
        rows = slice(m * micro, (m + 1) * micro)
        with autocast:
            loss_sum = loss_fn(model, ids[rows], mask[rows])
        (loss_sum / n_targets).backward()  # mean over the whole batch's targets, not the micro-batch's
        total += loss_sum.detach()
    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    return total / n_targets


def fast_train_step(model, optimizer, ids: torch.Tensor, mask: torch.Tensor, cfg: TrainConfig, autocast,
                    loss_fn=masked_loss) -> torch.Tensor:
    """:func:`train_step` without host syncs: the mean answer loss stays on the device."""
    loss = accumulate_gradients(model, ids, mask, cfg, autocast, loss_fn)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss


class LossFunction:
    """:func:`masked_loss`, compiled by ``torch.compile`` when asked, else (or if that fails) eager.

    Compiling happens in the first call; a failure there (no C compiler, an unsupported op)
    switches to eager for good and says so once. ``note`` records which ran, for training.json.
    """

    def __init__(self, compile: bool, say=print):
        self.fn, self.note, self.say = masked_loss, "eager", say
        self.untried = compile  # the first compiled step has not run yet
        if compile:
            try:
                self.fn, self.note = torch.compile(masked_loss, dynamic=False), "compiled"
            except Exception as e:  # e.g. a platform torch.compile does not support
                self._fall_back(e)

    def _fall_back(self, error: Exception) -> None:
        why = f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
        self.fn, self.note, self.untried = masked_loss, f"eager (torch.compile failed: {why})", False
        self.say(f"torch.compile failed, training eager: {why}")

    def run(self, optimizer, work):
        """``work(loss_fn)``; the first compiled run, if compiling fails, is redone eager."""
        if not self.untried:
            return work(self.fn)
        try:
            out = work(self.fn)
        except Exception as e:  # compiling runs inside the first forward and backward
            optimizer.zero_grad(set_to_none=True)  # the optimizer had not stepped: redo it eager
            self._fall_back(e)
            out = work(self.fn)
        self.untried = False
        return out


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


def _load_init(model, source: str, device: torch.device) -> None:
    """Copy the weights of a trained model (embedded name or folder) into ``model``."""
    from safetensors.torch import load_file

    from superpose.models.loading import resolve_model

    try:
        _, folder, _ = resolve_model(source)
    except SuperposeError as e:
        raise ConfigError(f"init_from: {e}") from None
    path = Path(folder) / "model.safetensors"
    if not path.is_file():
        raise ConfigError(f"init_from: no model.safetensors in {folder}")
    try:
        model.load_state_dict(load_file(path, device=str(device)))
    except RuntimeError as e:
        raise ConfigError(f"init_from: the weights of {source} do not fit the model config "
                          f"({str(e).splitlines()[0]})") from None


def _device(cfg: TrainConfig) -> torch.device:
    from superpose.backends.devices import resolve_device

    where = resolve_device(cfg.device)  # a missing GPU is a one-line error
    return torch.device("cuda" if where == "auto" else where)


def _save_checkpoint(out_dir: Path, model, tokenizer, optimizer, step: int, seconds: float,
                     tokens: int, cfg: TrainConfig) -> None:
    # Write beside the old checkpoint, then swap: a kill mid-write leaves the previous one intact.
    # The previous one is kept (checkpoint.old) until the next save, to resume from if this one is damaged.
    tmp, final, old = out_dir / "checkpoint.tmp", out_dir / "checkpoint", out_dir / "checkpoint.old"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _save_quietly(model, tokenizer, tmp)
        torch.save({
            "step": step, "optimizer": optimizer.state_dict(), "seconds": seconds, "tokens": tokens,
            "config": cfg.model_dump(mode="json"), "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        }, tmp / "state.pt")
    except BaseException:  # a full disk, say: no half-written checkpoint left beside the last good one
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():  # the one before stays as checkpoint.old: a fallback if the latest is damaged
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
    tmp.rename(final)


_STATE_KEYS = ("step", "optimizer", "seconds", "tokens", "config", "torch_rng")  # what state.pt must hold


def _load_checkpoint(out_dir: Path, cfg: TrainConfig, model, optimizer, device: torch.device) -> dict:
    """Load ``out_dir/checkpoint`` into ``model`` and ``optimizer``; returns its state.pt.

    A missing, damaged or foreign file is one line naming it and what is wrong, and where the
    previous checkpoint (``checkpoint.old``, one save older) is, if there is one.
    """
    from safetensors.torch import load_file

    ckpt, old = out_dir / "checkpoint", out_dir / "checkpoint.old"
    fallback = (f"; the previous checkpoint is {old} (move it to {ckpt} to resume from it)"
                if (old / "state.pt").is_file() else "; no earlier checkpoint is kept")

    def damaged(path: Path, what: str, error: Exception | None = None) -> SuperposeError:
        detail = f" ({str(error).strip().splitlines()[0][:160]})" if error is not None and str(error).strip() else ""
        return SuperposeError(f"{path}: {what}{detail}{fallback}")

    if not (ckpt / "state.pt").is_file():
        raise SuperposeError(f"nothing to resume in {out_dir} (no checkpoint/state.pt)"
                             + (fallback if old.exists() else ""))
    try:
        state = torch.load(ckpt / "state.pt", map_location=device, weights_only=False)
    except Exception as e:  # a cut file, or not a torch file at all: torch and pickle raise many kinds
        raise damaged(ckpt / "state.pt", "damaged, torch cannot read it", e) from None
    if not isinstance(state, dict) or any(k not in state for k in _STATE_KEYS):
        raise damaged(ckpt / "state.pt", f"not a `superpose train` checkpoint (expected {', '.join(_STATE_KEYS)})")
    try:
        saved = TrainConfig.model_validate(state["config"])
    except ValueError as e:
        raise damaged(ckpt / "state.pt", "its recorded config is not a training recipe", e) from None
    if saved.model_dump(exclude=SPEED_ONLY) != cfg.model_dump(exclude=SPEED_ONLY):
        raise ConfigError(f"{out_dir}: the config differs from the one this run started with; "
                          "resume with the same config (or start a new out_dir)")
    try:
        weights = load_file(ckpt / "model.safetensors", device=str(device))
    except Exception as e:  # safetensors' own error for a cut or empty file; OSError for a missing one
        raise damaged(ckpt / "model.safetensors", "damaged, not a whole safetensors file", e) from None
    try:
        model.load_state_dict(weights)
        if state["optimizer"] is not None:
            optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError, KeyError) as e:
        raise damaged(ckpt, "its weights or optimizer state do not fit the run's model", e) from None
    return state


def _save_quietly(model, tokenizer, folder: Path) -> None:
    """save_pretrained without its per-call progress bar (it would break the training bar)."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def _read_log(path: Path, before: int) -> list[dict]:
    return [row for row in read_jsonl(path) if row["step"] < before]


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


def moment_batches(beta2: float) -> int:
    """Batches whose gradients rebuild Adam's second moment: older ones would weigh < 2 % in it."""
    return max(1, math.ceil(math.log(0.02) / math.log(beta2)))


def rebuild_moments(model, optimizer, batches, step: int, cfg: TrainConfig, autocast,
                    loss_fn: LossFunction) -> int:
    """A warm restart of Adam for a checkpoint without optimizer state; returns the batches it read.

    The second moment (the per-weight gradient scale) is re-estimated from the gradients of the
    batches of the last K steps at the resumed weights, with Adam's decay and bias correction; the
    first moment (momentum) restarts from zero and rebuilds itself within ~10 steps (beta1 = 0.9).
    Rebuilding the momentum from those gradients too would overshoot: gradients taken at one point
    agree with each other far more than those along the path, which partly cancel. A test and
    docs/scratch.md give how far the loss curve then strays from the uninterrupted run.
    """
    b2 = cfg.betas[1]
    k = min(step, moment_batches(b2))
    params = [p for group in optimizer.param_groups for p in group["params"]]
    v = [torch.zeros_like(p) for p in params]
    rng = torch.get_rng_state()  # dropout here must not shift the run's random stream
    for s in range(step - k, step):
        ids, mask = batches.batch(s)
        ids, mask = ids.to(model.device), mask.to(model.device)
        loss_fn.run(optimizer, lambda fn: accumulate_gradients(model, ids, mask, cfg, autocast, fn))
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        torch._foreach_mul_(v, b2)
        torch._foreach_addcmul_(v, grads, grads, value=1 - b2)  # v = b2 v + (1 - b2) g^2
        optimizer.zero_grad(set_to_none=True)
    torch.set_rng_state(rng)
    state = optimizer.state_dict()
    scale_v = (1 - b2 ** step) / (1 - b2 ** k)  # the EMA over k batches, unbiased, in Adam's form at `step`
    state["state"] = {i: {"step": torch.tensor(float(step)), "exp_avg": torch.zeros_like(vi),
                          "exp_avg_sq": vi * scale_v} for i, vi in enumerate(v)}
    optimizer.load_state_dict(state)
    return k


def train(cfg: TrainConfig, resume: bool = False, stop_at: int | None = None,
          progress: bool = True, export_dir: str | Path | None = None,
          time_limit_s: float | None = None) -> TrainResult:
    """Train (or resume) per ``cfg``; ``stop_at`` checkpoints and returns after that many steps.

    ``time_limit_s`` does the same once this call has trained that many seconds (a lease on a shared
    GPU, say); ``resume`` continues either, exactly (or, from a checkpoint without optimizer state,
    after :func:`rebuild_moments`).
    """
    from tqdm.auto import tqdm

    out_dir = Path(cfg.out_dir)
    device = _device(cfg)
    if cfg.autocast == "bfloat16" and device.type == "cpu":
        from superpose.backends.devices import warn_bfloat16_on_cpu

        warn_bfloat16_on_cpu()
    if cfg.threads and device.type == "cpu":
        torch.set_num_threads(cfg.threads)
    tokenizer = build_tokenizer()

    model = build_model(cfg.model, torch.Generator().manual_seed(cfg.seed)).to(device)
    model.set_attn_implementation(cfg.attention)  # not saved with the model: scoring picks its own
    if cfg.init_from is not None and not resume:
        _load_init(model, cfg.init_from, device)
    torch.manual_seed(cfg.seed)  # dropout draws from the global generator (restored on resume)
    optimizer = make_optimizer(model, cfg, device)
    start, seconds, tokens, moments = 0, 0.0, 0, None
    ckpt = out_dir / "checkpoint"
    if resume:
        state = _load_checkpoint(out_dir, cfg, model, optimizer, device)
        torch.set_rng_state(state["torch_rng"])
        start, seconds, tokens = state["step"], state["seconds"], state["tokens"]
        moments = "kept" if state["optimizer"] is not None else "rebuilt"
    elif ckpt.exists() or (out_dir / "model").exists():
        raise SuperposeError(f"{out_dir} already holds a run; pass --resume to continue it, "
                             "or set another out_dir")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # a file where the folder should be, a read-only place
        raise SuperposeError(f"out_dir {out_dir}: cannot make the run folder there ({e.strerror})") from None
    held = RunFolder(out_dir, kind="train")
    held.hold()  # from here an error marks the folder failed (superpose.cli), never a complete one
    (out_dir / "config.json").write_text(json.dumps(cfg.model_dump(mode="json"), indent=2) + "\n")
    write_status(out_dir, "running", kind="train")
    log_path = out_dir / "log.jsonl"
    log = _read_log(log_path, before=start)  # drop steps logged after the checkpoint we resume from
    log_path.write_text("".join(json.dumps(r) + "\n" for r in log))
    observatory = _observatory(cfg, out_dir, start)

    end = cfg.steps if stop_at is None else min(stop_at, cfg.steps)
    autocast = autocast_for(cfg, device)
    say = lambda line: tqdm.write(line, file=sys.stderr)  # noqa: E731 (one line above the bar)
    loss_fn = LossFunction(cfg.compile, say)
    model.train()
    bar = tqdm(total=cfg.steps, initial=start, disable=not progress, desc=cfg.name, unit="step",
               dynamic_ncols=True)
    step, in_step = start, False
    session_seconds = 0.0  # trained in this call (time_limit_s)
    pending: list[tuple[int, float, torch.Tensor, torch.Tensor]] = []  # (step, lr, loss, tokens) not yet read

    def read_losses() -> None:
        """Read the pending steps' losses from the device (the one host sync) and log them."""
        nonlocal seconds, session_seconds, tokens, clock
        if not pending:
            return
        values = torch.stack([torch.stack([p[2].float(), p[3].float()]) for p in pending]).tolist()
        batches.check()
        now = time.perf_counter()
        seconds, session_seconds, clock = seconds + now - clock, session_seconds + now - clock, now
        for (s, lr, _, _), (loss, n_tokens) in zip(pending, values):
            tokens += int(n_tokens)
            row = {"step": s, "loss": loss, "lr": lr, "tokens": tokens, "seconds": round(seconds, 3)}
            log.append(row)
            log_file.write(json.dumps(row) + "\n")
            if not math.isfinite(loss):
                raise SuperposeError(f"loss became {loss} at step {s}; lower lr or raise warmup")
        log_file.flush()
        pending.clear()
        bar.set_postfix(loss=f"{log[-1]['loss']:.4f}", lr=f"{log[-1]['lr']:.2e}")

    interrupt = DeferredInterrupt(say)
    with open(log_path, "a") as log_file, _batches(cfg, device) as batches, interrupt:
        try:
            if moments == "rebuilt":
                k = rebuild_moments(model, optimizer, batches, start, cfg, autocast, loss_fn)
                say(f"resumed at step {start} without optimizer state: Adam's second moment rebuilt from "
                    f"the last {k} batches, momentum restarted")
            clock = time.perf_counter()
            while step < end:
                lr = lr_at(step, cfg)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                ids, mask = batches.batch(step)  # [batch, seq] x2
                ids, mask = ids.to(device, non_blocking=True), mask.to(device, non_blocking=True)
                in_step = True  # weights may change from here until `step` counts the update
                loss = loss_fn.run(optimizer,
                                   lambda fn: fast_train_step(model, optimizer, ids, mask, cfg, autocast, fn))
                pending.append((step, lr, loss, (ids != 0).sum()))
                step += 1
                in_step = False
                bar.update(1)
                out_of_time = (time_limit_s is not None
                               and session_seconds + time.perf_counter() - clock >= time_limit_s)
                stop_now = out_of_time or interrupt.requested
                checkpoint = step % cfg.checkpoint_every == 0 or step == end or stop_now
                if checkpoint or step % cfg.log_every == 0:
                    read_losses()
                if checkpoint:
                    _save_checkpoint(out_dir, model, tokenizer, optimizer, step, seconds, tokens, cfg)
                    clock = time.perf_counter()  # writing the checkpoint is not training time
                if observatory is not None and step % cfg.eval_every == 0:
                    observatory.observe(model, step)
                if stop_now:
                    break
        except KeyboardInterrupt:  # a second Ctrl-C, or one before the loop
            if step > start and not in_step:  # keep the work done: the next --resume starts here
                read_losses()
                _save_checkpoint(out_dir, model, tokenizer, optimizer, step, seconds, tokens, cfg)
                _write_stopped(out_dir, step, cfg, "interrupted")
                held.unlock()
            raise
        finally:
            bar.close()

    losses = [r["loss"] for r in log]
    model_dir = None
    if step < cfg.steps:  # checkpointed above
        why = "interrupted" if interrupt.requested else "out of time" if step < end else "stopped"
        _write_stopped(out_dir, step, cfg, why)
        held.unlock()
        if interrupt.requested:  # the caller sees the Ctrl-C
            raise KeyboardInterrupt
    else:
        extra = {"loss_function": loss_fn.note}
        if cfg.model.column_embedding:
            from superpose.models.columns import LABEL

            extra["architecture_change"] = LABEL
        model_dir = _export(model, tokenizer, out_dir / "model", cfg, losses, seconds, tokens, extra)
        write_status(out_dir, "complete", kind="train")
        held.unlock()
        if export_dir is not None:
            _export(model, tokenizer, Path(export_dir), cfg, losses, seconds, tokens, extra)
    return TrainResult(out_dir, model_dir, step, losses, seconds, tokens)


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


def _write_stopped(out_dir: Path, step: int, cfg: TrainConfig, why: str) -> None:
    """status.json "stopped": a checkpoint at ``step`` that ``--resume`` continues (not a finished model)."""
    write_status(out_dir, "stopped", kind="train", step=step,
                 reason=f"{why} at step {step} of {cfg.steps}; superpose train --resume {out_dir} continues")


def _export(model, tokenizer, folder: Path, cfg: TrainConfig, losses: list[float], seconds: float,
            tokens: int, extra: dict) -> Path:
    """Write the final model as a Hugging Face folder, with how it was trained."""
    folder.mkdir(parents=True, exist_ok=True)
    _save_quietly(model, tokenizer, folder)
    tail = losses[-50:]
    (folder / "training.json").write_text(json.dumps({
        "config": cfg.model_dump(mode="json"),
        "final_loss_mean_last_50_steps": sum(tail) / len(tail) if tail else None,
        "train_seconds": round(seconds, 1),
        "tokens_per_second": round(tokens / seconds, 1) if seconds else None,
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "trained_sequence_length": trained_length(cfg),  # tokens; longer prompts extrapolate
        **extra,
    }, indent=2) + "\n")
    return folder
