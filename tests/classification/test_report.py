"""``segloss report`` on classification runs: accuracy, mean AUROC, robust accuracy and DAR per group,
mean ± sd over seeds and paired against CE, checked by hand on results files written in the real layout."""

import csv
import json
import math
from pathlib import Path

import pytest
import yaml

from segloss.classification.report import metric_titles, read_metrics
from segloss.runner import report as runner_report
from segloss.runner.report import ReportRun, markdown, summarise

from ..helpers import run_cli


def write_run(root, arch, loss, seed, accuracy, auroc_msp, robust_linf):
    folder = root / arch / loss / f"seed{seed}"
    folder.mkdir(parents=True)
    config = {"task": "classification", "data": {"name": "mnist"}, "model": {"arch": arch},
              "loss": {"name": loss}, "train": {"seed": seed}}  # fmt: skip
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    results = {
        "accuracy": accuracy,
        "num_test": 10000,
        "unknown": {
            "per_set": {"kmnist": {"msp": auroc_msp, "mls": 0.5}},
            "mean": {"msp": auroc_msp, "mls": 0.5},
        },
        "attacks": [
            {
                "norm": "Linf",
                "eps": 0.3,
                "num_samples": 200,
                "clean_accuracy": accuracy,
                "robust_accuracy": robust_linf,
                "dar": {"msp": 0.1, "mls": 0.2},
            },
        ],  # fmt: skip
        "corruptions": None,
    }
    (folder / "results.json").write_text(json.dumps(results))


@pytest.fixture
def runs_dir(tmp_path):
    root = tmp_path / "runs"
    for seed, (ce, hem) in enumerate([((0.99, 0.90, 0.00), (0.98, 0.95, 0.02)),
                                      ((0.97, 0.80, 0.00), (0.97, 0.90, 0.06))]):  # fmt: skip
        write_run(root, "lenet", "ce", seed, *ce)
        write_run(root, "lenet", "hem", seed, *hem)
    write_run(root, "mlp", "ce", 0, 0.95, 0.70, 0.0)
    return root


def test_metrics_of_a_results_file():
    results = {
        "accuracy": 0.5,
        "unknown": {"mean": {"msp": 0.75, "mls": 0.25}},
        "attacks": [{"norm": "L2", "eps": 2.0, "robust_accuracy": 0.1, "dar": {"msp": 0.2, "mls": 0.3}}],
        "corruptions": {"mean_accuracy": 0.4},
    }
    assert read_metrics(results) == pytest.approx(
        {
            "accuracy": 50,
            "auroc_msp": 75,
            "auroc_mls": 25,
            "robust_L2_2": 10,
            "dar_msp_L2_2": 20,
            "dar_mls_L2_2": 30,
            "corruption_accuracy": 40,
        }  # fmt: skip
    )
    assert read_metrics({"accuracy": 0.9, "num_test": 10}) == {"accuracy": pytest.approx(90)}
    # Columns: accuracy, AUROC, each attack's robust accuracy and DARs together, corruptions.
    runs = [ReportRun(Path("a"), {}, 0, {"corruption_accuracy": 1.0, "accuracy": 1.0}),
            ReportRun(Path("b"), {}, 1, read_metrics(results))]  # fmt: skip
    assert list(metric_titles(runs).values()) == [
        "accuracy %", "AUROC MSP %", "AUROC MLS %", "L2 2 robust %", "L2 2 DAR MSP %", "L2 2 DAR MLS %",
        "corruption accuracy %",
    ]  # fmt: skip
    with pytest.raises(KeyError):
        read_metrics({})


def test_report_by_hand(runs_dir, tmp_path):
    assert runner_report.report_task([runs_dir]) == "classification"
    result = run_cli(["report", str(runs_dir), "--out", str(tmp_path / "cls")], tmp_path)
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "cls.md").read_text()
    assert "Varying: model.arch, loss.name." in text
    header, _, *rows = [line for line in text.splitlines() if line.startswith("|")][:5]
    assert header.split(" | ")[4:] == ["accuracy %", "AUROC MSP %", "AUROC MLS %", "L∞ 0.3 robust %",
                                       "L∞ 0.3 DAR MSP %", "L∞ 0.3 DAR MLS % |"]  # fmt: skip
    cells = {tuple(row.split(" | ")[:2]): row.split(" | ") for row in rows}
    # lenet + ce: accuracy 99, 97 -> 98.0 ± 1.4; AUROC MSP 90, 80 -> 85.0 ± 7.1
    assert cells[("| lenet", "ce")][2:6] == ["2", "0 1", "98.0 ± 1.4", "85.0 ± 7.1"]
    assert cells[("| mlp", "ce")][2:5] == ["1", "0", "95.0"]
    # Paired by seed against lenet + ce: accuracy -1, 0; AUROC MSP +5, +10; L∞ robust +2, +6.
    delta = next(line for line in text.splitlines() if line.startswith("| lenet | hem") and "(2, p" in line)
    cells = delta.split(" | ")
    assert cells[2].startswith("-0.5 ± 0.7 (2, p ")
    assert cells[3].startswith("+7.5 ± 3.5 (2, p ")
    assert cells[5].startswith("+4.0 ± 2.8 (2, p ")
    with open(tmp_path / "cls.csv") as file:
        table = list(csv.DictReader(file))
    hem = next(row for row in table if row["loss.name"] == "hem")
    assert float(hem["auroc_msp_mean"]) == pytest.approx(92.5)
    assert float(hem["auroc_msp_diff_mean"]) == pytest.approx(7.5) and hem["auroc_msp_diff_pairs"] == "2"
    assert next(row for row in table if row["loss.name"] == "ce")["accuracy_diff_mean"] == ""


def run(loss, seed, **values):
    settings = {"model.arch": "lenet", "loss.name": loss, "train.seed": seed}
    return ReportRun(Path(f"/runs/{loss}{seed}"), settings, seed, values)


def test_missing_and_undefined_metrics():
    """A metric some runs lack (or NaN) is averaged over the runs that have it, which the cell says; a
    metric the CE group lacks is "not measured"; a group without a CE group says so."""
    runs = [
        run("ce", 0, accuracy=90.0, robust_Linf_0=1.0),
        run("ce", 1, accuracy=92.0),
        run("hem", 0, accuracy=91.0, robust_Linf_0=3.0, auroc_msp=80.0),
        run("hem", 1, accuracy=math.nan, robust_Linf_0=5.0, auroc_msp=70.0),
    ]
    metrics = {"accuracy": "acc", "robust_Linf_0": "robust", "auroc_msp": "auroc"}
    summary = summarise(runs, list(metrics))
    ce, hem = summary.groups
    assert hem.comparisons["accuracy"].differences == (1.0,)  # seed 1 is NaN for hem
    assert hem.comparisons["robust_Linf_0"].differences == (2.0,)  # CE measured seed 0 only
    assert hem.comparisons["auroc_msp"].note == "not measured"
    text = markdown(summary, metrics)
    assert "| ce | 2 | 0 1 | 91.0 ± 1.4 | 1.0 (1 runs) | — |" in text
    assert "| hem | 2 | 0 1 | 91.0 (1 runs) | 4.0 ± 1.4 | 75.0 ± 7.1 |" in text
    assert "| hem | +1.0 (1, p n/a) | +2.0 (1, p n/a) | not measured |" in text
    (group,) = summarise([run("hem", 0, accuracy=1.0)], ["accuracy"]).groups
    assert group.comparisons == {}  # the loss does not vary: nothing to compare
    runs = [run("hem", 0, accuracy=1.0), run("mm", 0, accuracy=2.0)]
    groups = summarise(runs, ["accuracy"]).groups
    assert [group.comparisons["accuracy"].note for group in groups] == ["no ce", "no ce"]
