"""``benchmarks/gpu_check.py --smoke``: the prepared GPU check runs every section at tiny sizes on the CPU
(the CUDA path in Triton's interpreter) and writes its JSON and markdown summaries."""

import json
import subprocess
import sys

import pytest

from ..helpers import REPO, cli_env

pytest.importorskip("triton")


def test_the_gpu_check_smoke_run_passes_on_a_cpu(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    out = tmp_path / "check"
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--smoke", "--out", str(out)],
        env=cli_env(cache),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((out / "gpu_check.json").read_text())
    sections = report["sections"]
    assert list(sections) == ["kernels", "fallback", "sync_free", "amp", "compiled", "benchmark", "training"]
    assert all(section["status"] == "passed" for section in sections.values()), sections
    assert report["environment"]["torch"] and "triton" in report["environment"]
    kernels = sections["kernels"]["result"]
    assert kernels["cases"] == (11 + 1 + 4) * 3 * 3 + 3  # losses, OHEM below min_kept, weighted; the volume
    assert kernels["grid"]["images"] == 700
    assert "forced launch failure" in sections["fallback"]["result"]["warning"]
    sync_free = sections["sync_free"]["result"]
    assert sync_free["cuda_graph"] == "skipped: needs CUDA"
    assert sync_free["train_one_epoch"]["host_syncs"] == 1 and sync_free["train_one_epoch"]["steps"] == 3
    assert "bf16 channels-last" in " ".join(sections["benchmark"]["result"])
    training = sections["training"]["result"]
    assert set(training["images_per_s"]) == {"ce", "hem+"} and training["hem+/ce"] > 0
    markdown = (out / "gpu_check.md").read_text()
    assert "| kernels | passed |" in markdown and "GB/s (least traffic)" in markdown
