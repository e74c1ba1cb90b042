"""Gradients: float64 gradcheck, fused kernels vs the reference, layouts, dtypes, ignored samples."""

import pytest
import torch

import segloss
from segloss import functional as F

from . import reference

COUNTS = [40.0, 10.0, 5.0, 25.0, 20.0]


def build(name, reduction="mean"):
    return segloss.build_loss(
        name,
        class_counts=COUNTS,
        presence_counts=[sum(COUNTS)] * len(COUNTS),
        ignore_index=255,
        reduction=reduction,
    )


def random_batch(shape=(2, 5, 4, 3), dtype=torch.float64, ignored=0.2):
    y = torch.randn(shape, dtype=dtype) * 2
    t = torch.randint(0, shape[1], (shape[0], *shape[2:]))
    t[torch.rand(t.shape) < ignored] = 255
    return y, t


@pytest.mark.parametrize("name", segloss.LOSS_NAMES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_gradcheck_float64(backend, name, reduction):
    y, t = random_batch()
    loss = build(name, reduction)
    # M = 2000 over 100 pixels gives huge margins; scale so that some samples are correct
    assert torch.autograd.gradcheck(lambda x: loss(x * 3, t), (y.requires_grad_(),), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("hard", [True, False])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("shape", [(4, 7), (2, 6, 5, 7), (2, 3, 4, 3, 5), (3, 19, 37)])
def test_fused_matches_reference_values_and_gradients(backend, hard, reduction, shape):
    y, t = random_batch(shape, torch.float32)
    margins = torch.rand(shape[1]) + 0.2
    function = F.hem_loss if hard else F.multi_margin_loss
    y1, y2 = y.clone().requires_grad_(), y.clone().requires_grad_()
    weights = torch.rand(t.shape) if reduction == "none" else torch.tensor(1.7)
    got = function(y1, t, margins, ignore_index=255, reduction=reduction)
    expected = reference.margin_loss(y2, t, margins, hard, 255, reduction)
    (got * weights).sum().backward()
    (expected * weights).sum().backward()
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(y1.grad, y2.grad)


def test_fused_gradient_rule_from_spec(backend):
    # docs/losses-and-margins.md: each selected i != l with e_i > 0 gets +1/(K P); y_l gets minus their sum
    y = torch.tensor([[0.0, 1.0, 0.0, 0.0], [0.0, 0.8, 0.7, 0.0], [3.0, 0.0, 0.0, 0.0]], requires_grad=True)
    t = torch.tensor([0, 0, 0])
    F.hem_loss(y, t, 0.5).backward()
    # sample 0: errors 1.5, .5, .5 -> K=1; sample 1: 1.3, 1.2, .5, mean .75 -> K=2; sample 2: zero loss; P=2
    expected = torch.tensor([[-0.5, 0.5, 0, 0], [-0.5, 0.25, 0.25, 0], [0, 0, 0, 0]])
    torch.testing.assert_close(y.grad, expected)


@pytest.mark.parametrize("name", segloss.LOSS_NAMES)
def test_dense_equals_flattened_rows(backend, name):
    y, t = random_batch((2, 5, 6, 4), torch.float32)
    dense = y.clone().requires_grad_()
    rows = y.movedim(1, -1).reshape(-1, 5).clone().requires_grad_()
    loss = build(name)
    loss(dense, t).backward()
    loss(rows, t.reshape(-1)).backward()
    torch.testing.assert_close(loss(dense, t), loss(rows, t.reshape(-1)))
    torch.testing.assert_close(dense.grad.movedim(1, -1).reshape(-1, 5), rows.grad)


@pytest.mark.parametrize("name", segloss.LOSS_NAMES)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_removing_ignored_samples_changes_nothing(backend, name, reduction):
    y, t = random_batch((3, 5, 6, 5), torch.float64, ignored=0.3)
    y.requires_grad_()
    loss = build(name, reduction)
    with_ignored = loss(y, t)
    (grad,) = torch.autograd.grad(with_ignored, y)
    rows, targets = reference.as_rows(y, t)
    keep = targets != 255
    kept = rows[keep].detach().requires_grad_()
    without = loss(kept, targets[keep])
    without.backward()
    torch.testing.assert_close(with_ignored, without)
    grad_rows, _ = reference.as_rows(grad, t)
    torch.testing.assert_close(grad_rows[keep], kept.grad)
    assert torch.all(grad_rows[~keep] == 0)


@pytest.mark.parametrize("name", segloss.LOSS_NAMES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_computed_in_float32(backend, name, dtype):
    y, t = random_batch((2, 5, 8, 8), dtype)
    low = y.clone().requires_grad_()
    high = y.float().requires_grad_()
    loss = build(name)
    out_low, out_high = loss(low, t), loss(high, t)
    out_low.backward()
    out_high.backward()
    assert out_low.dtype == torch.float32
    assert low.grad.dtype == dtype
    torch.testing.assert_close(out_low, out_high)
    torch.testing.assert_close(low.grad, high.grad.to(dtype))


@pytest.mark.parametrize("name", segloss.LOSS_NAMES)
def test_memory_layouts(backend, name):
    """channels_last and non-contiguous logits give the same values and gradients as contiguous ones."""
    y, t = random_batch((2, 5, 6, 7), torch.float32)
    loss = build(name)
    variants = {
        "contiguous": y.clone(),
        "channels_last": y.clone().contiguous(memory_format=torch.channels_last),
        "every_other": torch.stack([y, y], dim=-1)[..., 0],
        "transposed": y.transpose(2, 3).contiguous().transpose(2, 3),
        "sliced": torch.cat([y, y], dim=3)[..., :7],
    }
    results = {}
    for key, x in variants.items():
        leaf = x.detach().requires_grad_()
        value = loss(leaf, t)
        value.backward()
        results[key] = value, leaf.grad
    for key, (value, grad) in results.items():
        torch.testing.assert_close(value, results["contiguous"][0], msg=key)
        torch.testing.assert_close(grad.contiguous(), results["contiguous"][1], msg=key)


def test_dice_gradient_equals_smp():
    from segmentation_models_pytorch import losses as smp_losses

    y, t = random_batch((3, 5, 6, 6), torch.float64)
    t[t == 4] = 0  # class 4 absent: its value differs (docs/losses-and-margins.md), its gradient does not
    ours, theirs = y.clone().requires_grad_(), y.clone().requires_grad_()
    ours_value = F.dice_loss(ours, t, ignore_index=255)
    smp_value = smp_losses.DiceLoss("multiclass", from_logits=True, ignore_index=255)(theirs, t)
    ours_value.backward()
    smp_value.backward()
    torch.testing.assert_close(ours.grad, theirs.grad)
    assert ours_value.item() - smp_value.item() == pytest.approx(1 / 5)  # one absent class of five
