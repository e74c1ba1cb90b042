"""``segloss report``: runs grouped by every varying key but the seed and bookkeeping, mean ± sd
over seeds, the paired difference to CE with a paired t-test, the rarest classes' IoU; held-out-class runs
apart, classification runs skipped, duplicate seeds flagged."""

import csv
import json
import logging
import math
import shutil

import numpy as np
import pytest
import yaml
from PIL import Image

from segloss.runner import report as engine
from segloss.runner.checkpoint import save_checkpoint
from segloss.runner.report import main
from segloss.segmentation.report import MIOU, REPORT, rare_classes


def find_runs(folders, results="results.json"):
    return engine.find_runs(folders, "segmentation", REPORT.read, results)


def summarise(runs):
    return engine.summarise(runs, [MIOU])


def markdown(summary):
    return engine.markdown(summary, REPORT.columns([]), digits=REPORT.digits, one_table=REPORT.one_table)


# (dataset, encoder, loss, seed) -> mIoU
RUNS = {
    ("camvid", "resnet34", "ce", 0): 0.60,
    ("camvid", "resnet34", "ce", 1): 0.62,
    ("camvid", "resnet34", "ce", 2): 0.64,
    ("camvid", "resnet34", "hem+", 0): 0.61,
    ("camvid", "resnet34", "hem+", 1): 0.65,
    ("sbd", "densenet201", "hem+", 0): 0.70,
}
CLASSES = ("road", "car", "sign", "pole")


def write_run(folder, dataset, encoder, loss, seed, miou, holdout_classes=(), **loss_options):
    """A run folder as train.py leaves it: the full config (its own out_dir and device) and results whose
    per-class IoU is ``miou`` scaled by 1, 0.5, 0.2 and 0.1."""
    folder.mkdir(parents=True)
    config = {"task": "segmentation", "data": {"name": dataset, "holdout_classes": list(holdout_classes)},
              "model": {"encoder": encoder}, "loss": {"name": loss, "M": 2000.0, **loss_options},
              "train": {"seed": seed, "out_dir": str(folder), "device": f"cuda:{seed}"}}  # fmt: skip
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    if miou is not None:
        per_class = [{"class": c, "iou": miou * s} for c, s in zip(CLASSES, (1, 0.5, 0.2, 0.1), strict=True)]
        (folder / "results.json").write_text(
            json.dumps({"miou": miou, "pixel_accuracy": 0.9, "per_class": per_class})
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
    report = summarise(runs)
    assert report.varying == ("data.name", "model.encoder", "loss.name")  # not the seed, out_dir or device
    groups = {group.key: group for group in report.groups}
    ce = groups[(("data.name", "camvid"), ("model.encoder", "resnet34"), ("loss.name", "ce"))]
    assert ce.seeds == (0, 1, 2) and ce.comparisons.get(MIOU) is None  # the baseline
    assert ce.mean(MIOU) == pytest.approx(62.0) and ce.std(MIOU) == pytest.approx(
        2.0
    )  # sample std of 60, 62, 64
    hem = groups[(("data.name", "camvid"), ("model.encoder", "resnet34"), ("loss.name", "hem+"))]
    assert hem.mean(MIOU) == pytest.approx(63.0) and hem.std(MIOU) == pytest.approx(np.std([61, 65], ddof=1))
    # Paired with CE by seed: 61 - 60 and 65 - 62. t = 2 / (sqrt(2) / sqrt(2)) = 2 with 1 degree of freedom
    # (a Cauchy distribution): p = 1 - 2 atan(2) / pi.
    assert hem.comparisons[MIOU].seeds == (0, 1) and hem.comparisons[MIOU].differences == pytest.approx(
        (1.0, 3.0)
    )
    assert hem.comparisons[MIOU].mean == pytest.approx(2.0) and hem.comparisons[MIOU].std == pytest.approx(
        math.sqrt(2)
    )
    assert hem.comparisons[MIOU].p_value == pytest.approx(1 - 2 * math.atan(2) / math.pi)
    single = groups[(("data.name", "sbd"), ("model.encoder", "densenet201"), ("loss.name", "hem+"))]
    assert single.mean(MIOU) == pytest.approx(70.0) and np.isnan(single.std(MIOU))
    assert single.comparisons[MIOU].note == "no ce" and not single.comparisons[MIOU].seeds


def test_report_files(runs_dir, tmp_path, capsys):
    out = tmp_path / "out" / "report"
    assert main([str(runs_dir), "--out", str(out), "--rare", "2"]) == 0
    text = (tmp_path / "out" / "report.md").read_text()
    assert (
        "| data.name | encoder | loss.name | n | mIoU % (mean ± sd) | Δ vs ce (paired) | pairs | p |" in text
    )
    assert "| camvid | resnet34 | ce | 3 | 62.00 ± 2.00 | baseline |  |  |" in text
    assert "| camvid | resnet34 | hem+ | 2 | 63.00 ± 2.83 | +2.00 ± 1.41 | 2 | 0.295 |" in text
    assert "| sbd | densenet201 | hem+ | 1 | 70.00 | no ce | 0 | n/a |" in text
    # No run stored class counts: the rarest classes are those with the lowest IoU under CE.
    assert "## Rarest classes of camvid" in text and "lowest mean IoU under ce" in text
    assert "| data.name | encoder | loss.name | mean of the 2 | pole | sign |" in text
    assert "| camvid | resnet34 | ce | 9.30 ± 0.30 | 6.20 ± 0.20 | 12.40 ± 0.40 |" in text
    assert text in capsys.readouterr().out
    with open(tmp_path / "out" / "report.csv") as file:
        rows = list(csv.DictReader(file))
    assert rows[1] == {
        "data.name": "camvid",
        "model.encoder": "resnet34",
        "loss.name": "hem+",
        "runs": "2",
        "seeds": "0 1",
        "miou_mean": "63.0000",
        "miou_std": "2.8284",
        "miou_diff_mean": "2.0000",
        "miou_diff_std": "1.4142",
        "miou_diff_pairs": "2",
        "miou_diff_p": "0.2952",
        "iou_rare": "9.4500",
        "iou_pole": "6.3000",
        "iou_sign": "12.6000",
    }
    assert [(r["data.name"], r["loss.name"], r["miou_std"], r["miou_diff_pairs"]) for r in rows[::2]] == [
        ("camvid", "ce", "2.0000", ""),
        ("sbd", "hem+", "", ""),
    ]
    with Image.open(tmp_path / "out" / "report.png") as chart:
        assert chart.size[0] > 300 and chart.size[1] > 200


def test_rarest_classes_by_training_share_and_loss_option_pairing(tmp_path):
    """HEM+ swept over M against one CE group: CE ignores loss.M, so both HEM+ groups pair with it. A run's
    stored class counts rank the classes by training share (not by IoU)."""
    for seed, miou in ((0, 0.50), (1, 0.52)):
        write_run(tmp_path / f"ce{seed}", "camvid", "resnet34", "ce", seed, miou)
        for M, gain in ((100.0, 0.01), (500.0, 0.03)):
            folder = tmp_path / f"hem{M:g}_{seed}"
            write_run(folder, "camvid", "resnet34", "hem+", seed, miou + gain + seed / 100, M=M)
    counts = [700.0, 200.0, 30.0, 70.0]  # sign rarer than pole
    save_checkpoint(
        {"classes": list(CLASSES), "class_counts": counts}, tmp_path / "hem100_0" / "checkpoint.pt"
    )
    runs = find_runs([tmp_path])
    report = summarise(runs)
    assert report.varying == ("loss.name", "loss.M")
    ce, hem100, hem500 = report.groups
    assert ce.key == (("loss.name", "ce"), ("loss.M", None))  # shown as "—"
    assert hem100.comparisons[MIOU].differences == pytest.approx((1.0, 2.0))
    assert hem500.comparisons[MIOU].differences == pytest.approx((3.0, 4.0))
    (rare,) = rare_classes(runs, "ce", 2)
    assert rare.classes == ("sign", "pole") and "sign 3.00 %, pole 7.00 %" in rare.basis
    # 51 and 54 against 50 and 52: t = 1.5 / (sqrt(0.5) / sqrt(2)) = 3, p = 1 - 2 atan(3) / pi.
    assert "| hem+ | 100.0 | 2 | 52.50 ± 2.12 | +1.50 ± 0.71 | 2 | 0.205 |" in markdown(report)


def test_report_errors(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main([str(tmp_path / "missing")])
    assert "run folder not found" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit):
        main([str(tmp_path / "empty")])
    assert "no finished segmentation runs" in capsys.readouterr().err


def test_classification_runs_are_skipped_with_a_note(runs_dir, caplog):
    folder = runs_dir / "cls" / "digits" / "mlp" / "ce" / "seed0"
    folder.mkdir(parents=True)
    config = {"task": "classification", "data": {"name": "digits"}, "model": {"arch": "mlp"},
              "loss": {"name": "ce"}, "train": {"seed": 0}}  # fmt: skip
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    (folder / "results.json").write_text(json.dumps({"accuracy": 0.95, "num_test": 450}))
    with caplog.at_level(logging.INFO, logger="segloss.runner.grouping"):
        runs = find_runs([runs_dir])
    assert sorted((run.settings["data.name"], run.settings["loss.name"], run.seed) for run in runs) == sorted(
        (dataset, loss, seed) for dataset, _, loss, seed in RUNS
    )
    assert f"skipping {folder}: a classification run" in caplog.text


def test_held_out_class_runs_form_their_own_group(runs_dir):
    for seed, miou in ((0, 0.30), (1, 0.40)):
        write_run(
            runs_dir / "camvid_without_car" / f"seed{seed}", "camvid", "resnet34", "ce", seed, miou, ["car"]
        )
    runs = find_runs([runs_dir])
    datasets = {(run.settings["data.name"], run.settings["data.holdout_classes"]) for run in runs}
    assert datasets == {("camvid", ()), ("camvid", ("car",)), ("sbd", ())}
    groups = {
        (group.value("data.name"), group.value("data.holdout_classes"), group.value("loss.name")): group
        for group in summarise(runs).groups
    }
    assert groups[("camvid", (), "ce")].mean(MIOU) == pytest.approx(62.0)  # unchanged
    held_out = groups[("camvid", ("car",), "ce")]
    assert held_out.seeds == (0, 1) and held_out.mean(MIOU) == pytest.approx(35.0)
    # HEM+ is paired with the CE runs that trained on every class.
    assert groups[("camvid", (), "hem+")].comparisons[MIOU].differences == pytest.approx((1.0, 3.0))


def test_duplicate_seeds_are_flagged(runs_dir, caplog):
    original = runs_dir / "camvid" / "resnet34" / "ce" / "seed1"
    shutil.copytree(original, runs_dir / "copy")
    with caplog.at_level(logging.WARNING, logger="segloss.runner.grouping"):
        report = summarise(find_runs([runs_dir]))
    ce = next(g for g in report.groups if (g.value("data.name"), g.value("loss.name")) == ("camvid", "ce"))
    assert ce.seeds == (0, 1, 2) and ce.mean(MIOU) == pytest.approx(62.0)  # 60, 62, 64: a seed counts once
    assert "data.name=camvid, model.encoder=resnet34, loss.name=ce has seed 1 2 times" in caplog.text
    assert str(original) in caplog.text and str(runs_dir / "copy") in caplog.text
    hem = next(g for g in report.groups if (g.value("data.name"), g.value("loss.name")) == ("camvid", "hem+"))
    assert hem.comparisons[MIOU].seeds == (0, 1)


def test_configs_are_read_through_the_current_schema(tmp_path):
    # an older config without the HEM options reads with today's defaults (margin on the target), and CE
    # runs whose unused count unit differs: one CE group, one HEM+ group
    write_run(tmp_path / "ce0", "synthetic", "resnet34", "ce", 0, 0.5, count_unit="pixels")
    write_run(tmp_path / "ce1", "synthetic", "resnet34", "ce", 1, 0.6, count_unit="images")
    write_run(tmp_path / "hem0", "synthetic", "resnet34", "hem+", 0, 0.7, count_unit="images")
    write_run(
        tmp_path / "hem1", "synthetic", "resnet34", "hem+", 1, 0.8, count_unit="images", margin_on="target"
    )
    report = summarise(find_runs([tmp_path]))
    assert report.varying == ("loss.name",)  # not loss.M (one value), count_unit or margin_on
    ce, hem_plus = report.groups
    assert ce.key == (("loss.name", "ce"),) and ce.seeds == (0, 1)
    assert hem_plus.key == (("loss.name", "hem+"),) and hem_plus.seeds == (0, 1)
    assert hem_plus.comparisons[MIOU].differences == pytest.approx((20.0, 20.0))
    assert "| ce | 2 |" in markdown(report)


def test_results_file_can_be_chosen(tmp_path):
    write_run(tmp_path / "run", "synthetic", "resnet34", "ce", 0, 0.5)
    (tmp_path / "run" / "test.json").write_text(json.dumps({"miou": 0.25, "per_class": []}))
    (run,) = find_runs([tmp_path], "test.json")
    assert run.values[MIOU] == 25.0
    with pytest.raises(SystemExit, match="2"):  # no run has the file: a usage error naming it
        main([str(tmp_path), "--results", "missing.json", "--out", str(tmp_path / "r")])


def test_the_committed_camvid_study_still_reports(tmp_path):
    """Every run committed under studies/camvid reads through today's config schema and reports, on val
    and on test, in one group per setting; a run repeated with the same settings and seed (the loss
    screen's CE seeds repeat the CE screen's chosen recipe) counts once."""
    from ..helpers import REPO

    study = REPO / "studies" / "camvid"
    committed = sorted(path.parent for path in study.rglob("config.yaml"))
    assert committed, "no committed study runs"
    for results in ("results.json", "test.json"):
        runs = find_runs([study], results)
        assert sorted(run.path for run in runs) == committed
        report = summarise(runs)
        distinct = {(tuple(run.settings.get(key) for key in report.varying), run.seed) for run in runs}
        assert sum(len(group.runs) for group in report.groups) == len(distinct) >= len(committed) - 2
        assert all(0 < run.values[MIOU] < 100 for run in runs)
    assert main([str(study), "--results", "test.json", "--out", str(tmp_path / "study")]) == 0
    assert (tmp_path / "study.md").read_text().startswith("# mIoU by what varies")


def test_rarest_classes_from_the_training_pixels_a_results_file_records(tmp_path):
    """Every segmentation run records its training pixels per class in results.json (and evaluate in
    test.json): no checkpoint is needed to rank the classes."""
    for seed in (0, 1):
        write_run(tmp_path / f"ce{seed}", "camvid", "resnet34", "ce", seed, 0.5)
    results = json.loads((tmp_path / "ce0" / "results.json").read_text())
    pixels = dict(zip(CLASSES, (700, 200, 30, 70), strict=True))
    (tmp_path / "ce0" / "results.json").write_text(json.dumps({**results, "train_pixels": pixels}))
    (rare,) = rare_classes(find_runs([tmp_path]), "ce", 2)
    assert rare.classes == ("sign", "pole") and "sign 3.00 %" in rare.basis


def test_an_undefined_miou_is_left_out_and_the_cell_says_so(tmp_path):
    """A run whose mIoU is undefined (``null``: no class had pixels) is left out of its group's mean and of
    the pairs, and the cell says how many runs the mean is over, instead of failing the report."""
    for seed in (0, 1):
        write_run(tmp_path / f"ce{seed}", "camvid", "resnet34", "ce", seed, 0.4 + 0.1 * seed)
        write_run(tmp_path / f"hem{seed}", "camvid", "resnet34", "hem+", seed, 0.5)
    results = tmp_path / "hem1" / "results.json"
    results.write_text(json.dumps({**json.loads(results.read_text()), "miou": None}))
    report = summarise(find_runs([tmp_path]))
    hem = next(group for group in report.groups if group.value("loss.name") == "hem+")
    assert hem.mean(MIOU) == pytest.approx(50.0) and math.isnan(hem.std(MIOU))
    assert hem.comparisons[MIOU].seeds == (0,) and hem.comparisons[MIOU].differences == pytest.approx((10.0,))
    assert "| hem+ | 2 | 50.00 (1 runs) | +10.00 | 1 | n/a |" in markdown(report)


def write_two_datasets(folder, found=None):
    """CamVid (ResNet34) and SBD (DenseNet201) runs of CE and HEM+ whose results record training pixels:
    sign 3 %, pole 7 %."""
    found = found or {
        ("camvid", "resnet34", "ce"): (0.60, 0.62),
        ("camvid", "resnet34", "hem+"): (0.61, 0.65),
        ("sbd", "densenet201", "ce"): (0.70, 0.74),
        ("sbd", "densenet201", "hem+"): (0.71,),
    }
    pixels = dict(zip(CLASSES, (700, 200, 30, 70), strict=True))
    for (dataset, encoder, loss), values in found.items():
        for seed, miou in enumerate(values):
            run = folder / f"{dataset}-{loss}-s{seed}"
            write_run(run, dataset, encoder, loss, seed, miou)
            results = json.loads((run / "results.json").read_text())
            (run / "results.json").write_text(json.dumps({**results, "train_pixels": pixels}))
    return folder


def test_datasets_side_by_side_by_hand(tmp_path, capsys):
    """``--by-dataset``: a row per loss, per dataset its mIoU, the paired Δ against CE and the mean IoU of the
    classes under ``--rare-below`` % of the training pixels; the encoder, constant within each dataset, is
    that dataset's recipe under the table, not a row of its own."""
    runs = write_two_datasets(tmp_path / "runs")
    out = tmp_path / "both"
    assert main([str(runs), "--by-dataset", "--rare-below", "5", "--out", str(out)]) == 0
    text = out.with_suffix(".md").read_text()
    # sign's IoU is 0.2 of the run's mIoU; hem+ against ce on camvid: +1 and +3 (p = 1 - 2 atan(2) / pi)
    assert (
        "| name | camvid mIoU % (n) | camvid Δ vs ce | camvid rare IoU % "
        "| sbd mIoU % (n) | sbd Δ vs ce | sbd rare IoU % |\n"
        "|---|---|---|---|---|---|---|\n"
        "| ce | 61.00 ± 1.41 (2) | baseline | 12.20 ± 0.28 | 72.00 ± 2.83 (2) | baseline | 14.40 ± 0.57 |\n"
        "| hem+ | 63.00 ± 2.83 (2) | +2.00 ± 1.41 (2), p 0.295 | 12.60 ± 0.57 "
        "| 71.00 (1) | +1.00 (1) | 14.20 |\n"
    ) in text
    rare = "rare: training pixel share under 5 %: sign 3.00 %"
    assert f"- camvid: encoder resnet34; {rare}\n- sbd: encoder densenet201; {rare}\n" in text
    assert out.with_suffix(".png").stat().st_size > 0
    capsys.readouterr()
    assert main([str(runs), "--rare", "2"]) == 0
    assert "side by side" not in capsys.readouterr().out  # only with --by-dataset


def test_side_by_side_without_a_loss_to_compare_and_without_rare_classes(tmp_path, capsys):
    """Only CE: no Δ column (no group is a "baseline" of anything); a run with an undefined mIoU is left out
    of the mean and of n; a threshold below every class leaves no rare class, and the report says so."""
    found = {("camvid", "resnet34", "ce"): (0.60, 0.62), ("sbd", "densenet201", "ce"): (0.70, 0.74)}
    runs = write_two_datasets(tmp_path / "runs", found)
    results = runs / "sbd-ce-s1" / "results.json"
    results.write_text(json.dumps({**json.loads(results.read_text()), "miou": None}))
    assert main([str(runs), "--by-dataset", "--rare-below", "1"]) == 0
    text = capsys.readouterr().out
    assert (
        "| runs | camvid mIoU % (n) | camvid rare IoU % | sbd mIoU % (n) | sbd rare IoU % |\n"
        "|---|---|---|---|---|\n"
        "| all | 61.00 ± 1.41 (2) | — | 70.00 (1) | — |\n"
    ) in text
    assert "## Rarest classes of camvid: none" in text and "Δ" not in text
