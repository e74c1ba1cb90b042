"""Global batch reductions under ``torch.distributed`` for ``sync=True`` (docs/losses.md, "Distributed
training")."""

from __future__ import annotations

import torch
import torch.distributed as dist


def world_size(sync: bool) -> int:
    """The number of ranks a synced reduction spans: 1 unless ``sync`` and a process group is running."""
    if sync and dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def all_reduce_sum(tensor: torch.Tensor, sync: bool) -> torch.Tensor:
    """Sum of ``tensor`` over all ranks when synced (no gradient); ``tensor`` itself otherwise."""
    if world_size(sync) == 1:
        return tensor
    total = tensor.detach().clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total
