"""The YAML config of a task-vector experiment (validated by pydantic; errors name the field)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from superpose.config import check_unique, config_from_dict, load_config
from superpose.errors import ConfigError
from superpose.experiments.base import ExperimentConfig
from superpose.prompts import MAX_PROMPTS, MixtureSpec
from superpose.vectors.extract import Group, default_groups, make_group


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MixtureEntry(_Strict):
    """A mixed-prompt group: tasks and weights (equal shares when omitted), optional name."""

    tasks: list[str] = Field(min_length=2)
    weights: list[float] | None = None
    name: str | None = None


class ExtractConfig(_Strict):
    """Part 1: separator states of single-task and mixed prompts."""

    n_prompts: int = Field(100, ge=1, le=MAX_PROMPTS)  # per group (the study: 100)
    n_examples: int = Field(30, ge=1)  # per prompt (the study: 30)
    counts: Literal["exact", "iid"] = "exact"
    mixtures: list[MixtureEntry] | None = None  # None: every pair at 50/50, plus all tasks in equal shares
    layers: list[int] | None = None  # None: every layer; the pass stops after the deepest one listed
    batch_size: int = Field(4, ge=1)

    @field_validator("layers")
    @classmethod
    def _non_negative(cls, layers: list[int] | None) -> list[int] | None:
        if layers is not None and (not layers or min(layers) < 0):
            raise ValueError(f"must be a non-empty list of layer indices >= 0, got {layers}")
        return layers


class LayersConfig(_Strict):
    """Part 2: layer choice by patching each layer's vector into zero-shot queries."""

    n_queries: int = Field(20, ge=1)
    layer: int | None = Field(None, ge=0)  # set to skip the choice and use this layer


class ProjectConfig(_Strict):
    """Part 3: 2-D projection fitted on the single-task vectors."""

    method: Literal["lda", "pca"] = "lda"


class InterpolateConfig(_Strict):
    """Part 4: v(λ) = (1-λ) v1 + λ v2 patched into zero-shot queries, beside real mixed prompts."""

    pair: list[str] | None = None  # default: the first two tasks
    n_points: int = Field(21, ge=2)
    n_queries: int = Field(20, ge=1)
    real_lambdas: list[float] = Field(default_factory=lambda: [0.0, 0.25, 0.5, 0.75, 1.0])
    n_prompts: int = Field(20, ge=0, le=MAX_PROMPTS)  # real mixed prompts per λ (0: no reference curve)

    @field_validator("pair")
    @classmethod
    def _two(cls, pair: list[str] | None) -> list[str] | None:
        if pair is not None and (len(pair) != 2 or pair[0] == pair[1]):
            raise ValueError(f"must name two different tasks, got {pair}")
        return pair

    @field_validator("real_lambdas")
    @classmethod
    def _unit(cls, lams: list[float]) -> list[float]:
        if any(not 0 <= x <= 1 for x in lams):
            raise ValueError(f"every λ must be in [0, 1], got {lams}")
        return lams


class SteerConfig(_Strict):
    """Part 5: add α (v_target − v_mixture) at the separator of mixed prompts."""

    mixture: str | None = None  # a mixture group's name; default: the first two-task mixture
    targets: list[str] | None = None  # default: the mixture's tasks
    alphas: list[float] = Field(default_factory=lambda: [0.0, 0.25, 0.5, 1.0, 1.5, 2.0])
    n_prompts: int = Field(10, ge=1, le=MAX_PROMPTS)


class VectorsConfig(ExperimentConfig):
    """A task-vector experiment: one model, a family of tasks, and the five steps' settings."""

    name: str = "vectors"
    model: str = "gemma-3-270m"  # a transformers model: task vectors need the residual stream
    tasks: list[str] = Field(min_length=2)
    extract: ExtractConfig = Field(default_factory=ExtractConfig)
    layers: LayersConfig = Field(default_factory=LayersConfig)
    project: ProjectConfig = Field(default_factory=ProjectConfig)
    interpolate: InterpolateConfig = Field(default_factory=InterpolateConfig)
    steer: SteerConfig = Field(default_factory=SteerConfig)
    # layers.layer (--layer) picks the layer the later steps use; steps already done keep theirs
    resume_may_change: ClassVar[frozenset[str]] = frozenset({"layers"})

    @field_validator("tasks")
    @classmethod
    def _mixable(cls, tasks: list[str]) -> list[str]:
        try:
            MixtureSpec(tasks=tasks, n_examples=0)
        except ValidationError as e:
            raise ValueError(e.errors()[0]["msg"].removeprefix("Value error, ")) from None
        return tasks

    @model_validator(mode="after")
    def _consistent(self) -> "VectorsConfig":
        known = set(self.tasks)
        for i, m in enumerate(self.extract.mixtures or []):
            unknown = [t for t in m.tasks if t not in known]
            if unknown:
                raise ValueError(f"extract.mixtures[{i}].tasks: {unknown} not among tasks {self.tasks}")
            try:
                MixtureSpec(tasks=m.tasks, weights=m.weights, n_examples=self.extract.n_examples)
            except ValidationError as e:
                raise ValueError(f"extract.mixtures[{i}]: {e.errors()[0]['msg'].removeprefix('Value error, ')}") from None
        check_unique([g.name for g in self.groups()], "extract.mixtures: group names")
        pair = self.interpolate.pair
        if pair is not None and not set(pair) <= known:
            raise ValueError(f"interpolate.pair: {pair} must be among tasks {self.tasks}")
        if self.steer.mixture is not None:
            mixtures = [g.name for g in self.groups() if not g.single]
            if self.steer.mixture not in mixtures:
                raise ValueError(f"steer.mixture: '{self.steer.mixture}' is not a mixture group; "
                                 f"allowed: {mixtures}")
        if self.steer.targets is not None and not set(self.steer.targets) <= known:
            raise ValueError(f"steer.targets: {self.steer.targets} must be among tasks {self.tasks}")
        return self

    def groups(self) -> list[Group]:
        """Every group to extract: the single tasks first, then the mixtures."""
        if self.extract.mixtures is None:
            return default_groups(self.tasks)
        return [make_group([t]) for t in self.tasks] + [
            make_group(m.tasks, m.weights, m.name) for m in self.extract.mixtures]

    def pair(self) -> list[str]:
        """The two tasks of the interpolation."""
        return list(self.interpolate.pair or self.tasks[:2])

    def steer_group(self) -> Group:
        """The mixture whose prompts are steered."""
        mixtures = [g for g in self.groups() if not g.single]
        if self.steer.mixture is not None:
            return next(g for g in mixtures if g.name == self.steer.mixture)
        pairs = [g for g in mixtures if len(g.tasks) == 2]
        if not (pairs or mixtures):
            raise ConfigError("steer: no mixture group to steer; add one under extract.mixtures")
        return (pairs or mixtures)[0]


def load_vectors_config(path: str | Path, overrides: dict | None = None) -> VectorsConfig:
    """Read and validate a vectors config; task files resolve relative to the config's folder."""
    return load_config(VectorsConfig, path, overrides)


def vectors_config_from_dict(data: dict, source: str, base: Path | None = None) -> VectorsConfig:
    """Validate a config held in a dict (loads its task files first, so their tasks are known)."""
    return config_from_dict(VectorsConfig, data, source, base)
