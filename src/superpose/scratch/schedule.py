"""What a training step sees, as a pure function of the step: phases, a family mixture, curricula.

A recipe may hold

* ``mixture``: families of tasks with weights, one task per sequence (e.g. ret_k + plus_k + kret);
* ``curriculum``: letters per retrieval input and examples per sequence on a step schedule, each a
  list of ``[from_step, value]`` (piecewise constant; the first entry starts at step 0);
* ``phases``: consecutive stretches of training (a warm start, then the study's task), each with
  its own tasks / mixture / curriculum / examples and its own learning-rate schedule, in one run.

Batch ``s`` is built from sequences ``s * batch_size ..`` of the run's seed whatever the phase, so
a run stopped at a phase boundary and resumed continues the uninterrupted run exactly. A phase's
schedule (warmup, stable, decay) restarts at its first step; the optimizer state carries over.
"""

from __future__ import annotations

import bisect
import fnmatch
from pydantic import BaseModel, ConfigDict, Field, field_validator

from superpose.scratch.families import DataSpec, make_spec_batch
from superpose.tasks.characters import RET_LENGTH

# The recipe (superpose.scratch.recipe.TrainConfig) is typed as BaseModel here: recipe imports this
# module, and an import back would be a cycle.


def expand_tasks(patterns: list[str]) -> list[str]:
    """Task names from names or shell patterns (``plus_*``), in natural order, each once."""
    from superpose.errors import SuperposeError
    from superpose.tasks import get_task, list_tasks

    if not patterns:
        raise ValueError("needs at least one task")
    names: list[str] = []
    known = [t.name for t in list_tasks()]
    for pat in patterns:
        hits = sorted(fnmatch.filter(known, pat), key=_natural) if any(c in pat for c in "*?[") else [pat]
        if not hits:
            raise ValueError(f"pattern '{pat}' matches no task")
        for n in hits:
            try:
                get_task(n)
            except SuperposeError as e:  # pydantic reports ValueErrors with the field's name
                raise ValueError(str(e)) from None
            if n not in names:
                names.append(n)
    return names


def _natural(name: str) -> tuple:
    head, _, tail = name.rpartition("_")
    return (head, int(tail)) if tail.isdigit() else (name, 0)


class FamilyWeight(BaseModel):
    """One family of a mixture: its tasks (names or patterns) and its share of the sequences."""

    model_config = ConfigDict(extra="forbid")

    tasks: list[str]
    weight: float = Field(1.0, gt=0)

    @field_validator("tasks")
    @classmethod
    def _expand(cls, patterns: list[str]) -> list[str]:
        return expand_tasks(patterns)


def _check_steps(points: list[tuple[int, int]], what: str, low: int, high: int | None = None) -> list:
    if not points:
        raise ValueError(f"{what}: needs at least one [from_step, value]")
    steps = [s for s, _ in points]
    if steps[0] != 0 or steps != sorted(set(steps)):
        raise ValueError(f"{what}: steps must start at 0 and increase, got {steps}")
    for _, v in points:
        if v < low or (high is not None and v > high):
            raise ValueError(f"{what}: value {v} outside {low}..{high if high is not None else ''}")
    return points


class Curriculum(BaseModel):
    """Piecewise-constant schedules, ``[[from_step, value], ...]`` (steps counted within the phase)."""

    model_config = ConfigDict(extra="forbid")

    letters: list[tuple[int, int]] | None = None  # letters per ret_k / kret input, 2..8
    examples: list[tuple[int, int]] | None = None  # examples per sequence (the last: the study's)

    @field_validator("letters")
    @classmethod
    def _letters(cls, v):
        return None if v is None else _check_steps(v, "letters", 2, RET_LENGTH)

    @field_validator("examples")
    @classmethod
    def _examples(cls, v):
        return None if v is None else _check_steps(v, "examples", 1)

    def breakpoints(self) -> list[int]:
        """Steps (within the phase) where a value changes."""
        return sorted({s for sched in (self.letters, self.examples) if sched for s, _ in sched})


def value_at(schedule: list[tuple[int, int]] | None, step: int, default: int) -> int:
    """The value a piecewise-constant schedule holds at ``step`` (``default`` without one)."""
    if not schedule:
        return default
    i = bisect.bisect_right([s for s, _ in schedule], step) - 1
    return schedule[i][1]


class Phase(BaseModel):
    """A stretch of training; every field left out is the recipe's top-level one."""

    model_config = ConfigDict(extra="forbid")

    name: str = ""
    steps: int = Field(ge=1)
    tasks: list[str] | None = None
    mixture: list[FamilyWeight] | None = None
    n_examples: int | None = Field(None, ge=1)
    min_examples: int | None = Field(None, ge=1)
    curriculum: Curriculum | None = None
    lr: float | None = Field(None, gt=0)
    warmup_steps: int | None = Field(None, ge=0)
    decay_steps: int | None = Field(None, ge=0)

    @field_validator("tasks")
    @classmethod
    def _expand(cls, patterns: list[str] | None) -> list[str] | None:
        return None if patterns is None else expand_tasks(patterns)


def _field(cfg: BaseModel, phase: Phase | None, name: str):
    value = getattr(phase, name) if phase is not None else None
    return getattr(cfg, name) if value is None else value


def phase_at(cfg: BaseModel, step: int) -> tuple[int, Phase | None, int]:
    """(phase index, the phase or None without phases, the phase's first step) of ``step``."""
    start = 0
    for i, phase in enumerate(cfg.phases or []):
        if step < start + phase.steps or i == len(cfg.phases) - 1:
            return i, phase, start
        start += phase.steps
    return 0, None, 0


def phase_bounds(cfg: BaseModel) -> list[tuple[int, int]]:
    """[(first step, end step)] of each phase; one stretch over all steps without phases."""
    if not cfg.phases:
        return [(0, cfg.steps)]
    out, start = [], 0
    for p in cfg.phases:
        out.append((start, start + p.steps))
        start += p.steps
    return out


def spec_at(cfg: BaseModel, step: int) -> DataSpec:
    """The data of training step ``step`` (a pure function of the config and the step)."""
    _, phase, start = phase_at(cfg, step)
    local = step - start
    mixture = _field(cfg, phase, "mixture")
    if phase is not None and phase.tasks is not None and phase.mixture is None:
        mixture = None  # a phase naming its tasks does not inherit the top-level mixture
    if mixture:
        families = tuple(tuple(f.tasks) for f in mixture)
        weights = tuple(f.weight for f in mixture)
    else:
        families, weights = (tuple(_field(cfg, phase, "tasks")),), (1.0,)
    curriculum = _field(cfg, phase, "curriculum")
    n_examples = _field(cfg, phase, "n_examples")
    letters = RET_LENGTH
    if curriculum is not None:
        n_examples = value_at(curriculum.examples, local, n_examples)
        letters = value_at(curriculum.letters, local, RET_LENGTH)
    min_examples = _field(cfg, phase, "min_examples")
    if min_examples is not None:
        min_examples = min(min_examples, n_examples)
    return DataSpec(families, weights, n_examples, min_examples, letters)


def all_specs(cfg: BaseModel) -> list[DataSpec]:
    """Every distinct DataSpec the run uses (one per phase and curriculum stretch)."""
    specs: list[DataSpec] = []
    for (start, _), phase in zip(phase_bounds(cfg), cfg.phases or [None]):
        curriculum = _field(cfg, phase, "curriculum")
        for b in (curriculum.breakpoints() if curriculum else [0]) or [0]:
            s = spec_at(cfg, start + b)
            if s not in specs:
                specs.append(s)
    return specs


def lr_in_phase(step: int, cfg: BaseModel) -> float:
    """Warmup-stable-decay within the phase of ``step`` (the phase's own length and fields)."""
    _, phase, start = phase_at(cfg, step)
    lr, warmup, decay = (_field(cfg, phase, n) for n in ("lr", "warmup_steps", "decay_steps"))
    steps = phase.steps if phase is not None else cfg.steps
    local = step - start
    if local < warmup:
        return lr * (local + 1) / warmup
    if local < steps - decay:
        return lr
    frac = (local - (steps - decay) + 1) / max(decay, 1)
    return lr + (cfg.min_lr - lr) * frac


def uses_schedule(cfg: BaseModel) -> bool:
    """Whether the recipe uses phases, a mixture or a curriculum (else the plain batch path)."""
    return bool(cfg.phases or cfg.mixture or cfg.curriculum)


class ScheduledBatches:
    """The batch of each step per :func:`spec_at`: the tensor generator where a spec is plain
    plus_k / ret_k, else :func:`.families.make_spec_batch` (strings, in the calling process)."""

    def __init__(self, cfg: BaseModel, device):
        self.cfg, self.device = cfg, device
        self.sources: dict[DataSpec, object] = {}  # a TensorBatches, or None for the string path

    def _source(self, spec: DataSpec):
        if spec not in self.sources:
            from superpose.scratch.tensor_data import TensorBatches, supports

            if spec.plain and supports(spec.task_names):
                self.sources[spec] = TensorBatches(spec.task_names, spec.n_examples, self.cfg.seed,
                                                   self.cfg.batch_size, self.device,
                                                   min_examples=spec.min_examples)
            else:
                self.sources[spec] = None  # strings
        return self.sources[spec]

    def batch(self, step: int):
        """(input_ids [batch, seq] long, loss_mask [batch, seq] bool) of ``step``."""
        from superpose.scratch.tokenizer import char_vocab

        spec = spec_at(self.cfg, step)
        source = self._source(spec)
        if source is not None:
            return source.batch(step)
        return make_spec_batch(spec, self.cfg.seed, step * self.cfg.batch_size, self.cfg.batch_size,
                               char_vocab())

    def check(self) -> None:
        """The tensor generators' check (a run out of random words raises)."""
        for s in self.sources.values():
            if s is not None:
                s.check()

    def __enter__(self) -> "ScheduledBatches":
        return self

    def __exit__(self, *exc) -> None:
        """Nothing to stop: no worker processes (``data_workers`` does not apply to these batches)."""
