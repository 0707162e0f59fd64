"""Task vectors: the residual stream at the query's separator, averaged over prompts of one kind.

For a *group* of prompts -- single-task prompts of one task, or mixed prompts with given weights --
we run every prompt and keep ``resid_post.{layer}`` at its last token (the separator after the query,
e.g. ``=`` in ``57@23=``) for every requested layer. The group's task vector at a layer is the mean
over its prompts. Per-prompt vectors are kept too (the projection step fits on them).

Storage: ``vectors.safetensors`` in the run folder, one tensor per group named after the group,
``[n_prompts, n_layers_kept, d_model]`` float32, with the kept layer indices and the group
descriptions in the file's metadata. It is rewritten after each group, so an interrupted extraction
resumes at the first missing group.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import torch
from safetensors.torch import load_file, save_file
from safetensors import safe_open

from superpose.backends.base import Residual, encode_prompt
from superpose.errors import SuperposeError
from superpose.progress import track
from superpose.prompts import Counts, MixtureSpec, Prompt, build_prompt

VECTORS_FILE = "vectors.safetensors"


@dataclass
class Group:
    """A kind of prompt whose mean separator state is a task vector: one task, or a weighted mixture."""

    name: str
    tasks: list[str]
    weights: list[float]

    @property
    def single(self) -> bool:
        """True for a single-task group."""
        return len(self.tasks) == 1

    @property
    def label(self) -> str:
        """A short legend label with the mixture weights, e.g. ``copy_op1 .50 / copy_op2 .50``."""
        if self.single:
            return self.tasks[0]
        return " / ".join(f"{t} {w:.2f}".replace("0.", ".") for t, w in zip(self.tasks, self.weights))


def group_name(tasks: Sequence[str], weights: Sequence[float]) -> str:
    """A stable, file-safe name: the task alone, or ``task=percent`` joined by ``+``."""
    if len(tasks) == 1:
        return tasks[0]
    return "+".join(f"{t}={round(100 * w)}" for t, w in zip(tasks, weights))


def make_group(tasks: Sequence[str], weights: Sequence[float] | None = None, name: str | None = None) -> Group:
    """A group with equal weights unless given."""
    tasks = list(tasks)
    weights = list(weights) if weights is not None else [1.0 / len(tasks)] * len(tasks)
    return Group(name or group_name(tasks, weights), tasks, weights)


def default_groups(tasks: Sequence[str]) -> list[Group]:
    """The study's groups: each task alone, every pair at 50/50, and all tasks in equal shares (K >= 3)."""
    groups = [make_group([t]) for t in tasks]
    groups += [make_group([a, b]) for i, a in enumerate(tasks) for b in tasks[i + 1:]]
    if len(tasks) >= 3:
        groups.append(make_group(tasks))
    return groups


def group_prompts(group: Group, n_prompts: int, n_examples: int, seed: int, counts: Counts = "exact",
                  offset: int = 0) -> list[Prompt]:
    """Prompts ``offset .. offset+n_prompts-1`` of the group (deterministic in seed and index)."""
    spec = MixtureSpec(tasks=group.tasks, weights=group.weights if not group.single else None,
                       n_examples=n_examples, counts=counts)
    return [build_prompt(spec, seed, offset + i) for i in range(n_prompts)]


def extract_prompts(lm: Residual, texts: Sequence[str], layers: Sequence[int], batch_size: int = 4,
                    description: str = "extracting") -> torch.Tensor:
    """Separator states of each prompt: ``[n_prompts, len(layers), d_model]`` float32 (layers sorted)."""
    layers = sorted(set(layers))
    encoded = [encode_prompt(lm.tokenizer, t) for t in texts]
    lm.check_fit(max(len(e) for e in encoded), 0)
    out: list[torch.Tensor] = []
    starts = range(0, len(encoded), batch_size)
    for s in track(starts, description, total=len(starts)):
        chunk = encoded[s: s + batch_size]
        last = [len(e) - 1 for e in chunk]  # the separator of each row (right padding)
        states = lm.capture_residuals(chunk, last, layers)  # {layer: [b, d_model]}
        out.append(torch.stack([states[x] for x in layers], dim=1).cpu())  # [b, L, d_model]
    return torch.cat(out, dim=0)


class VectorStore:
    """The run folder's ``vectors.safetensors``: per-prompt separator states of every group."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.tensors: dict[str, torch.Tensor] = {}  # name -> [n_prompts, n_layers_kept, d_model]
        self.groups: dict[str, Group] = {}
        self.layers: list[int] = []
        self.meta: dict = {}
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        with safe_open(str(self.path), framework="pt") as f:
            meta = f.metadata() or {}
        self.tensors = load_file(str(self.path))
        info = json.loads(meta.get("superpose", "{}"))
        self.layers = list(info.get("layers", []))
        self.groups = {g["name"]: Group(**g) for g in info.get("groups", [])}
        self.meta = info.get("extra", {})

    def add(self, group: Group, states: torch.Tensor, layers: Sequence[int]) -> None:
        """Store a group's ``[n_prompts, n_layers_kept, d_model]`` states and rewrite the file atomically."""
        layers = sorted(layers)
        if self.layers and self.layers != layers:
            raise SuperposeError(f"{self.path}: stored layers {self.layers} differ from {layers}")
        self.layers = layers
        self.tensors[group.name] = states.float().contiguous()
        self.groups[group.name] = group
        info = {"layers": self.layers, "groups": [asdict(g) for g in self.groups.values()], "extra": self.meta}
        tmp = self.path.with_name(self.path.name + ".tmp")
        save_file(self.tensors, str(tmp), metadata={"superpose": json.dumps(info)})
        tmp.replace(self.path)

    def has(self, name: str) -> bool:
        """Whether the group has been extracted."""
        return name in self.tensors

    def states(self, name: str, layer: int) -> torch.Tensor:
        """Per-prompt separator states of a group at one layer: ``[n_prompts, d_model]``."""
        if name not in self.tensors:
            raise SuperposeError(f"{self.path}: no vectors for group '{name}'; run "
                                 f"`superpose vectors --resume {self.path.parent} --step extract` first")
        if layer not in self.layers:
            raise SuperposeError(f"{self.path}: layer {layer} was not extracted (have {self.layers})")
        return self.tensors[name][:, self.layers.index(layer)]

    def mean(self, name: str, layer: int) -> torch.Tensor:
        """The group's task vector at one layer: ``[d_model]``."""
        return self.states(name, layer).mean(dim=0)

    def means(self, name: str) -> torch.Tensor:
        """The group's task vector at every kept layer: ``[n_layers_kept, d_model]``."""
        return self.tensors[name].mean(dim=0)
