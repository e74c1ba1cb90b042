"""``segloss sweep`` over continual runs (run folders, statuses in experiences) and ``segloss report`` on
them: grouped by what varies, mean ± sd over seeds; the report of a folder picks its runs' task."""

import json
import re

import pytest
import yaml

from segloss.runner import report as runner_report
from segloss.runner.checkpoint import load_checkpoint, save_checkpoint
from segloss.runner.config import find_config
from segloss.runner.executors import train_config
from segloss.runner.sweep import main as sweep_main
from segloss.runner.sweep import plan, run_status

from ..helpers import run_cli

pytestmark = pytest.mark.usefixtures("one_thread")

GRID = ["loss.name=ce,hem", "strategy.name=replay", "train.seed=0,1"]
FIXED = ["data.experiences=2", "train.epochs=1", "train.batch_size=64"]


def test_sweep_folders_statuses_and_report(tmp_path, capsys):
    root = tmp_path / "sweep"
    runs = plan(find_config("cl_digits"), [*GRID, *FIXED], root)
    assert [run.name for run in runs] == [
        "name=ce,seed=0",
        "name=ce,seed=1",
        "name=hem,seed=0",
        "name=hem,seed=1",
    ]
    assert [run_status(run) for run in runs] == ["new"] * 4
    for run in runs:  # what a sweep's workers run, in this process
        train_config(run.config)
    assert [run_status(run) for run in runs] == ["done"] * 4
    capsys.readouterr()
    assert sweep_main(["--config", "cl_digits", "--out", str(root), *GRID, *FIXED]) == 0  # nothing to do
    assert "(4 done, 0 partial, 0 new)" in capsys.readouterr().out

    # A checkpoint after the first of two experiences is a partial run.
    checkpoint = runs[0].run_dir / "checkpoint.pt"
    state = load_checkpoint(checkpoint)
    save_checkpoint({**state, "epoch": 1, "accuracy_matrix": state["accuracy_matrix"][:1]}, checkpoint)
    assert run_status(runs[0]) == "partial"

    # The report, through the installed command (the folder holds continual runs only).
    result = run_cli(["report", str(root), "--out", str(tmp_path / "cl_report")], tmp_path)
    assert result.returncode == 0, result.stderr
    lines = (tmp_path / "cl_report.md").read_text().splitlines()
    assert "Varying: loss.name." in lines[2]
    rows = [line for line in lines if line.startswith("| ce") or line.startswith("| hem")]
    assert [row.split(" | ")[:3] for row in rows[:2]] == [["| ce", "2", "0 1"], ["| hem", "2", "0 1"]]
    results = [json.loads((run.run_dir / "results.json").read_text()) for run in runs]
    accuracy = [100 * r["average_accuracy"] for r in results]  # ce 0, ce 1, hem 0, hem 1
    assert rows[1].split(" | ")[3].startswith(f"{(accuracy[2] + accuracy[3]) / 2:.1f} ± ")
    # The paired difference to CE, by seed.
    differences = [accuracy[2] - accuracy[0], accuracy[3] - accuracy[1]]
    assert rows[2].split(" | ")[1].startswith(f"{sum(differences) / 2:+.1f} ± ")
    assert re.search(r"\(2, p (\d\.\d{3}|n/a)\)$", rows[2].split(" | ")[1])
    csv_text = (tmp_path / "cl_report.csv").read_text()
    assert csv_text.startswith("loss.name,runs,seeds,average_accuracy_mean")
    assert "average_accuracy_diff_mean" in csv_text.splitlines()[0]


def test_report_picks_the_task_of_the_runs(tmp_path, capsys):
    def fake_run(folder, task):
        folder.mkdir(parents=True)
        (folder / "config.yaml").write_text(yaml.safe_dump({"task": task}))
        (folder / "results.json").write_text("{}")

    assert runner_report.report_task([tmp_path]) == "segmentation"  # no runs: the default task's report
    fake_run(tmp_path / "cl", "continual")
    assert runner_report.report_task([tmp_path]) == "continual"
    fake_run(tmp_path / "seg", "segmentation")
    with pytest.raises(ValueError, match=r"several tasks \(continual, segmentation\).*--task"):
        runner_report.report_task([tmp_path])
    # --task decides; the continual report skips the other runs (and this one without metrics).
    with pytest.raises(SystemExit):
        runner_report.main(["--task", "continual", str(tmp_path), "--out", str(tmp_path / "r")])
    assert "no finished continual runs" in capsys.readouterr().err
