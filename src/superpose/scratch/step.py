"""The training step: the loss on answer tokens, the optimizer, and one update (written once).

:func:`fast_train_step` is the library's one step path (no host sync); :func:`train_step` is the
reference step, kept as the tests' oracle (it reads the loss every step).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from superpose.scratch.recipe import TrainConfig


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
