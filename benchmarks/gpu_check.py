"""One prepared GPU session: CUDA correctness of the loss kernels (Triton vs eager vs CPU, AMP), a
compiled training step through the custom ops, and the GPU rows of the loss benchmark. Run on a machine
with CUDA:

    python benchmarks/gpu_check.py            # exits non-zero on a mismatch
"""

from __future__ import annotations

import sys

import torch

import segloss
from segloss import functional as F

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import bench_losses  # noqa: E402

from segloss._kernels import select_backend  # noqa: E402


def check_kernels(device: torch.device) -> None:
    torch.manual_seed(0)
    for shape in [(4, 19, 64, 96), (2, 12, 45, 60), (128, 100), (3, 21, 33, 17)]:
        for dtype in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
            logits = torch.randn(shape, dtype=torch.float32).to(dtype)
            target = torch.randint(0, shape[1], (shape[0], *shape[2:]))
            target[torch.rand(target.shape) < 0.1] = 255
            margins = torch.rand(shape[1], dtype=torch.float64) + 0.1
            for function in (F.hem_loss, F.multi_margin_loss):
                results = []
                for where in ("cpu", device):
                    x = logits.to(where).requires_grad_()
                    value = function(x, target.to(where), margins.to(where), ignore_index=255)
                    value.backward()
                    results.append((value.cpu(), x.grad.cpu().float()))
                torch.testing.assert_close(results[0][0], results[1][0], rtol=1e-4, atol=1e-5)
                torch.testing.assert_close(results[0][1], results[1][1], rtol=1e-3, atol=1e-5)
    backend = select_backend(torch.empty(1, 19, 1, device=device)).__name__
    print(f"kernels: CPU and {device} agree (CUDA backend: {backend})")


def check_amp(device: torch.device) -> None:
    smp = __import__("segmentation_models_pytorch")
    model = (
        smp.FPN("resnet34", encoder_weights=None, classes=12).to(device).to(memory_format=torch.channels_last)
    )
    loss = segloss.build_loss("hem+", class_counts=torch.logspace(0, 3, 12), ignore_index=255)
    images = torch.randn(4, 3, 256, 320, device=device).to(memory_format=torch.channels_last)
    target = torch.randint(0, 12, (4, 256, 320), device=device)
    for dtype in (torch.bfloat16, torch.float16):
        with torch.autocast("cuda", dtype=dtype):
            value = loss(model(images), target)
        assert value.dtype == torch.float32 and torch.isfinite(value), value
        value.backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
        model.zero_grad()
    print("amp: bf16 and fp16 autocast give finite float32 losses and finite gradients")


def check_compiled(device: torch.device) -> None:
    """``torch.compile(fullgraph=True)`` of conv → loss → backward: one graph (dynamo's explain) and the
    eager step's loss and gradients, for the three fused losses."""
    counts = torch.logspace(0, 3, 12)
    images = torch.randn(4, 3, 64, 96, device=device)
    target = torch.randint(0, 12, (4, 64, 96), device=device)
    target[:, :4] = 255
    for name in ("hem", "hem+", "mm"):
        torch.manual_seed(0)
        model = torch.nn.Sequential(
            torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(16, 12, 1)
        ).to(device)
        loss = segloss.build_loss(name, class_counts=counts, ignore_index=255)

        def step(images, target, model=model, loss=loss):
            value = loss(model(images), target)
            value.backward()
            return value.detach()

        results = []
        with torch._dynamo.config.patch(trace_autograd_ops=True):
            torch._dynamo.reset()
            explanation = torch._dynamo.explain(step)(images, target)
            assert explanation.graph_break_count == 0, explanation.break_reasons
            for function in (step, torch.compile(step, fullgraph=True)):
                model.zero_grad(set_to_none=True)
                value = function(images, target)
                results.append((value, [p.grad.clone() for p in model.parameters()]))
        (expected, expected_grads), (value, grads) = results
        torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-6)
        for grad, expected_grad in zip(grads, expected_grads, strict=True):
            torch.testing.assert_close(grad, expected_grad, rtol=1e-4, atol=1e-6)
    torch._dynamo.reset()
    print("compiled: conv → hem/hem+/mm → backward is one graph and matches eager on", device)


def main() -> None:
    if not torch.cuda.is_available():
        sys.exit("no CUDA device")
    device = torch.device("cuda")
    print(torch.cuda.get_device_name(), torch.__version__)
    check_kernels(device)
    check_amp(device)
    check_compiled(device)
    for name, spec in bench_losses.SHAPES.items():
        shape = tuple(int(v) for v in spec.split("x"))
        print(f"\n### {name} {spec} on {torch.cuda.get_device_name()}\n")
        bench_losses.print_table(bench_losses.bench_shape(shape, device, repeats=5, min_seconds=0.2))


if __name__ == "__main__":
    main()
