"""The fused margin-loss autograd function (HEM, HEM+, MM) and its backends.

Backends: ``cpu`` (compiled C, for float32/float64 CPU tensors when a C compiler is available),
``triton`` (CUDA tensors, when Triton is installed) and ``eager`` (tensor ops, everywhere).
``SEGLOSS_KERNEL`` = ``auto`` (default), ``eager``, ``cpu`` or ``triton`` picks one; naming a compiled
backend that cannot run is an error. Under ``auto`` a Triton launch that fails (no C compiler or
``Python.h`` for Triton's launcher, ``libcuda.so`` not found, a driver too old for the PTX, ...) warns once,
marks Triton unusable for the process and reruns that call eagerly: training goes on.
``SEGLOSS_KERNEL=triton`` with ``TRITON_INTERPRET=1`` runs the whole CUDA path (Triton kernels, checks
queued on the device, no host synchronisation) on CPU tensors, in Triton's interpreter: how the tests
check it without a GPU.

Eager calls go through :class:`MarginLossFunction`; under ``torch.compile`` the losses run as the custom
ops of :mod:`.ops` (imported only then, so that ``import segloss`` loads no compiler stack). Both call the
same backends and :func:`reduction_scale`.
"""

from __future__ import annotations

import functools
import importlib
import logging
import math
import os

import torch
from torch.autograd.function import once_differentiable

from .. import _distributed
from .._checks import LOW_PRECISION, assert_target_values_on_device, check_target_values
from . import cpu, eager

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "eager", "cpu", "triton")
# why Triton failed in this process, once it has (``auto`` then uses the eager backend)
_triton_failure: str | None = None


@functools.cache
def _triton_backend():
    """The Triton backend module, or ``None`` without Triton (logged once)."""
    try:
        return importlib.import_module(f"{__name__}.triton_gpu")
    except ImportError as error:
        logger.info("segloss: Triton is not importable (%s); the margin losses run eagerly on the GPU", error)
        return None


def _give_up_triton(error: BaseException) -> None:
    """After a failed Triton launch under ``auto``: warn once and use the eager backend from now on."""
    global _triton_failure
    if _triton_failure is None:
        logger.warning(
            "segloss: a Triton kernel failed to launch (%s: %s); the margin losses run eagerly from now on "
            "(slower, same values). Set SEGLOSS_KERNEL=triton to see the error instead, or "
            "SEGLOSS_KERNEL=eager to silence this.",
            type(error).__name__,
            str(error).splitlines()[0] if str(error) else "",
        )
    _triton_failure = f"{type(error).__name__}: {error}"


def _run(backend, direction: str, x: torch.Tensor, *args, **kwargs):
    """``backend.margin_{direction}(x, ...)``; under ``auto`` a failing Triton launch falls back to the
    eager backend (on float32 logits for half-precision ones, the gradient cast back)."""
    function = getattr(backend, f"margin_{direction}")
    if backend is cpu or backend is eager or _setting() != "auto":
        return function(x, *args, **kwargs)
    try:
        return function(x, *args, **kwargs)
    except Exception as error:  # noqa: BLE001 - any launch failure
        if str(error).startswith("segloss:"):  # the kernel's target check (raised at once on the CPU)
            raise
        _give_up_triton(error)
    out = getattr(eager, f"margin_{direction}")(x.float() if x.dtype in LOW_PRECISION else x, *args, **kwargs)
    return out.to(x.dtype) if direction == "backward" else out


def _setting() -> str:
    choice = os.environ.get("SEGLOSS_KERNEL", "auto").lower()
    if choice not in BACKENDS:
        raise ValueError(f"SEGLOSS_KERNEL must be one of {BACKENDS}, got {choice!r}")
    return choice


def interpreting_triton() -> bool:
    """``SEGLOSS_KERNEL=triton`` and ``TRITON_INTERPRET=1``: CPU tensors take the CUDA path."""
    return _setting() == "triton" and os.environ.get("TRITON_INTERPRET") == "1"


def on_device_path(tensor: torch.Tensor) -> bool:
    """Whether ``tensor`` takes the path that never synchronises with the host (CUDA, MPS, or the CUDA
    path interpreted on the CPU)."""
    return tensor.device.type != "cpu" or interpreting_triton()


def check_targets(target: torch.Tensor, num_classes: int, ignore_index: int) -> None:
    """The target check: an immediate ``ValueError`` on the CPU, a check queued on the device otherwise."""
    if on_device_path(target):
        assert_target_values_on_device(target, num_classes, ignore_index)
    else:
        check_target_values(target, num_classes, ignore_index)


def select_backend(x: torch.Tensor):
    """The backend module for logits ``x`` under the ``SEGLOSS_KERNEL`` setting."""
    choice = _setting()
    if choice == "eager":
        return eager
    candidates = {}
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and cpu.available():
        candidates["cpu"] = cpu
    triton_gpu = _triton_backend() if x.is_cuda or interpreting_triton() else None
    usable = choice == "triton" or _triton_failure is None
    if triton_gpu is not None and usable and triton_gpu.supports(x) and triton_gpu.takes(x.dtype):
        candidates["triton"] = triton_gpu
    if choice == "auto":
        return next(iter(candidates.values()), eager)
    if choice not in candidates:
        raise RuntimeError(
            f"SEGLOSS_KERNEL={choice} cannot run here (device {x.device}, dtype {x.dtype}, "
            f"{x.shape[1]} classes); usable: {', '.join(candidates) or 'eager only'}"
        )
    return candidates[choice]


def _loads_half_precision(x: torch.Tensor) -> bool:
    """Whether the backend for half-precision logits ``x`` loads them as they are (Triton does)."""
    if _setting() not in ("auto", "triton") or not (x.is_cuda or interpreting_triton()):
        return False
    triton_gpu = _triton_backend()
    usable = _setting() == "triton" or _triton_failure is None
    return triton_gpu is not None and usable and triton_gpu.supports(x)


def count_valid_targets(target: torch.Tensor, num_classes: int, ignore_index: int) -> torch.Tensor:
    """The number of targets that are not ``ignore_index`` (a tensor on ``target``'s device), after
    checking that every other target is in ``[0, num_classes)`` (:func:`check_targets`)."""
    check_targets(target, num_classes, ignore_index)
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


def forward_sums(
    backend, x, target, margins, class_weight, hard: bool, on_target: bool, ignore_index: int,
    need_losses: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """Margin losses of ``(N, C, S)`` logits ``x`` against ``(N, S)`` int64 ``target`` with ``(C,)``
    ``margins``, by ``backend``: the per-sample losses ``(N, S)`` (when ``need_losses``), their sum and the
    count a mean divides by (HEM: the samples with a loss above zero; MM: the valid samples); with a
    ``(C,)`` ``class_weight`` each sample's loss and its share of the count are times its class's weight.
    A target outside ``[0, C)`` that is not ``ignore_index`` is a ``ValueError``."""
    if not getattr(backend, "CHECKS_TARGETS", False):  # the compiled kernels check targets as they go
        check_targets(target, x.shape[1], ignore_index)
    return _run(
        backend, "forward", x, target, margins, hard, ignore_index, need_losses, on_target=on_target,
        class_weight=class_weight,
    )  # fmt: skip


def reduction_scale(
    count: torch.Tensor | int, reduction: str, sync: bool, like: torch.Tensor
) -> torch.Tensor | float | None:
    """The factor turning the loss sum into the ``sum``/``mean`` reduction (over all ranks when ``sync``;
    an all-ignored batch, or a count of zero weight, gives 0, not NaN), or ``None`` for ``none``. Traceable
    by ``torch.compile``. A number on one rank (the CPU kernel's count) gives a ``float``: no tensor work
    at all."""
    if reduction == "none":
        return None
    world = _distributed.world_size(sync)
    if isinstance(count, (int, float)) and world == 1:
        return 1.0 if reduction == "sum" else (1.0 / count if count > 0 else 0.0)
    count = torch.as_tensor(count)
    if reduction == "sum":
        return like.new_full((), float(world))  # a fill on the device, no host-to-device copy
    count = _distributed.all_reduce_sum(count.to(like.device), sync).to(like.dtype)
    return torch.where(count > 0, world / count, 0)


class MarginLossFunction(torch.autograd.Function):
    """Reduced margin loss of ``(N, C, d1, ...)`` logits ``x`` (viewed as samples by :func:`as_samples`
    inside, so that autograd records one node); the gradient follows the HEM gradient rule of
    docs/losses-and-margins.md. The eager path; under ``torch.compile`` the custom ops of :mod:`.ops` take
    over.
    Half-precision logits go to a backend that loads them as they are (Triton), else to a float32 copy;
    the result is float32 either way and the gradient has the logits' dtype."""

    @staticmethod
    def forward(ctx, x, target, margins, class_weight, hard: bool, on_target: bool, ignore_index: int,
                reduction: str, sync: bool):  # fmt: skip
        x3, t2 = as_samples(x, target)
        if x3.dtype in LOW_PRECISION and not _loads_half_precision(x3):
            x3 = x3.float()
        backend = select_backend(x3)
        dtype = torch.float32 if x.dtype in LOW_PRECISION else x.dtype
        losses, total, count = forward_sums(
            backend, x3, t2, margins, class_weight, hard, on_target, ignore_index, reduction == "none"
        )
        scale = reduction_scale(count, reduction, sync, margins)
        if scale is None:
            out = losses.view(target.shape)
        elif isinstance(scale, float):
            out = torch.scalar_tensor(total * scale, dtype=dtype)
        else:
            out = torch.as_tensor(total, dtype=dtype, device=x.device) * scale
        ctx.save_for_backward(x3, t2, margins, class_weight)
        ctx.options = backend, hard, on_target, ignore_index, scale, x.shape, x.dtype
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        x3, t2, margins, class_weight = ctx.saved_tensors
        backend, hard, on_target, ignore_index, scale, shape, dtype = ctx.options
        if scale is None:
            weight = grad_output.reshape(t2.shape)
        elif isinstance(scale, float):  # the CPU kernel's: a plain number, no tensor
            weight = grad_output.item() * scale
        else:
            weight = grad_output * scale
        grad = _run(
            backend, "backward", x3, t2, margins, hard, ignore_index, weight, on_target=on_target,
            class_weight=class_weight,
        ).to(dtype)  # fmt: skip
        grad = grad[0].t() if len(shape) == 2 else grad.view(shape)  # undo as_samples
        return grad, None, None, None, None, None, None, None, None
