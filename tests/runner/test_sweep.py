"""``segloss sweep``: the grid, run names and statuses; a 2×2 sweep of one-epoch runs locally (and a
rerun that trains only what is missing) and through submitit's local executor."""

import json
import logging
import re

import pytest

from segloss.runner.config import ConfigError
from segloss.runner.executors import SlurmOptions, TrainJob, parse_minutes, submit
from segloss.runner.grouping import key_labels
from segloss.runner.sweep import main, parse_axes, plan, run_status, split_values

from ..helpers import CONFIGS

# One-epoch digits runs (an MLP on 8×8 images): the cheapest real runs of the project, a few seconds each.
DIGITS = CONFIGS / "cls_digits.yaml"
FIXED = ["train.epochs=1", "train.batch_size=64", "eval.unknown_sets=[]", "eval.attack_samples=0"]
GRID = ["loss.name=ce,hem+", "train.seed=0,1"]
NAMES = ["name=ce,seed=0", "name=ce,seed=1", "name=hem+,seed=0", "name=hem+,seed=1"]


def test_grid_names_and_dry_run(tmp_path, capsys):
    assert split_values("ce,hem+") == ["ce", "hem+"]
    assert split_values("[car,sign],[pole]") == ["[car,sign]", "[pole]"]
    assert parse_axes(["loss.name=ce,hem+", "data.holdout_classes=[car,sign]", "train.epochs=3"]) == {
        "loss.name": ["ce", "hem+"],
        "data.holdout_classes": ["[car,sign]"],
        "train.epochs": ["3"],
    }
    bad = {"train.out_dir=a,b": "--out", "loss.name=ce,": "empty value", "x": "key=value"}
    for override, message in bad.items():
        with pytest.raises(ConfigError, match=message):
            parse_axes([override])
    with pytest.raises(ConfigError, match="given twice"):
        parse_axes(["train.seed=0,1", "train.seed=2"])
    assert key_labels(["loss.name", "data.name", "loss.M"]) == {
        "loss.name": "loss.name",
        "data.name": "data.name",
        "loss.M": "M",
    }
    minutes = {"90": 90, "1:30": 2, "2:00:00": 120, "1-00:00:30": 1441, "1-2": 1560}  # 1:30 is MM:SS
    assert {text: parse_minutes(text) for text in minutes} == minutes

    # The names come from the varying keys only; lists make safe folder names; fixed keys apply to every run.
    fixed = [override for override in FIXED if not override.startswith("eval.unknown_sets")]
    runs = plan(DIGITS, [*GRID, "eval.unknown_sets=[],[blobs,phase]", *fixed], tmp_path)
    assert [run.name for run in runs[:2]] == [
        "name=ce,seed=0,unknown_sets=none",
        "name=ce,seed=0,unknown_sets=blobs+phase",
    ]
    assert runs[1].config.eval.unknown_sets == ["blobs", "phase"] and runs[1].config.train.epochs == 1
    assert runs[1].run_dir == tmp_path / "name=ce,seed=0,unknown_sets=blobs+phase"
    with pytest.raises(ConfigError, match=r"run name=ce: optim.lr must be positive"):
        plan(DIGITS, ["loss.name=ce,hem+", "optim.lr=-1"], tmp_path)

    assert main(["--config", str(DIGITS), "--out", str(tmp_path / "sweep"), "--dry-run", *GRID, *FIXED]) == 0
    out = capsys.readouterr().out
    assert "4 runs in" in out and "(0 done, 0 partial, 4 new)" in out
    for name in NAMES:
        assert re.search(rf"^{re.escape(name)} +new +loss.name=", out, re.MULTILINE)
    assert "loss.name=hem+ train.seed=1" in out
    assert not (tmp_path / "sweep").exists()  # a dry run writes nothing

    # The submitit requeue hook resubmits the job itself (it resumes from the run's checkpoint).
    job = TrainJob(DIGITS, runs[0].overrides, threads=1)
    delayed = job.checkpoint()
    assert delayed.function is job and delayed.args == ()


def _mtimes(root):
    return {path.parent.name: path.stat().st_mtime_ns for path in root.glob("*/checkpoint.pt")}


@pytest.mark.usefixtures("one_thread")
def test_local_sweep_then_a_rerun_trains_only_what_is_missing(tmp_path, capsys, caplog):
    caplog.set_level(logging.INFO, logger="segloss.runner")
    root = tmp_path / "sweep"
    command = ["--config", str(DIGITS), "--out", str(root), "--jobs", "2", *GRID, *FIXED]
    assert main(command) == 0
    assert sorted(path.name for path in root.iterdir()) == NAMES
    for name in NAMES:
        results = json.loads((root / name / "results.json").read_text())
        assert 0 <= results["accuracy"] <= 1
        assert "final evaluation" in (root / name / "sweep.log").read_text()
    assert caplog.text.count("] finished name=") == 4

    # Run 0 lost its results (killed during the final evaluation), run 1's checkpoint is damaged.
    (root / NAMES[0] / "results.json").unlink()
    (root / NAMES[1] / "checkpoint.pt").write_bytes(b"half a checkpoint")
    before = _mtimes(root)
    capsys.readouterr()
    assert main([*command, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "(2 done, 2 partial, 0 new)" in out
    assert re.search(rf"^{re.escape(NAMES[0])} +partial", out, re.MULTILINE)
    caplog.clear()
    assert main(command) == 1  # the damaged run fails, the other one finishes
    assert f"FAILED {NAMES[1]}" in caplog.text and f"finished {NAMES[0]}" in caplog.text
    assert "cannot read checkpoint" in (root / NAMES[1] / "sweep.log").read_text()
    assert "running only that evaluation" in (root / NAMES[0] / "train.log").read_text()
    assert (root / NAMES[0] / "results.json").is_file()
    after = _mtimes(root)
    for name in NAMES[2:]:  # the finished runs were not started again
        assert after[name] == before[name]
        assert (root / name / "sweep.log").read_text().count("# ") == 1

    # Other settings for the same folders: named, and nothing starts.
    changed = [*command, "optim.lr=0.01"]
    capsys.readouterr()
    assert main(changed) == 1
    assert "(0 done, 1 partial, 0 new, 3 changed)" in capsys.readouterr().out
    assert "optim.lr: 0.001 -> 0.01" in caplog.text and _mtimes(root) == after


@pytest.mark.usefixtures("one_thread")
def test_submitit_local_executor_sweep(tmp_path, capsys):
    root = tmp_path / "sweep"
    runs = plan(DIGITS, [*GRID, *FIXED], root)
    options = SlurmOptions(time_min=10, gpus_per_run=0, cpus_per_run=1)
    assert submit(DIGITS, runs, root, options, cluster="local", wait=True) == 0
    assert [run_status(run) for run in runs] == ["done"] * 4
    assert (root / ".submitit").is_dir()
    # A finished sweep submits nothing.
    assert main(["--config", str(DIGITS), "--out", str(root), "--executor", "slurm", *GRID, *FIXED]) == 0
    assert "(4 done, 0 partial, 0 new)" in capsys.readouterr().out
