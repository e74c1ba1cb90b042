"""Finished continual runs compared by what varies: final average accuracy, stream accuracy and average
forgetting, mean ± sd over seeds per group.

    segloss report runs/sweep/cl_digits --out cl_report

finds every continual run folder (``config.yaml`` + ``results.json``) below the given folders and groups
the runs by every config key whose value differs between them, except the seed and bookkeeping keys
(``segloss.runner.report.varying_keys``); groups are ordered by their values (losses in registry order).
It writes ``OUT.md`` and ``OUT.csv`` (a row per group) and prints the table. Runs of other tasks and
unfinished runs are skipped with a note. ``segloss report`` comes here when the folders hold continual runs
(or with ``--task continual``).
"""

from __future__ import annotations

import argparse
import csv
import logging
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..runner.report import SEED_KEY, finished_runs, key_labels, value_order, varying_keys
from .task import TASK

logger = logging.getLogger(__name__)

__all__ = ["METRICS", "ContinualResult", "find_runs", "group_runs", "main", "markdown", "write_csv"]

# results.json key -> column title; fractions, reported in % (forgetting in points).
METRICS = {
    "average_accuracy": "average accuracy %",
    "stream_accuracy": "stream accuracy %",
    "average_forgetting": "average forgetting (points)",
}


@dataclass(frozen=True)
class ContinualResult:
    """One finished continual run: its folder, config as flat dotted keys (lists as tuples), seed and
    ``results.json``."""

    path: Path
    settings: dict[str, Any]
    seed: int
    results: dict[str, Any]


Group = tuple[tuple[tuple[str, Any], ...], list[ContinualResult]]


def find_runs(folders: Iterable[str | Path]) -> list[ContinualResult]:
    """Every finished continual run at or below ``folders`` (others are skipped with a logged note).

    Raises:
        FileNotFoundError: a folder does not exist.
    """
    runs = []
    for run_dir, settings, results in finished_runs(folders, TASK):
        if any(metric not in results for metric in METRICS):
            logger.warning("skipping %s: its results.json has no final metrics", run_dir)
            continue
        runs.append(ContinualResult(run_dir, settings, settings[SEED_KEY], results))
    return runs


def group_runs(runs: Sequence[ContinualResult]) -> tuple[list[str], list[Group]]:
    """The varying keys and the groups of runs sharing their values, ordered by value; runs by seed."""
    varying = varying_keys([run.settings for run in runs])
    members: dict[tuple[tuple[str, Any], ...], list[ContinualResult]] = defaultdict(list)
    for run in runs:
        members[tuple((key, run.settings.get(key)) for key in varying)].append(run)
    ordered = sorted(members.items(), key=lambda item: [value_order(k, v) for k, v in item[0]])
    return varying, [(key, sorted(found, key=lambda run: run.seed)) for key, found in ordered]


def _values(group: Sequence[ContinualResult], metric: str) -> np.ndarray:
    return 100 * np.array([run.results[metric] for run in group], dtype=np.float64)


def _mean_sd(values: np.ndarray) -> str:
    """``mean ± sample sd``; a single value alone."""
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{values.mean():.1f} ± {values.std(ddof=1):.1f}"


def _text(value: Any) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(map(_text, value)) + "]"
    return "null" if value is None else str(value)


def markdown(varying: Sequence[str], groups: Sequence[Group]) -> str:
    """The report as a markdown table: the varying keys, runs, seeds and each metric's mean ± sd."""
    labels = key_labels(varying)
    header = [*(labels[key] for key in varying), "n", "seeds", *METRICS.values()]
    if not varying:
        header.insert(0, "runs")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key, group in groups:
        cells = [_text(value) for _, value in key] or ["all"]
        cells += [str(len(group)), " ".join(str(run.seed) for run in group)]
        cells += [_mean_sd(_values(group, metric)) for metric in METRICS]
        lines.append("| " + " | ".join(cells) + " |")
    count = sum(len(group) for _, group in groups)
    return (
        f"# Continual runs by what varies: {count} runs in {len(groups)} groups\n\n"
        f"Varying: {', '.join(varying) or 'nothing'}. Mean ± sd over seeds.\n\n" + "\n".join(lines) + "\n"
    )


def write_csv(varying: Sequence[str], groups: Sequence[Group], path: Path) -> None:
    """One row per group: the varying keys, runs, seeds, and each metric's mean and sd (%)."""
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(
            [
                *varying,
                "runs",
                "seeds",
                *(f"{metric}_{stat}" for metric in METRICS for stat in ("mean", "std")),
            ]
        )
        for key, group in groups:
            numbers = []
            for metric in METRICS:
                values = _values(group, metric)
                std = values.std(ddof=1) if len(values) > 1 else float("nan")
                numbers += [f"{values.mean():.4f}", "" if np.isnan(std) else f"{std:.4f}"]
            seeds = " ".join(str(run.seed) for run in group)
            writer.writerow([*(_text(value) for _, value in key), len(group), seeds, *numbers])


def main(argv: Sequence[str] | None = None, prog: str = "segloss report") -> int:
    """The command line (see the module's docstring); returns the exit status."""
    parser = argparse.ArgumentParser(
        prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folders", nargs="+", help="run folders or folders holding runs")
    parser.add_argument("--out", default="report", help="output prefix for .md and .csv (default: report)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        runs = find_runs(args.folders)
    except (OSError, KeyError, ValueError, yaml.YAMLError) as error:
        parser.error(str(error))
    if not runs:
        parser.error(f"no finished continual runs below {', '.join(args.folders)}")
    varying, groups = group_runs(runs)
    text = markdown(varying, groups)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(f"{args.out}.md").write_text(text)
    write_csv(varying, groups, Path(f"{args.out}.csv"))
    sys.stdout.write(text + f"\nwrote {args.out}.md, {args.out}.csv\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
