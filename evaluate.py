"""Evaluate a trained checkpoint at full resolution: per-class IoU and pixel accuracy, mIoU.

python evaluate.py --checkpoint runs/camvid/resnet34/hemplus/seed0/checkpoint.pt --split test --out r.json
python evaluate.py --checkpoint RUN/checkpoint.pt --split val --save-predictions preds --format cityscapes
"""

from __future__ import annotations

import argparse
import logging
import sys

from segloss.evaluation import PREDICTION_FORMATS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", required=True, help="checkpoint.pt of a training run")
    parser.add_argument("--split", help="split to evaluate (default: the run's eval.split)")
    parser.add_argument("--out", help="write SPEC §4's JSON (miou, pixel_accuracy, per_class) here")
    parser.add_argument("--save-predictions", metavar="DIR", help="write one PNG per image, named after it")
    parser.add_argument(
        "--format",
        choices=PREDICTION_FORMATS,
        default="color",
        help="prediction PNGs: palette colours, train ids, or Cityscapes label ids (default: color)",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--num-workers", type=int, help="data loader workers (default: the run's)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from segloss.config import ConfigError
    from segloss.evaluation import evaluate_checkpoint

    try:
        scores = evaluate_checkpoint(
            args.checkpoint,
            split=args.split,
            out=args.out,
            save_predictions=args.save_predictions,
            fmt=args.format,
            device=args.device,
            num_workers=args.num_workers,
            progress=not args.no_progress,
        )
    except (ConfigError, FileNotFoundError, ValueError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(scores.format_table(f"{args.checkpoint} ({args.split or 'eval split'})"))
    if args.out:
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
