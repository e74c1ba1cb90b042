"""The Triton (CUDA) kernels, run in Triton's CPU interpreter against the eager backend.

The interpreter executes the same kernel source on CPU tensors, so the CUDA maths is checked here
without a GPU; the GPU itself is exercised by benchmarks/gpu_check.py when one is available.
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
    from segloss._kernels import as_samples, eager, triton_gpu

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
        for hard, on_target, count_valid in itertools.product((True, False), repeat=3):
            options = {"on_target": on_target}
            forward = {"count_valid": count_valid, **options}
            got = triton_gpu.margin_forward(x, t, margins, hard, 255, True, **forward)
            expected = eager.margin_forward(x, t, margins, hard, 255, True, **forward)
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
    """
)


def test_triton_kernels_match_eager_in_interpreter():
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "checked 80" in result.stdout
