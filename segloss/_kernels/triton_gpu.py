"""The CUDA backend: Triton kernels (Triton ships with CUDA builds of torch).

Each program holds a tile of (all classes × BLOCK_S samples of one image) in registers: the forward reads
the logits once, checks the tile's targets and writes one loss per sample; the backward reads them once
more and writes the gradient. Half-precision logits are loaded as they are and computed in float32 (no
float32 copy of the logits); the gradient is written in the logits' dtype. The grid is one-dimensional
(CUDA allows 2³¹ − 1 programs on its first axis) and every offset is 64-bit. Launches run on the
logits' device, whatever the current device is. The maths mirror ``margin_cpu.c``; both are checked
against the same reference (the Triton kernels in Triton's CPU interpreter, ``TRITON_INTERPRET=1``).
"""

from __future__ import annotations

import contextlib

import torch
import triton
import triton.language as tl

from .._checks import LOW_PRECISION

MAX_CLASSES = 1024  # beyond this a tile no longer fits in registers: the eager backend takes over
TILE_ELEMENTS = 4096
# this backend checks the targets inside its forward kernel (one flag, one queued assertion)
CHECKS_TARGETS = True
BAD_TARGET = "segloss: a target value is outside [0, {num_classes}) and is not ignore_index ({ignore_index})"


@triton.jit
def _tile(x_ptr, t_ptr, mu_ptr, C, S, sn, sc, ss, ignore, blocks_per_image,
          ON_TARGET: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr):  # fmt: skip
    """A tile's offsets, masks, errors (float32) and per-sample mean error (0 where ignored)."""
    program = tl.program_id(0).to(tl.int64)
    n = program // blocks_per_image
    s = (program % blocks_per_image) * BLOCK_S + tl.arange(0, BLOCK_S)
    c = tl.arange(0, BLOCK_C).to(tl.int64)  # 64-bit: (C − 1) · sc may pass 2³¹ in one image
    in_range = s < S
    target = tl.load(t_ptr + n * S + s, mask=in_range, other=ignore)
    labelled = in_range & (target != ignore)
    known = (target >= 0) & (target < C)
    valid = labelled & known  # a bad target is reported by the forward and adds nothing here
    inside = (c[:, None] < C) & in_range[None, :]
    offsets = n * sn + c[:, None] * sc + s[None, :] * ss
    x = tl.load(x_ptr + offsets, mask=inside, other=0.0).to(tl.float32)
    is_true = (c[:, None] == target[None, :]) & valid[None, :]
    true_logit = tl.sum(tl.where(is_true, x, 0.0), axis=0)
    margins = tl.load(mu_ptr + c, mask=c < C, other=0.0).to(tl.float32)
    if ON_TARGET:  # the true class's margin, subtracted once per sample as in the C kernel
        true_margin = tl.sum(tl.where(is_true, margins[:, None], 0.0), axis=0)
        errors = x - (true_logit - true_margin)[None, :]
    else:
        errors = x - true_logit[None, :] + margins[:, None]
    keep = (errors > 0) | (errors != errors)  # NaN logits give a NaN loss, as in cross-entropy
    errors = tl.where(inside & keep & (is_true == 0) & valid[None, :], errors, 0.0)
    mean_error = tl.where(valid, tl.sum(errors, axis=0) / C, 0.0)
    return n, s, in_range, labelled, valid, inside, offsets, is_true, errors, mean_error, target


@triton.jit
def _class_weight(cw_ptr, target, valid):
    """Each sample's class weight (0 where ignored), in float32."""
    return tl.load(cw_ptr + tl.where(valid, target, 0), mask=valid, other=0.0).to(tl.float32)


@triton.jit
def _margin_forward(x_ptr, t_ptr, mu_ptr, cw_ptr, loss_ptr, bad_ptr, C, S, sn, sc, ss, ignore,
                    blocks_per_image, HARD: tl.constexpr, ON_TARGET: tl.constexpr, HAS_CW: tl.constexpr,
                    BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr):  # fmt: skip
    n, s, in_range, labelled, valid, inside, offsets, is_true, errors, mean_error, target = _tile(
        x_ptr, t_ptr, mu_ptr, C, S, sn, sc, ss, ignore, blocks_per_image, ON_TARGET, BLOCK_C, BLOCK_S
    )
    bad = tl.max((labelled & (valid == 0)).to(tl.int32), axis=0)
    tl.store(bad_ptr, bad, mask=bad > 0)  # every program that finds one writes the same 1: no race
    if HARD:
        selected = (errors >= mean_error[None, :]) & (errors > 0)
        count = tl.sum(selected.to(tl.float32), axis=0)
        total = tl.sum(tl.where(selected, errors, 0.0), axis=0)
        loss = tl.where(mean_error > 0, total / tl.maximum(count, 1.0), mean_error)
    else:
        loss = mean_error
    if HAS_CW:
        loss = loss * _class_weight(cw_ptr, target, valid)
    tl.store(loss_ptr + n * S + s, loss, mask=in_range)


@triton.jit
def _margin_backward(x_ptr, t_ptr, mu_ptr, cw_ptr, w_ptr, w_step, grad_ptr, C, S, sn, sc, ss, ignore,
                     blocks_per_image, HARD: tl.constexpr, ON_TARGET: tl.constexpr, HAS_CW: tl.constexpr,
                     BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr):  # fmt: skip
    n, s, in_range, labelled, valid, inside, offsets, is_true, errors, mean_error, target = _tile(
        x_ptr, t_ptr, mu_ptr, C, S, sn, sc, ss, ignore, blocks_per_image, ON_TARGET, BLOCK_C, BLOCK_S
    )
    weight = tl.load(w_ptr + (n * S + s) * w_step, mask=in_range, other=0.0).to(tl.float32)
    if HAS_CW:
        weight = weight * _class_weight(cw_ptr, target, valid)
    if HARD:
        selected = (errors >= mean_error[None, :]) & (errors > 0)
        count = tl.sum(selected.to(tl.float32), axis=0)
        coef = tl.where(mean_error > 0, weight / tl.maximum(count, 1.0), 0.0)
    else:
        selected = errors > 0
        coef = tl.where(valid, weight / C, 0.0)
    grad = tl.where(selected, coef[None, :], 0.0)
    true_grad = -tl.sum(grad, axis=0)
    grad = tl.where(is_true, true_grad[None, :], grad)
    tl.store(grad_ptr + offsets, grad.to(grad_ptr.dtype.element_ty), mask=inside)


def supports(x: torch.Tensor) -> bool:
    return x.shape[1] <= MAX_CLASSES


def takes(dtype: torch.dtype) -> bool:
    """Whether the kernels load logits of ``dtype`` as they are (half precision included)."""
    return dtype in (torch.float32, torch.float64, *LOW_PRECISION)


def _launch(x: torch.Tensor):
    batch, num_classes, size = x.shape
    block_c = triton.next_power_of_2(num_classes)
    block_s = max(1, min(triton.next_power_of_2(size), TILE_ELEMENTS // block_c))
    blocks_per_image = triton.cdiv(size, block_s)
    grid = (batch * blocks_per_image,)
    layout = (num_classes, size, *x.stride())
    return grid, layout, blocks_per_image, {"BLOCK_C": block_c, "BLOCK_S": block_s}


def _on_device(x: torch.Tensor) -> contextlib.AbstractContextManager:
    """Launches on ``x``'s GPU (Triton launches on the current device otherwise)."""
    return torch.cuda.device(x.device) if x.is_cuda else contextlib.nullcontext()


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float32 if dtype in LOW_PRECISION else dtype


def margin_forward(x, target, margins, hard: bool, ignore_index: int, need_losses: bool, *,
                   on_target: bool = False, class_weight: torch.Tensor | None = None):  # fmt: skip
    """Per-sample losses ``(N, S)``, their sum and the count a mean divides by: the samples with a loss
    above zero for HEM, the valid samples for MM; each times its class weight with ``class_weight``. The
    losses are float32 for half-precision logits. A target outside ``[0, C)`` that is not ``ignore_index``
    fails a queued device assertion (no host synchronisation)."""
    losses = torch.empty(target.shape, dtype=_compute_dtype(x.dtype), device=x.device)
    bad = torch.zeros((), dtype=torch.int32, device=x.device)
    grid, layout, blocks_per_image, blocks = _launch(x)
    has_cw = class_weight is not None
    with _on_device(x):
        _margin_forward[grid](x, target, margins, class_weight if has_cw else margins, losses, bad, *layout,
                              ignore_index, blocks_per_image, HARD=hard, ON_TARGET=on_target, HAS_CW=has_cw,
                              **blocks)  # fmt: skip
    torch._assert_async(bad == 0, BAD_TARGET.format(num_classes=x.shape[1], ignore_index=ignore_index))
    valid = (target != ignore_index) & (target >= 0) & (target < x.shape[1])
    # with class weights, a weighted loss is > 0 where the loss is and the weight too; a zero weight adds
    # nothing to the count either way
    counted = losses > 0 if hard else valid
    if not has_cw:
        return losses, losses.sum(), counted.sum()
    sample_weight = torch.where(counted, class_weight[torch.where(valid, target, 0)], 0)
    return losses, losses.sum(), sample_weight.sum()


def margin_backward(x, target, margins, hard: bool, ignore_index: int, weight: torch.Tensor, *,
                    on_target: bool = False, class_weight: torch.Tensor | None = None):  # fmt: skip
    """Gradient of ``sum(weight * losses)`` w.r.t. ``x`` (the losses times their class weights with
    ``class_weight``), in ``x``'s dtype and strides; ``weight`` is ``(N, S)`` or a single value."""
    grad = torch.empty_like(x)
    weight = weight.to(_compute_dtype(x.dtype)).contiguous()
    grid, layout, blocks_per_image, blocks = _launch(x)
    step = 0 if weight.numel() == 1 else 1
    has_cw = class_weight is not None
    with _on_device(x):
        _margin_backward[grid](x, target, margins, class_weight if has_cw else margins, weight, step, grad,
                               *layout, ignore_index, blocks_per_image, HARD=hard, ON_TARGET=on_target,
                               HAS_CW=has_cw, **blocks)  # fmt: skip
    return grad
