"""Finished continual runs compared by what varies: final average accuracy, stream accuracy and average
forgetting, mean ± sd over seeds per group, and each one's difference to CE paired by seed.

    segloss report runs/sweep/cl_digits --out cl_report [--baseline ce]

finds every continual run folder (``config.yaml`` + ``results.json``) below the given folders and groups
the runs by every config key whose value differs between them, except the seed and bookkeeping keys
(``segloss.runner.report.varying_keys``); groups are ordered by their values (losses in registry order).
Each group is paired by seed with the baseline loss's group of the same other keys (``--baseline``). It
writes ``OUT.md`` and ``OUT.csv`` (a row per group) and prints the tables. Runs of other tasks and
unfinished runs are skipped with a note. ``segloss report`` comes here when the folders hold continual runs
(or with ``--task continual``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..runner.metric_report import metric_report_main
from .constants import TASK

__all__ = ["METRICS", "main", "read_metrics"]

# results.json key -> column title; fractions, reported in % (forgetting in points).
METRICS = {
    "average_accuracy": "average accuracy %",
    "stream_accuracy": "stream accuracy %",
    "average_forgetting": "average forgetting (points)",
}


def read_metrics(results: dict[str, Any]) -> dict[str, float]:
    """The final metrics of a continual ``results.json`` in %; ``KeyError`` when one is missing."""
    return {metric: 100 * float(results[metric]) for metric in METRICS}


def main(argv: Sequence[str] | None = None, prog: str = "segloss report") -> int:
    """The command line (see the module's docstring); returns the exit status."""
    return metric_report_main(
        argv,
        prog,
        description=__doc__,
        task=TASK,
        read=read_metrics,
        metrics=lambda runs: METRICS,
        title="Continual runs by what varies",
    )


if __name__ == "__main__":
    raise SystemExit(main())
