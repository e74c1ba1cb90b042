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
    assert list(sections) == ["kernels", "sync_free", "amp", "compiled", "benchmark", "training"]
    assert all(section["status"] == "passed" for section in sections.values())
    assert sections["kernels"]["result"]["cases"] > 90
    assert sections["sync_free"]["result"]["cuda_graph"] == "skipped: needs CUDA"
    runs = sections["training"]["result"]["runs"]
    assert [(run["loss"], run["seed"]) for run in runs] == [("ce", 0), ("hem+", 0), ("ce", 1), ("hem+", 1)]
    assert all(0 <= run["val_miou"] <= 1 for run in runs)
    assert "| kernels | passed |" in (out / "gpu_check.md").read_text()
