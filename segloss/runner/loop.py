"""The training loop of one epoch, shared by every task: batches to the device, forward under autocast,
the loss, one :class:`~segloss.runner.optim.TrainingStep`. The loss is summed on the device and read every
``log_every`` updates (and at the end), so a GPU never waits for the host between them. A continual
strategy joins through :class:`StepHooks` (its forward, its penalty added to the loss, its hook after the
update)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import torch
import torch.distributed as dist
from torch import nn

from .distributed import autocast, distributed_initialized
from .optim import TrainingStep
from .progress import progress_bar


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


class StepHooks(Protocol):
    """What a continual strategy adds to every update (``segloss.continual.strategies.Strategy``)."""

    def forward(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        """The logits of ``images``."""

    def penalty(self, model: nn.Module, images: torch.Tensor, logits: torch.Tensor) -> torch.Tensor | None:
        """A term added to the loss, or ``None``."""

    def after_step(self, model: nn.Module) -> None:
        """Called after each optimizer step (the gradients are unscaled)."""


def train_one_epoch(
    model: nn.Module,
    loss_fn: Callable[..., torch.Tensor],
    step: TrainingStep,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device,
    *,
    desc: str,
    dtype: torch.dtype | None = None,
    channels_last: bool = False,
    progress: bool = True,
    log_every: int = 50,
    on_log: Callable[[int, float, float], Any] | None = None,
    hooks: StepHooks | None = None,
) -> dict[str, float]:
    """One pass over ``loader``.

    Args:
        model: the network (DDP-wrapped under ``torchrun``).
        loss_fn: ``loss_fn(logits, target)``, computed outside autocast.
        step: the update (optimizer, schedule, scaler, clipping).
        loader: ``(image, target)`` batches.
        device: where to train.
        desc: the epoch in words (``epoch 3``), for the progress bar and messages.
        dtype: the autocast dtype, or ``None``.
        channels_last: move (4-D) images to channels-last memory.
        progress: show a progress bar (on a terminal).
        log_every: read the summed loss every that many updates.
        on_log: ``on_log(update, mean loss since the last read, lr)`` at every read (update counted from 0
            in the epoch; the loss is the mean over ranks).
        hooks: a continual strategy's forward, penalty and after-step hook.

    Returns:
        The epoch's mean loss (over all updates and ranks), images/s (all ranks), seconds, the last lr and
        the number of updates (``steps``); with ``hooks``, ``loss`` is the task loss and ``penalty`` the
        mean penalty.

    Raises:
        NonFiniteLossError: the loss was NaN or infinite in the updates since the last read (on any rank);
            the model has taken those updates, the last checkpoint has not.
    """
    model.train()
    world_size = dist.get_world_size() if distributed_initialized() else 1
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    total = torch.zeros((), dtype=torch.float64, device=device)
    penalties = torch.zeros((), dtype=torch.float64, device=device)
    read_total, read_steps, steps, images, lr = 0.0, 0, 0, 0, step.lr
    start = time.perf_counter()
    bar = progress_bar(loader, progress=progress, desc=desc, unit="step", leave=False)

    def read() -> None:
        """The loss summed since the last read, over all ranks: the one host synchronisation."""
        nonlocal read_total, read_steps
        summed = total.clone()
        if world_size > 1:
            dist.all_reduce(summed)
            summed /= world_size
        value = summed.item()
        mean = (value - read_total) / max(steps - read_steps, 1)
        if not math.isfinite(value):
            where = f"step {steps}" if steps == read_steps + 1 else f"steps {read_steps + 1}–{steps}"
            raise NonFiniteLossError(f"the loss is {mean} at {desc}, {where}")
        if on_log is not None:
            on_log(steps - 1, mean, lr)
        bar.set_postfix(loss=f"{mean:.4f}", img_s=f"{images / (time.perf_counter() - start):.1f}")
        read_total, read_steps = value, steps

    for image, target in bar:
        image = image.to(device, non_blocking=True)
        if image.dim() == 4:
            image = image.contiguous(memory_format=memory_format)
        target = target.to(device, non_blocking=True).long()
        with autocast(device, dtype):
            logits = model(image) if hooks is None else hooks.forward(model, image)
            penalty = None if hooks is None else hooks.penalty(model, image, logits)
        loss = loss_fn(logits, target)  # outside autocast: segloss computes half-precision logits in float32
        lr = step.lr  # the rate of this update (the schedule moves on in the step)
        objective = loss if penalty is None else loss + penalty
        total += objective.detach()
        if penalty is not None:
            penalties += penalty.detach()
        step(objective, after_update=None if hooks is None else lambda: hooks.after_step(model))
        steps += 1
        images += image.shape[0] * world_size
        if steps % log_every == 0:
            read()
    if steps > read_steps:
        read()
    seconds = time.perf_counter() - start
    record = {
        "loss": read_total / max(steps, 1),
        "images_per_s": images / seconds,
        "seconds": seconds,
        "lr": lr,
        "steps": steps,
    }
    if hooks is not None:  # the task loss and the penalty apart (one more read, once an epoch)
        penalty_mean = penalties.item() / max(steps, 1)
        record.update(loss=record["loss"] - penalty_mean, penalty=penalty_mean)
    return record
