"""Margin-loss kernels in plain tensor ops: any device, any float dtype. The always-available backend."""

from __future__ import annotations

import torch


def _errors(x: torch.Tensor, target: torch.Tensor, margins: torch.Tensor, ignore_index: int, on_target: bool):
    """Margin errors ``(N, C, S)`` (0 at the true class), the safe target index and the valid mask."""
    valid = target != ignore_index
    index = torch.where(valid, target, 0).unsqueeze(1)
    margin = margins[index] if on_target else margins.view(1, -1, 1)  # the true class's or each competitor's
    errors = (x - x.gather(1, index)).add_(margin).clamp_(min=0)  # NaN stays NaN
    errors.scatter_(1, index, 0)
    return errors, index, valid


def _selection(errors: torch.Tensor, valid: torch.Tensor, hard: bool):
    """Selected errors (bool ``(N, C, S)``), the per-sample mean error (0 when ignored) and count ``K``."""
    mean_error = torch.where(valid, errors.mean(1), 0)
    if hard:
        selected = (errors >= mean_error.unsqueeze(1)) & (errors > 0)
        return selected, mean_error, selected.sum(1)
    return errors > 0, mean_error, None


def _class_weights(class_weight, index, valid):
    """Each sample's class weight ``(N, S)`` (0 where ignored)."""
    return torch.where(valid, class_weight[index.squeeze(1)], 0)


def margin_forward(x, target, margins, hard: bool, ignore_index: int, need_losses: bool, *,
                   on_target: bool = False, class_weight=None):  # fmt: skip
    """Per-sample losses ``(N, S)``, their sum and the count a mean divides by, as tensors: the samples with
    a loss above zero for HEM, the valid samples for MM; each times its class weight with ``class_weight``."""
    errors, index, valid = _errors(x, target, margins, ignore_index, on_target)
    selected, mean_error, k = _selection(errors, valid, hard)
    if hard:
        # 0 without errors, NaN when the errors hold NaN (as cross-entropy would)
        losses = torch.where(mean_error > 0, (errors * selected).sum(1) / k.clamp(min=1), mean_error)
        counted = losses > 0
    else:
        losses = mean_error
        counted = valid
    if class_weight is None:
        count = counted.sum()
    else:
        sample_weight = _class_weights(class_weight, index, valid)
        losses = losses * sample_weight
        count = torch.where(counted, sample_weight, 0).sum(dtype=torch.float64).to(x.dtype)
    return losses, losses.sum(dtype=torch.float64).to(x.dtype), count


def margin_backward(x, target, margins, hard: bool, ignore_index: int, weight: torch.Tensor, *,
                    on_target: bool = False, class_weight=None):  # fmt: skip
    """Gradient of ``sum(weight * losses)`` w.r.t. ``x`` (the losses times their class weights with
    ``class_weight``); ``weight`` is ``(N, S)`` or a single value."""
    errors, index, valid = _errors(x, target, margins, ignore_index, on_target)
    selected, mean_error, k = _selection(errors, valid, hard)
    if class_weight is not None:
        weight = weight * _class_weights(class_weight, index, valid)
    if hard:
        coef = torch.where(mean_error > 0, weight / k.clamp(min=1), 0)
    else:
        coef = torch.where(valid, weight / x.shape[1], 0)
    grad = selected * coef.unsqueeze(1).to(x.dtype)
    grad.scatter_(1, index, -grad.sum(1, keepdim=True))
    return grad
