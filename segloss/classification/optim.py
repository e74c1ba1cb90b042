"""The optimizers and the step schedule of the classification recipes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn

__all__ = ["OPTIMIZERS", "build_lr_scheduler", "build_optimizer"]

OPTIMIZERS = ("sgd", "adam")


def build_optimizer(
    parameters: Iterable[nn.Parameter],
    name: str = "sgd",
    lr: float = 0.1,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
) -> torch.optim.Optimizer:
    """SGD (with ``momentum``) or Adam (``momentum`` unused); ``weight_decay`` is L2 regularisation."""
    if name == "sgd":
        return torch.optim.SGD(parameters, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(parameters, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; valid names: {', '.join(OPTIMIZERS)}")


def build_lr_scheduler(
    optimizer: torch.optim.Optimizer, milestones: Sequence[int] = (), gamma: float = 0.1
) -> torch.optim.lr_scheduler.MultiStepLR:
    """The learning rate times ``gamma`` at each epoch of ``milestones``; step it once per epoch."""
    milestones = list(milestones)
    if milestones != sorted(set(milestones)) or any(m < 1 for m in milestones):
        raise ValueError(f"milestones must be increasing positive epochs, got {milestones}")
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=gamma)
