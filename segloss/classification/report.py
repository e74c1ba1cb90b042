"""Finished classification runs compared by what varies: test accuracy, mean AUROC of unknown-class
rejection (MSP and MLS, over the unknown sets), AutoAttack robust accuracy and detection-adjusted robust
accuracy (DAR, MSP and MLS) per attack, and corruption accuracy, each as mean ± sd over seeds per group and
as the difference to CE paired by seed.

    segloss report studies/mnist --out mnist_report [--baseline ce] [--results results.json]

finds every classification run folder (``config.yaml`` + ``results.json``) below the given folders and
groups the runs by every config key whose value differs between them (model, loss, ...) except the seed and
bookkeeping keys; a column appears when some run measured it (``eval.unknown_sets``, ``eval.attack_samples``,
``eval.corruptions_root``). It prints the tables and, with ``--out``, writes ``OUT.md`` and ``OUT.csv``
(``segloss.runner.report``, the engine of every task's report).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..runner.report import ReportRun, ReportSpec
from .constants import TASK

__all__ = ["REPORT", "metric_titles", "read_metrics"]

NORM_LABELS = {"Linf": "L∞", "L2": "L2"}


def _attack(attack: dict[str, Any]) -> str:
    return f"{attack['norm']}_{attack['eps']:g}"


def read_metrics(results: dict[str, Any]) -> dict[str, float]:
    """The metrics of a classification ``results.json`` in %: ``accuracy``; ``auroc_msp`` / ``auroc_mls``
    (mean over the unknown sets); per attack ``robust_NORM_EPS``, ``dar_msp_NORM_EPS``, ``dar_mls_NORM_EPS``;
    ``corruption_accuracy``. ``KeyError`` without ``accuracy``."""
    values = {"accuracy": 100 * float(results["accuracy"])}
    unknown = results.get("unknown")
    if unknown:
        values.update({f"auroc_{score}": 100 * float(auroc) for score, auroc in unknown["mean"].items()})
    for attack in results.get("attacks") or []:
        name = _attack(attack)
        values[f"robust_{name}"] = 100 * float(attack["robust_accuracy"])
        values.update({f"dar_{score}_{name}": 100 * float(dar) for score, dar in attack["dar"].items()})
    if results.get("corruptions"):
        values["corruption_accuracy"] = 100 * float(results["corruptions"]["mean_accuracy"])
    return values


SCORE_ORDER = {"msp": "0", "mls": "1"}  # the paper's order of the confidence scores


def _column_order(metric: str) -> tuple[int, str, str]:
    """Accuracy, AUROC (MSP, MLS), then each attack's robust accuracy and DARs together, then corruption
    accuracy."""
    kind, _, rest = metric.partition("_")
    if kind == "robust":
        return (2, rest, "")
    if kind == "dar":
        score, _, attack = rest.partition("_")
        return (2, attack, SCORE_ORDER.get(score, score))
    return ({"accuracy": 0, "auroc": 1}.get(kind, 3), SCORE_ORDER.get(rest, rest), "")


def metric_titles(runs: Sequence[ReportRun]) -> dict[str, str]:
    """The column title of every metric some run has: accuracy, AUROC (MSP, MLS), per attack its robust
    accuracy and DAR (MSP, MLS), corruption accuracy."""
    titles = {}
    for metric in sorted({metric for run in runs for metric in run.values}, key=_column_order):
        kind, _, rest = metric.partition("_")
        if kind == "auroc":
            titles[metric] = f"AUROC {rest.upper()} %"
        elif kind == "robust":
            norm, eps = rest.split("_")
            titles[metric] = f"{NORM_LABELS.get(norm, norm)} {eps} robust %"
        elif kind == "dar":
            score, norm, eps = rest.split("_")
            titles[metric] = f"{NORM_LABELS.get(norm, norm)} {eps} DAR {score.upper()} %"
        else:
            titles[metric] = metric.replace("_", " ") + " %"
    return titles


REPORT = ReportSpec(
    task=TASK,
    title="Classification runs by what varies",
    description=__doc__,
    read=read_metrics,
    columns=metric_titles,
)
