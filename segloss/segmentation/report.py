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
the training pixels per class every run records in ``results.json`` (``train_pixels``), or with
``--rare-below PERCENT`` every class under that share (the same rule for datasets with different class
counts); when no run of the dataset has the counts, the ``--rare`` classes with the lowest mean IoU under the
baseline loss (all runs when there is none). The report says which, and gives each group's mean IoU of those
classes beside their IoU.

Several datasets (``data.name``) side by side: ``--by-dataset`` adds a table with one row per setting of the
keys that vary within a dataset (the loss, its options) and, per dataset, mIoU, Δ against the baseline and
the rare classes' mean IoU; the keys that differ between the datasets but are constant within each (encoder,
learning rate, epochs) are listed under it per dataset, with how its rare classes were chosen. The plot then
has a column per dataset, with mIoU above and the rare classes' IoU below.

Each run's config is read through the current schema, so keys added since the run was trained take their
defaults (the behaviour the run had), and ``loss.*`` keys the run's loss does not use (e.g.
``loss.count_unit`` for ``ce``) are shown as ``—`` instead of splitting groups. ``--results test.json``
reports the files ``segloss evaluate RUN --split test --out RUN/test.json`` wrote instead of the runs' own
``results.json``. ``--out PREFIX`` writes ``PREFIX.md``, ``PREFIX.csv`` and ``PREFIX.png`` (mIoU per group:
the seeds as points, mean ± sd as error bars).

    segloss report studies/camvid/precision/fp32-* studies/idd_lite/losses --results test.json \
        --by-dataset --rare-below 3 --out both

"""

from __future__ import annotations

import argparse
import logging
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..runner.grouping import LOSS_KEY, key_labels, value_order, value_text
from ..runner.report import (
    Addition,
    ReportGroup,
    ReportRun,
    ReportSpec,
    Summary,
    key_cells,
    key_header,
    mean_sd,
)
from ..runner.report import markdown_table as table
from .constants import TASK
from .plots import plot_by_dataset, plot_report

logger = logging.getLogger(__name__)

MIOU = "miou"
DATASET_KEY = "data.name"


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


def rare_classes(
    runs: Sequence[ReportRun], baseline: str, count: int, below: float | None = None
) -> list[RareClasses]:
    """The rare classes of each dataset (``data.name``): from a run's stored class counts, the ``count``
    with the smallest training pixel share or, with ``below``, every class under that share; without
    counts, the ``count`` with the lowest mean IoU under ``baseline`` (over all runs when the dataset has no
    baseline run), whatever ``below`` says (the basis says so).

    Args:
        runs: finished runs.
        baseline: the baseline loss.
        count: classes per dataset.
        below: instead of ``count``, every class under this share of the training pixels (percent).

    Returns:
        One entry per dataset, in name order.
    """
    by_dataset: dict[str, list[ReportRun]] = defaultdict(list)
    for run in runs:
        by_dataset[run.settings[DATASET_KEY]].append(run)
    found = []
    for dataset, members in sorted(by_dataset.items()):
        shares = _training_shares(members)
        if shares is not None:
            ranked = sorted(shares, key=shares.get)
            if below is None:
                ranked, rule = ranked[:count], "smallest training pixel share"
            else:
                ranked = [name for name in ranked if 100 * shares[name] < below]
                rule = f"training pixel share under {below:g} %"
            listed = ", ".join(f"{name} {100 * shares[name]:.2f} %" for name in ranked) or "none"
            found.append(RareClasses(dataset, tuple(ranked), f"{rule}: {listed}"))
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
    """Per dataset, the IoU of its rare classes (``rare_classes``) per group (markdown after the main table;
    with ``--by-dataset`` the side-by-side table first) and the CSV columns ``iou_rare`` (their mean) and
    ``iou_CLASS``."""
    found = _rare_of_report(summary, args)
    lines = side_by_side(summary, found) if args.by_dataset else []
    for rare in found:
        if not rare.classes:
            lines += ["", f"## Rarest classes of {rare.dataset}: none", "", f"Chosen by {rare.basis}."]
            continue
        members = [group for group in summary.groups if dataset_of(group) == rare.dataset]
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
        own = rare_of.get(dataset_of(group), ())
        columns["iou_rare"].append(number(_mean_class_iou(group, own)[0]) if own else "")
        for name in names:
            columns[f"iou_{name}"].append(number(_class_iou(group, name)[0]) if name in own else "")
    return Addition(lines, columns)


def _rare_of_report(summary: Summary, args: argparse.Namespace) -> list[RareClasses]:
    """The rare classes of each dataset of the report, by ``--rare`` / ``--rare-below``."""
    runs = [run for group in summary.groups for run in group.runs]
    return rare_classes(runs, summary.baseline, args.rare, args.rare_below)


def dataset_of(group: ReportGroup) -> str:
    """The ``data.name`` of a group's runs (a varying key or not)."""
    return group.runs[0].settings[DATASET_KEY]


def recipes(summary: Summary) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """Which varying keys vary within a dataset, and each dataset's values of the others (its recipe).

    Returns:
        ``(keys that vary within some dataset, {dataset: {recipe key: value}})``; ``None`` (a loss option
        the run's loss does not use) is not a value of its own.
    """
    keys = [key for key in summary.varying if key != DATASET_KEY]
    values: dict[str, dict[str, set]] = defaultdict(lambda: defaultdict(set))
    for group in summary.groups:
        found = values[dataset_of(group)]  # every dataset gets an entry, even with no keys
        for key in keys:
            if group.value(key) is not None:
                found[key].add(group.value(key))
    within = [key for key in keys if any(len(found[key]) > 1 for found in values.values())]
    recipe = {
        dataset: {key: next(iter(found[key])) for key in keys if key not in within and found[key]}
        for dataset, found in sorted(values.items())
    }
    return within, recipe


def _rare_iou(run: ReportRun, names: Sequence[str]) -> float:
    """A run's mean IoU (%) of the classes ``names`` (NaN without them)."""
    values = [class_iou(run).get(name, math.nan) for name in names]
    return math.nan if all(map(math.isnan, values)) else 100 * float(np.nanmean(values))


def side_by_side(summary: Summary, rare: Sequence[RareClasses]) -> list[str]:
    """The datasets side by side (``--by-dataset``): a row per setting of the keys that vary within a
    dataset; per dataset its mIoU (mean ± sd, runs), the paired Δ against the baseline (mean ± sd, pairs, p)
    when the loss varies, and its rare classes' mean IoU; under the table, per dataset, the keys that differ
    between the datasets (constant within each) and how its rare classes were chosen."""
    within, recipe = recipes(summary)
    compare = LOSS_KEY in summary.varying
    basis = {found.dataset: found for found in rare}  # every dataset of the runs
    cells = side_by_side_cells(summary, within)
    labels = key_labels(list(dict.fromkeys([*within, *(key for found in recipe.values() for key in found)])))
    header = [labels[key] for key in within] or ["runs"]
    for dataset in recipe:
        header += [f"{dataset} mIoU % (n)", *([f"{dataset} Δ vs {summary.baseline}"] * compare)]
        header.append(f"{dataset} rare IoU %")
    rows = []
    for row_key in cells:
        row = [value_text(value) for value in row_key] or ["all"]
        for dataset in recipe:
            group = cells[row_key].get(dataset)
            if group is None:
                row += ["—", *([""] * compare), ""]
                continue
            values = group.values(MIOU)
            row.append(f"{mean_sd(values, 2)} ({len(values)})")
            if compare:
                row.append(_difference(group))
            names = basis[dataset].classes
            row.append(mean_sd([v for run in group.runs if not math.isnan(v := _rare_iou(run, names))], 2))
        rows.append(row)
    described = {
        dataset: ", ".join(f"{labels[key]} {value_text(value)}" for key, value in found.items())
        for dataset, found in recipe.items()
    }
    return [
        "",
        "## Datasets side by side: mIoU"
        + (f", Δ against {summary.baseline} (paired: mean ± sd (pairs), p)" if compare else "")
        + " and the rare classes' IoU",
        "",
        *table(header, rows),
        "",
        *(f"- {dataset}: {text + '; ' if text else ''}rare: {basis[dataset].basis}"
          for dataset, text in described.items()),
    ]  # fmt: skip


def side_by_side_cells(summary: Summary, within: Sequence[str]) -> dict[tuple, dict[str, ReportGroup]]:
    """The groups of the side-by-side table and plot: ``{values of within: {dataset: group}}``, the rows
    in value order. Where two groups of a dataset share the values (only where a None, an unused loss
    option, hides a difference), the first is kept, with a warning."""
    cells: dict[tuple, dict[str, ReportGroup]] = defaultdict(dict)
    for group in summary.groups:
        row_key, dataset = tuple(group.value(key) for key in within), dataset_of(group)
        if dataset in cells[row_key]:
            logger.warning("side by side: %s has two groups with %s; showing the first", dataset, row_key)
            continue
        cells[row_key][dataset] = group
    order = sorted(cells, key=lambda values: [value_order(k, v) for k, v in zip(within, values, strict=True)])
    return {row_key: cells[row_key] for row_key in order}


def _difference(group: ReportGroup) -> str:
    """A group's paired mIoU difference to the baseline: ``mean ± sd (pairs), p P``, ``baseline`` or why
    there is none."""
    comparison = group.comparisons.get(MIOU)
    if comparison is None:
        return "baseline"
    if comparison.note:
        return comparison.note
    p = "" if math.isnan(comparison.p_value) else f", p {comparison.p_value:.3f}"
    return f"{mean_sd(comparison.differences, 2, sign=True)} ({len(comparison.seeds)}){p}"


def plot(summary: Summary, path: Path, args: argparse.Namespace) -> None:
    """``PREFIX.png``: mIoU per group, or with ``--by-dataset`` a column per dataset (mIoU above, the rare
    classes' mean IoU below)."""
    if not args.by_dataset:
        plot_report(summary, path)
        return
    within, _ = recipes(summary)
    rare_of = {found.dataset: found.classes for found in _rare_of_report(summary, args)}
    plot_by_dataset(
        summary.baseline,
        path,
        within,
        side_by_side_cells(summary, within),
        lambda run: _rare_iou(run, rare_of[run.settings[DATASET_KEY]]),
    )


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rare", type=int, default=5, help="rarest classes per dataset (default: 5)")
    parser.add_argument(
        "--rare-below",
        type=float,
        metavar="PERCENT",
        help="rare classes: every class under PERCENT %% of the training pixels (instead of --rare; "
        "a dataset whose runs stored no training pixels keeps the --rare lowest-IoU classes)",
    )
    parser.add_argument(
        "--by-dataset",
        action="store_true",
        help="a table (and plot) with the datasets side by side; the keys constant within each dataset "
        "are listed under it",
    )


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
    plot=plot,
)
