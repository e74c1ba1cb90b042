"""The fused margin losses (HEM, HEM+, MM) as PyTorch custom ops, for ``torch.compile``.

``torch.ops.segloss.margin_forward`` and ``torch.ops.segloss.margin_backward`` are opaque to dynamo: a
compiled model → loss → backward step stays one graph, with fake-tensor registrations giving the output
shapes and an autograd registration tying the two ops together. The ops run the same backends as the
eager :class:`~segloss._kernels.MarginLossFunction`, picked per call by
:func:`~segloss._kernels.select_backend`; the reduction (:func:`~segloss._kernels.reduction_scale`) stays
outside the ops, in traceable torch code. :func:`segloss.functional` imports this module only while
compiling: registering custom ops loads ``torch._dynamo``, which costs seconds per process.
"""

from __future__ import annotations

from types import ModuleType

import torch
from torch import Tensor

from . import forward_sums, reduction_scale, select_backend


def _forward(
    backend: ModuleType,
    x: Tensor,
    target: Tensor,
    margins: Tensor,
    class_weight: Tensor | None,
    hard: bool,
    on_target: bool,
    ignore_index: int,
    need_losses: bool,
) -> tuple[Tensor, Tensor, Tensor]:
    """``margin_forward`` with ``backend`` (see :func:`~segloss._kernels.forward_sums`): the losses are
    empty unless ``need_losses``; the sum has ``x``'s dtype and device, the count is int64."""
    losses, total, count = forward_sums(
        backend, x, target, margins, class_weight, hard, on_target, ignore_index, need_losses
    )
    total = torch.as_tensor(total, dtype=x.dtype, device=x.device)
    count = torch.as_tensor(count, dtype=x.dtype, device=x.device)  # a weighted count is fractional
    return losses if need_losses else x.new_empty(0), total, count


def _backward(
    backend: ModuleType,
    x: Tensor,
    target: Tensor,
    margins: Tensor,
    class_weight: Tensor | None,
    weight: Tensor,
    hard: bool,
    on_target: bool,
    ignore_index: int,
) -> Tensor:
    """``margin_backward`` with ``backend``: the gradient w.r.t. ``x`` of ``sum(weight * losses)``;
    ``weight`` is ``(N, S)`` or a single value. The gradient has ``x``'s strides."""
    grad = backend.margin_backward(
        x, target, margins, hard, ignore_index, weight.to(x.dtype), on_target=on_target,
        class_weight=class_weight,
    )  # fmt: skip
    if grad.stride() != x.stride():  # the fake registration promises x's layout
        grad = torch.empty_like(x).copy_(grad)
    return grad


@torch.library.custom_op(
    "segloss::margin_forward",
    mutates_args=(),
    schema="(Tensor x, Tensor target, Tensor margins, Tensor? class_weight, bool hard, bool on_target, "
    "int ignore_index, bool need_losses) -> (Tensor, Tensor, Tensor)",
)
def margin_forward(x, target, margins, class_weight, hard, on_target, ignore_index, need_losses):
    return _forward(
        select_backend(x), x, target, margins, class_weight, hard, on_target, ignore_index, need_losses
    )


@torch.library.custom_op(
    "segloss::margin_backward",
    mutates_args=(),
    schema="(Tensor x, Tensor target, Tensor margins, Tensor? class_weight, Tensor weight, bool hard, "
    "bool on_target, int ignore_index) -> Tensor",
)
def margin_backward(x, target, margins, class_weight, weight, hard, on_target, ignore_index):
    return _backward(
        select_backend(x), x, target, margins, class_weight, weight, hard, on_target, ignore_index
    )


@margin_forward.register_fake
def _(x, target, margins, class_weight, hard, on_target, ignore_index, need_losses):
    losses = x.new_empty(target.shape if need_losses else (0,))
    return losses, x.new_empty(()), x.new_empty(())


@margin_backward.register_fake
def _(x, target, margins, class_weight, weight, hard, on_target, ignore_index):
    return torch.empty_like(x)


def _setup_context(ctx, inputs, output) -> None:
    x, target, margins, class_weight, hard, on_target, ignore_index, need_losses = inputs
    ctx.save_for_backward(x, target, margins, class_weight)
    ctx.options = hard, on_target, ignore_index, need_losses


def _backward_formula(ctx, grad_losses: Tensor, grad_total: Tensor, _grad_count: Tensor | None):
    """The gradient of the per-sample losses and of their sum (autograd hands zeros for an output that was
    not used) through :func:`margin_backward`; targets, margins and the flags get none."""
    x, target, margins, class_weight = ctx.saved_tensors
    hard, on_target, ignore_index, need_losses = ctx.options
    weight = grad_losses + grad_total if need_losses else grad_total
    grad = margin_backward(x, target, margins, class_weight, weight, hard, on_target, ignore_index)
    return grad, None, None, None, None, None, None, None


margin_forward.register_autograd(_backward_formula, setup_context=_setup_context)


def margin_loss(
    x: Tensor,
    target: Tensor,
    margins: Tensor,
    class_weight: Tensor | None,
    hard: bool,
    on_target: bool,
    ignore_index: int,
    reduction: str,
    sync: bool,
) -> Tensor:
    """:class:`~segloss._kernels.MarginLossFunction`'s result through the ops: traceable, so
    ``torch.compile`` sees the forward op and a few tensor operations."""
    losses, total, count = margin_forward(
        x, target, margins, class_weight, hard, on_target, ignore_index, reduction == "none"
    )
    scale = reduction_scale(count, reduction, sync, x)
    return losses if scale is None else total * scale
