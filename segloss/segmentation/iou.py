"""Segmentation scores from a confusion matrix (docs/outputs.md): per-class IoU and accuracy, mIoU, pixel
accuracy; ``SegmentationResults`` adds the pixel-level unknown rejection."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from .unknown_pixels import PixelRejection


def confusion_matrix(
    prediction: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int = 255
) -> torch.Tensor:
    """``(C, C)`` int64 counts of (ground truth row, predicted column) over pixels not ``ignore_index``."""
    if prediction.shape != target.shape:
        raise ValueError(
            f"prediction shape {tuple(prediction.shape)} differs from target shape {tuple(target.shape)}"
        )
    valid = target != ignore_index
    truth, predicted = target[valid].long(), prediction[valid].long()
    if truth.numel() and (truth.min() < 0 or truth.max() >= num_classes):
        bad = truth[(truth < 0) | (truth >= num_classes)][0].item()
        raise ValueError(
            f"target value {bad} is outside [0, {num_classes}) and not ignore_index {ignore_index}"
        )
    return torch.bincount(truth * num_classes + predicted, minlength=num_classes**2).reshape(
        num_classes, num_classes
    )


@dataclass(frozen=True)
class SegmentationScores:
    """Scores of one split. ``iou`` and ``accuracy`` are per class (NaN where docs/outputs.md says so);
    ``miou`` is the mean IoU over classes with a value, ``pixel_accuracy`` the share of valid pixels
    predicted correctly. All are fractions."""

    classes: tuple[str, ...]
    iou: np.ndarray
    accuracy: np.ndarray
    miou: float
    pixel_accuracy: float

    @classmethod
    def from_confusion(
        cls, confusion: torch.Tensor | np.ndarray, classes: Sequence[str]
    ) -> SegmentationScores:
        """Scores of a ``(C, C)`` confusion matrix (rows: ground truth)."""
        confusion = np.asarray(confusion.cpu() if isinstance(confusion, torch.Tensor) else confusion)
        confusion = confusion.astype(np.float64)
        if confusion.shape != (len(classes), len(classes)):
            raise ValueError(f"confusion matrix of shape {confusion.shape} for {len(classes)} classes")
        true_positives = np.diag(confusion)
        ground_truth, predicted = confusion.sum(axis=1), confusion.sum(axis=0)
        union = ground_truth + predicted - true_positives
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = np.where(union > 0, true_positives / union, np.nan)
            accuracy = np.where(ground_truth > 0, true_positives / ground_truth, np.nan)
        total = ground_truth.sum()
        miou = float(np.nanmean(iou)) if not np.isnan(iou).all() else math.nan
        pixel_accuracy = float(true_positives.sum() / total) if total > 0 else math.nan
        return cls(tuple(classes), iou, accuracy, miou, pixel_accuracy)

    def to_json(self) -> dict[str, Any]:
        """The JSON object of docs/outputs.md (``null`` for NaN)."""

        def number(value: float) -> float | None:
            return None if math.isnan(value) else float(value)

        return {
            "miou": number(self.miou),
            "pixel_accuracy": number(self.pixel_accuracy),
            "per_class": [
                {"class": name, "iou": number(iou), "accuracy": number(accuracy)}
                for name, iou, accuracy in zip(self.classes, self.iou, self.accuracy, strict=True)
            ],
        }

    def format_table(self, title: str = "") -> str:
        """A per-class table of IoU % and pixel accuracy % followed by mIoU and pixel accuracy."""

        def percent(value: float) -> str:
            return "—" if math.isnan(value) else f"{100 * value:.2f}"

        width = max(len("class"), len("mIoU"), *(len(name) for name in self.classes))
        lines = [title] if title else []
        lines.append(f"{'class':<{width}}  {'IoU %':>7}  {'acc %':>7}")
        lines.append("-" * (width + 18))
        for name, iou, accuracy in zip(self.classes, self.iou, self.accuracy, strict=True):
            lines.append(f"{name:<{width}}  {percent(iou):>7}  {percent(accuracy):>7}")
        lines.append("-" * (width + 18))
        lines.append(f"{'mIoU':<{width}}  {percent(self.miou):>7}  {percent(self.pixel_accuracy):>7}")
        return "\n".join(lines)


@dataclass(frozen=True)
class SegmentationResults(SegmentationScores):
    """``SegmentationScores`` and, when it was measured, the pixel-level unknown rejection (under its own
    JSON key, after the scores' keys; docs/outputs.md)."""

    pixel_rejection: PixelRejection | None = None

    def to_json(self) -> dict[str, Any]:
        data = super().to_json()
        if self.pixel_rejection is not None:
            data["pixel_rejection"] = self.pixel_rejection.to_json()
        return data

    def format_table(self, title: str = "") -> str:
        table = super().format_table(title)
        return table if self.pixel_rejection is None else f"{table}\n\n{self.pixel_rejection.format_table()}"
