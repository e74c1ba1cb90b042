"""The CUDA backend: Triton kernels (Triton ships with CUDA builds of torch).

Each program holds a tile of (all classes × BLOCK_S samples of one image) in registers: the forward reads
the logits once and writes one loss per sample; the backward reads them once more and writes the
gradient. The maths mirror ``margin_cpu.c``; both are checked against the same reference (the Triton
kernels in Triton's CPU interpreter, ``TRITON_INTERPRET=1``).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

MAX_CLASSES = 1024  # beyond this a tile no longer fits in registers: the eager backend takes over
TILE_ELEMENTS = 4096


@triton.jit
def _tile(x_ptr, t_ptr, mu_ptr, C, S, sn, sc, ss, ignore,
          ON_TARGET: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr):  # fmt: skip
    """A tile's offsets, masks, errors and per-sample mean error (0 where ignored)."""
    n = tl.program_id(1).to(tl.int64)
    s = tl.program_id(0).to(tl.int64) * BLOCK_S + tl.arange(0, BLOCK_S)
    c = tl.arange(0, BLOCK_C)
    in_range = s < S
    target = tl.load(t_ptr + n * S + s, mask=in_range, other=ignore)
    valid = in_range & (target != ignore)
    inside = (c[:, None] < C) & in_range[None, :]
    offsets = n * sn + c[:, None] * sc + s[None, :] * ss
    x = tl.load(x_ptr + offsets, mask=inside, other=0.0)
    is_true = c[:, None] == target[None, :]
    true_logit = tl.sum(tl.where(is_true, x, 0.0), axis=0)
    margins = tl.load(mu_ptr + c, mask=c < C, other=0.0)
    if ON_TARGET:  # the true class's margin, subtracted once per sample as in the C kernel
        true_margin = tl.sum(tl.where(is_true, margins[:, None], 0.0), axis=0)
        errors = x - (true_logit - true_margin)[None, :]
    else:
        errors = x - true_logit[None, :] + margins[:, None]
    keep = (errors > 0) | (errors != errors)  # NaN logits give a NaN loss, as in cross-entropy
    errors = tl.where(inside & keep & (is_true == 0), errors, 0.0)
    mean_error = tl.where(valid, tl.sum(errors, axis=0) / C, 0.0)
    return n, s, in_range, valid, inside, offsets, is_true, errors, mean_error


@triton.jit
def _margin_forward(x_ptr, t_ptr, mu_ptr, loss_ptr, C, S, sn, sc, ss, ignore,
                    HARD: tl.constexpr, ON_TARGET: tl.constexpr, BLOCK_C: tl.constexpr,
                    BLOCK_S: tl.constexpr):  # fmt: skip
    n, s, in_range, valid, inside, offsets, is_true, errors, mean_error = _tile(
        x_ptr, t_ptr, mu_ptr, C, S, sn, sc, ss, ignore, ON_TARGET, BLOCK_C, BLOCK_S
    )
    if HARD:
        selected = (errors >= mean_error[None, :]) & (errors > 0)
        count = tl.sum(selected.to(errors.dtype), axis=0)
        total = tl.sum(tl.where(selected, errors, 0.0), axis=0)
        loss = tl.where(mean_error > 0, total / tl.maximum(count, 1.0), mean_error)
    else:
        loss = mean_error
    tl.store(loss_ptr + n * S + s, loss, mask=in_range)


@triton.jit
def _margin_backward(x_ptr, t_ptr, mu_ptr, w_ptr, w_step, grad_ptr, C, S, sn, sc, ss, ignore,
                     HARD: tl.constexpr, ON_TARGET: tl.constexpr, BLOCK_C: tl.constexpr,
                    BLOCK_S: tl.constexpr):  # fmt: skip
    n, s, in_range, valid, inside, offsets, is_true, errors, mean_error = _tile(
        x_ptr, t_ptr, mu_ptr, C, S, sn, sc, ss, ignore, ON_TARGET, BLOCK_C, BLOCK_S
    )
    weight = tl.load(w_ptr + (n * S + s) * w_step, mask=in_range, other=0.0).to(errors.dtype)
    if HARD:
        selected = (errors >= mean_error[None, :]) & (errors > 0)
        count = tl.sum(selected.to(errors.dtype), axis=0)
        coef = tl.where(mean_error > 0, weight / tl.maximum(count, 1.0), 0.0)
    else:
        selected = errors > 0
        coef = tl.where(valid, weight / C, 0.0)
    grad = tl.where(selected, coef[None, :], 0.0)
    true_grad = -tl.sum(grad, axis=0)
    grad = tl.where(is_true & valid[None, :], true_grad[None, :], grad)
    tl.store(grad_ptr + offsets, grad, mask=inside)


def supports(x: torch.Tensor) -> bool:
    return x.shape[1] <= MAX_CLASSES


def _launch(x: torch.Tensor):
    _, num_classes, size = x.shape
    block_c = triton.next_power_of_2(num_classes)
    block_s = max(1, min(triton.next_power_of_2(size), TILE_ELEMENTS // block_c))
    grid = (triton.cdiv(size, block_s), x.shape[0])
    return grid, (num_classes, size, *x.stride()), {"BLOCK_C": block_c, "BLOCK_S": block_s}


def margin_forward(x, target, margins, hard: bool, ignore_index: int, need_losses: bool, *,
                   on_target: bool = False):  # fmt: skip
    """Per-sample losses ``(N, S)``, their sum and the count a mean divides by: the samples with a loss
    above zero for HEM, the valid samples for MM."""
    losses = torch.empty(target.shape, dtype=x.dtype, device=x.device)
    grid, layout, blocks = _launch(x)
    _margin_forward[grid](x, target, margins, losses, *layout, ignore_index, HARD=hard, ON_TARGET=on_target,
                          **blocks)  # fmt: skip
    count = (losses > 0).sum() if hard else (target != ignore_index).sum()
    return losses, losses.sum(), count


def margin_backward(x, target, margins, hard: bool, ignore_index: int, weight: torch.Tensor, *,
                    on_target: bool = False):  # fmt: skip
    """Gradient of ``sum(weight * losses)`` w.r.t. ``x``; ``weight`` is ``(N, S)`` or a single value."""
    grad = torch.empty_like(x)
    weight = weight.to(x.dtype).contiguous()
    grid, layout, blocks = _launch(x)
    step = 0 if weight.numel() == 1 else 1
    _margin_backward[grid](x, target, margins, weight, step, grad, *layout, ignore_index, HARD=hard,
                           ON_TARGET=on_target, **blocks)  # fmt: skip
    return grad
