"""Bad input gives a ValueError/TypeError that names the offending value or shape."""

import pytest
import torch

import segloss
from segloss import comparison
from segloss import functional as F

ALL_FUNCTIONS = {
    "ce": lambda y, t, **kw: F.cross_entropy(y, t, **kw),
    "ln": lambda y, t, **kw: F.logit_norm_loss(y, t, **kw),
    "la": lambda y, t, **kw: F.logit_adjusted_loss(y, t, torch.full((y.shape[1],), 0.25), **kw),
    "dice": lambda y, t, **kw: F.dice_loss(y, t, **kw),
    "mm": lambda y, t, **kw: F.multi_margin_loss(y, t, **kw),
    "hem": lambda y, t, **kw: F.hem_loss(y, t, 0.3, **kw),
    "wce": lambda y, t, **kw: comparison.weighted_cross_entropy(y, t, torch.ones(y.shape[1]), **kw),
    "focal": lambda y, t, **kw: comparison.focal_loss(y, t, **kw),
    "lovasz": lambda y, t, **kw: comparison.lovasz_softmax(y, t, **kw),
    "ohem": lambda y, t, **kw: comparison.ohem_cross_entropy(y, t, **kw),
}


@pytest.mark.parametrize("name", ALL_FUNCTIONS)
@pytest.mark.parametrize("bad", [4, -1, 254])
def test_target_out_of_range_names_the_value(backend, name, bad):
    y = torch.randn(2, 4, 3, 3)
    t = torch.randint(0, 4, (2, 3, 3))
    t[1, 2, 0] = bad
    with pytest.raises(ValueError, match=rf"target value {bad} is outside \[0, 4\)"):
        ALL_FUNCTIONS[name](y, t, ignore_index=255)


@pytest.mark.parametrize("name", ALL_FUNCTIONS)
def test_ignore_index_outside_range_is_accepted(backend, name):
    y = torch.randn(2, 4, 3)
    t = torch.tensor([[0, 255, 3], [255, 1, 2]])
    assert torch.isfinite(ALL_FUNCTIONS[name](y, t, ignore_index=255))


@pytest.mark.parametrize("name", ALL_FUNCTIONS)
def test_shape_mismatch_names_both_shapes(name):
    with pytest.raises(ValueError, match=r"target shape \(2, 3, 4\).*logits shape \(2, 4, 3, 3\)"):
        ALL_FUNCTIONS[name](torch.randn(2, 4, 3, 3), torch.zeros(2, 3, 4, dtype=torch.long))


def test_other_bad_arguments():
    y, t = torch.randn(2, 4), torch.tensor([0, 1])
    with pytest.raises(
        ValueError,
        match=r"the logits have 4 classes but the margin has shape \(3,\): .* needs one count per class",
    ):
        F.hem_loss(y, t, torch.ones(3))
    with pytest.raises(ValueError, match=r"class_priors .* shape \(2,\)"):
        F.logit_adjusted_loss(y, t, torch.ones(2))
    with pytest.raises(ValueError, match="class_priors must all be positive"):
        F.logit_adjusted_loss(y, t, torch.tensor([0.5, 0.5, 0.0, 0.0]))
    with pytest.raises(ValueError, match="reduction must be one of"):
        F.hem_loss(y, t, 0.5, reduction="avg")
    with pytest.raises(TypeError, match="integer class indices"):
        F.hem_loss(y, t.float(), 0.5)
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        F.cross_entropy(torch.randn(4), torch.tensor(0))
    with pytest.raises(ValueError, match="tau must be positive"):
        F.logit_norm_loss(y, t, tau=0.0)
    with pytest.raises(ValueError, match=r"per-class margins, got shape \(\)"):
        segloss.HEMPlusLoss(0.5)


def test_unknown_backend_setting(monkeypatch):
    monkeypatch.setenv("SEGLOSS_KERNEL", "gpu")
    with pytest.raises(ValueError, match="SEGLOSS_KERNEL must be one of"):
        F.hem_loss(torch.randn(2, 3), torch.tensor([0, 1]), 0.5)


@pytest.mark.parametrize("name", ["ce", "dice", "wce", "focal", "lovasz", "ohem"])
def test_non_margin_losses_check_targets_without_the_c_kernel(monkeypatch, name):
    """A drop-in cross-entropy never starts a C compiler: its checks are plain torch on the CPU."""
    from segloss._kernels import cpu

    def no_compiler(*args, **kwargs):
        raise AssertionError("the C kernel was used")

    monkeypatch.setattr(cpu, "library", no_compiler)
    monkeypatch.setattr(cpu, "available", no_compiler)
    y, t = torch.randn(2, 4, 3, 3), torch.randint(0, 4, (2, 3, 3))
    assert torch.isfinite(ALL_FUNCTIONS[name](y, t, ignore_index=255))
    t[1, 1, 1] = 9
    with pytest.raises(ValueError, match=r"target value 9 is outside \[0, 4\)"):
        ALL_FUNCTIONS[name](y, t, ignore_index=255)
