import pytest
import torch

from segloss._kernels import cpu


@pytest.fixture(params=["cpu", "eager"])
def backend(request, monkeypatch):
    """Run a test with the compiled CPU kernel and with the eager tensor-op backend."""
    if request.param == "cpu" and not cpu.available():
        pytest.skip("compiled CPU kernel unavailable (no C compiler)")
    monkeypatch.setenv("SEGLOSS_KERNEL", request.param)
    return request.param


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
