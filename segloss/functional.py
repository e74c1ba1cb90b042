"""The losses of docs/losses-and-margins.md as functions of ``(logits, target)``, shaped like
``F.cross_entropy``.

Logits are ``(N, C)`` or ``(N, C, d1, ..., dk)``, targets ``(N)`` or ``(N, d1, ..., dk)``. Samples whose
target is ``ignore_index`` contribute nothing. Half-precision logits are computed in float32.

Every loss takes ``weight``, a ``(C,)`` tensor of per-class weights (docs/losses-and-margins.md, "Per-class
weights"):
a sample's loss is multiplied by the weight of its true class and ``mean`` divides by the sum of the weights
it averages over, as ``F.cross_entropy(weight=...)`` does; Dice weights its per-class terms.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from . import _distributed
from ._checks import (
    DEFAULT_IGNORE_INDEX,
    ClassWeight,
    check_reduction,
    check_shapes,
    class_weight_tensor,
    compute_dtype,
    per_class_tensor,
    prepare_logits,
    sample_weights,
)
from ._kernels import MarginLossFunction, as_samples, count_valid_targets, on_device_path

Margin = float | Sequence[float] | torch.Tensor
MARGIN_PLACEMENTS = ("competitor", "target")

__all__ = [
    "cross_entropy",
    "dice_loss",
    "hem_loss",
    "logit_adjusted_loss",
    "logit_norm_loss",
    "multi_margin_loss",
]


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


def _margin_loss(
    logits, target, margin, hard, margin_on, ignore_index, reduction, sync, weight
) -> torch.Tensor:
    _check_choice("margin_on", margin_on, MARGIN_PLACEMENTS)
    check_reduction(reduction)
    check_shapes(logits, target)
    dtype = compute_dtype(logits.dtype)  # half-precision logits stay as they are: the kernels load them
    num_classes = logits.shape[1]
    if isinstance(margin, torch.Tensor) and margin.dim() == 0:  # one margin: no .item(), no graph break
        margin = margin.expand(num_classes)
    margins = per_class_tensor(margin, num_classes, "margin", logits, dtype).contiguous()
    weights = class_weight_tensor(weight, num_classes, logits, on_device_path(logits), dtype)
    weights = None if weights is None else weights.contiguous()
    # HEM's batch mean is over the samples with a loss above zero (the paper), MM's over the valid ones;
    # the fused kernels weight each sample's loss and its share of that count by its class's weight.
    options = (hard, margin_on == "target", ignore_index, reduction, sync)
    if not torch.compiler.is_compiling():
        return MarginLossFunction.apply(logits, target, margins, weights, *options)
    from ._kernels.ops import margin_loss  # custom ops dynamo can trace; importing them loads dynamo

    out = margin_loss(*as_samples(logits.to(dtype), target), margins, weights, *options)
    return out.reshape(target.shape) if reduction == "none" else out


def hem_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    margin: Margin,
    *,
    margin_on: str = "target",
    weight: ClassWeight = None,
    ignore_index: int = DEFAULT_IGNORE_INDEX,
    reduction: str = "mean",
    sync: bool = False,
) -> torch.Tensor:
    """HEM (one ``margin``: a float or a 0-dim tensor) or HEM+ (per-class ``(C,)`` margins): the mean of
    the errors at or above each sample's mean error.

    ``margin_on="target"`` (the default) gives errors ``max(0, y_i - y_l + mu_l)``, the margin of the true
    class ``l``: what trained best for segmentation (docs/studies/margins.md); ``"competitor"`` (the paper's
    placement) gives ``max(0, y_i - y_l + mu_i)``, the margin of each competing class ``i``, which trained
    17 mIoU points below CE on CamVid. With one margin for every class both are the same. ``mean``
    averages over the samples with a loss above zero (the paper); with per-class ``weight`` it is
    ``Σ w_l loss / Σ w_l`` over those samples (the threshold and the selection stay unweighted).
    """
    return _margin_loss(logits, target, margin, True, margin_on, ignore_index, reduction, sync, weight)


def multi_margin_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    margin: Margin = 1.0,
    *,
    margin_on: str = "target",
    weight: ClassWeight = None,
    ignore_index: int = DEFAULT_IGNORE_INDEX,
    reduction: str = "mean",
    sync: bool = False,
) -> torch.Tensor:
    """Multi-class margin loss: the mean of a sample's margin errors over the C classes; ``mean`` averages
    over the valid samples. ``margin_on`` places per-class margins as in :func:`hem_loss`."""
    return _margin_loss(logits, target, margin, False, margin_on, ignore_index, reduction, sync, weight)


def cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    weight: ClassWeight = None,
    ignore_index: int = DEFAULT_IGNORE_INDEX,
    reduction: str = "mean",
    sync: bool = False,
) -> torch.Tensor:
    """``F.cross_entropy`` with segloss's target checks, float32 compute for half inputs and ``sync``; with
    ``weight``, ``F.cross_entropy(weight=...)``'s weighted mean ``Σ w_l ce / Σ w_l``."""
    x = prepare_logits(logits, target, reduction)
    count = count_valid_targets(target, x.shape[1], ignore_index)
    weights = class_weight_tensor(weight, x.shape[1], x, on_device_path(x))
    t = target.long()
    if reduction == "none":
        return F.cross_entropy(x, t, weight=weights, ignore_index=ignore_index, reduction="none")
    total = F.cross_entropy(x, t, weight=weights, ignore_index=ignore_index, reduction="sum")
    if weights is None:
        return _distributed.reduce_losses(total, count, reduction, sync)
    weight_sum = sample_weights(weights, t, ignore_index).sum()
    return _distributed.reduce_losses(total, weight_sum, reduction, sync, floor=torch.finfo(x.dtype).tiny)


def logit_norm_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    tau: float = 0.04,
    *,
    weight: ClassWeight = None,
    ignore_index: int = DEFAULT_IGNORE_INDEX,
    reduction: str = "mean",
    sync: bool = False,
) -> torch.Tensor:
    """LogitNorm: cross-entropy of ``logits / (tau * (||logits||_2 + 1e-7))``, norm over the class dim."""
    if not tau > 0:
        raise ValueError(f"tau must be positive, got {tau}")
    x = prepare_logits(logits, target, reduction)
    normed = x / (tau * (torch.linalg.vector_norm(x, dim=1, keepdim=True) + 1e-7))
    return cross_entropy(
        normed, target, weight=weight, ignore_index=ignore_index, reduction=reduction, sync=sync
    )


def logit_adjusted_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    class_priors: Sequence[float] | torch.Tensor,
    *,
    weight: ClassWeight = None,
    ignore_index: int = DEFAULT_IGNORE_INDEX,
    reduction: str = "mean",
    sync: bool = False,
) -> torch.Tensor:
    """Logit-adjusted cross-entropy: cross-entropy of ``logits + log(class_priors)``."""
    x = prepare_logits(logits, target, reduction)
    priors = per_class_tensor(class_priors, x.shape[1], "class_priors", x)
    if not on_device_path(priors):
        if not bool((priors > 0).all()):
            raise ValueError(f"class_priors must all be positive, got {priors.tolist()}")
    else:
        torch._assert_async((priors > 0).all(), "segloss: class_priors must all be positive")
    shape = (1, -1) + (1,) * (x.dim() - 2)
    adjusted = x + priors.log().view(shape)
    return cross_entropy(
        adjusted, target, weight=weight, ignore_index=ignore_index, reduction=reduction, sync=sync
    )


def dice_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    weight: ClassWeight = None,
    ignore_index: int = DEFAULT_IGNORE_INDEX,
    reduction: str = "mean",
    sync: bool = False,
) -> torch.Tensor:
    """Soft Dice: per class ``1 - 2 sum(t z) / sum(t + z)`` over the valid samples of the batch, ``z`` the
    softmax. ``none`` gives the ``(C,)`` per-class losses, ``mean``/``sum`` reduce over classes; with
    ``weight``, ``w_c · loss_c`` and ``mean`` = ``Σ w_c loss_c / Σ w_c``."""
    x = prepare_logits(logits, target, reduction)
    weights = class_weight_tensor(weight, x.shape[1], x, on_device_path(x))
    count_valid_targets(target, x.shape[1], ignore_index)
    x3, t2 = as_samples(x, target)
    valid = t2 != ignore_index
    probs = torch.where(
        valid.unsqueeze(1), x3.softmax(1), 0
    )  # not a product: NaN at ignored samples stays out
    index = torch.where(valid, t2, 0)
    true_probs = probs.gather(1, index.unsqueeze(1)).flatten()  # 0 where ignored
    per_class = probs.new_zeros(x3.shape[1])
    intersection = per_class.index_add(0, index.flatten(), true_probs)
    target_counts = per_class.index_add(0, index.flatten(), valid.flatten().to(probs.dtype))
    cardinality = probs.sum((0, 2)) + target_counts
    world = _distributed.world_size(sync)
    if world > 1:  # global sums; the gradient flows through this rank's own part
        intersection, cardinality = (
            part + (_distributed.all_reduce_sum(part, sync) - part).detach()
            for part in (intersection, cardinality)
        )
    present = cardinality > 0  # false only when no sample is valid anywhere
    tiny = torch.finfo(cardinality.dtype).tiny
    losses = (1 - 2 * intersection / cardinality.clamp(min=tiny)) * present
    if weights is not None:
        losses = losses * weights
    if reduction == "sum":
        losses = losses.sum()
    elif reduction == "mean":
        losses = losses.mean() if weights is None else losses.sum() / weights.sum().clamp(min=tiny)
    if world > 1:  # the same value on every rank, the gradient times the world size for DDP's averaging
        losses = losses.detach() + world * (losses - losses.detach())
    return losses
