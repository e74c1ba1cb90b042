"""Reports of several metrics per run: the runs grouped by what varies, each metric's mean ± sd over seeds,
and each metric's difference to the baseline loss paired by seed. The classification and continual reports
are this with their own metrics (the segmentation report, with its per-class tables and plot, is its own,
on the same grouping and pairing: ``segloss.segmentation.report``).
"""

from __future__ import annotations

import argparse
import csv
import logging
import math
import statistics
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .files import RESULTS_FILE
from .report import (
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

logger = logging.getLogger(__name__)

#: Reads a run's metrics (``{metric: value}``, in the table's units) from its results file; raises
#: ``KeyError`` when the file lacks them.
MetricReader = Callable[[dict[str, Any]], dict[str, float]]


@dataclass(frozen=True)
class MetricRun:
    """One finished run: its folder, config as flat dotted keys (lists as tuples), seed and metrics."""

    path: Path
    settings: dict[str, Any]
    seed: int
    values: dict[str, float]


@dataclass(frozen=True)
class MetricGroup:
    """The runs sharing the value of every varying key but the seed, with each metric's comparison against
    the baseline loss's group (empty for the baseline itself or when the loss does not vary)."""

    key: GroupKey
    runs: tuple[MetricRun, ...]
    comparisons: dict[str, Comparison] = field(default_factory=dict)

    def values(self, metric: str) -> list[float]:
        """``metric`` of every run that has it (not NaN)."""
        return list(self.by_seed(metric).values())

    def by_seed(self, metric: str) -> dict[int, float]:
        """``metric`` per seed, for the runs that have it (not NaN)."""
        return {
            run.seed: run.values[metric]
            for run in self.runs
            if metric in run.values and not math.isnan(run.values[metric])
        }


def find_metric_runs(
    folders: Iterable[str | Path], task: str, read: MetricReader, results_name: str = RESULTS_FILE
) -> list[MetricRun]:
    """Every finished ``task`` run at or below ``folders`` whose results file ``read`` understands (the
    others are skipped with a logged warning).

    Raises:
        FileNotFoundError: a folder does not exist.
    """
    runs = []
    for run_dir, settings, results in finished_runs(folders, task, results_name):
        try:
            values = read(results)
        except (KeyError, TypeError) as error:
            logger.warning("skipping %s: its %s lacks %s", run_dir, results_name, error)
            continue
        runs.append(MetricRun(run_dir, settings, settings[SEED_KEY], values))
    return runs


def summarise_metrics(
    runs: Sequence[MetricRun], metrics: Sequence[str], baseline: str = "ce"
) -> tuple[list[str], list[MetricGroup]]:
    """The varying keys and the groups of ``runs``, each compared per metric with the baseline loss's group
    (``segloss.runner.report.baseline_group``) when the loss varies."""
    varying, grouped = group_runs(runs)
    groups = [MetricGroup(key, tuple(found)) for key, found in grouped]
    if LOSS_KEY not in varying:
        return varying, groups
    by_key = {group.key: group for group in groups}
    compared = []
    for group in groups:
        if dict(group.key)[LOSS_KEY] == baseline:
            compared.append(group)
            continue
        match = baseline_group(group.key, list(by_key), baseline)
        comparisons = {}
        for metric in metrics:
            if isinstance(match, str):
                comparisons[metric] = Comparison(note=match)
            elif not group.by_seed(metric) or not by_key[match].by_seed(metric):
                comparisons[metric] = Comparison(note="not measured")
            else:
                comparisons[metric] = compare_by_seed(
                    group.by_seed(metric), by_key[match].by_seed(metric), baseline
                )
        compared.append(MetricGroup(group.key, group.runs, comparisons))
    return varying, compared


def _mean_sd(values: Sequence[float], digits: int, sign: bool = False) -> str:
    """``mean ± sample sd`` (a single value alone, ``—`` for none)."""
    if not values:
        return "—"
    text = f"{statistics.fmean(values):{'+' if sign else ''}.{digits}f}"
    return text + (f" ± {statistics.stdev(values):.{digits}f}" if len(values) > 1 else "")


def _cell(group: MetricGroup, metric: str, digits: int) -> str:
    """``metric``'s mean ± sd over the group's runs, with how many runs had it when not all did."""
    values = group.values(metric)
    missing = len(values) < len(group.runs)
    return _mean_sd(values, digits) + (f" ({len(values)} runs)" if missing and values else "")


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def metric_markdown(
    varying: Sequence[str],
    groups: Sequence[MetricGroup],
    metrics: Mapping[str, str],
    *,
    baseline: str = "ce",
    digits: int = 1,
) -> str:
    """Two markdown tables: each metric's mean ± sd per group (with the runs' seeds) and, when the loss
    varies, each metric's paired difference to the baseline (mean ± sd of the differences, p of the
    two-sided paired t-test).

    Args:
        varying: the varying keys (``summarise_metrics``).
        groups: the groups.
        metrics: metric -> column title, in column order.
        baseline: the baseline ``loss.name``.
        digits: decimals of the values.

    Returns:
        The markdown, tables separated by a blank line.
    """
    labels = key_labels(varying)
    key_header = [labels[key] for key in varying] or ["runs"]

    def key_cells(group: MetricGroup) -> list[str]:
        return [value_text(value) for _, value in group.key] or ["all"]

    rows = [
        [
            *key_cells(group),
            str(len(group.runs)),
            " ".join(str(run.seed) for run in group.runs),
            *(_cell(group, metric, digits) for metric in metrics),
        ]
        for group in groups
    ]
    lines = _table([*key_header, "n", "seeds", *metrics.values()], rows)
    compared = [group for group in groups if group.comparisons]
    if compared:
        rows = []
        for group in compared:
            cells = key_cells(group)
            for metric in metrics:
                comparison = group.comparisons[metric]
                if comparison.note:
                    cells.append(comparison.note)
                    continue
                p = "n/a" if math.isnan(comparison.p_value) else f"{comparison.p_value:.3f}"
                cells.append(
                    f"{_mean_sd(comparison.differences, digits, sign=True)} ({len(comparison.seeds)}, p {p})"
                )
            rows.append(cells)
        lines += [
            "",
            f"Paired by seed against {LOSS_KEY}={baseline} with the same other keys: mean ± sd of the "
            "differences (pairs, two-sided paired t-test p).",
            "",
            *_table([*key_header, *(f"Δ {title}" for title in metrics.values())], rows),
        ]
    return "\n".join(lines) + "\n"


def write_metric_csv(
    varying: Sequence[str], groups: Sequence[MetricGroup], metrics: Sequence[str], path: Path
) -> None:
    """One row per group: the varying keys, runs, seeds; per metric its mean and sd and the paired
    difference to the baseline (mean, sd, pairs, p; empty for the baseline)."""

    def number(value: float) -> str:
        return "" if math.isnan(value) else f"{value:.4f}"

    def mean_sd(values: Sequence[float]) -> list[str]:
        if not values:
            return ["", ""]
        return [
            number(statistics.fmean(values)),
            number(statistics.stdev(values) if len(values) > 1 else math.nan),
        ]

    columns = [f"{metric}_{stat}" for metric in metrics for stat in ("mean", "std")]
    columns += [f"{metric}_diff_{stat}" for metric in metrics for stat in ("mean", "std", "pairs", "p")]
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow([*varying, "runs", "seeds", *columns])
        for group in groups:
            row = [*(value_text(value) for _, value in group.key), len(group.runs)]
            row.append(" ".join(str(run.seed) for run in group.runs))
            row += [cell for metric in metrics for cell in mean_sd(group.values(metric))]
            for metric in metrics:
                comparison = group.comparisons.get(metric, Comparison())
                row += [number(comparison.mean), number(comparison.std), len(comparison.seeds) or ""]
                row.append(number(comparison.p_value))
            writer.writerow(row)


def metric_report_main(
    argv: Sequence[str] | None,
    prog: str,
    *,
    description: str,
    task: str,
    read: MetricReader,
    metrics: Callable[[Sequence[MetricRun]], Mapping[str, str]],
    title: str,
) -> int:
    """The command line of a metric report: ``FOLDERS [--out PREFIX] [--baseline LOSS] [--results FILE]``;
    prints the tables and, with ``--out``, writes ``PREFIX.md`` and ``PREFIX.csv``. ``metrics`` gives the
    columns (metric -> title) of the runs found; ``title`` the report's heading. Returns the exit status."""
    parser = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folders", nargs="+", help="run folders or folders holding runs")
    parser.add_argument("--out", help="write PREFIX.md and PREFIX.csv too (default: print the tables only)")
    parser.add_argument("--task", help="the runs' task (default: read from the runs)")
    parser.add_argument("--baseline", default="ce", help="the loss.name compared against (default: ce)")
    parser.add_argument(
        "--results", default=RESULTS_FILE, help="results file of each run folder (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        runs = find_metric_runs(args.folders, task, read, args.results)
    except (OSError, ValueError, yaml.YAMLError) as error:
        parser.error(str(error))
    if not runs:
        parser.error(
            f"no finished {task} runs (config.yaml with {args.results}) below {', '.join(args.folders)}"
        )
    columns = metrics(runs)
    varying, groups = summarise_metrics(runs, list(columns), args.baseline)
    count = sum(len(group.runs) for group in groups)
    text = (
        f"# {title}: {count} runs in {len(groups)} groups\n\n"
        f"Varying: {', '.join(varying) or 'nothing'}. Mean ± sd over seeds.\n\n"
        + metric_markdown(varying, groups, columns, baseline=args.baseline)
    )
    sys.stdout.write(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(f"{args.out}.md").write_text(text)
        write_metric_csv(varying, groups, list(columns), Path(f"{args.out}.csv"))
        sys.stdout.write(f"\nwrote {args.out}.md, {args.out}.csv\n")
    return 0
