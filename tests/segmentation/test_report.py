"""``segloss report``: mIoU mean ± std over seeds per (dataset, encoder, loss); held-out-class runs
apart, classification runs skipped, duplicate seeds flagged, averages over complete rows only."""

import csv
import json
import logging
import shutil

import numpy as np
import pytest
import yaml
from PIL import Image

from segloss.segmentation.report import find_runs, main, markdown_table, summarise

# (dataset, encoder, loss, seed) -> mIoU
RUNS = {
    ("camvid", "resnet34", "ce", 0): 0.60,
    ("camvid", "resnet34", "ce", 1): 0.62,
    ("camvid", "resnet34", "ce", 2): 0.64,
    ("camvid", "resnet34", "hem+", 0): 0.61,
    ("camvid", "resnet34", "hem+", 1): 0.65,
    ("sbd", "densenet201", "hem+", 0): 0.70,
}


def write_run(folder, dataset, encoder, loss, seed, miou, holdout_classes=()):
    folder.mkdir(parents=True)
    config = {"task": "segmentation", "data": {"name": dataset, "holdout_classes": list(holdout_classes)},
              "model": {"encoder": encoder}, "loss": {"name": loss}, "train": {"seed": seed}}  # fmt: skip
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    if miou is not None:
        (folder / "results.json").write_text(
            json.dumps({"miou": miou, "pixel_accuracy": 0.9, "per_class": []})
        )


@pytest.fixture
def runs_dir(tmp_path):
    for (dataset, encoder, loss, seed), miou in RUNS.items():
        write_run(
            tmp_path / "runs" / dataset / encoder / loss / f"seed{seed}", dataset, encoder, loss, seed, miou
        )
    write_run(tmp_path / "runs" / "unfinished", "camvid", "resnet34", "ce", 9, None)
    return tmp_path / "runs"


def test_summary_by_hand(runs_dir):
    runs = find_runs([runs_dir])
    assert len(runs) == 6  # the unfinished run is skipped
    by_condition = {(c.dataset, c.encoder, c.loss): c for c in summarise(runs)}
    ce = by_condition[("camvid", "resnet34", "ce")]
    assert ce.seeds == (0, 1, 2)
    assert ce.mean == pytest.approx(62.0) and ce.std == pytest.approx(2.0)  # sample std of 60, 62, 64
    hem = by_condition[("camvid", "resnet34", "hem+")]
    assert hem.mean == pytest.approx(63.0) and hem.std == pytest.approx(np.std([61, 65], ddof=1))
    single = by_condition[("sbd", "densenet201", "hem+")]
    assert single.mean == pytest.approx(70.0) and np.isnan(single.std)


def test_report_files(runs_dir, tmp_path, capsys):
    out = tmp_path / "out" / "report"
    assert main([str(runs_dir), "--out", str(out)]) == 0
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert "| dataset | encoder | ce | hem+ |" in markdown
    assert "| camvid | resnet34 | 62.00 ± 2.00 (3) | 63.00 ± 2.83 (2) |" in markdown
    assert "| sbd | densenet201 | — | 70.00 (1) |" in markdown
    # only camvid/resnet34 has every loss: sbd/densenet201 (hem+ alone) would favour hem+
    assert "| average | | 62.00 | **63.00** |" in markdown
    assert (
        "The average is over the rows with every loss (1 of 2); left out: sbd / densenet201 (no ce)."
        in markdown
    )
    assert markdown.split("\n\n", 1)[1] in capsys.readouterr().out
    with open(tmp_path / "out" / "report.csv") as file:
        rows = list(csv.DictReader(file))
    assert rows[0] == {
        "dataset": "camvid",
        "encoder": "resnet34",
        "loss": "ce",
        "runs": "3",
        "seeds": "0 1 2",
        "miou_mean": "62.0000",
        "miou_std": "2.0000",
    }
    assert [(r["dataset"], r["loss"], r["miou_std"]) for r in rows[1:]] == [
        ("camvid", "hem+", "2.8284"),
        ("sbd", "hem+", ""),
    ]
    with Image.open(tmp_path / "out" / "report.png") as chart:
        assert chart.size[0] > 300 and chart.size[1] > 200


def test_report_errors(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main([str(tmp_path / "missing")])
    assert "run folder not found" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit):
        main([str(tmp_path / "empty")])
    assert "no finished runs" in capsys.readouterr().err


def test_classification_runs_are_skipped_with_a_note(runs_dir, caplog):
    folder = runs_dir / "cls" / "digits" / "mlp" / "ce" / "seed0"
    folder.mkdir(parents=True)
    config = {"task": "classification", "data": {"name": "digits"}, "model": {"arch": "mlp"},
              "loss": {"name": "ce"}, "train": {"seed": 0}}  # fmt: skip
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    (folder / "results.json").write_text(json.dumps({"accuracy": 0.95, "num_test": 450}))
    with caplog.at_level(logging.INFO, logger="segloss.segmentation.report"):
        runs = find_runs([runs_dir])
    assert sorted((run.dataset, run.loss, run.seed) for run in runs) == sorted(
        (dataset, loss, seed) for dataset, _, loss, seed in RUNS
    )
    assert f"skipping {folder}: a classification run" in caplog.text


def test_held_out_class_runs_form_their_own_condition(runs_dir):
    for seed, miou in ((0, 0.30), (1, 0.40)):
        write_run(
            runs_dir / "camvid_without_car" / f"seed{seed}", "camvid", "resnet34", "ce", seed, miou, ["car"]
        )
    conditions = {(c.dataset, c.encoder, c.loss): c for c in summarise(find_runs([runs_dir]))}
    assert conditions[("camvid", "resnet34", "ce")].mean == pytest.approx(62.0)  # unchanged
    held_out = conditions[("camvid without car", "resnet34", "ce")]
    assert held_out.seeds == (0, 1) and held_out.mean == pytest.approx(35.0)


def test_duplicate_seeds_are_flagged(runs_dir, caplog):
    original = runs_dir / "camvid" / "resnet34" / "ce" / "seed1"
    shutil.copytree(original, runs_dir / "copy")
    with caplog.at_level(logging.WARNING, logger="segloss.segmentation.report"):
        conditions = summarise(find_runs([runs_dir]))
    ce = next(c for c in conditions if (c.dataset, c.loss) == ("camvid", "ce"))
    assert ce.seeds == (0, 1, 1, 2) and ce.mean == pytest.approx(62.0)  # 60, 62, 62, 64
    assert "camvid / resnet34 / ce has seed 1 2 times" in caplog.text
    assert str(original) in caplog.text and str(runs_dir / "copy") in caplog.text


def test_average_row_needs_a_row_with_every_loss(runs_dir):
    runs = [run for run in find_runs([runs_dir]) if run.loss == "hem+" or run.dataset == "sbd"]
    runs += [run for run in find_runs([runs_dir]) if (run.dataset, run.loss) == ("camvid", "ce")]
    # camvid has ce and hem+, sbd only hem+: 1 complete row
    assert "| average | | 62.00 | **63.00** |" in markdown_table(summarise(runs))
    no_complete_row = markdown_table(
        summarise([run for run in runs if run.dataset == "sbd" or run.loss == "ce"])
    )
    assert "| average | | — | — |" in no_complete_row
    assert "(0 of 2); left out: camvid / resnet34 (no hem+); sbd / densenet201 (no ce)." in no_complete_row
