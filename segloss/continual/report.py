"""Finished continual runs compared by what varies: final average accuracy, stream accuracy and average
forgetting, mean ± sd over seeds per group, and each one's difference to CE paired by seed.

    segloss report runs/sweep/cl_digits --out cl_report [--baseline ce]

finds every continual run folder (``config.yaml`` + ``results.json``) below the given folders and groups
the runs by every config key whose value differs between them, except the seed and bookkeeping keys
(``segloss.runner.grouping.varying_keys``); groups are ordered by their values (losses in registry
order). Each group is paired by seed with the baseline loss's group of the same other keys
(``--baseline``). It prints the tables and, with ``--out``, writes ``OUT.md`` and ``OUT.csv`` (a row per
group) through ``segloss.runner.report``, the engine of every task's report.
"""

from __future__ import annotations

from typing import Any

from ..runner.report import ReportSpec
from .constants import TASK

__all__ = ["METRICS", "REPORT", "read_metrics"]

# results.json key -> column title; fractions, reported in % (forgetting in points).
METRICS = {
    "average_accuracy": "average accuracy %",
    "stream_accuracy": "stream accuracy %",
    "average_forgetting": "average forgetting (points)",
}


def read_metrics(results: dict[str, Any]) -> dict[str, float]:
    """The final metrics of a continual ``results.json`` in %; ``KeyError`` when one is missing."""
    return {metric: 100 * float(results[metric]) for metric in METRICS}


REPORT = ReportSpec(
    task=TASK,
    title="Continual runs by what varies",
    description=__doc__,
    read=read_metrics,
    columns=lambda runs: METRICS,
)
