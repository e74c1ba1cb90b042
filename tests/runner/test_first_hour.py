"""What the README tells a newcomer to run, as written: resume a run by its folder with overrides
anywhere, evaluate a run folder, and commands that write nothing into the current folder unasked."""

import json

import pytest

from segloss.runner.cli import evaluate_main, train_main
from segloss.segmentation.data.stats import main as stats_main

from ..helpers import tiny_overrides

pytestmark = pytest.mark.usefixtures("one_thread")


def test_resume_a_run_by_its_folder_with_overrides_anywhere(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SEGLOSS_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "runs" / "tiny"
    assert train_main([*tiny_overrides(run, train__epochs=1, model__encoder_weights="null"), "--config", "demo"]) == 0
    # the forms a newcomer tries: --resume RUN, --resume with the folder as an override, overrides after it
    assert train_main(["--resume", str(run), "train.epochs=2"]) == 0
    assert [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    assert train_main(["--resume", f"train.out_dir={run}", "train.epochs=3"]) == 0
    assert train_main([f"train.out_dir={run}", "--resume", "train.epochs=4", "train.progress=false"]) == 0
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 4
    with pytest.raises(SystemExit):
        train_main(["--resume", str(tmp_path / "nowhere")])
    assert "no config.yaml in" in capsys.readouterr().err

    # evaluate takes the run folder, as export and predict do; the checkpoint path still works
    capsys.readouterr()
    assert evaluate_main([str(run), "--no-progress", "--split", "val"]) == 0
    by_folder = capsys.readouterr().out
    assert evaluate_main(["--checkpoint", str(run / "checkpoint.pt"), "--no-progress"]) == 0
    assert "mIoU" in by_folder and by_folder.splitlines()[-1] == capsys.readouterr().out.splitlines()[-1]
    with pytest.raises(SystemExit):
        evaluate_main(["--no-progress"])
    assert "segloss evaluate RUN" in capsys.readouterr().err

    # stats and report print; they write files only with --out
    before = set(tmp_path.iterdir())
    assert stats_main(["--dataset", "synthetic", "--num-samples", "4", "--size", "32", "--no-progress"]) == 0
    from segloss.runner.report import main as report_main

    assert report_main([str(run)]) == 0
    assert set(tmp_path.iterdir()) == before
