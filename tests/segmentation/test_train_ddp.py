"""DDP smoke tests: ``torchrun``, and two processes with ``srun``'s variables, as 2 gloo processes on the CPU
that train a couple of steps and evaluate; SLURM's variables and their contradictions."""

import json
import socket
import subprocess
import sys

import pytest

from segloss.runner.checkpoint import load_checkpoint
from segloss.runner.distributed import slurm_process_variables
from segloss.segmentation.evaluation import evaluate_checkpoint

from ..helpers import cli_env, segloss_command, tiny_overrides


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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
    saved = json.loads((run_dir / "results.json").read_text())
    pixels = load_checkpoint(run_dir / "checkpoint.pt")["train_pixels"]  # counted by rank 0, read by rank 1
    assert list(saved.pop("train_pixels").values()) == pixels and sum(pixels) > 0
    assert [e["device"] for e in saved.pop("environment")] == ["cpu"]
    assert saved == single.to_json()


def test_slurm_variables_become_torchrun_variables():
    tasks = {"SLURM_NTASKS": "8", "SLURM_PROCID": "5", "SLURM_LOCALID": "1", "SLURM_JOB_ID": "123456"}
    assert slurm_process_variables({**tasks, "SLURM_STEP_NODELIST": "gpu-a[07-08,11],gpu-b3"}) == {
        "RANK": "5",
        "WORLD_SIZE": "8",
        "LOCAL_RANK": "1",
        "MASTER_ADDR": "gpu-a07",  # the first host of the compressed list, zero padding kept
        "MASTER_PORT": str(15000 + 123456 % 20000),
    }
    assert (
        slurm_process_variables({**tasks, "SLURM_NODELIST": "rack[2-3]-n[1,4]"})["MASTER_ADDR"] == "rack2-n1"
    )
    kept = slurm_process_variables({**tasks, "SLURM_NODELIST": "n1", "MASTER_ADDR": "h", "MASTER_PORT": "1"})
    assert "MASTER_ADDR" not in kept and "MASTER_PORT" not in kept
    # One task, or torchrun inside the allocation: nothing to do.
    assert slurm_process_variables({**tasks, "SLURM_NTASKS": "1"}) == {}
    assert slurm_process_variables({**tasks, "SLURM_NODELIST": "n1", "RANK": "0", "WORLD_SIZE": "2"}) == {}
    # Contradictions stop the run with the fix.
    for broken in ({"SLURM_PROCID": "8"}, {"SLURM_PROCID": ""}, {"SLURM_LOCALID": "x"}):
        with pytest.raises(RuntimeError, match="srun --ntasks-per-node"):
            slurm_process_variables({**tasks, "SLURM_NODELIST": "n1", **broken})
    with pytest.raises(RuntimeError, match="names no nodes"):
        slurm_process_variables(tasks)


@pytest.mark.usefixtures("one_thread")
def test_srun_tasks_form_one_process_group(tmp_path):
    """Two processes started as ``srun --ntasks=2 python train.py`` would start them: one run of world size 2,
    not two rank-0 runs in one folder."""
    run_dir = tmp_path / "run"
    overrides = tiny_overrides(
        run_dir, data__num_train=8, data__num_eval=2, train__epochs=1, eval__num_overlays=0
    )
    env = {
        **cli_env(tmp_path / "cache"),
        "SLURM_NTASKS": "2",
        "SLURM_JOB_ID": "4242",
        "SLURM_NODELIST": "node[01-02]",
        "MASTER_ADDR": "127.0.0.1",  # node01 does not resolve here
        "MASTER_PORT": str(free_port()),
    }
    processes = [
        subprocess.Popen(
            [*segloss_command(), "train", *overrides],
            env={**env, "SLURM_PROCID": str(rank), "SLURM_LOCALID": str(rank)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in range(2)
    ]
    outputs = [process.communicate(timeout=300) for process in processes]
    for process, (_, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr[-3000:]
    log = (run_dir / "train.log").read_text()
    assert log.count("starting run") == 1 and "on cpu (2 processes)" in log
    assert "forming one process group of the 2 SLURM tasks (this is rank 0" in outputs[0][1]
    assert "starting run" not in outputs[1][1]  # rank 1 logs warnings only
    (record,) = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert record["epoch"] == 1
    assert {path.name for path in tmp_path.iterdir()} <= {"cache", "run"}  # nothing beside the run
