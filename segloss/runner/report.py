"""``segloss report``: finished runs compared by what varies, for every task, through one engine.

    segloss report runs/paper --out report                # segmentation runs: mIoU paired against CE
    segloss report runs/sweep/cl_digits --out cl_report   # continual runs: accuracy and forgetting

The runs below the folders are grouped by every config key whose value differs between them except the seed
and bookkeeping keys (``segloss.runner.grouping``); each group gets each metric's mean ± sd over its seeds
and, when the loss varies, the difference to the baseline loss's group (``--baseline``, CE) paired by seed
with a two-sided paired t-test. The report prints its tables and, with ``--out PREFIX``, writes
``PREFIX.md``, ``PREFIX.csv`` (a row per group) and the task's plot ``PREFIX.png``.

A task describes its report with a ``ReportSpec`` (its module's ``REPORT`` names it,
``segloss.runner.tasks``): what to read from a run's results file, the column titles, and optionally its
own command-line options, a part added after the tables (segmentation: the rarest classes' IoU) and a
plot. ``--task NAME`` picks the
task; without it, the task of the finished runs (``config.yaml`` next to ``results.json``) below the
folders, among the tasks that have a report; the default task when there are none. Runs of several such
tasks below the folders need ``--task``.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import logging
import math
import statistics
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import tasks
from .files import CONFIG_FILE, RESULTS_FILE
from .grouping import (
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
class ReportRun:
    """One finished run: its folder, config as flat dotted keys (lists as tuples), seed, metrics and the
    results file they were read from."""

    path: Path
    settings: dict[str, Any]
    seed: int
    values: dict[str, float]
    results: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class ReportGroup:
    """The runs sharing the value of every varying key but the seed (ordered by seed), with each metric's
    comparison against the baseline loss's group (empty for the baseline itself or when the loss does not
    vary)."""

    key: GroupKey
    runs: tuple[ReportRun, ...]
    comparisons: dict[str, Comparison] = field(default_factory=dict)

    @property
    def seeds(self) -> tuple[int, ...]:
        """The seeds of the runs (distinct: ``group_runs`` counts a copied run once)."""
        return tuple(run.seed for run in self.runs)

    def value(self, key: str) -> Any:
        """The group's value of the varying ``key``."""
        return dict(self.key)[key]

    def by_seed(self, metric: str) -> dict[int, float]:
        """``metric`` per seed, for the runs that have it (not NaN)."""
        return {
            run.seed: run.values[metric]
            for run in self.runs
            if metric in run.values and not math.isnan(run.values[metric])
        }

    def values(self, metric: str) -> list[float]:
        """``metric`` of every run that has it (not NaN)."""
        return list(self.by_seed(metric).values())

    def mean(self, metric: str) -> float:
        """The mean of ``metric`` over the runs that have it (NaN for none)."""
        values = self.values(metric)
        return statistics.fmean(values) if values else math.nan

    def std(self, metric: str) -> float:
        """The sample standard deviation of ``metric`` over the runs that have it (NaN below two)."""
        values = self.values(metric)
        return statistics.stdev(values) if len(values) > 1 else math.nan


@dataclass(frozen=True)
class Summary:
    """The groups of a report in table order, the keys that vary between them and the baseline loss."""

    varying: tuple[str, ...]
    groups: tuple[ReportGroup, ...]
    baseline: str = "ce"


@dataclass(frozen=True)
class Addition:
    """What a task adds to its report: markdown lines after the tables, and CSV columns (one cell per
    group, in table order)."""

    markdown: list[str] = field(default_factory=list)
    columns: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class ReportSpec:
    """A task's report.

    Attributes:
        task: the runs' ``task``.
        title: the report's heading (``"mIoU by what varies"``).
        description: the command's help text.
        read: the metrics of a results file (``MetricReader``).
        columns: metric -> column title for the runs found, in column order.
        digits: decimals of the values.
        one_table: one metric in one table with its paired difference beside it (segmentation's mIoU);
            else a table of values and one of paired differences.
        add_arguments: the task's own options on the command's parser (``--rare``).
        addition: ``addition(summary, args)``: the task's part after the tables and its CSV columns.
        plot: ``plot(summary, path, args)``: the figure written as ``PREFIX.png``.
    """

    task: str
    title: str
    description: str
    read: MetricReader
    columns: Callable[[Sequence[ReportRun]], Mapping[str, str]]
    digits: int = 1
    one_table: bool = False
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None
    addition: Callable[[Summary, argparse.Namespace], Addition] | None = None
    plot: Callable[[Summary, Path, argparse.Namespace], None] | None = None


# ---------------------------------------------------------------------------------------------------
# Runs, groups and comparisons


def find_runs(
    folders: Iterable[str | Path], task: str, read: MetricReader, results_name: str = RESULTS_FILE
) -> list[ReportRun]:
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
        runs.append(ReportRun(run_dir, settings, settings[SEED_KEY], values, results))
    return runs


def summarise(runs: Sequence[ReportRun], metrics: Sequence[str], baseline: str = "ce") -> Summary:
    """The groups of ``runs`` (``segloss.runner.grouping.group_runs``), each compared per metric with the
    baseline loss's group (``baseline_group``) when the loss varies."""
    varying, grouped = group_runs(runs)
    groups = [ReportGroup(key, tuple(found)) for key, found in grouped]
    if LOSS_KEY not in varying:
        return Summary(tuple(varying), tuple(groups), baseline)
    by_key = {group.key: group for group in groups}
    compared = []
    for group in groups:
        if group.value(LOSS_KEY) == baseline:
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
        compared.append(ReportGroup(group.key, group.runs, comparisons))
    return Summary(tuple(varying), tuple(compared), baseline)


# ---------------------------------------------------------------------------------------------------
# Markdown and CSV


def mean_sd(values: Sequence[float], digits: int, sign: bool = False) -> str:
    """``mean ± sample sd`` (a single value alone, ``—`` for none)."""
    if not values:
        return "—"
    text = f"{statistics.fmean(values):{'+' if sign else ''}.{digits}f}"
    return text + (f" ± {statistics.stdev(values):.{digits}f}" if len(values) > 1 else "")


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """A markdown table's lines."""
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def key_cells(group: ReportGroup) -> list[str]:
    """The group's values of the varying keys (``all`` when nothing varies)."""
    return [value_text(value) for _, value in group.key] or ["all"]


def key_header(varying: Sequence[str]) -> list[str]:
    """The titles of the varying keys' columns (``runs`` when nothing varies)."""
    labels = key_labels(varying)
    return [labels[key] for key in varying] or ["runs"]


def _cell(group: ReportGroup, metric: str, digits: int) -> str:
    """``metric``'s mean ± sd over the group's runs, with how many runs had it when not all did."""
    values = group.values(metric)
    missing = len(values) < len(group.runs)
    return mean_sd(values, digits) + (f" ({len(values)} runs)" if missing and values else "")


def _p(comparison: Comparison) -> str:
    return "n/a" if math.isnan(comparison.p_value) else f"{comparison.p_value:.3f}"


def markdown(
    summary: Summary, columns: Mapping[str, str], *, digits: int = 1, one_table: bool = False
) -> str:
    """The report's tables: each metric's mean ± sd per group (with the runs' seeds) and, when the loss
    varies, each metric's paired difference to the baseline (mean ± sd of the differences, pairs, p of the
    two-sided paired t-test): beside the values with ``one_table`` (one metric), else in a second table.

    Args:
        summary: the groups (``summarise``).
        columns: metric -> column title, in column order.
        digits: decimals of the values.
        one_table: one table (the first metric only).

    Returns:
        The markdown, tables separated by a blank line.
    """
    header = key_header(summary.varying)
    compare = LOSS_KEY in summary.varying
    if one_table:
        metric, title = next(iter(columns.items()))
        rows = []
        for group in summary.groups:
            cells = [*key_cells(group), str(len(group.runs)), _cell(group, metric, digits)]
            if compare:
                c = group.comparisons.get(metric)
                if c is None:
                    cells += ["baseline", "", ""]
                elif c.note:
                    cells += [c.note, "0", "n/a"]
                else:
                    cells += [mean_sd(c.differences, digits, sign=True), str(len(c.seeds)), _p(c)]
            rows.append(cells)
        extra = [f"Δ vs {summary.baseline} (paired)", "pairs", "p"] if compare else []
        return "\n".join(markdown_table([*header, "n", title, *extra], rows)) + "\n"
    rows = [
        [*key_cells(group), str(len(group.runs)), " ".join(map(str, group.seeds)),
         *(_cell(group, metric, digits) for metric in columns)]
        for group in summary.groups
    ]  # fmt: skip
    lines = markdown_table([*header, "n", "seeds", *columns.values()], rows)
    compared = [group for group in summary.groups if group.comparisons]
    if compared:
        rows = []
        for group in compared:
            cells = key_cells(group)
            for metric in columns:
                c = group.comparisons[metric]
                cells.append(
                    c.note or f"{mean_sd(c.differences, digits, sign=True)} ({len(c.seeds)}, p {_p(c)})"
                )
            rows.append(cells)
        lines += [
            "",
            f"Paired by seed against {LOSS_KEY}={summary.baseline} with the same other keys: mean ± sd of "
            "the differences (pairs, two-sided paired t-test p).",
            "",
            *markdown_table([*header, *(f"Δ {title}" for title in columns.values())], rows),
        ]
    return "\n".join(lines) + "\n"


def write_csv(summary: Summary, metrics: Sequence[str], path: Path, addition: Addition | None = None) -> None:
    """One row per group: the varying keys, runs, seeds; per metric its mean and sd and the paired
    difference to the baseline (``METRIC_diff_mean``, ``_diff_std``, ``_diff_pairs``, ``_diff_p``; empty
    for the baseline); then the task's ``addition`` columns."""

    def number(value: float) -> str:
        return "" if math.isnan(value) else f"{value:.4f}"

    extra = addition.columns if addition is not None else {}
    columns = [f"{metric}_{stat}" for metric in metrics for stat in ("mean", "std")]
    columns += [f"{metric}_diff_{stat}" for metric in metrics for stat in ("mean", "std", "pairs", "p")]
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow([*summary.varying, "runs", "seeds", *columns, *extra])
        for index, group in enumerate(summary.groups):
            row = [
                *(value_text(value) for _, value in group.key),
                len(group.runs),
                " ".join(map(str, group.seeds)),
            ]
            row += [
                cell for metric in metrics for cell in (number(group.mean(metric)), number(group.std(metric)))
            ]
            for metric in metrics:
                c = group.comparisons.get(metric, Comparison())
                row += [number(c.mean), number(c.std), len(c.seeds) or "", number(c.p_value)]
            writer.writerow([*row, *(cells[index] for cells in extra.values())])


# ---------------------------------------------------------------------------------------------------
# The command


def report_spec(task: str) -> ReportSpec:
    """The ``ReportSpec`` of ``task`` (its module's ``REPORT``, ``"module:name"``)."""
    module, _, name = tasks.load_task(task).REPORT.partition(":")
    return getattr(importlib.import_module(module), name)


def reporting_tasks() -> list[str]:
    """The tasks whose module names a report (``REPORT``)."""
    return [name for name in tasks.TASK_MODULES if hasattr(tasks.load_task(name), "REPORT")]


def run_tasks(folders: Iterable[str | Path]) -> set[str]:
    """The tasks of the finished runs (``config.yaml`` next to ``results.json``) at or below ``folders``."""
    import yaml

    found = set()
    for folder in folders:
        for config_file in Path(folder).rglob(CONFIG_FILE):
            if config_file.with_name(RESULTS_FILE).is_file():
                config = yaml.safe_load(config_file.read_text()) or {}
                found.add(config.get("task", tasks.DEFAULT_TASK))
    return found


def report_task(folders: Iterable[str | Path]) -> str:
    """The task to report on for ``folders``: that of their finished runs among the tasks with a report
    (the default task when there are none); ``ValueError`` when there are several."""
    found = sorted(run_tasks(folders) & set(reporting_tasks()))
    if len(found) > 1:
        raise ValueError(
            f"runs of several tasks ({', '.join(found)}) below the folders: choose one with --task"
        )
    return found[0] if found else tasks.DEFAULT_TASK


def _folders(argv: Sequence[str]) -> list[str]:
    """The arguments that name folders (not options, nor an option's value)."""
    return [
        arg
        for previous, arg in zip([None, *argv], argv, strict=False)
        if not arg.startswith("-") and not (previous or "").startswith("-") and Path(arg).is_dir()
    ]


def main(argv: Sequence[str] | None = None, prog: str = "segloss report") -> int:
    """``segloss report FOLDERS [--task T] [--out PREFIX] [--baseline LOSS] [--results FILE] [task
    options]``: prints the report of the runs' task and, with ``--out``, writes its files; returns the exit
    status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    chooser = argparse.ArgumentParser(prog=prog, add_help=False)
    chooser.add_argument("--task", choices=reporting_tasks())
    known, _ = chooser.parse_known_args(argv)
    try:
        task = known.task or report_task(_folders(argv))
    except ValueError as error:
        chooser.error(str(error))
    spec = report_spec(task)
    parser = argparse.ArgumentParser(
        prog=prog, description=spec.description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folders", nargs="+", help="run folders or folders holding runs")
    parser.add_argument("--out", help="write PREFIX.md, PREFIX.csv (and the task's PREFIX.png) too")
    parser.add_argument(
        "--task", choices=reporting_tasks(), help="the runs' task (default: read from the runs)"
    )
    parser.add_argument("--baseline", default="ce", help="the loss.name compared against (default: ce)")
    parser.add_argument(
        "--results", default=RESULTS_FILE, help="results file of each run folder (default: %(default)s)"
    )
    if spec.add_arguments is not None:
        spec.add_arguments(parser)
    args = parser.parse_args(argv)
    import yaml

    try:
        runs = find_runs(args.folders, task, spec.read, args.results)
    except (OSError, ValueError, yaml.YAMLError) as error:
        parser.error(str(error))
    if not runs:
        parser.error(
            f"no finished {task} runs (config.yaml with {args.results}) below {', '.join(args.folders)}"
        )
    columns = spec.columns(runs)
    summary = summarise(runs, list(columns), args.baseline)
    addition = spec.addition(summary, args) if spec.addition is not None else Addition()
    count = sum(len(group.runs) for group in summary.groups)
    varying = ", ".join(summary.varying) or "nothing"
    if spec.one_table and LOSS_KEY in summary.varying:  # the table's Δ, pairs and p columns
        intro = (
            f"Varying: {varying}. mean ± sd over seeds (n runs); Δ: points against "
            f"{LOSS_KEY}={args.baseline} with the same other keys, paired by seed (mean ± sd of the "
            "differences), p: two-sided paired t-test."
        )
    else:
        intro = f"Varying: {varying}. Mean ± sd over seeds."
    text = (
        f"# {spec.title}: {count} runs in {len(summary.groups)} groups\n\n{intro}\n\n"
        + markdown(summary, columns, digits=spec.digits, one_table=spec.one_table)
        + "".join(line + "\n" for line in addition.markdown)
    )
    sys.stdout.write(text)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        Path(f"{out}.md").write_text(text)
        write_csv(summary, list(columns), Path(f"{out}.csv"), addition)
        written = [f"{out}.md", f"{out}.csv"]
        if spec.plot is not None:
            spec.plot(summary, Path(f"{out}.png"), args)
            written.append(f"{out}.png")
        sys.stdout.write(f"\nwrote {', '.join(written)}\n")
    return 0
