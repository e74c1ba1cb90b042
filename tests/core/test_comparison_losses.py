"""The comparison losses (wce, focal, lovasz, ohem, weighted sums) against hand-computed values, their
written-out rules, smp's ``LovaszLoss`` as the oracle, and float64 gradchecks."""

import math

import pytest
import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as TF
from segmentation_models_pytorch.losses import lovasz as smp_lovasz

import segloss
from segloss import comparison as C
from segloss.margins import class_weights
from segloss.registry import loss_hyper_parameter_names, loss_terms


def problem(seed=0, n=2, c=5, h=6, w=7, ignore=True, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, h, w, generator=generator, dtype=dtype)
    target = torch.randint(0, c, (n, h, w), generator=generator)
    if ignore:
        target[0, :2] = 255
    return logits, target


# --- class weights ---------------------------------------------------------------------------------


def test_median_frequency_weights_by_hand():
    # g = n / P = [0.1, 0.5, 0.25]; median 0.25 -> w = [2.5, 0.5, 1]
    weights = class_weights([10, 20, 15], "median_frequency", presence_counts=[100, 40, 60])
    torch.testing.assert_close(weights, torch.tensor([2.5, 0.5, 1.0], dtype=torch.float64))
    # an even number of classes takes numpy's median (the mean of the middle two)
    weights = class_weights([1, 1, 1, 1], presence_counts=[1, 2, 4, 8])
    torch.testing.assert_close(weights, torch.tensor([0.375, 0.75, 1.5, 3.0], dtype=torch.float64))


def test_inverse_and_effective_number_weights_by_hand():
    # 1/n = [1, 0.5, 0.25], sum 1.75, scaled to sum 3
    torch.testing.assert_close(
        class_weights([1, 2, 4], "inverse"),
        torch.tensor([3 / 1.75, 1.5 / 1.75, 0.75 / 1.75], dtype=torch.float64),
    )
    beta = 0.9
    raw = [(1 - beta) / (1 - beta**n) for n in (1, 2, 4)]
    expected = torch.tensor([3 * r / sum(raw) for r in raw], dtype=torch.float64)
    torch.testing.assert_close(class_weights([1, 2, 4], "effective_number", beta=beta), expected)


def test_class_weight_errors_name_the_problem():
    with pytest.raises(ValueError, match="'car' \\(class 1\\)"):
        class_weights([3, 0], "inverse", class_names=["road", "car"])
    with pytest.raises(ValueError, match="need presence_counts"):
        class_weights([3, 4])
    with pytest.raises(ValueError, match="at least the class counts"):
        class_weights([3, 4], presence_counts=[3, 2])
    with pytest.raises(ValueError, match="beta must be in \\(0, 1\\)"):
        class_weights([3, 4], "effective_number", beta=1.0)
    with pytest.raises(ValueError, match="weighting must be one of"):
        class_weights([3, 4], "sqrt")


# --- weighted cross-entropy -------------------------------------------------------------------------


def test_weighted_cross_entropy_by_hand():
    logits = torch.tensor([[0.0, math.log(3.0)], [0.0, 0.0], [1.0, 2.0]])
    target = torch.tensor([1, 0, 255])
    ce = [-math.log(0.75), -math.log(0.5)]
    weights = [2.0, 0.5]
    expected = (0.5 * ce[0] + 2.0 * ce[1]) / (0.5 + 2.0)
    got = C.weighted_cross_entropy(logits, target, weights, ignore_index=255)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    got_sum = C.weighted_cross_entropy(logits, target, weights, ignore_index=255, reduction="sum")
    assert got_sum.item() == pytest.approx(0.5 * ce[0] + 2.0 * ce[1], rel=1e-6)
    none = C.weighted_cross_entropy(logits, target, weights, ignore_index=255, reduction="none")
    torch.testing.assert_close(none, torch.tensor([0.5 * ce[0], 2.0 * ce[1], 0.0]))


def test_weighted_cross_entropy_is_torchs_weighted_mean_and_zero_when_all_ignored():
    logits, target = problem()
    weights = torch.tensor([0.2, 1.0, 3.0, 0.5, 1.5], dtype=torch.float64)
    expected = TF.cross_entropy(logits, target, weight=weights, ignore_index=255)
    torch.testing.assert_close(C.weighted_cross_entropy(logits, target, weights, ignore_index=255), expected)
    all_ignored = torch.full_like(target, 255)
    assert C.weighted_cross_entropy(logits, all_ignored, weights, ignore_index=255).item() == 0.0


# --- focal ------------------------------------------------------------------------------------------


def test_focal_by_hand_and_gamma_zero_is_cross_entropy():
    logits = torch.tensor([[0.0, math.log(3.0)], [0.0, 0.0]])
    target = torch.tensor([1, 0])
    expected = (0.25**2 * -math.log(0.75) + 0.5**2 * -math.log(0.5)) / 2
    assert C.focal_loss(logits, target, 2.0).item() == pytest.approx(expected, rel=1e-6)
    logits, target = problem()
    torch.testing.assert_close(
        C.focal_loss(logits, target, 0.0, ignore_index=255),
        TF.cross_entropy(logits, target, ignore_index=255),
    )
    with pytest.raises(ValueError, match="gamma must be >= 0"):
        C.focal_loss(logits, target, -1.0)


def test_focal_gradient_is_finite_for_gamma_below_one_at_certainty():
    logits = torch.tensor([[0.0, 200.0]], requires_grad=True)
    C.focal_loss(logits, torch.tensor([1]), 0.5).backward()
    assert torch.isfinite(logits.grad).all()


# --- Lovász -----------------------------------------------------------------------------------------


@pytest.fixture
def smp_lovasz_in_float64(monkeypatch):
    """smp's Lovász gradient weights are float32 (``.float()``), which ``torch.dot`` refuses beside float64
    errors; cast them back (they stay float32-accurate: compare to ~1e-7)."""
    original = smp_lovasz._lovasz_grad
    monkeypatch.setattr(smp_lovasz, "_lovasz_grad", lambda sorted_fg: original(sorted_fg).to(sorted_fg.dtype))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lovasz_matches_smp_values_and_gradients(smp_lovasz_in_float64, seed):
    logits, target = problem(seed)
    target[target == 3] = 1  # a class absent from the batch
    logits.requires_grad_(True)
    oracle = smp.losses.LovaszLoss("multiclass", per_image=False, ignore_index=255)(logits, target)
    ours = C.lovasz_softmax(logits, target, ignore_index=255)
    torch.testing.assert_close(ours, oracle, rtol=1e-6, atol=1e-7)
    (expected,) = torch.autograd.grad(oracle, logits)
    (got,) = torch.autograd.grad(ours, logits)
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-7)


def test_lovasz_by_hand_and_reductions():
    # two pixels, both of class 0, p_0 = 0.5 and 0.75 (class 1 absent): errors sorted [0.5, 0.25],
    # Jaccard losses of the prefixes [1/2, 1] -> gradient [0.5, 0.5] -> 0.375
    logits = torch.tensor([[[0.0, 0.0]], [[0.0, -math.log(3.0)]]]).permute(1, 0, 2)  # (1, 2, 2)
    target = torch.tensor([[0, 0]])
    assert C.lovasz_softmax(logits, target).item() == pytest.approx(0.375, rel=1e-6)
    per_class = C.lovasz_softmax(logits, target, reduction="none")
    torch.testing.assert_close(per_class, torch.tensor([0.375, 0.0]))
    assert C.lovasz_softmax(logits, torch.full_like(target, -100)).item() == 0.0


# --- OHEM -------------------------------------------------------------------------------------------


def ohem_reference(logits, target, thresh, min_kept, ignore_index=255):
    """MMSegmentation's OHEMPixelSampler rule, written out with a full sort (min_kept per batch)."""
    prob = logits.softmax(1)
    valid = target != ignore_index
    p = prob.gather(1, torch.where(valid, target, 0).unsqueeze(1)).squeeze(1)
    sorted_p = p[valid].sort().values
    if sorted_p.numel() <= min_kept:
        keep = valid
    else:
        threshold = max(sorted_p[min(min_kept, sorted_p.numel() - 1)].item(), thresh)
        keep = valid & (p < threshold)
    losses = -torch.log(p)[keep]
    return keep, losses.mean() if losses.numel() else torch.zeros(())


@pytest.mark.parametrize(("thresh", "min_kept"), [(0.7, 10), (0.05, 10), (0.7, 0), (0.99, 5), (0.3, 1000)])
def test_ohem_follows_the_selection_rule(thresh, min_kept):
    logits, target = problem(3)
    keep, expected = ohem_reference(logits, target, thresh, min_kept)
    got = C.ohem_cross_entropy(logits, target, thresh, min_kept, ignore_index=255)
    torch.testing.assert_close(got, expected)
    none = C.ohem_cross_entropy(logits, target, thresh, min_kept, ignore_index=255, reduction="none")
    assert torch.equal(none > 0, keep)
    assert keep.sum() >= min(min_kept, int((target != 255).sum()))


def test_ohem_by_hand_and_bad_settings():
    # p_l = [0.5, 0.75, 0.9]; k = min(1, 2) = 1 -> p_(1) = 0.75; t = max(0.6, 0.75): keeps 0.5 only
    logits = torch.log(torch.tensor([[0.5, 0.5], [0.25, 0.75], [0.1, 0.9]]))
    target = torch.tensor([0, 1, 1])
    assert C.ohem_cross_entropy(logits, target, 0.6, 1).item() == pytest.approx(-math.log(0.5), rel=1e-6)
    # thresh above: keeps 0.5 and 0.75
    expected = (-math.log(0.5) - math.log(0.75)) / 2
    assert C.ohem_cross_entropy(logits, target, 0.8, 1).item() == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="thresh must be in"):
        C.ohem_cross_entropy(logits, target, 1.5, 1)
    with pytest.raises(ValueError, match="min_kept must be an int"):
        C.ohem_cross_entropy(logits, target, 0.7, -1)


# --- float64 gradchecks, half precision, sums --------------------------------------------------------

GRADCHECKED = {
    "wce": lambda y, t: C.weighted_cross_entropy(y, t, [0.5, 1.0, 2.0, 1.5, 0.7], ignore_index=255),
    "focal": lambda y, t: C.focal_loss(y, t, 2.0, ignore_index=255),
    "focal_half": lambda y, t: C.focal_loss(y, t, 0.5, ignore_index=255),
    "lovasz": lambda y, t: C.lovasz_softmax(y, t, ignore_index=255),
    "ohem": lambda y, t: C.ohem_cross_entropy(y, t, 0.5, 20, ignore_index=255),
    "ce+dice": lambda y, t: segloss.build_loss("ce+0.5*dice", ignore_index=255)(y, t),
}


@pytest.mark.parametrize("name", GRADCHECKED)
def test_float64_gradcheck(name):
    logits, target = problem(4, h=4, w=5)
    logits.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda y: GRADCHECKED[name](y, target), (logits,))


@pytest.mark.parametrize("name", ["wce", "focal", "lovasz", "ohem"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_computed_in_float32(name, dtype):
    logits, target = problem(5, dtype=torch.float32)
    loss = segloss.build_loss(name, class_counts=[1, 2, 3, 4, 5], presence_counts=[9] * 5, ignore_index=255)
    half = logits.to(dtype)
    got = loss(half, target)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, loss(half.float(), target))


def test_sums_parse_and_equal_their_weighted_terms():
    assert loss_terms("ce+dice") == [(1.0, "ce"), (1.0, "dice")]
    assert loss_terms("hem+ + 0.5*dice") == [(1.0, "hem+"), (0.5, "dice")]
    assert loss_terms("hem++dice") == [(1.0, "hem+"), (1.0, "dice")]
    assert loss_terms("2e-1*ohem+lovasz") == [(0.2, "ohem"), (1.0, "lovasz")]
    for bad in ("ce+", "ce+nope", "+ce", "ce dice"):
        with pytest.raises(ValueError, match="valid names: .*'ce\\+dice'"):
            loss_terms(bad)
    assert loss_hyper_parameter_names("hem+ + focal") == ("M", "margin_on", "gamma")
    counts = [10.0, 20.0, 30.0, 5.0, 8.0]
    logits, target = problem(6)
    loss = segloss.build_loss("hem+ + 0.5*focal", class_counts=counts, ignore_index=255, M=50, gamma=1.0)
    hem = segloss.build_loss("hem+", class_counts=counts, ignore_index=255, M=50)(logits, target)
    focal = C.focal_loss(logits, target, 1.0, ignore_index=255)
    torch.testing.assert_close(loss(logits, target), hem + 0.5 * focal)
    with pytest.raises(TypeError, match="unexpected hyper-parameters \\['tau'\\]"):
        segloss.build_loss("ce+dice", tau=0.1)
    with pytest.raises(ValueError, match="different shapes"):
        segloss.build_loss("ce+dice", reduction="none")(logits, torch.where(target == 255, 0, target))


def test_wce_from_the_registry_uses_median_frequency_of_presence_counts():
    loss = segloss.build_loss("wce", class_counts=[10, 20, 15], presence_counts=[100, 40, 60])
    torch.testing.assert_close(loss.class_weights, torch.tensor([2.5, 0.5, 1.0]))
    assert loss.per_class_values()[0] == "weight"
    with pytest.raises(ValueError, match="need presence_counts"):
        segloss.build_loss("wce", class_counts=[10, 20, 15])
    inverse = segloss.build_loss("wce", class_counts=[1, 2, 4], weighting="inverse")
    assert inverse.class_weights.sum().item() == pytest.approx(3.0)
