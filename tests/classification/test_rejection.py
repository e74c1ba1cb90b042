"""Rejection evaluation: unknown-class AUROC, AutoAttack with DAR, corruptions, tables and histograms."""

import numpy as np
import pytest
import torch
import torchattacks
from torch import nn

from segloss.classification import rejection
from segloss.classification.plots import plot_confidence_histograms
from segloss.classification.rejection import (
    adversarial_rejection,
    attack_budget,
    attack_budgets,
    corruption_accuracy,
    format_attack_table,
    format_unknown_table,
    predict_unknown_logits,
    unknown_rejection,
)


def test_unknown_rejection_msp_and_mls():
    known = torch.tensor([[4.0, 0.0], [0.0, 3.0], [2.0, 0.0]])  # MSP 0.982, 0.953, 0.881; MLS 4, 3, 2
    unknown = {
        "near": torch.tensor([[2.5, 2.0], [1.0, 1.5]]),  # MSP 0.622, 0.622; MLS 2.5, 1.5
        "loud": torch.tensor([[10.0, 9.0]]),  # MSP 0.731; MLS 10
    }
    result = unknown_rejection(known, unknown)
    assert result.per_set["near"] == {"msp": 1.0, "mls": pytest.approx(5 / 6)}  # (2 + 2 + 1) / 6 pairs
    assert result.per_set["loud"] == {"msp": 1.0, "mls": 0.0}
    assert result.mean == {"msp": 1.0, "mls": pytest.approx((5 / 6 + 0) / 2)}
    table = format_unknown_table(result)
    assert "near" in table and "83.33%" in table and "41.67%" in table
    with pytest.raises(ValueError, match="unknown scores \\['energy'\\]"):
        unknown_rejection(known, unknown, scores=("energy",))


def test_predict_unknown_logits_on_datasets():
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    sets = {"a": torch.utils.data.TensorDataset(torch.rand(5, 1, 2, 2)), "b": torch.rand(2, 1, 2, 2)}
    logits = predict_unknown_logits(model, sets, "cpu", batch_size=2, progress=False)
    assert logits["a"].shape == (5, 3) and logits["b"].shape == (2, 3)
    torch.testing.assert_close(logits["b"], model(sets["b"]))


def test_attack_budgets_follow_spec():
    assert attack_budget("mnist", "Linf") == 0.3 and attack_budget("digits", "L2") == 2.0
    assert attack_budget("cifar10", "Linf") == 8 / 255 and attack_budget("cifar100", "L2") == 0.5
    with pytest.raises(ValueError, match="unknown attack norm 'L1'"):
        attack_budget("mnist", "L1")
    assert attack_budgets("fashionmnist", ["Linf", "L2"]) == [0.3, 2.0]
    assert attack_budgets("cifar10", ["L2"], [0.25]) == [0.25]
    with pytest.raises(
        ValueError, match=r"attack_eps needs one budget per norm of \['Linf', 'L2'\], got \[0.1\]"
    ):
        attack_budgets("mnist", ["Linf", "L2"], [0.1])


@pytest.fixture
def tiny_model_and_samples():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10)).eval()
    images = torch.rand(4, 1, 8, 8)
    with torch.no_grad():
        labels = model(images).argmax(1)  # every clean sample is correct
    return model, images, labels


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize(("norm", "eps"), [("Linf", 0.3), ("L2", 2.0)])
def test_autoattack_smoke(tiny_model_and_samples, monkeypatch, norm, eps):
    model, images, labels = tiny_model_and_samples
    calls = []

    class RecordingAutoAttack(torchattacks.AutoAttack):
        def __init__(self, *args, **kwargs):
            calls.append(kwargs)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(torchattacks, "AutoAttack", RecordingAutoAttack)
    result = adversarial_rejection(
        model, images, labels, norm=norm, eps=eps, num_classes=10, device="cpu", batch_size=3, progress=False
    )
    assert calls == [dict(norm=norm, eps=eps, version="standard", n_classes=10, seed=0)]
    assert (result.norm, result.eps, result.num_samples) == (norm, eps, 4)
    assert result.clean_accuracy == 1.0
    assert result.robust_accuracy == 0.0  # a large budget breaks a random tiny model everywhere
    # every adversarial label is wrong: DAR is the fraction rejected. A reference set that is correct and
    # extremely confident rejects all of them; one with hardly any confidence accepts all of them.
    confident = torch.tensor([1000.0] + [0.0] * 9).repeat(20, 1)  # MSP 1, MLS 1000
    timid = torch.tensor([-999.999] + [-1000.0] * 9).repeat(20, 1)  # MSP 0.10009, MLS -1000
    reference_labels = torch.zeros(20, dtype=torch.long)
    for reference_logits, expected in ((confident, 1.0), (timid, 0.0)):
        result = adversarial_rejection(
            model,
            images,
            labels,
            norm=norm,
            eps=eps,
            num_classes=10,
            device="cpu",
            reference_logits=reference_logits,
            reference_labels=reference_labels,
            progress=False,
        )
        assert result.dar == {"msp": expected, "mls": expected}


@pytest.mark.usefixtures("one_thread")
def test_autoattack_with_zero_budget_changes_nothing(tiny_model_and_samples):
    model, images, labels = tiny_model_and_samples
    labels = labels.clone()
    labels[0] = (labels[0] + 1) % 10  # one clean sample wrong
    result = adversarial_rejection(
        model, images[:2], labels[:2], norm="Linf", eps=0.0, num_classes=10, device="cpu", progress=False
    )
    assert (result.clean_accuracy, result.robust_accuracy) == (0.5, 0.5)
    # threshold from the one correct clean sample; the unchanged adversarial samples: the correct one is
    # accepted, the wrong one (sample 0) is accepted or rejected by its own confidence
    with torch.no_grad():
        scores = rejection.SCORES["msp"](model(images[:2]))
    assert result.dar["msp"] == (1.0 if scores[0] < scores[1] else 0.5)
    table = format_attack_table([result])
    assert "Linf" in table and "50.00%" in table


def test_attack_input_errors(tiny_model_and_samples):
    model, images, labels = tiny_model_and_samples
    common = dict(norm="Linf", eps=0.1, num_classes=10, device="cpu")
    with pytest.raises(ValueError, match=r"images in \[0, 1\]"):
        adversarial_rejection(model, images * 2, labels, **common)
    with pytest.raises(ValueError, match="labels"):
        adversarial_rejection(model, images, labels[:2], **common)
    with pytest.raises(ValueError, match="unknown attack norm 'Linfinity'"):
        adversarial_rejection(model, images, labels, **{**common, "norm": "Linfinity"})
    with pytest.raises(ValueError, match="both reference_logits and reference_labels"):
        adversarial_rejection(model, images, labels, reference_logits=torch.zeros(4, 10), **common)


class Brightness(nn.Module):
    """Class 0 for bright images (mean > 0.5), class 1 otherwise."""

    def forward(self, x):
        mean = x.mean((1, 2, 3))
        return torch.stack([mean, 1 - mean], 1)


def test_corruption_accuracy_on_cifar10c_layout(tmp_path):
    labels = np.array([0, 0, 1, 1])
    np.save(tmp_path / "labels.npy", labels)  # N labels for 5·N images
    severities = np.arange(5)[:, None] > np.arange(4)[None, :]  # severity k: images i < k are bright
    fog = np.where(severities.reshape(-1, 1, 1, 1), 255, 0) * np.ones((1, 4, 4, 3))
    np.save(tmp_path / "fog.npy", fog.astype(np.uint8))
    np.save(tmp_path / "noise.npy", np.zeros((20, 4, 4, 3), np.uint8))
    result = corruption_accuracy(
        Brightness(), tmp_path, "cpu", image_shape=(3, 4, 4), batch_size=3, progress=False
    )
    assert result.per_corruption == {"fog": [0.5, 0.75, 1.0, 0.75, 0.5], "noise": [0.5] * 5}
    assert result.mean_accuracy == pytest.approx(0.6)
    np.save(tmp_path / "labels.npy", np.tile(labels, 5))  # 5·N labels work too
    assert corruption_accuracy(Brightness(), tmp_path, "cpu", progress=False).mean_accuracy == pytest.approx(
        0.6
    )


def test_corruption_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="labels.npy not found.*CIFAR-10-C-style"):
        corruption_accuracy(Brightness(), tmp_path, "cpu")
    np.save(tmp_path / "labels.npy", np.zeros(4, np.int64))
    with pytest.raises(FileNotFoundError, match="no corruption files"):
        corruption_accuracy(Brightness(), tmp_path, "cpu")
    np.save(tmp_path / "blur.npy", np.zeros((7, 4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match=r"blur.npy has shape \(7, 4, 4, 3\)"):
        corruption_accuracy(Brightness(), tmp_path, "cpu", progress=False)
    np.save(tmp_path / "blur.npy", np.zeros((20, 4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="the model takes \\(3, 32, 32\\)"):
        corruption_accuracy(Brightness(), tmp_path, "cpu", image_shape=(3, 32, 32), progress=False)


def test_confidence_histograms_png(tmp_path):
    generator = torch.Generator().manual_seed(0)
    scores = {
        loss: (torch.rand(50, generator=generator) * 0.5 + 0.5, torch.rand(40, generator=generator))
        for loss in ("ce", "hem", "hem+", "ln", "la")
    }
    path = plot_confidence_histograms(scores, tmp_path / "plots" / "msp.png", unknown_label="blobs")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    width, height = Image.open(path).size
    assert width > height  # 2 rows of up to 4 panels
    with pytest.raises(ValueError, match="at least one"):
        plot_confidence_histograms({}, tmp_path / "empty.png")
