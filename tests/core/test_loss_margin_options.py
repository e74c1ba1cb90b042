"""Margin placement (``margin_on``) and batch normalisation (``mean_over``) of the margin losses: hand
computations, every backend against the reference, float64 gradients, and the module/registry plumbing."""

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
    hem = F.hem_loss(LOGITS, TARGET, MARGINS, reduction="none")
    assert hem.tolist() == pytest.approx([0.1, 1.0, 0.0])
    mm = F.multi_margin_loss(LOGITS, TARGET, MARGINS, reduction="none")
    assert mm.tolist() == pytest.approx([0.025, 0.625, 0.0])


def test_target_margins_by_hand(backend):
    # sample 0 (margin 0.5 of class 0): errors (0.2, 0, 0); mean 0.05; HEM 0.2
    # sample 1 (margin 0.4 of class 2): errors (0.4, 1.4, 0.4); mean 2.2/4 = 0.55; HEM 1.4 (only 1.4 >= 0.55)
    hem = F.hem_loss(LOGITS, TARGET, MARGINS, margin_on="target", reduction="none")
    assert hem.tolist() == pytest.approx([0.2, 1.4, 0.0])
    mm = F.multi_margin_loss(LOGITS, TARGET, MARGINS, margin_on="target", reduction="none")
    assert mm.tolist() == pytest.approx([0.05, 0.55, 0.0])


@pytest.mark.parametrize(
    "margin_on, mean_over, expected",
    [
        ("competitor", "nonzero", (0.1 + 1.0) / 2),  # the paper: two samples have a loss
        ("competitor", "valid", (0.1 + 1.0) / 3),  # every valid sample counts
        ("target", "nonzero", (0.2 + 1.4) / 2),
        ("target", "valid", (0.2 + 1.4) / 3),
    ],
)
def test_batch_mean_by_hand(backend, margin_on, mean_over, expected):
    target = torch.tensor([0, 2, 0, 255])  # an ignored sample counts under neither normalisation
    logits = torch.cat([LOGITS, torch.zeros(1, 4, dtype=torch.float64)])
    value = F.hem_loss(logits, target, MARGINS, margin_on=margin_on, mean_over=mean_over, ignore_index=255)
    assert value.item() == pytest.approx(expected)


def test_target_placement_gradient_by_hand(backend):
    # target placement, mean over the 2 samples with a loss (P = 2): sample 0 selects class 1 (K = 1),
    # sample 1 selects class 1 (K = 1); each selected error gets +1/(K P), the true class minus their sum
    y = LOGITS.clone().requires_grad_()
    F.hem_loss(y, TARGET, MARGINS, margin_on="target").backward()
    expected = torch.tensor([[-0.5, 0.5, 0, 0], [0, 0.5, -0.5, 0], [0, 0, 0, 0]], dtype=torch.float64)
    torch.testing.assert_close(y.grad, expected)


# HEM with either normalisation; MM always averages over the valid samples
@pytest.mark.parametrize("hard, mean_over", [(True, "nonzero"), (True, "valid"), (False, "valid")])
@pytest.mark.parametrize("margin_on", ["competitor", "target"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("shape", [(6, 5), (2, 6, 5, 7), (3, 19, 37)])
def test_every_option_matches_reference(backend, hard, margin_on, mean_over, reduction, shape):
    y = torch.randn(shape) * 2
    t = torch.randint(0, shape[1], (shape[0], *shape[2:]))
    t[torch.rand(t.shape) < 0.2] = 255
    margins = torch.rand(shape[1]) + 0.2
    y1, y2 = y.clone().requires_grad_(), y.clone().requires_grad_()
    options = {"margin_on": margin_on, "ignore_index": 255, "reduction": reduction}
    if hard:
        got = F.hem_loss(y1, t, margins, mean_over=mean_over, **options)
    else:
        got = F.multi_margin_loss(y1, t, margins, **options)
    expected = reference.margin_loss(y2, t, margins, hard, mean_over=mean_over, **options)
    weights = torch.rand(t.shape) if reduction == "none" else torch.tensor(1.3)
    (got * weights).sum().backward()
    (expected * weights).sum().backward()
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(y1.grad, y2.grad)


@pytest.mark.parametrize("margin_on", ["competitor", "target"])
@pytest.mark.parametrize("mean_over", ["nonzero", "valid"])
def test_gradcheck_float64(backend, margin_on, mean_over):
    y = torch.randn(2, 5, 4, 3, dtype=torch.float64) * 2
    t = torch.randint(0, 5, (2, 4, 3))
    t[0, 0] = 255
    margins = torch.rand(5, dtype=torch.float64) + 0.2
    loss = segloss.HEMPlusLoss(margins, ignore_index=255, margin_on=margin_on, mean_over=mean_over)
    assert torch.autograd.gradcheck(lambda x: loss(x, t), (y.requires_grad_(),), eps=1e-6, atol=1e-5)


def test_scalar_margin_makes_placement_irrelevant(backend):
    y = torch.randn(4, 6, 5)
    t = torch.randint(0, 6, (4, 5))
    competitor = F.hem_loss(y, t, 0.7)
    torch.testing.assert_close(F.hem_loss(y, t, 0.7, margin_on="target"), competitor)


def test_defaults_are_the_papers_formulation():
    y = torch.randn(3, 5, 4, 4)
    t = torch.randint(0, 5, (3, 4, 4))
    margins = torch.rand(5) + 0.5
    explicit = F.hem_loss(y, t, margins, margin_on="competitor", mean_over="nonzero")
    torch.testing.assert_close(F.hem_loss(y, t, margins), explicit)
    torch.testing.assert_close(segloss.HEMPlusLoss(margins)(y, t), explicit)


def test_build_loss_passes_the_options_through():
    counts = [40.0, 10.0, 5.0]
    loss = segloss.build_loss("hem+", class_counts=counts, margin_on="target", mean_over="valid")
    assert (loss.margin_on, loss.mean_over) == ("target", "valid")
    assert "margin_on='target'" in repr(loss) and "mean_over='valid'" in repr(loss)
    assert segloss.build_loss("hem", class_counts=counts, mean_over="valid").mean_over == "valid"


@pytest.mark.parametrize("keyword, value", [("margin_on", "both"), ("mean_over", "all")])
def test_unknown_option_names_the_choices(keyword, value):
    with pytest.raises(ValueError, match=f"{keyword} must be one of .* got '{value}'"):
        F.hem_loss(torch.randn(2, 3), torch.tensor([0, 1]), 0.5, **{keyword: value})
