"""The strategy interface of the continual training loop, naive fine-tuning, and helpers shared by the
strategies that keep the previous model."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import nn

from ..benchmarks import Experience

__all__ = ["Batches", "Strategy", "frozen_copy", "head_inputs", "last_linear"]

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


class Strategy:
    """Naive fine-tuning (the lower bound of every benchmark), and the hooks other strategies override.

    The loop calls, per experience: ``before_experience``; per batch of ``training_batches``: ``forward``,
    the task loss plus ``penalty``, the optimizer step, ``after_step``; then ``after_experience``. A
    checkpoint after each experience stores ``state_dict``; a resumed run restores it with
    ``load_state_dict`` after loading the model's weights.
    """

    name = "naive"

    def before_experience(self, model: nn.Module, experience: Experience) -> None:
        """Prepare training on ``experience`` (before the optimizer is built over the parameters that
        require gradients)."""

    def training_batches(self, batches: torch.utils.data.DataLoader, seed: int) -> Batches:
        """The batches to train on in one epoch, given the experience's shuffled ``batches``; ``seed``
        seeds any extra sampling."""
        return batches

    def forward(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        """The training logits of ``images``."""
        return model(images)

    def penalty(self, model: nn.Module, images: torch.Tensor, logits: torch.Tensor) -> torch.Tensor | None:
        """The term added to the task loss for this batch (``None``: nothing)."""
        return None

    def after_step(self, model: nn.Module) -> None:
        """Called after every optimizer step, with the step's gradients still in ``.grad``."""

    def after_experience(self, model: nn.Module, experience: Experience) -> None:
        """Consolidate what was learnt on ``experience``."""

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint after an experience must hold to continue the strategy."""
        return {}

    def load_state_dict(self, state: dict[str, Any], model: nn.Module) -> None:
        """Restore ``state_dict``; ``model`` holds the checkpoint's weights (the model after the last
        finished experience)."""


def frozen_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in evaluation mode with every parameter frozen (no gradients)."""
    return copy.deepcopy(model).eval().requires_grad_(False)


def last_linear(model: nn.Module) -> nn.Linear:
    """The classifier head: the last ``nn.Linear`` among ``model``'s modules."""
    linears = [module for module in model.modules() if isinstance(module, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no nn.Linear classifier head")
    return linears[-1]


@contextlib.contextmanager
def head_inputs(model: nn.Module) -> Iterator[list[torch.Tensor]]:
    """Collect the features that enter the classifier head (``last_linear``) during forwards inside the
    block: a list that gets one ``(N, D)`` tensor per forward."""
    captured: list[torch.Tensor] = []
    handle = last_linear(model).register_forward_pre_hook(lambda module, args: captured.append(args[0]))
    try:
        yield captured
    finally:
        handle.remove()
