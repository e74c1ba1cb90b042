"""Plain, obviously-correct reference implementations of the losses of docs/losses-and-margins.md, written
straight from the equations."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def as_rows(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(P, C)`` logits and ``(P,)`` targets, one row per sample (pixel)."""
    num_classes = logits.shape[1]
    return logits.movedim(1, -1).reshape(-1, num_classes), target.reshape(-1)


def margin_sample_losses(
    logits, target, margins, hard: bool, ignore_index: int, on_target: bool = False
) -> torch.Tensor:
    """Per-sample MM / HEM / HEM+ losses shaped like ``target``, 0 where ignored; ``on_target`` takes the
    true class's margin instead of each competing class's."""
    x, t = as_rows(logits, target)
    valid = t != ignore_index
    xv, tv = x[valid], t[valid]
    num_classes = x.shape[1]
    margins = torch.as_tensor(margins, dtype=x.dtype).expand(num_classes)
    not_true = 1 - F.one_hot(tv, num_classes).to(x.dtype)
    margin = margins[tv][:, None] if on_target else margins
    errors = torch.clamp(xv - xv.gather(1, tv[:, None]) + margin, min=0) * not_true
    if hard:
        mean_error = errors.mean(1, keepdim=True).detach()
        selected = ((errors >= mean_error) & (mean_error > 0)).to(x.dtype).detach()
        losses = (errors * selected).sum(1) / selected.sum(1).clamp(min=1)
    else:
        losses = errors.mean(1)
    out = torch.zeros(t.shape, dtype=x.dtype)
    out = out.masked_scatter(valid, losses)
    return out.reshape(target.shape)


def reduce(losses, target, ignore_index: int, reduction: str, hard: bool = False) -> torch.Tensor:
    """HEM's mean is over the samples with a loss above zero (the paper), the other losses' over the valid
    samples."""
    if reduction == "none":
        return losses
    if reduction == "sum":
        return losses.sum()
    count = (losses > 0).sum() if hard else (target != ignore_index).sum()
    return losses.sum() / max(int(count), 1)


def margin_loss(
    logits,
    target,
    margins,
    hard,
    ignore_index=-100,
    reduction="mean",
    margin_on="target",
):
    losses = margin_sample_losses(logits, target, margins, hard, ignore_index, margin_on == "target")
    return reduce(losses, target, ignore_index, reduction, hard)


def cross_entropy_rows(logits, target, ignore_index=-100, reduction="mean"):
    """CE as ``-log softmax``, row by row."""
    x, t = as_rows(logits, target)
    valid = t != ignore_index
    losses = torch.zeros(t.shape, dtype=x.dtype)
    picked = -x[valid].log_softmax(1).gather(1, t[valid][:, None]).squeeze(1)
    losses = losses.masked_scatter(valid, picked).reshape(target.shape)
    return reduce(losses, target, ignore_index, reduction)


def dice(logits, target, ignore_index=-100, reduction="mean"):
    x, t = as_rows(logits, target)
    valid = t != ignore_index
    z = x[valid].softmax(1)
    onehot = F.one_hot(t[valid], x.shape[1]).to(x.dtype)
    per_class = []
    for c in range(x.shape[1]):
        denominator = (onehot[:, c] + z[:, c]).sum()
        per_class.append(
            1 - 2 * (onehot[:, c] * z[:, c]).sum() / denominator if denominator > 0 else denominator * 0
        )
    losses = torch.stack(per_class)
    return {"none": losses, "sum": losses.sum(), "mean": losses.mean()}[reduction]
