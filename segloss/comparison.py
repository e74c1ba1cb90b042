"""The losses segmentation practitioners train with, beside the paper's (docs/losses-and-margins.md,
"Comparison losses"): class-weighted cross-entropy, the softmax focal loss, Lovász-softmax and OHEM
cross-entropy.

Shaped like ``F.cross_entropy``: logits ``(N, C)`` or ``(N, C, d1, ..., dk)``, targets ``(N)`` or
``(N, d1, ..., dk)``; ``ignore_index`` targets contribute nothing; half-precision logits are computed in
float32; ``sync=True`` makes the batch statistics global under ``torch.distributed``; ``weight`` is a
``(C,)`` tensor of per-class weights, as in :mod:`segloss.functional`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F

from . import _distributed, functional
from ._checks import DEFAULT_IGNORE_INDEX, ClassWeight, class_weight_tensor, prepare_logits, sample_weights
from ._kernels import as_samples, count_valid_targets, on_device_path

__all__ = ["focal_loss", "lovasz_softmax", "ohem_cross_entropy", "weighted_cross_entropy"]


def _true_log_probs(x: torch.Tensor, target: torch.Tensor, ignore_index: int) -> tuple[torch.Tensor, ...]:
    """``log p_l`` of every sample (0 where ignored) and the mask of valid samples, both target-shaped."""
    valid = target != ignore_index
    index = torch.where(valid, target, 0).long()
    log_p = F.log_softmax(x, 1).gather(1, index.unsqueeze(1)).squeeze(1)
    return torch.where(valid, log_p, 0), valid


def weighted_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    class_weights: Sequence[float] | torch.Tensor,
    *,
    ignore_index: int = DEFAULT_IGNORE_INDEX,
    reduction: str = "mean",
    sync: bool = False,
) -> torch.Tensor:
    """Class-weighted cross-entropy: ``w_l · (−log p_l)``, ``mean`` = ``Σ w_l ce / Σ w_l`` over the valid
    samples (PyTorch's weighted mean). Weights from class counts: :func:`segloss.margins.class_weights`.

    Args:
        logits: unnormalised scores.
        target: class indices or ``ignore_index``.
        class_weights: ``(C,)`` non-negative weights ``w_c`` (``functional.cross_entropy``'s ``weight``).
        ignore_index: target value that contributes no loss.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        sync: the weight sum of ``mean`` over all ranks.

    Shape:
        logits ``(N, C, *)``, target ``(N, *)``; output a scalar, or ``(N, *)`` for ``"none"``.

    Returns:
        The loss (Eigen & Fergus 2015, https://arxiv.org/abs/1411.4734; SegNet's CamVid weighting).
    """
    return functional.cross_entropy(
        logits, target, weight=class_weights, ignore_index=ignore_index, reduction=reduction, sync=sync
    )


def focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    gamma: float = 2.0,
    *,
    weight: ClassWeight = None,
    ignore_index: int = DEFAULT_IGNORE_INDEX,
    reduction: str = "mean",
    sync: bool = False,
) -> torch.Tensor:
    """Softmax focal loss ``−(1 − p_l)^γ log p_l``; ``mean`` over the valid samples. ``gamma = 0`` is
    cross-entropy. Not smp's multiclass ``FocalLoss``, which is a one-vs-rest sigmoid loss.

    Args:
        logits: unnormalised scores.
        target: class indices or ``ignore_index``.
        gamma: the focusing exponent γ ≥ 0 (2 in the paper).
        weight: ``(C,)`` per-class weights: ``w_l · loss``, ``mean`` = ``Σ w_l loss / Σ w_l``.
        ignore_index: target value that contributes no loss.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        sync: the sample count of ``mean`` over all ranks.

    Shape:
        logits ``(N, C, *)``, target ``(N, *)``; output a scalar, or ``(N, *)`` for ``"none"``.

    Returns:
        The loss (Lin et al. 2017, https://arxiv.org/abs/1708.02002).
    """
    if not gamma >= 0:
        raise ValueError(f"gamma must be >= 0, got {gamma}")
    x = prepare_logits(logits, target, reduction)
    count = count_valid_targets(target, x.shape[1], ignore_index)
    log_p, _ = _true_log_probs(x, target, ignore_index)
    # 1 − p by expm1 (exact near p = 1); the floor keeps the gradient finite for γ < 1 at p = 1
    focus = (-torch.expm1(log_p)).clamp(min=torch.finfo(x.dtype).tiny).pow(gamma)
    return _weighted_reduction(-focus * log_p, count, weight, x, target, ignore_index, reduction, sync)


def ohem_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    thresh: float = 0.7,
    min_kept: int = 100_000,
    *,
    weight: ClassWeight = None,
    ignore_index: int = DEFAULT_IGNORE_INDEX,
    reduction: str = "mean",
    sync: bool = False,
) -> torch.Tensor:
    """Cross-entropy of the hard samples only, chosen by MMSegmentation's ``OHEMPixelSampler`` rule.

    With ``p_(0) ≤ p_(1) ≤ …`` the true-class probabilities of the valid samples, ``k = min(min_kept,
    valid − 1)`` and ``t = max(thresh, p_(k))``, a sample is kept when ``p_l < t`` (so at least about
    ``min_kept`` samples are kept); with at most ``min_kept`` valid samples every valid sample is kept. The
    selection is not differentiated. ``mean`` averages over the kept samples (over all ranks when ``sync``).
    The selection takes the ``min_kept + 1`` smallest probabilities (``torch.topk``), not a full sort, and
    never synchronises with the host.

    Args:
        logits: unnormalised scores.
        target: class indices or ``ignore_index``.
        thresh: probability below which a sample is always hard.
        min_kept: the number of samples kept at least (per batch, per rank; MMSegmentation's is per image).
        weight: ``(C,)`` per-class weights: ``w_l · loss``, ``mean`` = ``Σ w_l loss / Σ w_l`` over the kept
            samples (the selection stays unweighted).
        ignore_index: target value that contributes no loss.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (0 for the samples not kept).
        sync: the kept count of ``mean`` over all ranks.

    Shape:
        logits ``(N, C, *)``, target ``(N, *)``; output a scalar, or ``(N, *)`` for ``"none"``.

    Returns:
        The loss (Shrivastava et al. 2016, https://arxiv.org/abs/1604.03540; MMSegmentation's sampler).
    """
    if not 0 <= thresh <= 1:
        raise ValueError(f"thresh must be in [0, 1], got {thresh}")
    if not (isinstance(min_kept, int) and min_kept >= 0):
        raise ValueError(f"min_kept must be an int >= 0, got {min_kept!r}")
    x = prepare_logits(logits, target, reduction)
    num_valid = count_valid_targets(target, x.shape[1], ignore_index)
    log_p, valid = _true_log_probs(x, target, ignore_index)
    with torch.no_grad():
        prob = torch.where(valid, log_p.exp(), 2.0).flatten()  # ignored samples sort after every valid one
        smallest = prob.topk(min(min_kept + 1, prob.numel()), largest=False, sorted=True).values
        k = (torch.as_tensor(num_valid, device=prob.device) - 1).clamp(min=0, max=smallest.numel() - 1)
        threshold = smallest.gather(0, k.reshape(1)).clamp(min=thresh).reshape(())
        keep = valid & ((log_p.exp() < threshold) | (num_valid <= min_kept))
    losses = torch.where(keep, -log_p, 0)
    return _weighted_reduction(losses, keep.sum(), weight, x, torch.where(keep, target, ignore_index),
                               ignore_index, reduction, sync)  # fmt: skip


def _weighted_reduction(
    losses: torch.Tensor,
    count: torch.Tensor,
    weight: ClassWeight,
    x: torch.Tensor,
    target: torch.Tensor,
    ignore_index: int,
    reduction: str,
    sync: bool,
) -> torch.Tensor:
    """Per-sample ``losses`` reduced over ``count`` samples, or, with per-class ``weight``, ``w_l · losses``
    reduced over the weight sum of the samples whose ``target`` is not ``ignore_index``."""
    weights = class_weight_tensor(weight, x.shape[1], x, on_device_path(x))
    if weights is None:
        return _distributed.reduce_losses(losses, count, reduction, sync)
    per_sample = sample_weights(weights, target, ignore_index)
    floor = torch.finfo(x.dtype).tiny
    return _distributed.reduce_losses(losses * per_sample, per_sample.sum(), reduction, sync, floor=floor)


def lovasz_softmax(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    weight: ClassWeight = None,
    ignore_index: int = DEFAULT_IGNORE_INDEX,
    reduction: str = "mean",
    sync: bool = False,
) -> torch.Tensor:
    """Lovász-softmax: per class, the Lovász extension of the Jaccard loss of the softmax probabilities
    over the batch's valid samples; ``mean`` averages over the classes present in the batch.

    All classes are sorted at once (one ``(C, P)`` sort). With ``sync`` the extension is taken over the
    samples of every rank (each rank's errors are gathered; the gradient flows through its own).

    Args:
        logits: unnormalised scores.
        target: class indices or ``ignore_index``.
        weight: ``(C,)`` per-class weights: ``w_c · loss_c``, ``mean`` = ``Σ w_c loss_c / Σ w_c`` over the
            present classes.
        ignore_index: target value that contributes no loss.
        reduction: ``"mean"`` (over present classes), ``"sum"`` or ``"none"`` (the ``(C,)`` per-class
            losses, 0 for a class absent from the batch).
        sync: the extension over the global batch.

    Shape:
        logits ``(N, C, *)``, target ``(N, *)``; output a scalar, or ``(C,)`` for ``"none"``.

    Returns:
        The loss (Berman et al. 2018, https://arxiv.org/abs/1705.08790); equal to smp's
        ``LovaszLoss(mode="multiclass", per_image=False)``.
    """
    x = prepare_logits(logits, target, reduction)
    count_valid_targets(target, x.shape[1], ignore_index)
    weights = class_weight_tensor(weight, x.shape[1], x, on_device_path(x))
    x3, t2 = as_samples(x, target)
    num_classes = x3.shape[1]
    probs = x3.softmax(1).transpose(0, 1).reshape(num_classes, -1)  # (C, P)
    labels = t2.reshape(1, -1)
    foreground = labels == torch.arange(num_classes, device=labels.device).unsqueeze(1)
    # ignored samples get error −1: they sort after every valid one and add nothing below
    errors = torch.where(labels != ignore_index, (foreground.to(probs.dtype) - probs).abs(), -1.0)
    world = _distributed.world_size(sync)
    if world > 1:
        errors, foreground = _gather_samples(errors, foreground)
    sorted_errors, order = errors.sort(dim=1, descending=True)
    fg_sorted = foreground.gather(1, order).to(torch.int64)
    fg_seen = fg_sorted.cumsum(1)
    positives = fg_seen[:, -1:]
    position = torch.arange(1, errors.shape[1] + 1, device=errors.device)
    jaccard = 1 - (positives - fg_seen).to(probs.dtype) / (positives + position - fg_seen).to(probs.dtype)
    gradient = torch.cat([jaccard[:, :1], jaccard[:, 1:] - jaccard[:, :-1]], dim=1)
    losses = (sorted_errors.clamp(min=0) * gradient).sum(1)
    present = positives.squeeze(1) > 0
    losses = torch.where(present, losses, 0)
    denominator = present.sum().clamp(min=1)
    if weights is not None:
        losses = losses * weights
        denominator = torch.where(present, weights, 0).sum().clamp(min=torch.finfo(x.dtype).tiny)
    if reduction == "sum":
        losses = losses.sum()
    elif reduction == "mean":
        losses = losses.sum() / denominator
    if world > 1:  # the same value on every rank, the gradient times the world size for DDP's averaging
        losses = losses.detach() + world * (losses - losses.detach())
    return losses


def _gather_samples(errors: torch.Tensor, foreground: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(C, P)`` errors and foreground of every rank side by side (padded with ignored samples to the
    longest rank's P); only this rank's part carries a gradient."""
    size = torch.tensor([errors.shape[1]], device=errors.device)
    dist.all_reduce(size, op=dist.ReduceOp.MAX)
    pad = int(size) - errors.shape[1]
    errors = F.pad(errors, (0, pad), value=-1.0)
    foreground = F.pad(foreground, (0, pad), value=False)
    gathered_errors = [torch.empty_like(errors) for _ in range(dist.get_world_size())]
    gathered_foreground = [torch.empty_like(foreground) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered_errors, errors.detach())
    dist.all_gather(gathered_foreground, foreground)
    gathered_errors[dist.get_rank()] = errors
    return torch.cat(gathered_errors, 1), torch.cat(gathered_foreground, 1)
