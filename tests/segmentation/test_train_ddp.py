"""DDP smoke test: ``torchrun`` with 2 gloo processes on the CPU trains a couple of steps and evaluates."""

import json
import subprocess
import sys

import pytest

from segloss.segmentation.evaluation import evaluate_checkpoint

from ..helpers import cli_env, tiny_overrides


@pytest.mark.usefixtures("one_thread")
def test_torchrun_two_gloo_processes(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    # 8 images, global batch 4 = 2 per rank: 2 steps; 3 evaluation images split unevenly over the ranks.
    overrides = tiny_overrides(
        run_dir, data__num_train=8, data__num_eval=3, train__epochs=1, loss__name="hem+"
    )
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1", "--nproc_per_node=2",
        "-m", "segloss", "train", *overrides,
    ]  # fmt: skip
    run = subprocess.run(
        command, env=cli_env(tmp_path / "cache"), cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "on cpu (2 processes)" in run.stderr
    (record,) = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert record["epoch"] == 1 and record["loss"] > 0
    # Rank 0 wrote the results of the sharded evaluation; one process on the same checkpoint agrees.
    monkeypatch.setenv("SEGLOSS_CACHE", str(tmp_path / "cache"))
    single = evaluate_checkpoint(run_dir / "checkpoint.pt", progress=False)
    assert json.loads((run_dir / "results.json").read_text()) == single.to_json()
