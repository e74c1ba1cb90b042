"""The fused margin-loss autograd function (HEM, HEM+, MM) and its backends.

Backends: ``cpu`` (compiled C, used for float32/float64 CPU tensors when a C compiler is available) and
``eager`` (tensor ops, everywhere). ``SEGLOSS_KERNEL`` = ``auto`` (default), ``eager`` or ``cpu`` (fail
if the compiled kernel is unavailable) picks one.
"""

from __future__ import annotations

import math
import os

import torch
from torch.autograd.function import once_differentiable

from .. import _distributed
from .._checks import check_target_values
from . import cpu, eager

BACKENDS = ("auto", "eager", "cpu")


def select_backend(x: torch.Tensor):
    """The backend module for ``x`` under the ``SEGLOSS_KERNEL`` setting."""
    choice = os.environ.get("SEGLOSS_KERNEL", "auto").lower()
    if choice not in BACKENDS:
        raise ValueError(f"SEGLOSS_KERNEL must be one of {BACKENDS}, got {choice!r}")
    if choice == "eager":
        return eager
    on_cpu = x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)
    if choice == "cpu":
        if not on_cpu or not cpu.available():
            raise RuntimeError(
                f"SEGLOSS_KERNEL=cpu but the compiled CPU kernel cannot run here "
                f"(device {x.device}, dtype {x.dtype}, compiled: {cpu.available()})"
            )
        return cpu
    return cpu if on_cpu and cpu.available() else eager


def as_samples(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Views ``(N, C, S)`` of the logits and ``(N, S)`` int64 of the target, in a layout the kernels take.

    ``(N, C)`` logits become ``(1, C, N)``; channels-last logits keep their memory layout.
    """
    n, c = logits.shape[:2]
    if logits.dim() == 2:
        x, t = logits.t().unsqueeze(0), target.reshape(1, n)
    else:
        size = math.prod(logits.shape[2:])
        x, t = logits.reshape(n, c, size), target.reshape(n, size)
    if not (x.is_contiguous() or x.transpose(1, 2).is_contiguous()):
        x = x.contiguous()
    return x, t.to(torch.int64).contiguous()


class MarginLossFunction(torch.autograd.Function):
    """Reduced margin loss of ``(N, C, S)`` logits; the gradient follows SPEC §1's rule."""

    @staticmethod
    def forward(ctx, x, target, margins, hard: bool, ignore_index: int, reduction: str, sync: bool):
        backend = select_backend(x)
        if backend is eager:
            check_target_values(target, x.shape[1], ignore_index)
        losses, total, count = backend.margin_forward(
            x, target, margins, hard, ignore_index, reduction == "none"
        )
        world = _distributed.world_size(sync)
        if reduction == "none":
            out, scale = losses, None
        elif reduction == "sum":
            scale = torch.tensor(float(world), dtype=x.dtype, device=x.device)
            out = total.to(x.device) * scale
        else:
            count = _distributed.all_reduce_sum(count.to(x.device), sync)
            scale = world / count.clamp(min=1).to(x.dtype)
            out = total.to(x.device) * scale
        ctx.save_for_backward(x, target, margins, scale)
        ctx.options = backend, hard, ignore_index
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        x, target, margins, scale = ctx.saved_tensors
        backend, hard, ignore_index = ctx.options
        weight = grad_output if scale is None else grad_output * scale
        grad = backend.margin_backward(x, target, margins, hard, ignore_index, weight.to(x.dtype))
        return grad, None, None, None, None, None, None
