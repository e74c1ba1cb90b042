"""The Triton (CUDA) kernels, run in Triton's CPU interpreter against the eager backend.

The interpreter executes the same kernel source on CPU tensors, so the CUDA maths is checked here
without a GPU, both the kernels and what the custom ops' implementation makes of them; the GPU itself
(and a compiled step through the ops) is exercised by benchmarks/gpu_check.py when one is available.
"""

import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("triton")

SCRIPT = textwrap.dedent(
    """
    import itertools
    import torch
    from segloss._kernels import as_samples, eager, ops, triton_gpu

    torch.manual_seed(0)
    cases = [((3, 5, 6, 7), torch.float32), ((2, 19, 33), torch.float32), ((9, 4), torch.float64),
             ((2, 3, 4, 5), torch.float64), ((1, 130, 5), torch.float32)]
    checked = 0
    for shape, dtype in cases:
        logits = torch.randn(shape, dtype=dtype) * 2
        target = torch.randint(0, shape[1], (shape[0], *shape[2:]))
        target[torch.rand(target.shape) < 0.2] = 255
        x, t = as_samples(logits, target)
        margins = (torch.rand(shape[1], dtype=dtype) + 0.2).contiguous()
        class_weight = torch.rand(shape[1], dtype=dtype) * 2
        class_weight[0] = 0.0  # a zero weight: the class adds nothing
        for hard, on_target, weighted in itertools.product((True, False), repeat=3):
            options = {"on_target": on_target, "class_weight": class_weight if weighted else None}
            got = triton_gpu.margin_forward(x, t, margins, hard, 255, True, **options)
            expected = eager.margin_forward(x, t, margins, hard, 255, True, **options)
            for a, b in zip(got, expected):
                torch.testing.assert_close(a, b.to(a.dtype))
            for weight in (torch.tensor(0.37, dtype=dtype), torch.rand(t.shape, dtype=dtype)):
                got = triton_gpu.margin_backward(x, t, margins, hard, 255, weight, **options)
                expected = eager.margin_backward(x, t, margins, hard, 255, weight, **options)
                assert got.stride() == x.stride()
                torch.testing.assert_close(got, expected)
                checked += 1
    logits = torch.randn(2, 5, 9)
    logits[0, 1, 3] = float("nan")
    target = torch.randint(0, 5, (2, 9))
    x, t = as_samples(logits, target)
    for hard in (True, False):  # NaN logits give NaN losses in both backends
        got = triton_gpu.margin_forward(x, t, torch.full((5,), 0.5), hard, 255, True)[0]
        assert torch.isnan(got[0, 3]) and torch.isfinite(got[1]).all()
        torch.testing.assert_close(got, eager.margin_forward(x, t, torch.full((5,), 0.5), hard, 255, True)[0],
                                   equal_nan=True)
    print("checked", checked)
    # the ops' implementation around the Triton backend gives the outputs the fake registrations promise
    from torch._subclasses.fake_tensor import FakeTensorMode

    logits = torch.randn(2, 6, 3, 5).to(memory_format=torch.channels_last)
    x, t = as_samples(logits, torch.randint(0, 6, (2, 3, 5)))
    margins = torch.full((6,), 0.4)
    for need_losses in (True, False):
        args = (x, t, margins, None, True, False, 255, need_losses)
        got = [(v.shape, v.dtype) for v in ops._forward(triton_gpu, *args)]
        with FakeTensorMode() as mode:
            fake_args = (mode.from_tensor(x), mode.from_tensor(t), mode.from_tensor(margins), *args[3:])
            fake = [(v.shape, v.dtype) for v in ops.margin_forward(*fake_args)]
        assert got == fake, (got, fake)
    grad = ops._backward(triton_gpu, x, t, margins, None, torch.tensor(0.5), True, False, 255)
    assert grad.stride() == x.stride()
    try:
        ops._forward(triton_gpu, x, torch.full_like(t, 9), margins, None, True, False, 255, False)
    except RuntimeError as error:  # the forward kernel's own check, a queued assertion (raised at once here)
        assert "a target value is outside [0, 6) and is not ignore_index (255)" in str(error)
    else:
        raise AssertionError("a bad target passed")
    print("ops ok")
    """
)


def test_triton_kernels_match_eager_in_interpreter():
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "checked 80" in result.stdout
    assert "ops ok" in result.stdout
