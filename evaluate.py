"""Evaluate a trained checkpoint: per-class IoU, pixel accuracy and mIoU for segmentation (at full
resolution), or the run's full evaluation for classification (accuracy, unknown-set AUROC, AutoAttack).

python evaluate.py --checkpoint runs/camvid/resnet34/hemplus/seed0/checkpoint.pt --split test --out r.json
python evaluate.py --checkpoint RUN/checkpoint.pt --split val --save-predictions preds --format cityscapes
python evaluate.py --checkpoint RUN/checkpoint.pt --unknown-classes pedestrian
python evaluate.py --checkpoint runs/cls/digits/mlp/hemplus/seed0/checkpoint.pt --out r.json

--unknown-classes reports how well the per-pixel confidence (MSP, MLS) tells the pixels of those classes
from the other classes' pixels (AUROC); by default for the classes the run held out of training
(data.holdout_classes). The logits of those classes are left out of the scores.
"""

from __future__ import annotations

import argparse
import logging
import sys

# Options that only mean something for segmentation checkpoints: flag -> attribute of the parsed arguments.
SEGMENTATION_OPTIONS = {
    "--split": "split",
    "--save-predictions": "save_predictions",
    "--format": "format",
    "--num-workers": "num_workers",
    "--unknown-classes": "unknown_classes",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", required=True, help="checkpoint.pt of a training run")
    parser.add_argument("--out", help="write the results JSON here (for segmentation SPEC §4's keys)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    segmentation = parser.add_argument_group("segmentation only")
    segmentation.add_argument("--split", help="split to evaluate (default: the run's eval.split)")
    segmentation.add_argument(
        "--save-predictions", metavar="DIR", help="write one PNG per image, named after it"
    )
    segmentation.add_argument(
        "--format",
        choices=("color", "trainid", "cityscapes"),  # segloss.evaluation.PREDICTION_FORMATS
        help="prediction PNGs: palette colours, train ids, or Cityscapes label ids (default: color)",
    )
    segmentation.add_argument("--num-workers", type=int, help="data loader workers (default: the run's)")
    segmentation.add_argument(
        "--unknown-classes",
        nargs="+",
        metavar="CLASS",
        help="pixel-level unknown rejection: AUROC of MSP/MLS, these classes' pixels against the others' "
        "(default: the run's data.holdout_classes)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from segloss.checkpoint import load_checkpoint
    from segloss.config import DEFAULT_TASK, ConfigError

    try:
        task = load_checkpoint(args.checkpoint)["config"].get("task", DEFAULT_TASK)
        evaluate = evaluate_classification if task == "classification" else evaluate_segmentation
        text = evaluate(args)
    except (ConfigError, OSError, ValueError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(text)
    if args.out:
        print(f"wrote {args.out}")
    return 0


def evaluate_segmentation(args: argparse.Namespace) -> str:
    from segloss.evaluation import evaluate_checkpoint

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
    )
    return results.format_table(f"{args.checkpoint} ({args.split or 'eval split'})")


def evaluate_classification(args: argparse.Namespace) -> str:
    given = [flag for flag, name in SEGMENTATION_OPTIONS.items() if getattr(args, name) is not None]
    if given:
        raise ValueError(
            f"{', '.join(given)}: options for segmentation runs only; {args.checkpoint} is a classification "
            f"run (its evaluation takes --out, --device and --no-progress)"
        )
    from segloss.classification.training import evaluate_checkpoint

    report = evaluate_checkpoint(
        args.checkpoint, out=args.out, device=args.device, progress=not args.no_progress
    )
    return f"{args.checkpoint} (test split)\n{report.format()}"


if __name__ == "__main__":
    sys.exit(main())
