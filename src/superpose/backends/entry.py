"""How configs name a model: a string, or an entry with a label and backend options.

    models:
      - gemma-3-270m                       # transformers, defaults
      - name: vllm:Qwen/Qwen1.5-72B        # vLLM, four GPUs
        label: qwen1.5-72b
        options: {tensor_parallel_size: 4, gpu_memory_utilization: 0.9}

``dtype`` and ``device`` are fields of the config itself (and ``--dtype`` / ``--device`` on the
command line): they mean the same for every command and every model of a run.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from superpose.backends import check_options
from superpose.backends.devices import check_device_name
from superpose.config import check_unique
from superpose.models.loading import DTYPES

Dtype = Literal[DTYPES]  # type: ignore[valid-type]
Device = Annotated[str | None, AfterValidator(check_device_name)]  # auto, cpu, cuda, cuda:N, mps; None: cpu


class ModelEntry(BaseModel):
    """A model of a run: the model string, how tables show it, whether it may be skipped, backend options."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)  # embedded name, folder, GGUF file, hub id; "vllm:" prefix for vLLM
    label: str | None = None  # shown in tables and plots (default: the name)
    optional: bool = False  # skip with a note when it cannot be loaded
    options: dict[str, Any] = Field(default_factory=dict)  # the backend's (superpose.backends.options)

    @model_validator(mode="after")
    def _options_of_its_backend(self) -> ModelEntry:
        # a SuperposeError, not a ValueError: it passes through pydantic as the one line naming the option
        self.options = check_options(self.name, self.options)
        return self

    @property
    def display(self) -> str:
        """The label, or the name."""
        return self.label or self.name


def model_entries(models: list[ModelEntry | str]) -> list[ModelEntry]:
    """Strings become entries; labels must be unique (records are keyed by them)."""
    entries = [m if isinstance(m, ModelEntry) else ModelEntry(name=m) for m in models]
    check_unique([e.display for e in entries], "model labels")
    return entries


Models = Annotated[list[ModelEntry | str], AfterValidator(model_entries)]  # validated: every item a ModelEntry
