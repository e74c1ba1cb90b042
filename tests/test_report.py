"""``python -m segloss.report``: mIoU mean ± std over seeds per (dataset, encoder, loss)."""

import csv
import json

import numpy as np
import pytest
import yaml
from PIL import Image

from segloss.report import find_runs, main, summarise

# (dataset, encoder, loss, seed) -> mIoU
RUNS = {
    ("camvid", "resnet34", "ce", 0): 0.60,
    ("camvid", "resnet34", "ce", 1): 0.62,
    ("camvid", "resnet34", "ce", 2): 0.64,
    ("camvid", "resnet34", "hem+", 0): 0.61,
    ("camvid", "resnet34", "hem+", 1): 0.65,
    ("sbd", "densenet201", "hem+", 0): 0.70,
}


def write_run(folder, dataset, encoder, loss, seed, miou):
    folder.mkdir(parents=True)
    config = {"task": "segmentation", "data": {"name": dataset}, "model": {"encoder": encoder},
              "loss": {"name": loss}, "train": {"seed": seed}}  # fmt: skip
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
    assert "| average | | 62.00 | **66.50** |" in markdown  # hem+: mean of 63 and 70
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
