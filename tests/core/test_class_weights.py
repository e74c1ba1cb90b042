"""Per-class weights (``weight=``) for every loss: ``F.cross_entropy(weight=...)``'s semantics for the
mean-over-samples losses, hand-computed values and gradients for weighted HEM/HEM+, per-class terms for
Dice and Lovász, clear errors, and ``loss.class_weighting`` in configs."""

import pytest
import torch
import torch.nn.functional as F

import segloss
from segloss import comparison, functional
from segloss.margins import class_weights

IGNORE = 255
COUNTS = [50.0, 20.0, 10.0, 5.0, 2.0]
WEIGHT = torch.tensor([0.5, 2.0, 1.0, 0.0, 3.0], dtype=torch.float64)
UNWEIGHTED_NAMES = [name for name in segloss.LOSS_NAMES if name != "wce"]


def problem(dtype=torch.float64):
    generator = torch.Generator().manual_seed(0)
    logits = (2 * torch.randn(3, 5, 4, 6, generator=generator)).to(dtype)
    target = torch.randint(0, 5, (3, 4, 6), generator=generator)
    target[0, :2] = IGNORE
    return logits, target


def build(name, weight=None, **kw):
    options = {"margin_on": "target"} if "hem+" in name else {}
    return segloss.build_loss(name, class_counts=COUNTS, weight=weight, ignore_index=IGNORE, **options, **kw)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_weighted_ce_is_torch_weighted_cross_entropy(reduction):
    logits, target = problem()
    ours = functional.cross_entropy(logits, target, weight=WEIGHT, ignore_index=IGNORE, reduction=reduction)
    torch.testing.assert_close(
        ours, F.cross_entropy(logits, target, weight=WEIGHT, ignore_index=IGNORE, reduction=reduction)
    )
    # LogitNorm and logit adjustment are cross-entropy of transformed logits, weighted the same way
    normed = logits / (0.04 * (logits.norm(dim=1, keepdim=True) + 1e-7))
    torch.testing.assert_close(
        functional.logit_norm_loss(logits, target, weight=WEIGHT, ignore_index=IGNORE, reduction=reduction),
        F.cross_entropy(normed, target, weight=WEIGHT, ignore_index=IGNORE, reduction=reduction),
    )
    priors = torch.tensor(COUNTS, dtype=torch.float64) / sum(COUNTS)
    adjusted = logits + priors.log().view(1, -1, 1, 1)
    torch.testing.assert_close(
        functional.logit_adjusted_loss(
            logits, target, priors, weight=WEIGHT, ignore_index=IGNORE, reduction=reduction
        ),
        F.cross_entropy(adjusted, target, weight=WEIGHT, ignore_index=IGNORE, reduction=reduction),
    )


def test_weighted_hem_by_hand():
    """Four classes, μ = 0.5, weights (2, 3, 1, 1). Sample A (class 0): errors (0.2, 0, 0), mean 0.05,
    loss 0.2; B (class 1): errors (1.5, 0.5, 0.5), mean 0.625, loss 1.5; C (class 0): no error, loss 0,
    so its weight is not in the denominator; D is ignored. Mean = (2·0.2 + 3·1.5) / (2 + 3) = 0.98."""
    logits = torch.tensor(
        [[0.6, 0.3, 0.0, -0.1], [1.0, 0.0, 0.0, 0.0], [5.0, 0.0, 0.0, 0.0], [9.0, 0.0, 0.0, 0.0]],
        dtype=torch.float64,
        requires_grad=True,
    )
    target = torch.tensor([0, 1, 0, IGNORE])
    weight = torch.tensor([2.0, 3.0, 1.0, 1.0], dtype=torch.float64)
    options = {"weight": weight, "ignore_index": IGNORE}
    loss = functional.hem_loss(logits, target, 0.5, **options)
    torch.testing.assert_close(loss, torch.tensor(0.98, dtype=torch.float64))
    loss.backward()
    # each selected competitor gets +w_l / (K·W), the true class minus their sum (K = 1, W = 5)
    expected = torch.zeros(4, 4, dtype=torch.float64)
    expected[0, 1], expected[0, 0] = 2 / 5, -2 / 5
    expected[1, 0], expected[1, 1] = 3 / 5, -3 / 5
    torch.testing.assert_close(logits.grad, expected)
    torch.testing.assert_close(
        functional.hem_loss(logits, target, 0.5, reduction="sum", **options), torch.tensor(4.9).double()
    )
    torch.testing.assert_close(
        functional.hem_loss(logits, target, 0.5, reduction="none", **options),
        torch.tensor([0.4, 4.5, 0.0, 0.0], dtype=torch.float64),
    )
    # all weight on classes without a loss: 0, and every gradient exactly 0 (never NaN)
    zero = functional.hem_loss(logits, target, 0.5, weight=torch.tensor([0.0, 0.0, 1.0, 1.0]).double(),
                               ignore_index=IGNORE)  # fmt: skip
    logits.grad = None
    zero.backward()
    assert zero.item() == 0 and torch.equal(logits.grad, torch.zeros_like(logits))


@pytest.mark.parametrize("name", ["hem", "hem+", "mm", "focal", "ohem", "dice", "lovasz", "ce", "ln", "la"])
def test_weighted_gradients_float64(name):
    logits, target = problem()
    loss = build(name, weight=WEIGHT, **({"min_kept": 20} if name == "ohem" else {}))
    assert torch.autograd.gradcheck(lambda x: loss(x, target), (logits.clone().requires_grad_(),))


@pytest.mark.parametrize("name", UNWEIGHTED_NAMES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_unit_weights_change_nothing(name, reduction):
    logits, target = problem()
    results = []
    for weight in (None, torch.ones(5, dtype=torch.float64)):
        x = logits.clone().requires_grad_()
        value = build(name, weight, reduction=reduction)(x, target)
        value.sum().backward()
        results.append((value.detach(), x.grad))
    torch.testing.assert_close(results[0][0], results[1][0])
    torch.testing.assert_close(results[0][1], results[1][1])


@pytest.mark.parametrize("name", ["hem+", "mm", "focal", "ohem"])
def test_weighted_means_over_samples(name):
    """``mean`` = Σ w_l loss / Σ w_l over the samples the unweighted mean counts; ``none`` = w_l · loss."""
    logits, target = problem()
    kw = {"min_kept": 20} if name == "ohem" else {}
    losses = build(name, reduction="none", **kw)(logits, target)
    per_sample = torch.where(target != IGNORE, WEIGHT[target.clamp(max=4)], 0)
    counted = losses > 0 if name in ("hem+", "ohem") else target != IGNORE
    weighted = build(name, WEIGHT, reduction="none", **kw)(logits, target)
    torch.testing.assert_close(weighted, losses * per_sample)
    torch.testing.assert_close(
        build(name, WEIGHT, **kw)(logits, target), (losses * per_sample).sum() / per_sample[counted].sum()
    )


@pytest.mark.parametrize("name", ["dice", "lovasz"])
def test_weighted_per_class_losses(name):
    logits, target = problem()
    target[target == 2] = 4  # class 2 absent from the batch: Lovász leaves it out of its mean
    per_class = build(name, reduction="none")(logits, target)
    averaged = torch.ones(5, dtype=torch.bool) if name == "dice" else torch.isin(torch.arange(5), target)
    torch.testing.assert_close(build(name, WEIGHT, reduction="none")(logits, target), WEIGHT * per_class)
    summed = build(name, WEIGHT, reduction="sum")(logits, target)
    torch.testing.assert_close(summed, (WEIGHT * per_class).sum())
    torch.testing.assert_close(
        build(name, WEIGHT)(logits, target), (WEIGHT * per_class)[averaged].sum() / WEIGHT[averaged].sum()
    )


def test_half_precision_logits_are_weighted_in_float32():
    logits, target = problem(torch.float32)
    for name in ("ce", "hem+", "dice"):
        expected = build(name, WEIGHT)(logits, target)
        got = build(name, WEIGHT)(logits.bfloat16(), target)
        assert got.dtype == torch.float32
        torch.testing.assert_close(got, build(name, WEIGHT)(logits.bfloat16().float(), target))
        torch.testing.assert_close(got, expected, rtol=0.05, atol=0.05)


def test_wce_is_ce_with_weights_from_counts():
    logits, target = problem()
    wce = segloss.build_loss("wce", class_counts=COUNTS, weighting="inverse", ignore_index=IGNORE)
    weights = class_weights(COUNTS, "inverse")
    torch.testing.assert_close(wce(logits, target), build("ce", weights)(logits, target))
    torch.testing.assert_close(
        comparison.weighted_cross_entropy(logits, target, weights, ignore_index=IGNORE), wce(logits, target)
    )
    with pytest.raises(ValueError, match="pass weights of your own to 'ce' instead"):
        segloss.build_loss("wce", class_counts=COUNTS, weighting="inverse", weight=WEIGHT)


def test_a_sum_passes_the_weight_to_every_term():
    logits, target = problem()
    torch.testing.assert_close(
        build("hem+ + 0.5*dice", WEIGHT)(logits, target),
        build("hem+", WEIGHT)(logits, target) + 0.5 * build("dice", WEIGHT)(logits, target),
    )


@pytest.mark.parametrize(
    ("weight", "message"),
    [
        ([1.0, 2.0], r"weight must be a \(5,\) tensor of per-class weights for 5 classes, got shape \(2,\)"),
        ([1.0, -1.0, 1.0, 1.0, 1.0], r"non-negative for each of the 5 classes, got -1.0 for class 1"),
        ([1.0, 1.0, float("nan"), 1.0, 1.0], r"got nan for class 2"),
        ([1.0, 1.0, 1.0, float("inf"), 1.0], r"got inf for class 3"),
    ],
)
def test_bad_weights_are_named(weight, message):
    logits, target = problem()
    with pytest.raises(ValueError, match=message):
        functional.hem_loss(logits, target, 0.5, weight=torch.tensor(weight), ignore_index=IGNORE)
    with pytest.raises(ValueError, match=message):
        functional.cross_entropy(logits, target, weight=weight, ignore_index=IGNORE)
    if len(weight) == 5:  # a module checks the values when it is built
        with pytest.raises(ValueError, match=message):
            segloss.build_loss("dice", weight=weight)


def test_config_class_weighting_weights_any_loss_from_the_class_statistics(tmp_path, monkeypatch):
    pytest.importorskip("albumentations")
    from segloss.runner.config import ConfigError, config_from_dict
    from segloss.segmentation.data import class_statistics
    from segloss.segmentation.recipe import loss_from_config, train_dataset

    from ..helpers import tiny_overrides

    monkeypatch.setenv("SEGLOSS_CACHE", str(tmp_path / "cache"))
    overrides = tiny_overrides(tmp_path / "run", loss__name="hem+", loss__class_weighting="median_frequency")
    config = config_from_dict({}, overrides)
    train_set = train_dataset(config)
    loss, _ = loss_from_config(config, train_set, progress=False)
    stats = class_statistics(train_set, progress=False)
    unit = stats.pixels_per_image  # the image-equivalents of loss.count_unit=images
    expected = class_weights(stats.counts / unit, "median_frequency", presence_counts=stats.presence / unit)
    torch.testing.assert_close(loss.weight, expected.float())
    ce, _ = loss_from_config(config_from_dict({}, [*overrides, "loss.name=ce"]), train_set, progress=False)
    torch.testing.assert_close(ce.weight, expected.float())
    plain, _ = loss_from_config(config_from_dict({}, tiny_overrides(tmp_path)), train_set, progress=False)
    assert plain.weight is None
    with pytest.raises(ConfigError, match="use loss.name=ce with loss.class_weighting"):
        config_from_dict({}, [*overrides, "loss.name=wce"])
    # a weighted run's saved config reads back weighted (reports group by it, --resume compares it)
    from segloss.runner.config import config_to_dict, resume_config, with_defaults

    assert with_defaults(config_to_dict(config))["loss"]["class_weighting"] == "median_frequency"
    assert resume_config(config_to_dict(config), config).loss.class_weighting == "median_frequency"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_kernels_weight_like_the_reference(backend, dtype):
    """The compiled CPU kernel and the eager backend (``backend`` fixture) against the weighting written
    out on per-sample losses, for NCHW, channels-last and ``(N, C)`` logits."""
    logits, target = problem(dtype)
    weight = WEIGHT.to(dtype)
    layouts = {
        "nchw": (logits, target),
        "channels_last": (logits.contiguous(memory_format=torch.channels_last), target),
        "nc": (logits[:, :, 0, 0], target[:, 0, 0]),
    }
    for layout, (x, t) in layouts.items():
        for name, reduction in [("hem+", "mean"), ("hem+", "sum"), ("hem+", "none"), ("mm", "mean")]:
            got_x, ref_x = x.clone().requires_grad_(), x.clone().requires_grad_()
            got = build(name, weight, reduction=reduction)(got_x, t)
            losses = build(name, reduction="none")(ref_x, t)
            per_sample = torch.where(t != IGNORE, weight[t.clamp(max=4)], 0)
            counted = losses.detach() > 0 if name == "hem+" else t != IGNORE
            reference = {
                "none": losses * per_sample,
                "sum": (losses * per_sample).sum(),
                "mean": (losses * per_sample).sum() / per_sample[counted].sum(),
            }[reduction]
            got.sum().backward()
            reference.sum().backward()
            message = f"{layout} {name} {reduction}"
            torch.testing.assert_close(got, reference, msg=message)
            torch.testing.assert_close(got_x.grad, ref_x.grad, msg=message)


def test_per_class_tensors_made_in_inference_mode_work():
    """Inference-mode tensors have no version counter, so they are converted without the copy cache."""
    logits, target = problem(torch.float32)
    with torch.inference_mode():
        margins = segloss.hem_plus_margins(COUNTS)  # float64, converted to the logits' float32
        value = functional.hem_loss(logits, target, margins, weight=WEIGHT, ignore_index=IGNORE)
    torch.testing.assert_close(value, functional.hem_loss(logits, target, margins.clone(), weight=WEIGHT,
                                                          ignore_index=IGNORE))  # fmt: skip
