"""The training recipe: :class:`TrainConfig` (YAML) on the runs' shared header, its schedule, and what a
resume may change."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from superpose.backends.entry import Device
from superpose.config import config_from_dict, read_yaml, validate
from superpose.errors import SuperposeError
from superpose.experiments.base import ExperimentConfig
from superpose.scratch.data import make_sequence, sequence_rng
from superpose.scratch.model import ModelConfig
from superpose.scratch.schedule import (Curriculum, FamilyWeight, Phase, all_specs, expand_tasks, lr_in_phase,
                                        uses_schedule)
from superpose.scratch.tokenizer import char_vocab
from superpose.tasks import get_task


class TrainConfig(ExperimentConfig):
    """A training recipe (YAML) on the shared header (name, description, dtype, device, seed, task_files).
    Defaults are the study's, except batch size and steps."""

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
    checkpoint_every: int = Field(500, ge=1)
    # Where `superpose train` makes the run's folder: <parent of out_dir>/<name>-<time>; the folder's own
    # config then records the folder itself.
    out_dir: str = "runs/scratch/scratch"
    device: Device = "auto"  # auto: cuda when available, else cpu
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
    # step. records.jsonl still holds every step's loss.
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
    # Limits of one call (`per_call`: a resume does not inherit them): checkpoint and stop after step
    # stop_at, or after time_limit_minutes of training (a lease on a shared GPU); copy the final model
    # to export_to as well. `superpose train --resume` continues either exactly.
    stop_at: int | None = Field(None, ge=1)
    time_limit_minutes: float | None = Field(None, gt=0)
    export_to: str | None = None

    # Fields that change how fast a run goes or where it stops, never its numbers.
    resume_may_change: ClassVar[frozenset[str]] = frozenset({
        "out_dir", "threads", "compile", "attention", "log_every", "data_workers", "eval_every", "eval_sequences",
        "stop_at", "time_limit_minutes", "export_to"})
    per_call: ClassVar[frozenset[str]] = frozenset({"stop_at", "time_limit_minutes", "export_to"})

    @field_validator("dtype")
    @classmethod
    def _float32_weights(cls, dtype: str) -> str:
        if dtype != "float32":
            raise ValueError("training keeps float32 weights; set autocast: bfloat16 for bfloat16 compute")
        return dtype

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
                raise ValueError(f"steps={self.steps} is not the phases' total ({total}); leave steps out "
                                 "(stop_at, or --stop-at, stops a run part-way; --resume continues it)")
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


def load_train_config(path: str | Path, **overrides) -> TrainConfig:
    """A validated :class:`TrainConfig` from YAML; ``overrides`` replace top-level fields."""
    data = read_yaml(path)
    data.update({k: v for k, v in overrides.items() if v is not None})
    return config_from_dict(TrainConfig, data, str(path), base=Path(path).parent)


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

