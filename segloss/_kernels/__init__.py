"""The fused margin-loss autograd function (HEM, HEM+, MM) and its backends.

Backends: ``cpu`` (compiled C, for float32/float64 CPU tensors when a C compiler is available),
``triton`` (CUDA tensors, when Triton is installed) and ``eager`` (tensor ops, everywhere).
``SEGLOSS_KERNEL`` = ``auto`` (default), ``eager``, ``cpu`` or ``triton`` picks one; naming a compiled
backend that cannot run is an error.
"""

from __future__ import annotations

import functools
import importlib
import math
import os

import torch
from torch.autograd.function import once_differentiable

from .. import _distributed
from .._checks import check_target_values
from . import cpu, eager

BACKENDS = ("auto", "eager", "cpu", "triton")


@functools.cache
def _triton_backend():
    """The Triton backend module, or ``None`` without Triton."""
    try:
        return importlib.import_module(f"{__name__}.triton_gpu")
    except ImportError:
        return None


def _setting() -> str:
    choice = os.environ.get("SEGLOSS_KERNEL", "auto").lower()
    if choice not in BACKENDS:
        raise ValueError(f"SEGLOSS_KERNEL must be one of {BACKENDS}, got {choice!r}")
    return choice


def select_backend(x: torch.Tensor):
    """The backend module for logits ``x`` under the ``SEGLOSS_KERNEL`` setting."""
    choice = _setting()
    if choice == "eager":
        return eager
    candidates = {}
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and cpu.available():
        candidates["cpu"] = cpu
    triton_gpu = _triton_backend() if x.is_cuda else None
    if triton_gpu is not None and triton_gpu.supports(x):
        candidates["triton"] = triton_gpu
    if choice == "auto":
        return next(iter(candidates.values()), eager)
    if choice not in candidates:
        raise RuntimeError(
            f"SEGLOSS_KERNEL={choice} cannot run here (device {x.device}, dtype {x.dtype}, "
            f"{x.shape[1]} classes); usable: {', '.join(candidates) or 'eager only'}"
        )
    return candidates[choice]


def count_valid_targets(target: torch.Tensor, num_classes: int, ignore_index: int) -> torch.Tensor:
    """The number of targets that are not ``ignore_index`` (a tensor on ``target``'s device), after
    checking that every other target is in ``[0, num_classes)``."""
    if target.device.type == "cpu" and _setting() != "eager" and cpu.available():
        return cpu.count_valid_targets(target, num_classes, ignore_index)
    check_target_values(target, num_classes, ignore_index)
    return (target != ignore_index).sum()


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
    """Reduced margin loss of ``(N, C, S)`` logits; the gradient follows the HEM gradient rule of
    docs/losses.md."""

    @staticmethod
    def forward(ctx, x, target, margins, hard: bool, on_target: bool, count_valid: bool, ignore_index: int,
                reduction: str, sync: bool):  # fmt: skip
        backend = select_backend(x)
        if backend is not cpu:  # the compiled CPU kernel checks targets as it goes
            check_target_values(target, x.shape[1], ignore_index)
        losses, total, count = backend.margin_forward(
            x, target, margins, hard, ignore_index, reduction == "none", on_target=on_target,
            count_valid=count_valid,
        )  # fmt: skip
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
        ctx.options = backend, hard, on_target, ignore_index
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        x, target, margins, scale = ctx.saved_tensors
        backend, hard, on_target, ignore_index = ctx.options
        weight = grad_output if scale is None else grad_output * scale
        grad = backend.margin_backward(
            x, target, margins, hard, ignore_index, weight.to(x.dtype), on_target=on_target
        )
        return grad, None, None, None, None, None, None, None, None
