import pytest
import torch

from segloss._kernels import cpu


@pytest.fixture(params=["cpu", "eager"])
def backend(request, monkeypatch):
    """Run a test with the compiled CPU kernel and with the eager tensor-op backend."""
    if request.param == "cpu" and not cpu.available():
        if cpu._compiler() is not None:  # a compiler that fails to build the kernel is a defect, not a skip
            pytest.fail(f"the compiled CPU kernel did not build: {cpu._load_error}")
        pytest.skip("compiled CPU kernel unavailable (no C compiler)")
    monkeypatch.setenv("SEGLOSS_KERNEL", request.param)
    return request.param


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def one_thread():
    """Run with one CPU thread: fast for tiny models and immune to OpenMP spin-waiting when other processes
    share the two cores (which can slow two-thread runs a hundredfold)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
