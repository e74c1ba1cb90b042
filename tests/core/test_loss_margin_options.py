"""Margin placement (``margin_on``) and the batch mean of the margin losses: hand computations, every
backend against the reference, float64 gradients, and the module/registry plumbing."""

import pytest
import torch

import segloss
from segloss import functional as F

from . import reference

# Three samples, 4 classes, per-class margins. Sample 0: true class 0; sample 1: true class 2; sample 2:
# true class 0 with a large lead (no error under either placement).
LOGITS = torch.tensor(
    [[0.6, 0.3, 0.0, -0.1], [0.0, 1.0, 0.0, 0.0], [5.0, 0.0, 0.0, 0.0]], dtype=torch.float64
)
TARGET = torch.tensor([0, 2, 0])
MARGINS = torch.tensor([0.5, 0.2, 0.4, 0.8], dtype=torch.float64)


def test_competitor_margins_by_hand(backend):
    # sample 0: errors (0.3-0.6+0.2, 0-0.6+0.4, -0.1-0.6+0.8) clamped = (0, 0, 0.1); mean 0.025; HEM 0.1
    # sample 1: errors (0-0+0.5, 1-0+0.2, 0-0+0.8) = (0.5, 1.2, 0.8); mean 2.5/4 = 0.625; HEM (1.2+0.8)/2
    hem = F.hem_loss(LOGITS, TARGET, MARGINS, margin_on="competitor", reduction="none")
    assert hem.tolist() == pytest.approx([0.1, 1.0, 0.0])
    mm = F.multi_margin_loss(LOGITS, TARGET, MARGINS, margin_on="competitor", reduction="none")
    assert mm.tolist() == pytest.approx([0.025, 0.625, 0.0])


def test_target_margins_by_hand(backend):
    # sample 0 (margin 0.5 of class 0): errors (0.2, 0, 0); mean 0.05; HEM 0.2
    # sample 1 (margin 0.4 of class 2): errors (0.4, 1.4, 0.4); mean 2.2/4 = 0.55; HEM 1.4 (only 1.4 >= 0.55)
    hem = F.hem_loss(LOGITS, TARGET, MARGINS, margin_on="target", reduction="none")
    assert hem.tolist() == pytest.approx([0.2, 1.4, 0.0])
    mm = F.multi_margin_loss(LOGITS, TARGET, MARGINS, margin_on="target", reduction="none")
    assert mm.tolist() == pytest.approx([0.05, 0.55, 0.0])


@pytest.mark.parametrize(
    "margin_on, hem, mm",
    [  # HEM (the paper): the mean over the two samples with a loss; MM: over the three valid samples
        ("competitor", (0.1 + 1.0) / 2, (0.025 + 0.625) / 3),
        ("target", (0.2 + 1.4) / 2, (0.05 + 0.55) / 3),
    ],
)
def test_batch_mean_by_hand(backend, margin_on, hem, mm):
    target = torch.tensor([0, 2, 0, 255])  # the ignored sample never counts
    logits = torch.cat([LOGITS, torch.zeros(1, 4, dtype=torch.float64)])
    options = {"margin_on": margin_on, "ignore_index": 255}
    assert F.hem_loss(logits, target, MARGINS, **options).item() == pytest.approx(hem)
    assert F.multi_margin_loss(logits, target, MARGINS, **options).item() == pytest.approx(mm)


def test_target_placement_gradient_by_hand(backend):
    # target placement, mean over the 2 samples with a loss (P = 2): sample 0 selects class 1 (K = 1),
    # sample 1 selects class 1 (K = 1); each selected error gets +1/(K P), the true class minus their sum
    y = LOGITS.clone().requires_grad_()
    F.hem_loss(y, TARGET, MARGINS, margin_on="target").backward()
    expected = torch.tensor([[-0.5, 0.5, 0, 0], [0, 0.5, -0.5, 0], [0, 0, 0, 0]], dtype=torch.float64)
    torch.testing.assert_close(y.grad, expected)


# HEM averages over the samples with a loss, MM over the valid samples
@pytest.mark.parametrize("hard", [True, False])
@pytest.mark.parametrize("margin_on", ["competitor", "target"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("shape", [(6, 5), (2, 6, 5, 7), (3, 19, 37)])
def test_every_option_matches_reference(backend, hard, margin_on, reduction, shape):
    y = torch.randn(shape) * 2
    t = torch.randint(0, shape[1], (shape[0], *shape[2:]))
    t[torch.rand(t.shape) < 0.2] = 255
    margins = torch.rand(shape[1]) + 0.2
    y1, y2 = y.clone().requires_grad_(), y.clone().requires_grad_()
    options = {"margin_on": margin_on, "ignore_index": 255, "reduction": reduction}
    loss = F.hem_loss if hard else F.multi_margin_loss
    got = loss(y1, t, margins, **options)
    expected = reference.margin_loss(y2, t, margins, hard, **options)
    weights = torch.rand(t.shape) if reduction == "none" else torch.tensor(1.3)
    (got * weights).sum().backward()
    (expected * weights).sum().backward()
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(y1.grad, y2.grad)


@pytest.mark.parametrize("margin_on", ["competitor", "target"])
def test_gradcheck_float64(backend, margin_on):
    y = torch.randn(2, 5, 4, 3, dtype=torch.float64) * 2
    t = torch.randint(0, 5, (2, 4, 3))
    t[0, 0] = 255
    margins = torch.rand(5, dtype=torch.float64) + 0.2
    loss = segloss.HEMPlusLoss(margins, ignore_index=255, margin_on=margin_on)
    assert torch.autograd.gradcheck(lambda x: loss(x, t), (y.requires_grad_(),), eps=1e-6, atol=1e-5)


def test_scalar_margin_makes_placement_irrelevant(backend):
    y = torch.randn(4, 6, 5)
    t = torch.randint(0, 6, (4, 5))
    competitor = F.hem_loss(y, t, 0.7)
    torch.testing.assert_close(F.hem_loss(y, t, 0.7, margin_on="target"), competitor)


def test_defaults_put_the_margin_on_the_target_class():
    """The placement the segmentation measurements support is the default everywhere; the paper's is
    ``margin_on="competitor"``."""
    y = torch.randn(3, 5, 4, 4)
    t = torch.randint(0, 5, (3, 4, 4))
    margins = torch.rand(5) + 0.5
    explicit = F.hem_loss(y, t, margins, margin_on="target")
    torch.testing.assert_close(F.hem_loss(y, t, margins), explicit)
    torch.testing.assert_close(segloss.HEMPlusLoss(margins)(y, t), explicit)
    counts = [1.0, 2, 3, 4, 5]
    by_name = segloss.build_loss("hem+", class_counts=counts)(y, t)
    on_target = segloss.HEMPlusLoss.from_class_counts(counts, margin_on="target")
    torch.testing.assert_close(by_name, on_target(y, t))
    assert not torch.allclose(F.hem_loss(y, t, margins, margin_on="competitor"), explicit)


def test_build_loss_passes_the_options_through():
    counts = [40.0, 10.0, 5.0]
    loss = segloss.build_loss("hem+", class_counts=counts, margin_on="target")
    assert loss.margin_on == "target" and "margin_on='target'" in repr(loss)


def test_unknown_option_names_the_choices():
    with pytest.raises(ValueError, match="margin_on must be one of .* got 'both'"):
        F.hem_loss(torch.randn(2, 3), torch.tensor([0, 1]), 0.5, margin_on="both")
