"""Margins from class counts and the loss registry."""

import inspect
import math

import pytest
import torch

import segloss
from segloss import comparison
from segloss import functional as F


def test_hem_margin_cifar10_example():
    # docs/losses-and-margins.md: 50 000 CIFAR-10 images -> mu = sqrt(2000 / 50000) = 0.2
    assert segloss.hem_margin([5000] * 10) == pytest.approx(0.2)
    assert segloss.hem_margin([5000] * 10, M=500) == pytest.approx(0.1)


def test_hem_plus_margins_by_hand():
    margins = segloss.hem_plus_margins([100, 400], M=800)
    assert margins.dtype == torch.float64
    assert margins.tolist() == pytest.approx([math.sqrt(800 / 200), math.sqrt(800 / 800)])


def test_hem_plus_with_balanced_counts_equals_hem():
    counts = [300] * 6
    assert segloss.hem_plus_margins(counts).tolist() == pytest.approx([segloss.hem_margin(counts)] * 6)
    y, t = torch.randn(8, 6, 5), torch.randint(0, 6, (8, 5))
    plus = segloss.HEMPlusLoss.from_class_counts(counts)(y, t)
    assert plus.item() == pytest.approx(segloss.HEMLoss.from_class_counts(counts)(y, t).item())


@pytest.mark.parametrize("function", [segloss.hem_margin, segloss.hem_plus_margins])
def test_zero_or_negative_counts_name_the_classes(function):
    with pytest.raises(ValueError, match=r"class 1: 0, class 3: -2"):
        function([5, 0, 3, -2])
    with pytest.raises(ValueError, match=r"'rider' \(class 1\): 0"):
        function([5, 0, 3], class_names=["road", "rider", "car"])
    with pytest.raises(ValueError, match="M must be positive"):
        function([1, 2], M=0)


def test_registry_builds_every_loss_and_matches_functional():
    counts = torch.tensor([10.0, 30.0, 60.0])
    y, t = torch.randn(4, 3, 5, 5, dtype=torch.float64), torch.randint(0, 3, (4, 5, 5))
    expected = {
        "ce": F.cross_entropy(y, t),
        "ln": F.logit_norm_loss(y, t, 0.1),
        "la": F.logit_adjusted_loss(y, t, counts / counts.sum()),
        "dice": F.dice_loss(y, t),
        "mm": F.multi_margin_loss(y, t, 0.5),
        "hem": F.hem_loss(y, t, math.sqrt(20 / 100)),
        "hem+": F.hem_loss(y, t, torch.sqrt(20 / (3 * counts))),
        "wce": comparison.weighted_cross_entropy(y, t, [2.0, 1.0, 1.0]),  # g = [0.1, 0.2, 0.2]
        "focal": comparison.focal_loss(y, t, 1.0),
        "lovasz": comparison.lovasz_softmax(y, t),
        "ohem": comparison.ohem_cross_entropy(y, t, 0.5, 30),
    }
    options = {
        "ln": {"tau": 0.1},
        "mm": {"margin": 0.5},
        "hem": {"M": 20},
        "hem+": {"M": 20},
        "focal": {"gamma": 1.0},
        "ohem": {"thresh": 0.5, "min_kept": 30},
    }
    for name in segloss.LOSS_NAMES:
        loss = segloss.build_loss(
            name, class_counts=counts, presence_counts=[100.0, 150.0, 300.0], **options.get(name, {})
        )
        assert isinstance(loss, torch.nn.Module)
        assert loss(y, t).item() == pytest.approx(expected[name].item()), name


def test_registry_errors():
    with pytest.raises(ValueError, match="unknown loss 'nope'.*ce, ln, la, dice, mm, hem, hem\\+, wce"):
        segloss.build_loss("nope")
    with pytest.raises(ValueError, match="'hem\\+' needs class_counts"):
        segloss.build_loss("hem+")
    with pytest.raises(TypeError, match="'ce' got unexpected hyper-parameters \\['M'\\]"):
        segloss.build_loss("ce", M=2000)
    with pytest.raises(ValueError, match="'car' \\(class 1\\)"):
        segloss.build_loss("la", class_counts=[3, 0], class_names=["road", "car"])
    # counts are accepted and ignored by the losses that do not use them
    assert isinstance(segloss.build_loss("ce", class_counts=[1, 2]), segloss.CrossEntropyLoss)


def test_hyper_parameter_defaults_are_read_from_the_loss_modules(monkeypatch):
    """A config default is written once, in the loss module's signature: the registry reads it (through
    ``from_class_counts`` and base classes) and refuses a second loss whose default of the keyword differs."""
    from segloss import registry
    from segloss.margins import DEFAULT_M

    defaults = {name: parameter.default for name, parameter in registry.HYPER_PARAMETERS.items()}
    assert defaults["gamma"] == inspect.signature(segloss.FocalLoss).parameters["gamma"].default == 2.0
    assert defaults["M"] == DEFAULT_M  # HEMPlusLoss.from_class_counts(counts, M=DEFAULT_M)
    assert defaults["margin_on"] == "target"  # HEMPlusLoss passes it on to HEMLoss.__init__
    monkeypatch.setattr(registry, "LOSSES", dict(registry.LOSSES))
    monkeypatch.setattr(registry, "HYPER_PARAMETERS", dict(registry.HYPER_PARAMETERS))

    class SharperFocal(segloss.FocalLoss):
        def __init__(self, gamma: float = 3.0, **kw):
            super().__init__(gamma=gamma, **kw)

    with pytest.raises(ValueError, match=r"gamma=3.0 by default, but 'focal' has 2.0"):
        registry.register_loss(registry.LossEntry("sharp", SharperFocal, ("gamma",)))

    class NoDefault(segloss.CrossEntropyLoss):
        def __init__(self, tau: float, **kw):
            super().__init__(**kw)

    with pytest.raises(ValueError, match=r"NoDefault has no keyword 'tau' with a default"):
        registry.register_loss(registry.LossEntry("nodefault", NoDefault, ("tau",)))
    assert "sharp" not in registry.LOSSES and "nodefault" not in registry.LOSSES


def test_margins_follow_the_module_to_a_device_and_into_state_dict():
    loss = segloss.HEMPlusLoss.from_class_counts([10, 20, 30], M=100)
    assert "margin" in loss.state_dict()
    # float32 buffers: every device takes them (MPS has no float64); float64 logits still compute in float64
    for name in segloss.LOSS_NAMES:
        assert all(
            b.dtype == torch.float32
            for b in segloss.build_loss(name, class_counts=[1, 2, 3], presence_counts=[4, 4, 4]).buffers()
        )
    assert loss(torch.randn(2, 3, dtype=torch.float64), torch.tensor([0, 2])).dtype == torch.float64
    assert "HEMPlusLoss(margin=" in repr(loss)


def test_count_classes_reads_any_dataset_or_loader_of_image_mask_pairs():
    import numpy as np

    masks = [
        np.array([[0, 0, 1], [255, 2, 2]], dtype=np.uint8),  # arrays, one image at a time
        np.array([[0, 0, 0], [0, 0, 255]], dtype=np.uint8),
    ]
    counts = segloss.count_classes([(None, mask) for mask in masks], num_classes=4)
    assert counts.pixels.tolist() == [7, 1, 2, 0] and counts.images == 2 and counts.ignored == 2
    assert counts.presence_pixels.tolist() == [12, 6, 6, 0]  # the pixels of the images holding each class
    assert counts.pixels_per_image == 6.0
    torch.testing.assert_close(counts.image_equivalents(), torch.tensor([7 / 6, 1 / 6, 2 / 6, 0.0]).double())
    # a DataLoader's batches (tensors, (N, H, W) or (N, 1, H, W)) count the same
    dataset = torch.utils.data.TensorDataset(
        torch.zeros(2, 3, 2, 3), torch.from_numpy(np.stack(masks)).long()
    )
    for batch_size in (1, 2):
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size)
        assert segloss.count_classes(loader, 4).pixels.tolist() == [7, 1, 2, 0]
    channel = [(None, torch.from_numpy(np.stack(masks))[:, None])]
    assert segloss.count_classes(channel, 4).presence_pixels.tolist() == [12, 6, 6, 0]
    with pytest.raises(
        ValueError, match=r"mask value 255 in item 0 is outside \[0, 4\) and is not ignore_index \(-1\)"
    ):
        segloss.count_classes([(None, masks[0])], 4, ignore_index=-1)
    with pytest.raises(TypeError, match="needs data that yields \\(image, mask\\) pairs; item 0 is a dict"):
        segloss.count_classes([{"labels": masks[0]}], 4)
    with pytest.raises(ValueError, match="no \\(image, mask\\) pairs"):
        segloss.count_classes([], 4)
