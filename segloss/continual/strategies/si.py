"""Synaptic Intelligence (Zenke, Poole and Ganguli, "Continual learning through synaptic intelligence",
ICML 2017).

During an experience every parameter accumulates the path integral ``ω_k = −Σ_steps g_k Δθ_k`` of the
task-loss gradient ``g`` (the gradient of the total loss minus the penalty's own) along its updates: the
loss decrease it is responsible for. At the end of the experience its importance grows by
``Ω_k += ω_k / (Δ_k² + ξ)``, ``Δ_k`` being its total change over the experience and ``ξ`` the damping, and
later experiences add ``c Σ_k Ω_k (θ_k − θ̃_k)²`` with ``θ̃`` the parameters at the end of the last
experience. A negative ``ω_k`` (a parameter whose moves raised the loss, possible with momentum or noisy
gradients) adds no importance: it is clamped at zero so that the penalty stays a sum of non-negative terms.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..benchmarks import Experience
from .base import Strategy
from .quadratic import QuadraticPenalty

__all__ = ["SynapticIntelligence"]


class SynapticIntelligence(Strategy):
    """SI with strength ``si_lambda`` (``c``) and damping ``xi`` (``ξ``); see the module docstring.

    Args:
        si_lambda: ``c`` of ``c Σ Ω (θ − θ̃)²``.
        xi: damping ``ξ`` of ``ω / (Δ² + ξ)``.
    """

    name = "si"

    def __init__(self, si_lambda: float, xi: float):
        self.si_lambda = si_lambda
        self.xi = xi
        self.quadratic = QuadraticPenalty()
        self.start: dict[str, torch.Tensor] = {}
        self.previous: dict[str, torch.Tensor] = {}
        self.path: dict[str, torch.Tensor] = {}

    def before_experience(self, model: nn.Module, experience: Experience) -> None:
        trainable = {name: p.detach() for name, p in model.named_parameters() if p.requires_grad}
        self.start = {name: p.clone() for name, p in trainable.items()}
        self.previous = {name: p.clone() for name, p in trainable.items()}
        self.path = {name: torch.zeros_like(p) for name, p in trainable.items()}

    def penalty(self, model: nn.Module, images: torch.Tensor, logits: torch.Tensor) -> torch.Tensor | None:
        if not self.quadratic:
            return None
        return self.si_lambda * self.quadratic.value(model)

    def after_step(self, model: nn.Module) -> None:
        for name, parameter in model.named_parameters():
            if name not in self.path or parameter.grad is None:
                continue
            gradient = parameter.grad
            if name in self.quadratic.importance:  # the penalty's gradient where the step's was taken
                gradient = gradient - self.si_lambda * self.quadratic.gradient(name, self.previous[name])
            current = parameter.detach()
            self.path[name] -= gradient * (current - self.previous[name])
            self.previous[name].copy_(current)

    def after_experience(self, model: nn.Module, experience: Experience) -> None:
        for name, parameter in model.named_parameters():
            if name not in self.path:
                continue
            current = parameter.detach()
            omega = self.path[name].clamp_min(0) / ((current - self.start[name]).square() + self.xi)
            importance = self.quadratic.importance.get(name)
            self.quadratic.importance[name] = omega if importance is None else importance + omega
            self.quadratic.anchor[name] = current.clone()

    def state_dict(self) -> dict[str, Any]:
        return self.quadratic.state_dict()

    def load_state_dict(self, state: dict[str, Any], model: nn.Module) -> None:
        self.quadratic.load_state_dict(state, model)
