"""Confusion matrix, IoU / accuracy with the NaN rules of docs/outputs.md, JSON, full-resolution inference."""

import math

import numpy as np
import pytest
import torch
from torch import nn
from torchmetrics.classification import MulticlassConfusionMatrix, MulticlassJaccardIndex

from segloss.segmentation.evaluation import predict
from segloss.segmentation.iou import SegmentationScores, confusion_matrix


def test_confusion_matrix_by_hand():
    target = torch.tensor([[0, 0, 1, 255], [2, 1, 1, 0]])
    prediction = torch.tensor([[0, 1, 1, 2], [2, 2, 1, 0]])
    expected = torch.tensor(
        [
            [2, 1, 0],  # class 0: pixels (0,0), (0,1), (1,3)
            [0, 2, 1],  # class 1: (0,2), (1,1), (1,2)
            [0, 0, 1],  # class 2: (1,0); the ignored pixel predicted 2 does not count
        ]
    )
    assert torch.equal(confusion_matrix(prediction, target, 3), expected)


def test_scores_by_hand_with_nan_rules():
    # rows: ground truth, columns: prediction; class 3 absent, never predicted; class 2 absent, predicted
    confusion = np.array(
        [
            [6, 2, 0, 0],
            [1, 3, 2, 0],
            [0, 0, 0, 0],
            [0, 0, 0, 0],
        ]
    )
    scores = SegmentationScores.from_confusion(confusion, ["a", "b", "c", "d"])
    assert scores.iou[0] == pytest.approx(6 / (8 + 7 - 6))
    assert scores.iou[1] == pytest.approx(3 / (6 + 5 - 3))
    assert scores.iou[2] == 0.0  # predicted but absent: a false positive, counted
    assert math.isnan(scores.iou[3])  # no ground truth and no prediction: excluded
    assert scores.accuracy.tolist()[:2] == pytest.approx([6 / 8, 3 / 6])
    assert math.isnan(scores.accuracy[2]) and math.isnan(scores.accuracy[3])
    assert scores.miou == pytest.approx((6 / 9 + 3 / 8 + 0.0) / 3)
    assert scores.pixel_accuracy == pytest.approx(9 / 14)
    assert scores.to_json() == {
        "miou": pytest.approx((6 / 9 + 3 / 8) / 3),
        "pixel_accuracy": pytest.approx(9 / 14),
        "per_class": [
            {"class": "a", "iou": pytest.approx(6 / 9), "accuracy": pytest.approx(0.75)},
            {"class": "b", "iou": pytest.approx(3 / 8), "accuracy": pytest.approx(0.5)},
            {"class": "c", "iou": 0.0, "accuracy": None},
            {"class": "d", "iou": None, "accuracy": None},
        ],
    }
    table = scores.format_table("title")
    assert "a        66.67    75.00" in table
    assert "d            —        —" in table
    assert "mIoU     34.72    64.29" in table


def test_no_valid_pixels_gives_nulls():
    scores = SegmentationScores.from_confusion(np.zeros((2, 2)), ["a", "b"])
    assert scores.to_json() == {
        "miou": None,
        "pixel_accuracy": None,
        "per_class": [
            {"class": "a", "iou": None, "accuracy": None},
            {"class": "b", "iou": None, "accuracy": None},
        ],
    }


def test_matches_torchmetrics_on_random_maps():
    generator = torch.Generator().manual_seed(3)
    classes = 6
    target = torch.randint(0, classes, (4, 33, 47), generator=generator)
    target[target == 5] = 4  # class 5 never in the ground truth ...
    target[:, :5] = 255
    prediction = torch.randint(0, classes - 1, (4, 33, 47), generator=generator)  # ... nor predicted
    ours = confusion_matrix(prediction, target, classes)
    reference = MulticlassConfusionMatrix(classes, ignore_index=255)(prediction, target)
    assert torch.equal(ours, reference)
    scores = SegmentationScores.from_confusion(ours, [str(i) for i in range(classes)])
    per_class = MulticlassJaccardIndex(classes, average="none", ignore_index=255)(prediction, target)
    assert scores.iou[:5] == pytest.approx(per_class[:5].numpy().astype(np.float64), abs=1e-6)
    assert math.isnan(scores.iou[5])  # torchmetrics reports 0 here; docs/outputs.md excludes the class
    assert scores.miou == pytest.approx(per_class[:5].mean().item(), abs=1e-6)


def test_confusion_matrix_errors():
    with pytest.raises(ValueError, match=r"target value 7 is outside \[0, 3\)"):
        confusion_matrix(torch.zeros(2, 2, dtype=torch.long), torch.tensor([[0, 7], [1, 255]]), 3)
    with pytest.raises(ValueError, match=r"prediction shape \(2, 2\) differs from target shape \(2, 3\)"):
        confusion_matrix(torch.zeros(2, 2), torch.zeros(2, 3), 3)


class _PositionModel(nn.Module):
    """Needs sides divisible by 32 (like FPN); its logits copy the input's first channels."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[-2] % 32 == 0 and x.shape[-1] % 32 == 0
        return x[:, :2] * 2


def test_predict_pads_to_multiple_of_32_and_crops_back():
    image = torch.randn(1, 3, 45, 70)
    logits = predict(_PositionModel(), image)
    assert logits.shape == (1, 2, 45, 70)
    assert torch.equal(logits, image[:, :2] * 2)
