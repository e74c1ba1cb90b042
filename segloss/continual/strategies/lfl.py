"""Less-Forgetful Learning (Jung, Ju, Jung and Kim, "Less-forgetting learning in deep neural networks",
arXiv:1607.00122, 2016).

The network is a feature extractor followed by the classifier head (the last linear layer). After the
first experience the head is frozen (Jung et al.'s first property: the decision boundaries stay where they
are) and the new extractor is initialised from the old one and trained with the task loss plus
``λ_e · 1/(2N) Σ_n ‖f_new(x_n) − f_old(x_n)‖²`` (their second property, Caffe's Euclidean loss): the
features of the new data must stay close to those of the frozen previous model. No learning-rate rule is
applied beyond the run's optimizer settings.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..benchmarks import Experience
from .base import Strategy, frozen_copy, head_inputs, last_linear

__all__ = ["LessForgetful"]


class LessForgetful(Strategy):
    """LFL with feature-distance weight ``lambda_e`` (λ_e); see the module docstring.

    Args:
        lambda_e: weight of the Euclidean feature loss.
    """

    name = "lfl"

    def __init__(self, lambda_e: float):
        self.lambda_e = lambda_e
        self.previous: nn.Module | None = None
        self.features: torch.Tensor | None = None

    def before_experience(self, model: nn.Module, experience: Experience) -> None:
        if self.previous is not None:
            last_linear(model).requires_grad_(False)

    def forward(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        with head_inputs(model) as features:
            logits = model(images)
        self.features = features[-1]
        return logits

    def feature_penalty(self, features: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """``λ_e/(2N) Σ_n ‖features_n − f_old(images_n)‖²`` against the frozen previous extractor."""
        if self.previous is None:
            raise RuntimeError("LFL has no previous model before the end of the first experience")
        with torch.no_grad(), head_inputs(self.previous) as old:
            self.previous(images)
        difference = features.float() - old[-1].float()
        return 0.5 * self.lambda_e * difference.square().sum(1).mean()

    def penalty(self, model: nn.Module, images: torch.Tensor, logits: torch.Tensor) -> torch.Tensor | None:
        if self.previous is None:
            return None
        return self.feature_penalty(self.features, images)

    def after_experience(self, model: nn.Module, experience: Experience) -> None:
        self.previous = frozen_copy(model)

    def state_dict(self) -> dict[str, Any]:
        return {"has_previous": self.previous is not None}

    def load_state_dict(self, state: dict[str, Any], model: nn.Module) -> None:
        self.previous = frozen_copy(model) if state["has_previous"] else None
