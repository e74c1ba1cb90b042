"""The ``continual`` task of ``segloss train`` / ``segloss evaluate`` / ``segloss report`` (see
``segloss.runner.tasks``).

Only the standard library is imported here; the continual packages load when a command runs.
"""

from __future__ import annotations

import argparse

#: The run's ``train(config, *, resume)``, imported when a command trains.
TRAIN = "segloss.continual.training:train"
#: Its ``segloss report`` (``segloss.runner.report.ReportSpec``).
REPORT = "segloss.continual.report:REPORT"


def schema() -> type:
    """The config dataclass of the task."""
    from .config import ContinualConfig

    return ContinualConfig


def add_evaluate_arguments(group: argparse._ArgumentGroup) -> list[str]:
    """The continual evaluation takes only the common options (``--out``, ``--device``, ``--no-progress``,
    ``data.root``/``eval.*`` overrides): it re-tests the checkpoint's model on every experience of its
    stream."""
    return []


def evaluate(args: argparse.Namespace) -> str:
    """The checkpoint's accuracy matrix with its last row evaluated anew, as text."""
    from .evaluation import evaluate_checkpoint, format_results

    results = evaluate_checkpoint(
        args.checkpoint,
        out=args.out,
        device=args.device,
        progress=not args.no_progress,
        overrides=args.overrides,
    )
    return f"{args.checkpoint} (test split of every experience)\n{format_results(results)}"
