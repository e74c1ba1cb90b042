"""The full evaluation of a trained classifier: test accuracy, unknown-class rejection, AutoAttack with DAR
and corruption accuracy, as one report."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from .data import ImageData, stack_images
from .loops import predict_logits
from .rejection import (
    ATTACK_NORMS,
    AttackResult,
    CorruptionResult,
    UnknownRejection,
    adversarial_rejection,
    attack_budgets,
    corruption_accuracy,
    format_attack_table,
    format_unknown_table,
    predict_unknown_logits,
    unknown_rejection,
)

__all__ = ["ClassificationReport", "evaluate_classifier"]


@dataclass
class ClassificationReport:
    """Everything ``evaluate_classifier`` measured; ``test_logits`` and ``unknown_logits`` are kept for
    plots and left out of ``to_dict``."""

    accuracy: float
    num_test: int
    unknown: UnknownRejection | None = None
    attacks: list[AttackResult] = field(default_factory=list)
    corruptions: CorruptionResult | None = None
    test_logits: torch.Tensor | None = field(default=None, repr=False)
    unknown_logits: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The measurements as JSON-ready values (fractions in [0, 1])."""
        return {
            "accuracy": self.accuracy,
            "num_test": self.num_test,
            "unknown": dataclasses.asdict(self.unknown) if self.unknown else None,
            "attacks": [dataclasses.asdict(attack) for attack in self.attacks],
            "corruptions": dataclasses.asdict(self.corruptions) if self.corruptions else None,
        }

    def format(self) -> str:
        """Readable tables of the report."""
        parts = [f"test accuracy: {100 * self.accuracy:.2f}% ({self.num_test} images)"]
        if self.unknown is not None:
            parts.append(format_unknown_table(self.unknown))
        if self.attacks:
            parts.append(format_attack_table(self.attacks))
        if self.corruptions is not None:
            parts.append(f"corruption accuracy: {100 * self.corruptions.mean_accuracy:.2f}% (mean)")
        return "\n\n".join(parts)


def evaluate_classifier(
    model: nn.Module,
    data: ImageData,
    device: torch.device | str,
    *,
    unknown_sets: Mapping[str, Dataset] | None = None,
    attack_samples: int = 0,
    attack_norms: Sequence[str] = ATTACK_NORMS,
    attack_eps: Sequence[float] | None = None,
    attack_batch_size: int = 100,
    accept_rate: float = 0.95,
    corruptions_root: str | os.PathLike | None = None,
    batch_size: int = 256,
    dtype: torch.dtype | None = None,
    progress: bool = True,
) -> ClassificationReport:
    """Accuracy on ``data.test``; AUROC against each of ``unknown_sets``; AutoAttack on the first
    ``attack_samples`` test images for each norm (ε from ``attack_eps`` or the paper's budgets,
    docs/image-level.md) with DAR thresholds from the whole test set; accuracy on a CIFAR-10-C-style
    ``corruptions_root``."""
    test_logits, test_targets = predict_logits(
        model, data.test, device, batch_size=batch_size, dtype=dtype, desc="test", progress=progress
    )
    report = ClassificationReport(
        accuracy=(test_logits.argmax(1) == test_targets).double().mean().item(),
        num_test=len(test_targets),
        test_logits=test_logits,
    )
    if unknown_sets:
        report.unknown_logits = predict_unknown_logits(
            model, unknown_sets, device, batch_size=batch_size, progress=progress
        )
        report.unknown = unknown_rejection(test_logits, report.unknown_logits)
    if attack_samples > 0:
        budgets = attack_budgets(data.name, attack_norms, attack_eps)
        images, labels = stack_images(data.test)
        images, labels = images[:attack_samples], labels[:attack_samples]
        for norm, eps in zip(attack_norms, budgets, strict=True):
            report.attacks.append(
                adversarial_rejection(
                    model,
                    images,
                    labels,
                    norm=norm,
                    eps=eps,
                    num_classes=data.num_classes,
                    device=device,
                    reference_logits=test_logits,
                    reference_labels=test_targets,
                    batch_size=attack_batch_size,
                    accept_rate=accept_rate,
                    progress=progress,
                )
            )
    if corruptions_root is not None:
        report.corruptions = corruption_accuracy(
            model,
            corruptions_root,
            device,
            image_shape=data.image_shape,
            batch_size=batch_size,
            progress=progress,
        )
    return report
