"""Finished runs compared by what varies: mIoU mean ± sd over seeds per group, the paired difference to a
baseline loss, and the IoU of the rarest classes.

    segloss report runs/sweep/demo --out report [--baseline ce] [--rare 5]

finds every segmentation run folder (``config.yaml`` + ``results.json``) below the given folders and groups
the runs by every config key whose value differs between them, except the seed (``train.seed``) and
bookkeeping keys (``segloss.runner.report.BOOKKEEPING_KEYS``: output folder, device, progress bars,
workers...). It writes
``report.md``, ``report.csv`` (a row per group) and ``report.png`` (mIoU per group: the seeds as points,
mean ± sd as error bars), and prints the tables.

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
reports the files ``segloss evaluate --split test --out RUN/test.json`` wrote instead of the runs' own
``results.json``. Runs of other tasks and unfinished runs are skipped with a note (continual runs have
their own report, ``segloss.continual.report``, and so have classification runs,
``segloss.classification.report``; ``segloss report`` picks the report of the runs' task).
"""

from __future__ import annotations

import argparse
import csv
import logging
import math
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..runner.files import RESULTS_FILE
from ..runner.report import (
    LOSS_KEY,
    SEED_KEY,
    Comparison,
    GroupKey,
    baseline_group,
    compare_by_seed,
    finished_runs,
    group_runs,
    key_labels,
    value_text,
)
from .constants import TASK as SEGMENTATION

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunResult:
    """One finished segmentation run.

    Attributes:
        path: the run folder.
        settings: its config as flat dotted keys (lists as tuples).
        seed: ``train.seed``.
        miou: mIoU as a fraction (NaN when undefined).
        class_iou: IoU per class as fractions (NaN when undefined).
        train_pixels: labelled training pixels per class, when the results file records them.
    """

    path: Path
    settings: dict[str, Any]
    seed: int
    miou: float
    class_iou: dict[str, float]
    train_pixels: dict[str, int] | None = None

    @property
    def dataset(self) -> str:
        """The dataset with any held-out classes (``"camvid without car"``)."""
        return dataset_label(self.settings["data.name"], self.settings.get("data.holdout_classes") or ())

    @property
    def loss(self) -> str | None:
        """``loss.name``."""
        return self.settings.get(LOSS_KEY)


@dataclass(frozen=True)
class Group:
    """The runs that share the value of every varying key but the seed.

    Attributes:
        key: ``(varying key, value)`` pairs.
        runs: the runs, ordered by seed.
        comparison: against the baseline loss (``None`` for the baseline itself or when the loss does
            not vary).
    """

    key: tuple[tuple[str, Any], ...]
    runs: tuple[RunResult, ...]
    comparison: Comparison | None = None

    @property
    def seeds(self) -> tuple[int, ...]:
        """The seeds of the runs (distinct: ``group_runs`` counts a copied run once)."""
        return tuple(run.seed for run in self.runs)

    @property
    def values(self) -> np.ndarray:
        """mIoU (%) of every run."""
        return 100 * np.array([run.miou for run in self.runs])

    @property
    def mean(self) -> float:
        """Mean mIoU (%)."""
        return float(self.values.mean())

    @property
    def std(self) -> float:
        """Sample standard deviation of mIoU (%); NaN for a single run."""
        return float(self.values.std(ddof=1)) if len(self.runs) > 1 else math.nan

    def value(self, key: str) -> Any:
        """The group's value of the varying ``key``."""
        return dict(self.key)[key]

    def by_seed(self) -> dict[int, float]:
        """mIoU (%) per seed."""
        return {seed: float(value) for seed, value in zip(self.seeds, self.values, strict=True)}


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


@dataclass(frozen=True)
class Report:
    """Groups ordered by their key values, with the varying keys and the rarest classes per dataset."""

    varying: tuple[str, ...]
    groups: tuple[Group, ...]
    rare: tuple[RareClasses, ...]
    baseline: str


def dataset_label(name: str, holdout_classes: Sequence[str] = ()) -> str:
    """The dataset of a run: ``name``, or ``"NAME without A, B"`` when classes were held out of training."""
    return f"{name} without {', '.join(holdout_classes)}" if holdout_classes else name


def find_runs(folders: Iterable[str | Path], results_name: str = RESULTS_FILE) -> list[RunResult]:
    """Every finished segmentation run (``config.yaml`` next to ``results.json``) at or below ``folders``.

    Args:
        folders: run folders or folders holding runs.
        results_name: the results file to read in each run folder.

    Returns:
        The runs; unfinished runs and runs of other tasks are skipped with a logged note.

    Raises:
        FileNotFoundError: a folder does not exist.
    """
    runs = []
    for run_dir, settings, results in finished_runs(folders, SEGMENTATION, results_name):
        if "miou" not in results:
            logger.warning("skipping %s: its %s has no miou", run_dir, results_name)
            continue
        per_class = {row["class"]: _fraction(row["iou"]) for row in results.get("per_class", [])}
        miou = _fraction(results["miou"])
        runs.append(
            RunResult(run_dir, settings, settings[SEED_KEY], miou, per_class, results.get("train_pixels"))
        )
    return runs


def _fraction(value: float | None) -> float:
    return math.nan if value is None else float(value)


def summarise(runs: Sequence[RunResult], baseline: str = "ce", rare: int = 5) -> Report:
    """Group ``runs`` by every varying key, compare each group with the baseline loss and find the rarest
    classes. A seed found twice in a group (a copied run folder?) is logged as a warning and counted once
    (the first run folder).

    Args:
        runs: finished runs (``find_runs``).
        baseline: the ``loss.name`` the other losses are compared with.
        rare: how many rarest classes to report per dataset.

    Returns:
        The report's content.
    """
    varying, grouped = group_runs(runs)
    groups = [Group(key, tuple(found)) for key, found in grouped]
    if LOSS_KEY in varying:
        keys = [group.key for group in groups]
        by_key = {group.key: group for group in groups}
        groups = [
            group
            if group.value(LOSS_KEY) == baseline
            else Group(
                group.key,
                group.runs,
                _compare(group, baseline_group(group.key, keys, baseline), by_key, baseline),
            )
            for group in groups
        ]
    return Report(tuple(varying), tuple(groups), tuple(rare_classes(runs, baseline, rare)), baseline)


def _compare(group: Group, match: GroupKey | str, by_key: dict[GroupKey, Group], baseline: str) -> Comparison:
    """``group`` against the baseline group ``match`` (or the note why there is none), paired by seed."""
    if isinstance(match, str):
        return Comparison(note=match)
    return compare_by_seed(group.by_seed(), by_key[match].by_seed(), baseline)


def rare_classes(runs: Sequence[RunResult], baseline: str, count: int) -> list[RareClasses]:
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
    by_dataset: dict[str, list[RunResult]] = defaultdict(list)
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
        chosen = [run for run in members if run.loss == baseline] or members
        means = {}
        for name in dict.fromkeys(name for run in chosen for name in run.class_iou):
            values = [run.class_iou.get(name, math.nan) for run in chosen]
            if not all(math.isnan(value) for value in values):
                means[name] = float(np.nanmean(values))
        ranked = sorted(means, key=means.get)
        under = f"under {baseline}" if chosen is not members else f"over all runs (no {baseline} run)"
        basis = f"lowest mean IoU {under}; no run stored training class counts"
        found.append(RareClasses(dataset, tuple(ranked[:count]), basis))
    return found


def _training_shares(runs: Sequence[RunResult]) -> dict[str, float] | None:
    """Each class's share of the training pixels, from the first run whose results file records them or,
    failing that, whose checkpoint stores class counts (runs without held-out classes first); classes
    without pixels are left out."""
    from ..runner.checkpoint import load_checkpoint

    ordered = sorted(runs, key=lambda run: bool(run.settings.get("data.holdout_classes")))
    for run in ordered:
        if run.train_pixels and sum(run.train_pixels.values()) > 0:
            total = float(sum(run.train_pixels.values()))
            return {name: value / total for name, value in run.train_pixels.items() if value > 0}
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


# ---------------------------------------------------------------------------------------------------
# Output


def _number(value: float, digits: int = 2, sign: bool = False) -> str:
    return "n/a" if math.isnan(value) else f"{value:{'+' if sign else ''}.{digits}f}"


def _spread(mean: float, std: float, sign: bool = False) -> str:
    if math.isnan(mean):
        return "—"
    return _number(mean, sign=sign) + ("" if math.isnan(std) else f" ± {std:.2f}")


def _class_iou(group: Group, name: str) -> tuple[float, float]:
    """Mean and sample std of one class's IoU (%) over the group's runs (NaNs left out)."""
    values = 100 * np.array([run.class_iou.get(name, math.nan) for run in group.runs])
    values = values[~np.isnan(values)]
    if not len(values):
        return math.nan, math.nan
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else math.nan


def _mean_class_iou(group: Group, names: Sequence[str]) -> tuple[float, float]:
    """Mean and sample std over the group's runs of each run's mean IoU (%) of the classes ``names``."""
    values = 100 * np.array(
        [np.nanmean([run.class_iou.get(n, math.nan) for n in names]) for run in group.runs]
    )
    if len(values) == 1:
        return float(values[0]), math.nan
    return float(values.mean()), float(values.std(ddof=1))


def _key_cells(group: Group) -> list[str]:
    return [value_text(value) for _, value in group.key] or ["all"]


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def markdown(report: Report) -> str:
    """The report as markdown: the main table (mean ± sd, n, paired difference, p) and a table of the
    rarest classes' IoU per dataset."""
    labels = key_labels(report.varying)
    key_header = [labels[key] for key in report.varying] or ["runs"]
    compare = LOSS_KEY in report.varying
    header = [*key_header, "n", "mIoU % (mean ± sd)"]
    if compare:
        header += [f"Δ vs {report.baseline} (paired)", "pairs", "p"]
    rows = []
    for group in report.groups:
        cells = [*_key_cells(group), str(len(group.runs)), _spread(group.mean, group.std)]
        if compare:
            c = group.comparison
            if c is None:
                cells += ["baseline", "", ""]
            elif c.note:
                cells += [c.note, "0", "n/a"]
            else:
                cells += [_spread(c.mean, c.std, sign=True), str(len(c.seeds)), _number(c.p_value, 3)]
        rows.append(cells)
    runs = sum(len(group.runs) for group in report.groups)
    varying = ", ".join(report.varying) or "nothing"
    lines = [
        f"# mIoU by what varies: {runs} runs in {len(report.groups)} groups",
        "",
        f"Varying: {varying}. mean ± sd over seeds (n runs)"
        + (
            f"; Δ: mIoU points against {LOSS_KEY}={report.baseline} with the same other keys, paired by "
            "seed (mean ± sd of the differences), p: two-sided paired t-test."
            if compare
            else "."
        ),
        "",
        *_table(header, rows),
    ]
    for rare in report.rare:
        members = [g for g in report.groups if g.runs[0].settings["data.name"] == rare.dataset]
        rows = [
            [
                *_key_cells(group),
                _spread(*_mean_class_iou(group, rare.classes)),
                *(_spread(*_class_iou(group, name)) for name in rare.classes),
            ]
            for group in members
        ]
        lines += [
            "",
            f"## Rarest classes of {rare.dataset}: IoU % (mean ± sd)",
            "",
            f"Chosen by {rare.basis}.",
            "",
            *_table([*key_header, f"mean of the {len(rare.classes)}", *rare.classes], rows),
        ]
    return "\n".join(lines) + "\n"


def write_csv(report: Report, path: Path) -> None:
    """One row per group: the varying keys, runs, seeds, mIoU mean and sd (%), the paired difference to the
    baseline (mean, sd, pairs, p), the mean IoU (%) of the dataset's rare classes together (``iou_rare``)
    and of each (``iou_CLASS``)."""
    rare_columns = list(dict.fromkeys(name for rare in report.rare for name in rare.classes))
    rare_of = {rare.dataset: rare.classes for rare in report.rare}

    def number(value: float) -> str:
        return "" if math.isnan(value) else f"{value:.4f}"

    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(
            [*report.varying, "runs", "seeds", "miou_mean", "miou_std", "diff_mean", "diff_std", "pairs",
             "p_value", "iou_rare", *(f"iou_{name}" for name in rare_columns)]
        )  # fmt: skip
        for group in report.groups:
            c = group.comparison or Comparison()
            own = rare_of.get(group.runs[0].settings["data.name"], ())
            rare = [number(_mean_class_iou(group, own)[0]) if own else ""]
            rare += [number(_class_iou(group, name)[0]) if name in own else "" for name in rare_columns]
            writer.writerow(
                [*(value_text(v) for _, v in group.key), len(group.runs), " ".join(map(str, group.seeds)),
                 number(group.mean), number(group.std), number(c.mean), number(c.std), len(c.seeds),
                 number(c.p_value), *rare]
            )  # fmt: skip


def plot_groups(report: Report, path: Path) -> None:
    """mIoU (%) per group, one row each (top to bottom in table order): every run as a point, mean ± sd as
    an error bar; baseline groups in grey, with a dashed line at their mean."""
    from matplotlib.figure import Figure

    labels = key_labels(report.varying)
    names = [
        " · ".join(
            value_text(v) if k == LOSS_KEY else f"{labels[k]}={value_text(v)}"
            for k, v in group.key
            if v is not None
        )
        or "all"
        for group in report.groups
    ]
    # wide enough for the longest group name at 8 pt (about 0.07 inch a character) beside the axes
    width = max(8.0, 4.0 + 0.07 * max(map(len, names)))
    fig = Figure(figsize=(width, 1.2 + 0.42 * len(report.groups)))
    ax = fig.subplots()
    rng = np.random.default_rng(0)  # jitter only
    for row, group in enumerate(report.groups):
        is_baseline = LOSS_KEY in report.varying and group.value(LOSS_KEY) == report.baseline
        color = "0.45" if is_baseline else "C0"
        values = group.values
        ax.scatter(values, row + 0.15 + rng.uniform(-0.06, 0.06, len(values)), s=14, color=color, alpha=0.6)
        std = 0.0 if math.isnan(group.std) else group.std
        ax.errorbar(group.mean, row - 0.1, xerr=std, fmt="|", markersize=12, capsize=4, color=color)
        if is_baseline:
            ax.axvline(group.mean, color=color, linestyle="--", linewidth=0.8)
    ax.set_yticks(range(len(report.groups)), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("mIoU (%)")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv: Sequence[str] | None = None, prog: str = "segloss report") -> int:
    """The command line (see the module's docstring); returns the exit status."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("folders", nargs="+", help="run folders or folders holding runs")
    parser.add_argument(
        "--out", help="write PREFIX.md, PREFIX.csv and PREFIX.png too (default: print the tables only)"
    )
    parser.add_argument("--task", help="the runs' task (default: read from the runs)")
    parser.add_argument("--baseline", default="ce", help="the loss.name compared against (default: ce)")
    parser.add_argument("--rare", type=int, default=5, help="rarest classes per dataset (default: 5)")
    parser.add_argument(
        "--results", default=RESULTS_FILE, help="results file of each run folder (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    try:
        runs = find_runs(args.folders, args.results)
    except (OSError, KeyError, ValueError, yaml.YAMLError) as error:
        parser.error(str(error))
    if not runs:
        parser.error(f"no finished runs (config.yaml with {args.results}) below {', '.join(args.folders)}")
    report = summarise(runs, args.baseline, args.rare)
    text = markdown(report)
    sys.stdout.write(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(f"{args.out}.md").write_text(text)
        write_csv(report, Path(f"{args.out}.csv"))
        plot_groups(report, Path(f"{args.out}.png"))
        sys.stdout.write(f"\nwrote {args.out}.md, {args.out}.csv, {args.out}.png\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
