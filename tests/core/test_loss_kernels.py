"""The compiled CPU kernel's build, cache, fallback and fork safety."""

import multiprocessing
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from segloss import functional as F
from segloss._kernels import cpu

PROBE = textwrap.dedent(
    """
    import logging, torch
    logging.basicConfig(level=logging.WARNING)
    from segloss import functional as F
    from segloss._kernels import cpu
    torch.manual_seed(0)
    x, t = torch.randn(2, 5, 8, 8), torch.randint(0, 5, (2, 8, 8))
    print("available", cpu.available(), "loss", round(F.hem_loss(x, t, 0.3).item(), 6))
    """
)


def test_kernel_cache_follows_the_cache_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("SEGLOSS_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cpu.cache_dir() == tmp_path / "xdg" / "segloss" / "kernels"
    monkeypatch.setenv("SEGLOSS_CACHE", str(tmp_path / "own"))
    assert cpu.cache_dir() == tmp_path / "own" / "kernels"


def run_probe(env_changes: dict) -> subprocess.CompletedProcess:
    env = {**os.environ, **env_changes}
    return subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(cpu._compiler() is None, reason="no C compiler")
def test_kernel_is_built_once_into_the_cache(tmp_path):
    first = run_probe({"SEGLOSS_CACHE": str(tmp_path)})
    assert first.returncode == 0, first.stderr
    assert "available True" in first.stdout
    built = list((tmp_path / "kernels").glob("margin_cpu-*.so"))
    assert len(built) == 1
    stamp = built[0].stat().st_mtime_ns
    second = run_probe({"SEGLOSS_CACHE": str(tmp_path)})
    assert second.stdout == first.stdout
    assert built[0].stat().st_mtime_ns == stamp  # reused, not rebuilt
    assert not [p for p in (tmp_path / "kernels").iterdir() if p.suffix != ".so"]  # no temporary left


def test_without_a_compiler_the_eager_backend_takes_over(tmp_path):
    result = run_probe({"SEGLOSS_CACHE": str(tmp_path), "CC": "no-such-compiler", "PATH": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert "available False" in result.stdout
    assert "compiled CPU kernel unavailable, using the eager backend" in result.stderr
    with_kernel = run_probe({})
    assert with_kernel.stdout.split("loss")[1] == result.stdout.split("loss")[1]  # same value either way


def _hem_value() -> float:
    x = torch.randn(4, 19, 64, 128, generator=torch.Generator().manual_seed(0))
    return F.hem_loss(x, torch.zeros(4, 64, 128).long(), 0.3).item()


def _hem_value_to(queue) -> None:
    queue.put(_hem_value())


@pytest.mark.skipif(cpu._compiler() is None, reason="no C compiler")
def test_forked_child_can_use_the_kernel_after_the_parent_did():
    assert cpu.available(), cpu._load_error
    expected = _hem_value()  # the parent has started the kernel's thread pool
    context = multiprocessing.get_context("fork")
    queue = context.SimpleQueue()
    child = context.Process(target=_hem_value_to, args=(queue,))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0
    assert queue.get() == expected
