"""smp models by name: the paper's encoders build and train a step; pretrained weights never hang."""

import time

import pytest
import torch

import segloss
from segloss.runner.loop import train_one_epoch
from segloss.runner.optim import TrainingStep
from segloss.segmentation import models


@pytest.mark.parametrize("encoder", models.PAPER_ENCODERS)
def test_paper_encoders_build_and_train_a_step(encoder):
    torch.manual_seed(0)
    model = models.build_model("FPN", encoder, num_classes=5, encoder_weights=None)
    image = torch.randn(2, 3, 64, 64)
    mask = torch.randint(0, 5, (2, 64, 64))
    mask[:, :8] = 255
    loss_fn = segloss.build_loss("hem+", class_counts=[50, 20, 10, 5, 1], ignore_index=255)
    step = TrainingStep(torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9), lambda update: 1.0)
    before = [p.detach().clone() for p in model.parameters()]
    stats = train_one_epoch(
        model, loss_fn, step, [(image, mask)], torch.device("cpu"), desc="epoch 1", progress=False
    )
    assert stats["loss"] > 0 and stats["images_per_s"] > 0
    changed = sum(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert changed > len(before) // 2
    model.eval()
    with torch.no_grad():
        assert model(image).shape == (2, 5, 64, 64)


def test_other_architectures_by_name():
    model = models.build_model("Unet", "tu-mobilenetv3_small_100", num_classes=3)
    assert type(model).__name__ == "Unet"


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown model.arch 'FNP'; smp architectures: .*FPN"):
        models.build_model("FNP", "resnet34", 3)
    with pytest.raises(ValueError, match=r"unknown model.encoder 'resnet35'.*'tu-NAME'"):
        models.build_model("FPN", "resnet35", 3)


def test_weights_offline_fail_fast_with_advice(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))  # nothing cached
    monkeypatch.setattr(models, "hub_reachable", lambda timeout=models.HUB_PROBE_TIMEOUT_S: False)
    offline_setting = constants.HF_HUB_OFFLINE
    start = time.perf_counter()
    with pytest.raises(models.WeightsUnavailableError, match=r"(?s)not cached .*model.encoder_weights=null"):
        models.build_model("FPN", "resnet18", 3, encoder_weights="imagenet")
    assert time.perf_counter() - start < 10  # huggingface_hub alone retries for ~30 s
    assert offline_setting == constants.HF_HUB_OFFLINE  # restored


def test_hub_probe_never_hangs():
    """Offline (as here) the probe answers False within its timeout instead of blocking the run."""
    start = time.perf_counter()
    reachable = models.hub_reachable(timeout=1.0)
    assert isinstance(reachable, bool)
    assert time.perf_counter() - start < 5  # a bound against hanging, not a speed goal
