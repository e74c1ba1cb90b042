"""Global batch reductions under ``torch.distributed`` for ``sync=True`` (docs/losses-and-margins.md,
"Distributed training")."""

from __future__ import annotations

import torch
import torch.distributed as dist


def world_size(sync: bool) -> int:
    """The number of ranks a synced reduction spans: 1 unless ``sync`` and a process group is running."""
    if sync and dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def reduce_losses(
    losses: torch.Tensor, count: torch.Tensor | int, reduction: str, sync: bool, floor: float = 1.0
) -> torch.Tensor:
    """``losses`` itself (``none``), their sum, or their sum ÷ ``count`` (both over all ranks when ``sync``;
    the sum times the world size, for DDP's gradient averaging). ``count`` is floored at ``floor``: an
    all-ignored batch gives 0, not NaN."""
    if reduction == "none":
        return losses
    total = losses.sum() * world_size(sync)
    if reduction == "sum":
        return total
    count = all_reduce_sum(torch.as_tensor(count, device=total.device), sync)
    return total / count.clamp(min=floor).to(total.dtype)


def all_reduce_sum(tensor: torch.Tensor, sync: bool) -> torch.Tensor:
    """Sum of ``tensor`` over all ranks when synced (no gradient); ``tensor`` itself otherwise."""
    if world_size(sync) == 1:
        return tensor
    total = tensor.detach().clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total
