"""``examples/lightning_segmentation.py``: two Lightning DDP processes (gloo, CPU) with ``sync=True`` give the
loss of every step and the validation confusion matrix of one process on the same batches."""

import importlib.util
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from ..helpers import REPO, cli_env

EXAMPLE = REPO / "examples" / "lightning_segmentation.py"
# 8 scenes of 64×64, global batch 4: 2 steps; the 4 validation scenes split evenly over 2 processes.
TINY = [
    "--num-train", "8", "--num-eval", "4", "--size", "64", "--batch-size", "4", "--epochs", "1",
    "--no-shuffle", "--no-augment", "--freeze-bn", "--dropout", "0", "--loss", "hem+",
]  # fmt: skip


def load_example():
    spec = importlib.util.spec_from_file_location("lightning_segmentation", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.usefixtures("one_thread")
def test_two_ddp_processes_match_one_process(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    cache.mkdir()
    env = cli_env(cache)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    env.pop("MASTER_PORT", None)
    two = subprocess.run(
        [sys.executable, str(EXAMPLE), *TINY, "--devices", "2", "--out", str(tmp_path / "two")],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    ddp = json.loads((tmp_path / "two" / "summary.json").read_text())

    monkeypatch.setenv("SEGLOSS_CACHE", str(cache))
    single = load_example().main([*TINY, "--devices", "1", "--out", str(tmp_path / "one")])

    assert (ddp["world_size"], single["world_size"]) == (2, 1)
    assert len(ddp["losses"]) == len(single["losses"]) == 2
    print(f"losses: 2 processes {ddp['losses']}, 1 process {single['losses']}")
    np.testing.assert_allclose(ddp["losses"], single["losses"], rtol=1e-4)
    ours, theirs = np.array(ddp["confusion"]), np.array(single["confusion"])
    assert ours.sum() == theirs.sum() > 0
    # Equal but for pixels whose top two logits are within float rounding of each other.
    print(f"confusion matrices differ in {np.abs(ours - theirs).sum() // 2} of {ours.sum()} pixels")
    assert np.abs(ours - theirs).sum() <= 2e-3 * ours.sum()
    assert math.isclose(ddp["miou"], single["miou"], rel_tol=1e-2)
