"""smp models by name: the paper's encoders build and train a step; pretrained weights never hang."""

import socket
import urllib.error
import urllib.request

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
    attempts = []

    def no_network(*args, **kwargs):
        attempts.append(args)
        raise OSError("no network in this test")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    offline_setting = constants.HF_HUB_OFFLINE
    with pytest.raises(models.WeightsUnavailableError, match=r"(?s)not cached .*model.encoder_weights=null"):
        models.build_model("FPN", "resnet18", 3, encoder_weights="imagenet")
    assert attempts == []  # the cache only: huggingface_hub alone retries the network for about 30 s
    assert offline_setting == constants.HF_HUB_OFFLINE  # restored


@pytest.mark.parametrize(
    "answer, reachable",
    [
        (None, True),
        (urllib.error.HTTPError("https://huggingface.co", 503, "unavailable", {}, None), True),
        (TimeoutError("timed out"), False),
        (urllib.error.URLError("no route"), False),
    ],
)
def test_hub_probe_asks_once_with_its_timeout(monkeypatch, answer, reachable):
    """Any answer of the hub (an HTTP error too) means reachable; a timeout or no route means offline."""
    calls = []

    def urlopen(request, timeout):
        calls.append((request.get_method(), timeout))
        if answer is not None:
            raise answer

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    assert models.hub_reachable(timeout=1.5) is reachable
    assert calls == [("HEAD", 1.5)]
