"""The optimizer, its learning-rate schedule, the fp16 gradient scaler and gradient clipping of every task,
in one object: :class:`TrainingStep` (after timm's ``NativeScaler`` and ``create_scheduler_v2``).

Schedules run per update (``optim.schedule``): ``constant``, ``poly`` (``(1 − t/T)^power``), ``cosine``
(to 0) and ``multistep`` (× ``gamma`` at each epoch of ``milestones``), after an optional linear warm-up
of ``optim.warmup_epochs`` (fractions allowed). Epochs are turned into updates here, so a recipe states
them in epochs whatever the batch size. ``train.clip_grad_norm`` > 0 clips the gradients' global norm
(after unscaling them under fp16).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "poly", "cosine", "multistep")


def build_optimizer(parameters: Iterable[nn.Parameter], optim: Any) -> torch.optim.Optimizer:
    """SGD with ``optim.momentum``, Adam or AdamW (``momentum`` unused) with ``optim.lr`` and
    ``optim.weight_decay`` (L2 for SGD and Adam, decoupled for AdamW)."""
    parameters = list(parameters)
    if optim.name == "sgd":
        return torch.optim.SGD(
            parameters, lr=optim.lr, momentum=optim.momentum, weight_decay=optim.weight_decay
        )
    if optim.name == "adam":
        return torch.optim.Adam(parameters, lr=optim.lr, weight_decay=optim.weight_decay)
    if optim.name == "adamw":
        return torch.optim.AdamW(parameters, lr=optim.lr, weight_decay=optim.weight_decay)
    raise ValueError(f"unknown optimizer {optim.name!r}; valid names: {', '.join(OPTIMIZERS)}")


def lr_factor(optim: Any, steps_per_epoch: int, epochs: int) -> Callable[[int], float]:
    """The factor of ``optim.lr`` at each update (0-based) of a run of ``epochs`` × ``steps_per_epoch``.

    Args:
        optim: the ``optim`` section (``schedule``, ``power``, ``milestones``, ``gamma``,
            ``warmup_epochs``).
        steps_per_epoch: updates per epoch.
        epochs: the run's epochs.

    Returns:
        ``factor(update)``.
    """
    total = max(1, epochs * steps_per_epoch)
    warmup = round(optim.warmup_epochs * steps_per_epoch)
    milestones = [milestone * steps_per_epoch for milestone in optim.milestones]

    def factor(update: int) -> float:
        if update < warmup:
            return (update + 1) / warmup
        progress = min(1.0, (update - warmup) / max(1, total - warmup))
        if optim.schedule == "poly":
            return (1.0 - progress) ** optim.power
        if optim.schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        if optim.schedule == "multistep":
            return optim.gamma ** sum(update >= milestone for milestone in milestones)
        return 1.0

    return factor


class TrainingStep:
    """One update: zero the gradients, backward (scaled under fp16), unscale, clip, optimizer step, scaler
    update, schedule step. It owns the optimizer, the per-update schedule and the scaler, and their state.

    Args:
        optimizer: the optimizer.
        schedule: ``factor(update)`` of the base learning rates (:func:`lr_factor`).
        fp16: scale the loss for float16 autocast (``torch.amp.GradScaler``).
        clip_grad_norm: clip the global gradient norm to this value (0: no clipping).
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        schedule: Callable[[int], float],
        *,
        fp16: bool = False,
        clip_grad_norm: float = 0.0,
    ):
        self.optimizer = optimizer
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        self.scaler = torch.amp.GradScaler("cuda", enabled=fp16)
        self.clip_grad_norm = clip_grad_norm

    @classmethod
    def from_config(
        cls,
        parameters: Iterable[nn.Parameter],
        config: Any,
        steps_per_epoch: int,
        *,
        fp16: bool = False,
    ) -> TrainingStep:
        """The step of ``config.optim`` and ``config.train`` (``epochs``, ``clip_grad_norm``) for the
        ``parameters`` that require gradients and a run of ``steps_per_epoch`` updates per epoch."""
        optimizer = build_optimizer([p for p in parameters if p.requires_grad], config.optim)
        schedule = lr_factor(config.optim, steps_per_epoch, config.train.epochs)
        return cls(optimizer, schedule, fp16=fp16, clip_grad_norm=config.train.clip_grad_norm)

    @property
    def lr(self) -> float:
        """The learning rate of the next update (the first parameter group's)."""
        return self.optimizer.param_groups[0]["lr"]

    def __call__(self, loss: torch.Tensor, after_update: Callable[[], Any] | None = None) -> None:
        """Update the parameters from ``loss``; ``after_update()`` runs after the optimizer step, when the
        gradients are unscaled (continual strategies read them)."""
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.clip_grad_norm > 0:
            self.scaler.unscale_(self.optimizer)
            parameters = [p for group in self.optimizer.param_groups for p in group["params"]]
            nn.utils.clip_grad_norm_(parameters, self.clip_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        if after_update is not None:
            after_update()

    def state_dict(self) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
