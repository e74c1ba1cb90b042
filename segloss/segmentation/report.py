"""Finished segmentation runs compared by what varies (``segloss report``, ``segloss.runner.report``): mIoU
mean ± sd over seeds per group with the paired difference to a baseline loss beside it, and the IoU of the
rarest classes.

    segloss report runs/sweep/demo --out report [--baseline ce] [--rare 5] [--results test.json]

Paired difference: a group is compared with the baseline loss's group (``loss.name=ce``) that has the same
value of every other varying key; when no baseline group matches exactly, the one that differs only in
``loss.*`` options (which the baseline does not use) is taken, if it is unique. Runs are paired by seed;
the table gives the mean ± sd of the differences, the number of pairs and the two-sided paired t-test's
p-value (``n/a`` below two pairs).

Rarest classes (per dataset): the ``--rare`` classes with the smallest share of the training pixels, from
the training pixels per class every run records in ``results.json`` (``train_pixels``); when no run of the
dataset has them, the classes with the lowest mean IoU under the baseline loss (all runs when there is
none). The report says which, and gives each group's mean IoU of those classes beside their IoU.

Each run's config is read through the current schema, so keys added since the run was trained take their
defaults (the behaviour the run had), and ``loss.*`` keys the run's loss does not use (e.g.
``loss.count_unit`` for ``ce``) are shown as ``—`` instead of splitting groups. ``--results test.json``
reports the files ``segloss evaluate RUN --split test --out RUN/test.json`` wrote instead of the runs' own
``results.json``. ``--out PREFIX`` writes ``PREFIX.md``, ``PREFIX.csv`` and ``PREFIX.png`` (mIoU per group:
the seeds as points, mean ± sd as error bars).
"""

from __future__ import annotations

import argparse
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..runner.grouping import LOSS_KEY
from ..runner.report import Addition, ReportGroup, ReportRun, ReportSpec, Summary, key_cells, key_header
from ..runner.report import markdown_table as table
from .constants import TASK
from .plots import plot_report

MIOU = "miou"


def read_metrics(results: dict[str, Any]) -> dict[str, float]:
    """mIoU (%) of a segmentation results file (NaN when undefined); ``KeyError`` without one."""
    miou = results["miou"]
    return {MIOU: math.nan if miou is None else 100 * float(miou)}


def class_iou(run: ReportRun) -> dict[str, float]:
    """A run's IoU per class as fractions (NaN when undefined)."""
    return {
        row["class"]: math.nan if row["iou"] is None else float(row["iou"])
        for row in run.results.get("per_class", [])
    }


@dataclass(frozen=True)
class RareClasses:
    """The rarest classes of a dataset and how they were chosen.

    Attributes:
        dataset: ``data.name``.
        classes: rarest first.
        basis: how they were chosen, for the report.
    """

    dataset: str
    classes: tuple[str, ...]
    basis: str


def rare_classes(runs: Sequence[ReportRun], baseline: str, count: int) -> list[RareClasses]:
    """The ``count`` rarest classes of each dataset (``data.name``): smallest training pixel share from a
    run's stored class counts, else lowest mean IoU under ``baseline`` (over all runs when the dataset has
    no baseline run).

    Args:
        runs: finished runs.
        baseline: the baseline loss.
        count: classes per dataset.

    Returns:
        One entry per dataset, in name order.
    """
    by_dataset: dict[str, list[ReportRun]] = defaultdict(list)
    for run in runs:
        by_dataset[run.settings["data.name"]].append(run)
    found = []
    for dataset, members in sorted(by_dataset.items()):
        shares = _training_shares(members)
        if shares is not None:
            ranked = sorted(shares, key=shares.get)
            listed = ", ".join(f"{name} {100 * shares[name]:.2f} %" for name in ranked[:count])
            found.append(
                RareClasses(dataset, tuple(ranked[:count]), f"smallest training pixel share: {listed}")
            )
            continue
        chosen = [run for run in members if run.settings.get(LOSS_KEY) == baseline] or members
        ious = [class_iou(run) for run in chosen]
        means = {}
        for name in dict.fromkeys(name for iou in ious for name in iou):
            values = [iou.get(name, math.nan) for iou in ious]
            if not all(math.isnan(value) for value in values):
                means[name] = float(np.nanmean(values))
        ranked = sorted(means, key=means.get)
        under = f"under {baseline}" if chosen is not members else f"over all runs (no {baseline} run)"
        basis = f"lowest mean IoU {under}; no run stored training class counts"
        found.append(RareClasses(dataset, tuple(ranked[:count]), basis))
    return found


def _training_shares(runs: Sequence[ReportRun]) -> dict[str, float] | None:
    """Each class's share of the training pixels, from the first run whose results file records them or,
    failing that, whose checkpoint stores class counts (runs without held-out classes first); classes
    without pixels are left out."""
    from ..runner.checkpoint import load_checkpoint

    ordered = sorted(runs, key=lambda run: bool(run.settings.get("data.holdout_classes")))
    for run in ordered:
        pixels = run.results.get("train_pixels")
        if pixels and sum(pixels.values()) > 0:
            total = float(sum(pixels.values()))
            return {name: value / total for name, value in pixels.items() if value > 0}
    for run in ordered:
        try:
            state = load_checkpoint(run.path / "checkpoint.pt", mmap=True)
        except (OSError, ValueError):
            continue
        counts, classes = state.get("class_counts"), state.get("classes")
        if counts is None or classes is None or sum(counts) <= 0:
            continue
        total = float(sum(counts))
        return {name: value / total for name, value in zip(classes, counts, strict=True) if value > 0}
    return None


def _spread(values: np.ndarray) -> tuple[float, float]:
    """Mean and sample std of ``values`` (NaNs left out; std NaN below two)."""
    values = values[~np.isnan(values)]
    if not len(values):
        return math.nan, math.nan
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else math.nan


def _text(mean: float, std: float) -> str:
    if math.isnan(mean):
        return "—"
    return f"{mean:.2f}" + ("" if math.isnan(std) else f" ± {std:.2f}")


def _class_iou(group: ReportGroup, name: str) -> tuple[float, float]:
    """Mean and sample std of one class's IoU (%) over the group's runs."""
    return _spread(100 * np.array([class_iou(run).get(name, math.nan) for run in group.runs]))


def _mean_class_iou(group: ReportGroup, names: Sequence[str]) -> tuple[float, float]:
    """Mean and sample std over the group's runs of each run's mean IoU (%) of the classes ``names``."""
    means = [np.nanmean([class_iou(run).get(n, math.nan) for n in names]) for run in group.runs]
    return _spread(100 * np.array(means))


def rare_class_tables(summary: Summary, args: argparse.Namespace) -> Addition:
    """Per dataset, the IoU of its ``args.rare`` rarest classes per group (markdown after the main table)
    and the CSV columns ``iou_rare`` (their mean) and ``iou_CLASS``."""
    runs = [run for group in summary.groups for run in group.runs]
    found = rare_classes(runs, summary.baseline, args.rare)
    lines: list[str] = []
    for rare in found:
        members = [g for g in summary.groups if g.runs[0].settings["data.name"] == rare.dataset]
        rows = [
            [
                *key_cells(group),
                _text(*_mean_class_iou(group, rare.classes)),
                *(_text(*_class_iou(group, name)) for name in rare.classes),
            ]
            for group in members
        ]
        lines += [
            "",
            f"## Rarest classes of {rare.dataset}: IoU % (mean ± sd)",
            "",
            f"Chosen by {rare.basis}.",
            "",
            *table([*key_header(summary.varying), f"mean of the {len(rare.classes)}", *rare.classes], rows),
        ]
    names = list(dict.fromkeys(name for rare in found for name in rare.classes))
    rare_of = {rare.dataset: rare.classes for rare in found}

    def number(value: float) -> str:
        return "" if math.isnan(value) else f"{value:.4f}"

    columns: dict[str, list[str]] = {"iou_rare": [], **{f"iou_{name}": [] for name in names}}
    for group in summary.groups:
        own = rare_of.get(group.runs[0].settings["data.name"], ())
        columns["iou_rare"].append(number(_mean_class_iou(group, own)[0]) if own else "")
        for name in names:
            columns[f"iou_{name}"].append(number(_class_iou(group, name)[0]) if name in own else "")
    return Addition(lines, columns)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rare", type=int, default=5, help="rarest classes per dataset (default: 5)")


REPORT = ReportSpec(
    task=TASK,
    title="mIoU by what varies",
    description=__doc__,
    read=read_metrics,
    columns=lambda runs: {MIOU: "mIoU % (mean ± sd)"},
    digits=2,
    one_table=True,
    add_arguments=_add_arguments,
    addition=rare_class_tables,
    plot=plot_report,
)
