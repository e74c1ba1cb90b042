"""Loss values against the worked values of docs/losses-and-margins.md and hand computations."""

import math

import pytest
import torch

import segloss
from segloss import functional as F

from . import reference

WORKED = torch.tensor([[0.6, 0.3, 0.0, -0.1], [0.0, 1.0, 0.0, 0.0]], dtype=torch.float64)
TRUE_FIRST = torch.tensor([0, 0])


@pytest.mark.parametrize(
    "loss, expected",
    [
        (lambda y, t: F.cross_entropy(y, t, reduction="none"), [1.02, 1.74]),
        (lambda y, t: F.logit_norm_loss(y, t, 0.04, reduction="none"), [0.00, 25.0]),
        (lambda y, t: F.multi_margin_loss(y, t, 0.5, reduction="none"), [0.05, 0.625]),
        (lambda y, t: F.hem_loss(y, t, 0.5, reduction="none"), [0.20, 1.50]),
    ],
    ids=["ce", "ln", "mm", "hem"],
)
def test_spec_worked_values(backend, loss, expected):
    assert loss(WORKED, TRUE_FIRST).tolist() == pytest.approx(expected, abs=0.005)


def test_hem_worked_example_by_hand(backend):
    # y = [0, 1, 0, 0], true class 0, margin 0.5: errors 1.5, 0.5, 0.5, mean over 4 classes 0.625,
    # only 1.5 is at or above it. First sample: errors 0.2, 0, 0 (clamped); mean 0.05; selected 0.2.
    losses = F.hem_loss(WORKED, TRUE_FIRST, 0.5, reduction="none")
    assert losses.tolist() == pytest.approx([0.2, 1.5])
    assert F.hem_loss(WORKED, TRUE_FIRST, 0.5).item() == pytest.approx((0.2 + 1.5) / 2)
    assert F.hem_loss(WORKED, TRUE_FIRST, 0.5, reduction="sum").item() == pytest.approx(1.7)


def test_hem_mean_is_over_above_zero_samples_only(backend):
    # second sample is correct by more than the margin: zero loss, excluded from the mean
    y = torch.tensor([[0.0, 1.0, 0.0], [5.0, 0.0, 0.0], [0.0, 0.0, 0.2]], dtype=torch.float64)
    t = torch.tensor([0, 0, 2])
    # sample 0: errors (1.5, 0.5), mean 2/3 -> only 1.5; sample 2: errors (0.3, 0.3), mean 0.2 -> 0.3
    assert F.hem_loss(y, t, 0.5, reduction="none").tolist() == pytest.approx([1.5, 0.0, 0.3])
    assert F.hem_loss(y, t, 0.5).item() == pytest.approx((1.5 + 0.3) / 2)
    # MM averages over every valid sample: (2/3 + 0 + 0.2) / 3
    assert F.multi_margin_loss(y, t, 0.5).item() == pytest.approx((2 / 3 + 0 + 0.2) / 3)


def test_per_class_margins_index_the_competing_class(backend):
    y = torch.zeros(1, 3, dtype=torch.float64)
    margins = torch.tensor([0.3, 0.25, 0.9], dtype=torch.float64)
    # true class 0: e = (0, 0.25, 0.9); mean 1.15 / 3; selected 0.9 only
    competitor = {"margin_on": "competitor"}
    assert F.hem_loss(y, torch.tensor([0]), margins, **competitor).item() == pytest.approx(0.9)
    # true class 2: e = (0.3, 0.25, 0); mean 0.55 / 3 -> selected 0.3 and 0.25
    assert F.hem_loss(y, torch.tensor([2]), margins, **competitor).item() == pytest.approx(0.275)
    assert F.multi_margin_loss(y, torch.tensor([2]), margins, **competitor).item() == pytest.approx(0.55 / 3)


def test_logit_adjusted_by_hand():
    y = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    priors = torch.tensor([0.25, 0.75], dtype=torch.float64)
    adjusted = [1 + math.log(0.25), 2 + math.log(0.75)]
    expected = -adjusted[0] + math.log(sum(math.exp(a) for a in adjusted))
    assert F.logit_adjusted_loss(y, torch.tensor([0]), priors).item() == pytest.approx(expected)


def test_logit_adjusted_with_uniform_priors_equals_ce():
    y = torch.randn(3, 5, 4, 4, dtype=torch.float64)
    t = torch.randint(0, 5, (3, 4, 4))
    t[0, 0] = 255
    la = F.logit_adjusted_loss(y, t, torch.full((5,), 0.2), ignore_index=255)
    assert la.item() == pytest.approx(F.cross_entropy(y, t, ignore_index=255).item())


def test_dice_by_hand():
    # two samples, two classes, logits chosen so that softmax is exactly (0.5, 0.5)
    y = torch.zeros(2, 2, dtype=torch.float64)
    t = torch.tensor([0, 0])
    # class 0: 1 - 2 * (0.5 + 0.5) / (2 + 1) = 1/3; class 1: absent, 1 - 0 / 1 = 1
    assert F.dice_loss(y, t, reduction="none").tolist() == pytest.approx([1 / 3, 1.0])
    assert F.dice_loss(y, t).item() == pytest.approx(2 / 3)
    assert F.dice_loss(y, t, reduction="sum").item() == pytest.approx(4 / 3)


@pytest.mark.parametrize("name", segloss.LOSS_NAMES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_all_ignored_gives_exact_zero_and_zero_gradients(backend, name, reduction):
    y = torch.randn(2, 4, 3, 3, requires_grad=True)
    t = torch.full((2, 3, 3), 255)
    loss = segloss.build_loss(
        name, class_counts=[1, 2, 3, 4], presence_counts=[10] * 4, ignore_index=255, reduction=reduction
    )
    out = loss(y, t)
    out.sum().backward()
    assert torch.all(out == 0)
    assert torch.all(y.grad == 0)


@pytest.mark.parametrize("hard", [True, False])
def test_every_sample_correct_gives_exact_zero(backend, hard):
    y = torch.eye(4, dtype=torch.float64) * 10
    y.requires_grad_()
    t = torch.arange(4)
    loss = F.hem_loss(y, t, 0.5) if hard else F.multi_margin_loss(y, t, 0.5)
    loss.backward()
    assert loss.item() == 0 and torch.all(y.grad == 0)


@pytest.mark.parametrize("hard", [True, False])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_margin_losses_match_reference(backend, hard, reduction, dtype):
    y = torch.randn(3, 6, 7, 5, dtype=dtype)
    t = torch.randint(0, 6, (3, 7, 5))
    t[torch.rand(t.shape) < 0.2] = 255
    margins = torch.rand(6, dtype=dtype) + 0.1
    function = F.hem_loss if hard else F.multi_margin_loss
    got = function(y, t, margins, ignore_index=255, reduction=reduction)
    expected = reference.margin_loss(y, t, margins, hard, 255, reduction)
    torch.testing.assert_close(got, expected)


def test_ce_ln_match_row_reference():
    y = torch.randn(2, 5, 6, dtype=torch.float64)
    t = torch.randint(0, 5, (2, 6))
    t[0, :2] = -100
    for reduction in ["mean", "sum", "none"]:
        expected = reference.cross_entropy_rows(y, t, reduction=reduction)
        torch.testing.assert_close(F.cross_entropy(y, t, reduction=reduction), expected)
        normed = y / (0.04 * (y.norm(dim=1, keepdim=True) + 1e-7))
        expected = reference.cross_entropy_rows(normed, t, reduction=reduction)
        torch.testing.assert_close(F.logit_norm_loss(y, t, reduction=reduction), expected)


def test_dice_matches_reference():
    y = torch.randn(2, 4, 5, 5, dtype=torch.float64)
    t = torch.randint(0, 3, (2, 5, 5))  # class 3 absent
    t[1, 0] = 7
    for reduction in ["mean", "sum", "none"]:
        torch.testing.assert_close(F.dice_loss(y, t, ignore_index=7, reduction=reduction),
                                   reference.dice(y, t, 7, reduction))  # fmt: skip


def test_mm_equals_torch_multi_margin_loss(backend):
    # torch's multi_margin_loss (p=1) is segloss's MM for one margin on (N, C) inputs
    y = torch.randn(16, 7, dtype=torch.float64)
    t = torch.randint(0, 7, (16,))
    expected = torch.nn.functional.multi_margin_loss(y, t, margin=0.7)
    assert F.multi_margin_loss(y, t, 0.7).item() == pytest.approx(expected.item())


@pytest.mark.parametrize("name", segloss.LOSS_NAMES)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_nan_logits_give_a_nan_loss_unless_ignored(backend, name, reduction):
    """A diverged model must not look like a perfect one: NaN propagates, as in cross-entropy."""
    loss = segloss.build_loss(
        name, class_counts=[1, 2, 3, 4], presence_counts=[10] * 4, ignore_index=255, reduction=reduction
    )
    y = torch.randn(2, 4, 3, 3)
    t = torch.randint(0, 4, (2, 3, 3))
    for position in [(0, 2, 1, 1), (1, 0, 0, 2)]:  # a competing logit, then the true-class logit
        nan = y.clone()
        nan[position] = float("nan")
        t[position[0], position[2], position[3]] = 0
        assert torch.isnan(loss(nan, t)), position
        ignored = t.clone()
        ignored[position[0], position[2], position[3]] = 255
        assert torch.isfinite(loss(nan, ignored)), position
