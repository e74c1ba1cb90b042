"""The weighted quadratic penalty ``Σ_k Ω_k (θ_k − θ*_k)²`` shared by EWC and Synaptic Intelligence."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["QuadraticPenalty"]


class QuadraticPenalty:
    """``Σ_k Ω_k (θ_k − θ*_k)²`` over a model's named parameters, with importances ``Ω`` and anchors ``θ*``
    (parameters without an importance do not count)."""

    def __init__(self) -> None:
        self.importance: dict[str, torch.Tensor] = {}
        self.anchor: dict[str, torch.Tensor] = {}

    def __bool__(self) -> bool:
        return bool(self.importance)

    def value(self, model: nn.Module) -> torch.Tensor:
        """The penalty at ``model``'s current parameters (differentiable)."""
        terms = [
            (self.importance[name] * (parameter - self.anchor[name]).square()).sum()
            for name, parameter in model.named_parameters()
            if name in self.importance
        ]
        return torch.stack(terms).sum()

    def gradient(self, name: str, value: torch.Tensor) -> torch.Tensor:
        """``∂/∂θ`` of the penalty for parameter ``name`` at ``value``: ``2 Ω (θ − θ*)``."""
        return 2 * self.importance[name] * (value - self.anchor[name])

    def state_dict(self) -> dict[str, Any]:
        """Importances and anchors (CPU copies)."""
        return {
            "importance": {k: v.cpu() for k, v in self.importance.items()},
            "anchor": {k: v.cpu() for k, v in self.anchor.items()},
        }

    def load_state_dict(self, state: dict[str, Any], model: nn.Module) -> None:
        """Restore ``state_dict`` onto the device of ``model``'s parameters."""
        device = next(model.parameters()).device
        self.importance = {k: v.to(device) for k, v in state["importance"].items()}
        self.anchor = {k: v.to(device) for k, v in state["anchor"].items()}
