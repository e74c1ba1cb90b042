"""``make demo``: CE and HEM+ trained with the same seed and model on synthetic scenes, both evaluated,
their per-class tables printed and compared (``segloss demo``)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..runner.config import load_config
from ..runner.files import CHECKPOINT_FILE
from ..runner.logs import EXPECTED_ERRORS
from .data import class_counts
from .evaluation import eval_dataset, evaluate_checkpoint
from .iou import SegmentationScores
from .training import train

logger = logging.getLogger(__name__)

LOSSES = ("ce", "hem+")


def comparison(scores: dict[str, SegmentationScores], baseline_miou: float, split: str) -> str:
    """One line: HEM+ against CE in mIoU points and per class, with the majority-class baseline."""
    ce, hem = scores["ce"], scores["hem+"]
    better = int(np.sum(np.nan_to_num(hem.iou) > np.nan_to_num(ce.iou)))
    return (
        f"HEM+ vs CE on synthetic {split}: mIoU {100 * hem.miou:.2f} % vs {100 * ce.miou:.2f} % "
        f"({100 * (hem.miou - ce.miou):+.2f} points), HEM+ higher on {better} of {len(ce.classes)} classes; "
        f"predicting the most common class everywhere scores {100 * baseline_miou:.2f} %"
    )


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Train and compare the two runs; returns the exit status."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    parser.add_argument(
        "--config", default="demo", help="base config: a recipe name or YAML file (default: %(default)s)"
    )
    parser.add_argument(
        "--out",
        "--out-dir",
        dest="out_dir",
        default="runs/demo",
        help="one run folder per loss below it (default: %(default)s)",
    )
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides for both runs")
    args = parser.parse_args(argv)

    scores: dict[str, SegmentationScores] = {}
    for loss in LOSSES:
        run_dir = Path(args.out_dir) / loss.replace("+", "plus")
        try:
            config = load_config(
                args.config, [*args.overrides, f"loss.name={loss}", f"train.out_dir={run_dir}"]
            )
            logger.info("%s: training in %s (a finished run there is reused)", loss, run_dir)
            train(config, resume=True)
            scores[loss] = evaluate_checkpoint(run_dir / CHECKPOINT_FILE, progress=False)
        except EXPECTED_ERRORS as error:  # e.g. overrides an existing run cannot take
            logger.error("%s: %s (delete %s to start the demo afresh)", loss, error, args.out_dir)
            return 1

    counts = class_counts(eval_dataset(config, config.eval.split), progress=False)
    baseline = counts.max() / counts.sum() / np.count_nonzero(counts)  # IoU = share for it, 0 for the others
    for loss, result in scores.items():
        sys.stdout.write(f"\n{result.format_table(f'{loss} on synthetic {config.eval.split}')}\n")
    sys.stdout.write(f"\n{comparison(scores, baseline, config.eval.split)}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
