"""A classification run assembled from a recipe config, and its full evaluation report."""

import json

import pytest
import torch

import segloss
from segloss.classification import recipe
from segloss.classification.loops import predict_logits
from segloss.runner.config import load_config
from segloss.runner.loop import train_one_epoch
from segloss.runner.optim import TrainingStep

from ..helpers import CONFIGS

DIGITS_CONFIG = CONFIGS / "cls_digits.yaml"


@pytest.mark.usefixtures("one_thread")
def test_recipe_run_and_report():
    overrides = ["train.epochs=3", "train.progress=false", "eval.unknown_samples=50", "eval.attack_samples=4"]
    config = load_config(DIGITS_CONFIG, overrides)
    torch.manual_seed(0)
    data = recipe.data_from_config(config)
    model = recipe.model_from_config(config, data)
    loader = recipe.train_loader_from_config(config, data)
    step = TrainingStep.from_config(model.parameters(), config, len(loader))
    assert isinstance(step.optimizer, torch.optim.Adam) and step.optimizer.defaults["lr"] == 1e-3
    loss = recipe.loss_from_config(config, data)
    for epoch in range(3):
        train_one_epoch(model, loss, step, loader, torch.device("cpu"), desc=f"epoch {epoch}", progress=False)

    report = recipe.report_from_config(config, model, data, torch.device("cpu"))
    logits, targets = predict_logits(model, data.test, "cpu", progress=False)
    assert report.accuracy == (logits.argmax(1) == targets).double().mean().item()
    assert report.num_test == 450 and report.test_logits.shape == (450, 10)
    assert list(report.unknown.per_set) == ["blobs", "uniform", "permuted", "phase"]
    assert {name: logits.shape for name, logits in report.unknown_logits.items()} == {
        name: (50, 10) for name in report.unknown.per_set
    }
    assert [(a.norm, a.eps, a.num_samples) for a in report.attacks] == [("Linf", 0.3, 4), ("L2", 2.0, 4)]
    saved = json.loads(json.dumps(report.to_dict()))
    assert saved["unknown"]["mean"] == report.unknown.mean and saved["corruptions"] is None
    assert saved["attacks"][1]["dar"] == report.attacks[1].dar
    text = report.format()
    assert text.startswith(f"test accuracy: {100 * report.accuracy:.2f}% (450 images)")
    assert "AUROC MLS" in text and "DAR MSP" in text


def test_hem_plus_margins_come_from_the_long_tailed_counts():
    config = load_config(DIGITS_CONFIG, ["loss.name=hem+", "loss.M=500", "data.imbalance_ratio=10"])
    data = recipe.data_from_config(config)
    loss = recipe.loss_from_config(config, data)
    assert data.class_counts[-1] == 13  # ⌊135 · 10^-1⌋
    expected = segloss.hem_plus_margins(data.class_counts, M=500)
    torch.testing.assert_close(loss.margin.double(), expected)
    assert loss.margin.argmax() == 9  # the rarest class gets the largest margin
