"""The ``classification`` task of ``segloss train`` / ``segloss evaluate`` (see ``segloss.runner.tasks``).

Only the standard library is imported here; the classification packages load when a command runs.
"""

from __future__ import annotations

import argparse

#: The run's ``train(config, *, resume)``, imported when a command trains.
TRAIN = "segloss.classification.training:train"
#: Its ``segloss report`` (``segloss.runner.report.ReportSpec``).
REPORT = "segloss.classification.report:REPORT"


def schema() -> type:
    """The config dataclass of the task."""
    from .config import ClassificationConfig

    return ClassificationConfig


def add_evaluate_arguments(group: argparse._ArgumentGroup) -> list[str]:
    """The classification evaluation takes only the common options (``--out``, ``--device``,
    ``--no-progress``, ``data.root``/``eval.*`` overrides): the run's ``eval`` settings say what to
    measure."""
    return []


def evaluate(args: argparse.Namespace) -> str:
    """The full evaluation of ``args.checkpoint`` (what the run wrote to ``results.json``) as text."""
    from .training import evaluate_checkpoint

    report = evaluate_checkpoint(
        args.checkpoint,
        out=args.out,
        device=args.device,
        progress=not args.no_progress,
        overrides=args.overrides,
    )
    return f"{args.checkpoint} (test split)\n{report.format()}"
