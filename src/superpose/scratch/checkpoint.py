"""A training run's state on disk: checkpoints (save, load, resume), the first weights, the final export.

    checkpoint/      the latest checkpoint: model (safetensors + config + tokenizer) and state.pt
                     (optimizer, step, elapsed time, RNG states)
    checkpoint.old/  the one before (a fallback, should the latest be damaged)
    model/           the final model, a Hugging Face folder with training.json
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from superpose.config import check_resume_unchanged
from superpose.errors import ConfigError, SuperposeError
from superpose.runs import write_status
from superpose.scratch.recipe import TrainConfig, trained_length


def load_init(model, source: str, device: torch.device) -> None:
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


def save_checkpoint(out_dir: Path, model, tokenizer, optimizer, step: int, seconds: float,
                    tokens: int, cfg: TrainConfig) -> None:
    """Write ``out_dir/checkpoint`` (weights, optimizer, step, time, RNG states), keeping the previous one."""
    # Write beside the old checkpoint, then swap: a kill mid-write leaves the previous one intact.
    # The previous one is kept (checkpoint.old) until the next save, to resume from if this one is damaged.
    tmp, final, old = out_dir / "checkpoint.tmp", out_dir / "checkpoint", out_dir / "checkpoint.old"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        save_quietly(model, tokenizer, tmp)
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


def load_checkpoint(out_dir: Path, cfg: TrainConfig, model, optimizer, device: torch.device) -> dict:
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
        # tensors, numbers and strings only: a checkpoint brought back from elsewhere runs no code
        state = torch.load(ckpt / "state.pt", map_location=device, weights_only=True)
    except Exception as e:  # a cut file, or not a torch file at all: torch and pickle raise many kinds
        raise damaged(ckpt / "state.pt", "damaged, torch cannot read it", e) from None
    if not isinstance(state, dict) or any(k not in state for k in _STATE_KEYS):
        raise damaged(ckpt / "state.pt", f"not a `superpose train` checkpoint (expected {', '.join(_STATE_KEYS)})")
    try:
        saved = TrainConfig.model_validate(state["config"])
    except ValueError as e:
        raise damaged(ckpt / "state.pt", "its recorded config is not a training recipe", e) from None
    # the checkpoint belongs to this run's recipe (a checkpoint copied in from another run does not)
    check_resume_unchanged(out_dir, saved.model_dump(mode="json"), cfg.model_dump(mode="json"),
                           TrainConfig.resume_may_change)
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


def save_quietly(model, tokenizer, folder: Path) -> None:
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


def write_stopped(out_dir: Path, step: int, cfg: TrainConfig, why: str) -> None:
    """status.json "stopped": a checkpoint at ``step`` that ``--resume`` continues (not a finished model)."""
    write_status(out_dir, "stopped", kind="train", step=step,
                 reason=f"{why} at step {step} of {cfg.steps}; superpose train --resume {out_dir} continues")


def export_model(model, tokenizer, folder: Path, cfg: TrainConfig, losses: list[float], seconds: float,
            tokens: int, extra: dict) -> Path:
    """Write the final model as a Hugging Face folder, with how it was trained."""
    folder.mkdir(parents=True, exist_ok=True)
    save_quietly(model, tokenizer, folder)
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

