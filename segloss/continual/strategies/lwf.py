"""Learning without Forgetting (Li and Hoiem, "Learning without forgetting", ECCV 2016 / TPAMI 2018).

After each experience the model is frozen; on later experiences its softened outputs on the new data are
the targets of a distillation term ``λ_o · KL(softmax(y_old / T) ‖ softmax(y_new / T))`` over the units of
the classes seen so far (Li and Hoiem's modified cross-entropy up to a constant; T = 2 in their paper). In
this single-head class-incremental setting there is no new head to warm up.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..benchmarks import Experience
from .base import Strategy, frozen_copy

__all__ = ["LwF"]


class LwF(Strategy):
    """LwF with distillation weight ``alpha`` (λ_o) and temperature ``temperature`` (T).

    Args:
        alpha: weight of the distillation term.
        temperature: softmax temperature of targets and outputs.
    """

    name = "lwf"

    def __init__(self, alpha: float, temperature: float):
        self.alpha = alpha
        self.temperature = temperature
        self.previous: nn.Module | None = None
        self.old_classes = torch.zeros(0, dtype=torch.long)

    @torch.no_grad()
    def distillation_targets(self, images: torch.Tensor) -> torch.Tensor:
        """``softmax(y_old / T)`` of the frozen previous model over the old classes' units."""
        if self.previous is None:
            raise RuntimeError("LwF has no previous model before the end of the first experience")
        logits = self.previous(images).float()[:, self.old_classes.to(images.device)]
        return F.softmax(logits / self.temperature, dim=1)

    def penalty(self, model: nn.Module, images: torch.Tensor, logits: torch.Tensor) -> torch.Tensor | None:
        if self.previous is None:
            return None
        targets = self.distillation_targets(images)
        outputs = logits.float()[:, self.old_classes.to(logits.device)] / self.temperature
        return self.alpha * F.kl_div(F.log_softmax(outputs, dim=1), targets, reduction="batchmean")

    def after_experience(self, model: nn.Module, experience: Experience) -> None:
        self.previous = frozen_copy(model)
        seen = torch.cat([self.old_classes, torch.as_tensor(experience.classes, dtype=torch.long)])
        self.old_classes = torch.unique(seen)

    def state_dict(self) -> dict[str, Any]:
        return {"old_classes": self.old_classes}

    def load_state_dict(self, state: dict[str, Any], model: nn.Module) -> None:
        self.old_classes = state["old_classes"]
        self.previous = frozen_copy(model) if len(self.old_classes) else None
