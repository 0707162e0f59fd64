"""Loading YAML configs: validation errors name the file and the field."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence, TypeVar

from pydantic import BaseModel, ValidationError

from superpose.errors import ConfigError, brief
from superpose.files import load_yaml
from superpose.tasks import load_task_files

T = TypeVar("T", bound=BaseModel)

# The configs shipped in the package (the checkout's top-level configs/ links here).
PACKAGED_CONFIGS = Path(__file__).resolve().parent / "configs"


def find_config(path: str | Path) -> Path:
    """``path`` if it is a file, else the packaged config of that name: ``configs/paper/copy.yaml`` and
    ``paper/copy.yaml`` work from any folder once superpose is installed."""
    path = Path(path)
    if path.is_file() or path.is_absolute():
        return path
    parts = path.parts[1:] if path.parts[:1] == ("configs",) else path.parts
    packaged = PACKAGED_CONFIGS.joinpath(*parts) if parts else PACKAGED_CONFIGS
    return packaged if packaged.is_file() else path


def read_yaml(path: str | Path) -> dict:
    """A YAML mapping from a file (or a packaged config, see find_config), or a ConfigError naming the file."""
    path = find_config(path)
    if not path.is_file():
        raise ConfigError(f"config {path}: no such file")
    data = load_yaml(path, f"config {path}")
    if not isinstance(data, dict):
        raise ConfigError(f"config {path}: expected a mapping of fields, got {type(data).__name__}")
    return data


def load_config(model: type[T], path: str | Path, overrides: dict | None = None) -> T:
    """Read, override (None values ignored) and validate a YAML config file."""
    path = find_config(path)
    data = read_yaml(path)
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return config_from_dict(model, data, str(path), base=path.parent)


def config_from_dict(model: type[T], data: dict, source: str, base: Path | None = None) -> T:
    """Validate a config held in a dict. Its ``task_files`` (user tasks) are loaded first, so the
    tasks they define are known when the mixtures are checked; relative paths resolve against ``base``."""
    files = data.get("task_files") or []
    if not isinstance(files, list):
        raise ConfigError(f"{source}: task_files: expected a list of file paths")
    resolved = []
    for i, f in enumerate(files):
        if not isinstance(f, str) or not f:
            raise ConfigError(f"{source}: task_files[{i}]: expected a file path, got {brief(f)}")
        p = Path(f)
        if not p.is_absolute() and base is not None and not p.exists():
            p = base / p
        resolved.append(str(p))
    load_task_files(resolved)  # a task name defined by two files is an error
    if files:
        data = {**data, "task_files": resolved}
    return validate(model, data, source)


def check_unique(names: Sequence[str], what: str) -> None:
    """Raise ValueError (in a validator: an error naming the field) when two of ``names`` are equal."""
    if len(set(names)) != len(names):
        raise ValueError(f"{what} must be unique, got {list(names)}")


def _flat(data: dict, prefix: str = "") -> dict:
    """Nested mappings as one level of dotted keys: ``{"model": {"d_model": 16}}`` -> ``{"model.d_model": 16}``."""
    out = {}
    for k, v in data.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) and v else {f"{prefix}{k}": v})
    return out


def check_resume_unchanged(folder: str | Path, stored: dict, given: dict, may_change: frozenset[str]) -> None:
    """Resuming runs the folder's own config: a config or flags that change fields outside ``may_change``
    (top-level names) are one line naming them (dotted: ``model.n_layers``) with both values."""
    a, b = _flat(stored), _flat(given)
    changed = sorted(k for k in a.keys() | b.keys() if k.split(".")[0] not in may_change and a.get(k) != b.get(k))
    if changed:
        named = ", ".join(f"{k} ({brief(a.get(k))} -> {brief(b.get(k))})" for k in changed[:4])
        more = f" and {len(changed) - 4} more" if len(changed) > 4 else ""
        allowed = (f"may change only {', '.join(sorted(may_change))}" if may_change
                   else "runs the folder's own config (start a new run to change it)")
        verb = "differs" if len(changed) == 1 else "differ"
        raise ConfigError(f"--resume {folder}: {named}{more} {verb} from the run's; a resume {allowed}")


def validate(model: type[T], data: dict, source: str) -> T:
    """``model.model_validate(data)``, turning pydantic's errors into one readable ConfigError."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, source)) from None


def format_validation_error(e: ValidationError, source: str) -> str:
    """One line per problem: ``source: field.path: message``."""
    lines = []
    for err in e.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        elif err["type"] == "literal_error":
            msg = f"{msg} (got {brief(err.get('input'))})"
        lines.append(f"{source}: {where}: {msg}")
    return "\n".join(lines)
