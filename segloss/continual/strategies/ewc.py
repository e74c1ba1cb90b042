"""Elastic Weight Consolidation (Kirkpatrick et al., "Overcoming catastrophic forgetting in neural
networks", PNAS 2017).

After each experience the diagonal of the (empirical) Fisher information of the model's softmax
``F_k = E_x[(∂ log p(y|x) / ∂θ_k)²]`` is estimated from per-sample gradients on the experience's training
data, with the true labels, whatever the task loss (Avalanche instead squares minibatch gradients of the
task loss). Training on later experiences adds ``λ/2 Σ_t Σ_k F_{t,k} (θ_k − θ*_{t,k})²`` with one term per
past experience (Kirkpatrick's sum of penalties). The sum is kept in the equivalent constant-memory form
``λ/2 Σ_k A_k (θ_k − m_k)²`` with ``A = Σ_t F_t`` and the Fisher-weighted mean anchor ``m = Σ_t F_t θ*_t / A``
(it differs from the sum by a constant, so the gradients are the same).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap
from torch.utils.data import DataLoader, Dataset

from ..benchmarks import Experience
from .base import Strategy
from .quadratic import QuadraticPenalty

__all__ = ["EWC", "diagonal_fisher"]


def diagonal_fisher(model: nn.Module, dataset: Dataset, batch_size: int = 64) -> dict[str, torch.Tensor]:
    """The empirical diagonal Fisher information of ``model``'s softmax over ``dataset``.

    Args:
        model: the classifier, evaluated in evaluation mode (batch-norm statistics fixed).
        dataset: ``(image, target)`` pairs.
        batch_size: samples whose per-sample gradients are computed at once.

    Returns:
        For every parameter that requires gradients, the mean over samples of the squared gradient of
        ``log softmax(model(x))[y]``.
    """
    device = next(model.parameters()).device
    parameters = {name: p.detach() for name, p in model.named_parameters() if p.requires_grad}
    buffers = dict(model.named_buffers())

    def sample_nll(
        params: dict[str, torch.Tensor], image: torch.Tensor, target: torch.Tensor
    ) -> torch.Tensor:
        logits = functional_call(model, (params, buffers), (image.unsqueeze(0),))
        return F.cross_entropy(logits, target.unsqueeze(0))

    per_sample_grad = vmap(grad(sample_nll), in_dims=(None, 0, 0))
    was_training = model.training
    model.eval()
    fisher = {name: torch.zeros_like(p) for name, p in parameters.items()}
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, generator=torch.Generator())
    for images, targets in loader:
        gradients = per_sample_grad(parameters, images.to(device), targets.to(device).long())
        for name, value in gradients.items():
            fisher[name] += value.square().sum(0)
    model.train(was_training)
    return {name: value / len(dataset) for name, value in fisher.items()}


class EWC(Strategy):
    """EWC with penalty weight ``ewc_lambda`` (λ); see the module docstring.

    Args:
        ewc_lambda: λ of ``λ/2 Σ F (θ − θ*)²``.
        fisher_batch_size: samples per per-sample-gradient batch when estimating the Fisher.
    """

    name = "ewc"

    def __init__(self, ewc_lambda: float, fisher_batch_size: int = 64):
        self.ewc_lambda = ewc_lambda
        self.fisher_batch_size = fisher_batch_size
        self.quadratic = QuadraticPenalty()

    def penalty(self, model: nn.Module, images: torch.Tensor, logits: torch.Tensor) -> torch.Tensor | None:
        if not self.quadratic:
            return None
        return 0.5 * self.ewc_lambda * self.quadratic.value(model)

    def after_experience(self, model: nn.Module, experience: Experience) -> None:
        fisher = diagonal_fisher(model, experience.train, self.fisher_batch_size)
        quadratic = self.quadratic
        for name, parameter in model.named_parameters():
            if name not in fisher:
                continue
            theta = parameter.detach().clone()
            previous = quadratic.importance.get(name)
            if previous is None:
                quadratic.importance[name], quadratic.anchor[name] = fisher[name], theta
                continue
            total = previous + fisher[name]
            weighted = previous * quadratic.anchor[name] + fisher[name] * theta
            quadratic.anchor[name] = torch.where(total > 0, weighted / total.clamp_min(1e-30), theta)
            quadratic.importance[name] = total

    def state_dict(self) -> dict[str, Any]:
        return self.quadratic.state_dict()

    def load_state_dict(self, state: dict[str, Any], model: nn.Module) -> None:
        self.quadratic.load_state_dict(state, model)
