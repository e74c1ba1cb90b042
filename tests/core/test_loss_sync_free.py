"""The CUDA path never synchronises with the host: run on CPU tensors through Triton's interpreter
(``SEGLOSS_KERNEL=triton TRITON_INTERPRET=1``) with every tensor-to-host conversion patched to raise, each
loss gives eager's values and gradients, and a bad target is still rejected."""

import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("triton")

SCRIPT = textwrap.dedent(
    """
    import os
    import torch
    import segloss
    from segloss._kernels import select_backend, triton_gpu

    torch.manual_seed(0)
    logits = torch.randn(3, 5, 4, 6) * 2
    target = torch.randint(0, 5, (3, 4, 6))
    target[0, :2] = 255
    bad = target.clone()
    bad[1, 2, 3] = 7
    names = [*segloss.LOSS_NAMES, "hem+ + 0.5*dice"]
    variants = [(name, reduction) for name in names for reduction in ("mean", "sum")]
    variants += [("hem+", "none"), ("mm", "none"), ("ce", "none")]
    losses = {
        (name, reduction): segloss.build_loss(
            name, class_counts=[1.0, 2.0, 3.0, 4.0, 5.0], presence_counts=[9.0] * 5, ignore_index=255,
            reduction=reduction,
        )
        for name, reduction in variants
    }
    weight = torch.tensor([1.0, 0.5, 2.0, 0.0, 3.0])  # per-class weights: host-held, never synced
    for name in names:
        if name != "wce":
            losses[name, "mean", "weighted"] = segloss.build_loss(
                name, class_counts=[1.0, 2.0, 3.0, 4.0, 5.0], ignore_index=255, weight=weight
            )

    def run(loss):
        x = logits.clone().requires_grad_()
        value = loss(x, target)
        value.sum().backward()
        return value.detach(), x.grad

    os.environ["SEGLOSS_KERNEL"] = "eager"
    expected = {key: run(loss) for key, loss in losses.items()}
    os.environ["SEGLOSS_KERNEL"] = "triton"
    assert select_backend(logits.reshape(3, 5, -1)) is triton_gpu

    def host_sync(*args, **kwargs):
        raise AssertionError("a host synchronisation on the CUDA path")

    methods = ("item", "__bool__", "tolist", "__int__", "__float__", "__index__")
    originals = {method: getattr(torch.Tensor, method) for method in methods}
    for method in methods:
        setattr(torch.Tensor, method, host_sync)
    got = {key: run(loss) for key, loss in losses.items()}
    errors = []
    for key in [("hem", "mean"), ("hem+", "mean"), ("mm", "mean"), ("ce", "mean"), ("dice", "mean")]:
        try:
            losses[key](logits, bad)
        except RuntimeError as error:
            errors.append(str(error))
    for method, original in originals.items():
        setattr(torch.Tensor, method, original)
    for key in losses:
        torch.testing.assert_close(got[key][0], expected[key][0], rtol=1e-5, atol=1e-6, msg=str(key))
        torch.testing.assert_close(got[key][1], expected[key][1], rtol=1e-5, atol=1e-6, msg=str(key))
    assert all("a target value is outside [0, 5) and is not ignore_index (255)" in e for e in errors), errors
    print("checked", len(losses), "rejected", len(errors))
    """
)


def test_the_interpreted_cuda_path_never_syncs_and_matches_eager():
    env = {**os.environ, "TRITON_INTERPRET": "1", "SEGLOSS_KERNEL": "eager"}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "rejected 5" in result.stdout
