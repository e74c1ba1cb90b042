"""The fused margin losses under ``torch.compile``: one graph for model → loss → backward, the same values
and gradients as eager, and the custom ops' registrations checked by ``torch.library.opcheck``. Eager
calls take the ``MarginLossFunction`` path; only compiled code runs the ops (tests/runner/test_import.py
checks that eager use never loads dynamo).

Dynamo breaks the graph at ``Tensor.backward()`` unless ``trace_autograd_ops`` is on (for any loss,
cross-entropy included), so the whole-step checks turn it on. Compiling with ``aot_eager`` runs dynamo
and AOTAutograd (the fake-tensor and autograd registrations) without Inductor's C++ builds, which take
most of a minute on a fresh cache; Inductor runs the ops in benchmarks/bench_losses.py's compiled rows
and benchmarks/gpu_check.py.
"""

import itertools

import pytest
import torch

import segloss
from segloss import _kernels
from segloss._kernels import ops

COUNTS = torch.tensor([500.0, 200.0, 80.0, 20.0, 5.0])
PRESENCE = [1000.0] * 5
NAMES = ("hem", "hem+", "mm")


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, len(COUNTS), 1)
    )


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(2, 3, 8, 8, generator=generator)
    target = torch.randint(0, len(COUNTS), (2, 8, 8), generator=generator)
    target[0, :2] = 255
    return images, target


def _step(model: torch.nn.Module, loss: torch.nn.Module):
    def step(images: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        value = loss(model(images), target)
        value.backward()
        return value.detach()

    return step


def _run(step, model, images, target) -> tuple[torch.Tensor, list[torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    value = step(images, target)
    return value, [p.grad.clone() for p in model.parameters()]


@pytest.fixture
def trace_backward():
    torch._dynamo.reset()
    with torch._dynamo.config.patch(trace_autograd_ops=True):
        yield
    torch._dynamo.reset()


@pytest.mark.parametrize("name, sync", [(name, False) for name in NAMES] + [("hem+", True)])
def test_compiled_step_has_no_graph_breaks(trace_backward, one_thread, name, sync):
    model = _model()
    loss = segloss.build_loss(
        name, class_counts=COUNTS, presence_counts=PRESENCE, ignore_index=255, sync=sync
    )
    explanation = torch._dynamo.explain(_step(model, loss))(*_batch())
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1


@pytest.mark.parametrize(
    "name, options",
    [
        ("hem", {"reduction": "mean"}),
        ("hem+", {"reduction": "mean", "margin_on": "target"}),
        ("mm", {"reduction": "sum"}),
    ],
)
def test_compiled_step_matches_eager(trace_backward, one_thread, backend, name, options):
    model = _model()
    loss = segloss.build_loss(
        name, class_counts=COUNTS, presence_counts=PRESENCE, ignore_index=255, **options
    )
    images, target = _batch()
    expected, expected_grads = _run(_step(model, loss), model, images, target)
    compiled = torch.compile(_step(model, loss), fullgraph=True, backend="aot_eager")
    value, grads = _run(compiled, model, images, target)
    torch.testing.assert_close(value, expected, rtol=0, atol=0)
    for grad, expected_grad in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(grad, expected_grad, rtol=1e-6, atol=1e-7)


def test_compiled_forward_matches_eager(one_thread):
    """The usual pattern: a compiled forward (model and loss), ``backward()`` outside, here with
    channels-last logits and per-sample losses."""
    torch._dynamo.reset()
    model = _model().to(memory_format=torch.channels_last)
    loss = segloss.build_loss("hem+", class_counts=COUNTS, ignore_index=255, reduction="none")
    images, target = _batch()
    images = images.to(memory_format=torch.channels_last)
    weights = torch.rand(target.shape, generator=torch.Generator().manual_seed(2))

    def forward(images, target):
        return loss(model(images), target)

    results = []
    for function in (forward, torch.compile(forward, fullgraph=True, backend="aot_eager")):
        model.zero_grad(set_to_none=True)
        value = function(images, target)
        (value * weights).sum().backward()
        results.append((value.detach(), [p.grad.clone() for p in model.parameters()]))
    torch._dynamo.reset()
    (expected, expected_grads), (value, grads) = results
    torch.testing.assert_close(value, expected)
    for grad, expected_grad in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(grad, expected_grad, rtol=1e-5, atol=1e-6)


def test_compiled_loss_still_names_a_bad_target(backend):
    """The ops run for real inside the compiled graph, so target checks still happen."""
    torch._dynamo.reset()
    loss = segloss.build_loss("hem+", class_counts=COUNTS, ignore_index=255)
    compiled = torch.compile(loss, fullgraph=True, backend="aot_eager")
    logits, target = torch.randn(2, 5, 4), torch.randint(0, 5, (2, 4))
    assert torch.isfinite(compiled(logits, target))
    target[1, 3] = 7
    with pytest.raises(ValueError, match=r"target value 7 is outside \[0, 5\)"):
        compiled(logits, target)
    torch._dynamo.reset()


def test_ops_pass_opcheck(backend):
    """Real against fake outputs, the autograd registration and AOT dispatch, for NCHW, channels-last
    and ``(N, C)`` logits."""
    logits = torch.randn(3, 5, 2, 4)
    target = torch.randint(0, 5, (3, 2, 4))
    target[0, 0] = 255
    cases = [
        (*_kernels.as_samples(logits, target), True, True),
        (*_kernels.as_samples(logits.to(memory_format=torch.channels_last), target), True, False),
        (*_kernels.as_samples(logits[:, :, 0, 0].double(), target[:, 0, 0]), False, True),
    ]
    for (x, t, hard, need_losses), weighted in itertools.product(cases, (False, True)):
        margins = torch.rand(5, dtype=x.dtype) + 0.1
        class_weight = torch.rand(5, dtype=x.dtype) if weighted else None
        args = (x.requires_grad_(), t, margins, class_weight, hard, False, 255, need_losses)
        torch.library.opcheck(ops.margin_forward, args)
        weight = torch.rand(t.shape, dtype=x.dtype) if need_losses else torch.tensor(0.5, dtype=x.dtype)
        args = (x.detach(), t, margins, class_weight, weight, hard, True, 255)
        torch.library.opcheck(ops.margin_backward, args)


def test_forcing_an_unusable_backend_is_an_error(monkeypatch):
    monkeypatch.setenv("SEGLOSS_KERNEL", "triton")
    with pytest.raises(
        RuntimeError, match="SEGLOSS_KERNEL=triton cannot run here .* usable: (cpu|eager only)"
    ):
        segloss.functional.hem_loss(torch.randn(4, 3), torch.tensor([0, 1, 2, 0]), 0.5)
