"""The ``segmentation`` task of ``segloss train`` / ``segloss evaluate`` (see ``segloss.runner.tasks``).

Only the standard library is imported here; the segmentation packages load when a command runs.
"""

from __future__ import annotations

import argparse

from .constants import PREDICTION_FORMATS

#: The task's own ``segloss`` subcommands: name -> (``module:function`` of ``main(argv, prog)``, help).
COMMANDS: dict[str, tuple[str, str]] = {
    "stats": ("segloss.segmentation.data.stats:main", "class counts and HEM / HEM+ margins of a split"),
    "demo": ("segloss.segmentation.demo:main", "CE vs HEM+ on synthetic scenes (offline, CPU)"),
    "export": ("segloss.segmentation.export:main", "a run's model for use without segloss (smp, ONNX)"),
    "predict": ("segloss.segmentation.predict:main", "predict every image of a folder, any size"),
}


#: The run's ``train(config, *, resume)``, imported when a command trains.
TRAIN = "segloss.segmentation.training:train"
#: Its ``segloss report`` (``segloss.runner.report.ReportSpec``).
REPORT = "segloss.segmentation.report:REPORT"


def schema() -> type:
    """The config dataclass of the task."""
    from .config import SegmentationConfig

    return SegmentationConfig


def add_evaluate_arguments(group: argparse._ArgumentGroup) -> list[str]:
    """The segmentation options of ``segloss evaluate``; returns their ``dest`` names."""
    group.add_argument("--split", help="split to evaluate (default: the run's eval.split)")
    group.add_argument("--save-predictions", metavar="DIR", help="write one PNG per image, named after it")
    group.add_argument(
        "--format",
        choices=PREDICTION_FORMATS,
        help="prediction PNGs: palette colours, train ids, or Cityscapes label ids (default: color)",
    )
    group.add_argument("--num-workers", type=int, help="data loader workers (default: the run's)")
    group.add_argument(
        "--unknown-classes",
        nargs="+",
        metavar="CLASS",
        help="pixel-level unknown rejection: AUROC of MSP/MLS, these classes' pixels against the others' "
        "(default: the run's data.holdout_classes)",
    )
    return ["split", "save_predictions", "format", "num_workers", "unknown_classes"]


def evaluate(args: argparse.Namespace) -> str:
    """Evaluate ``args.checkpoint`` at full resolution; returns the per-class table."""
    from .evaluation import evaluate_checkpoint

    results = evaluate_checkpoint(
        args.checkpoint,
        split=args.split,
        out=args.out,
        save_predictions=args.save_predictions,
        fmt=args.format or "color",
        device=args.device,
        num_workers=args.num_workers,
        progress=not args.no_progress,
        unknown_classes=args.unknown_classes,
        overrides=args.overrides,
    )
    return results.format_table(f"{args.checkpoint} ({args.split or 'eval split'})")
