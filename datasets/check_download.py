"""Check a downloaded dataset folder (CamVid, Cityscapes, IDD-Lite, SBD: every registered reader with
official split sizes, its ``split_sizes``) against the layout the reader expects.

For every split: the number of images against the official count, then the first and last sample
(or every sample with --all) read through the segloss reader, which checks that images decode, that
image and mask sizes agree and that every mask value is in the class table. Exit status 1 on a problem.

    .venv/bin/python datasets/check_download.py --dataset camvid --root data/CamVid [--all]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from tqdm import tqdm

from segloss.segmentation.data import DATASETS, build_dataset

#: dataset name -> {split: official number of images}, from the readers that state them.
SPLIT_SIZES = {name: entry.reader.split_sizes for name, entry in DATASETS.items() if entry.reader.split_sizes}


def check_split(name: str, root: str, split: str, expected: int, read_all: bool) -> list[str]:
    """Problems found in one split (empty when it is complete and readable)."""
    try:
        dataset = build_dataset(name, root, split)
    except (OSError, ValueError) as error:
        return [f"{split}: {error}"]
    problems = [] if len(dataset) == expected else [f"{split}: {len(dataset)} images, expected {expected}"]
    indices = range(len(dataset)) if read_all else sorted({0, len(dataset) - 1})
    present = np.zeros(len(dataset.classes), dtype=bool)
    shapes = set()
    for index in tqdm(indices, desc=f"reading {split}", unit="image", disable=not read_all):
        try:
            image, mask = dataset[index]
        except (OSError, ValueError) as error:
            problems.append(f"{split}: {error}")
            continue
        shapes.add(image.shape[:2])
        present[np.unique(mask[mask != dataset.ignore_index])] = True
    sizes = ", ".join(f"{h}×{w}" for h, w in sorted(shapes)) if len(shapes) <= 3 else f"{len(shapes)} sizes"
    summary = f"{len(dataset):>5} images (expected {expected}), read {len(indices)}, image size {sizes}"
    print(f"{split:>6}: {summary}")
    if read_all:
        missing = [c for c, seen in zip(dataset.classes, present, strict=True) if not seen]
        print(f"        classes without pixels: {', '.join(missing) or 'none'}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, choices=sorted(SPLIT_SIZES))
    parser.add_argument("--root", required=True)
    parser.add_argument("--all", action="store_true", help="read every sample, not only the first and last")
    args = parser.parse_args()
    problems = []
    for split, expected in SPLIT_SIZES[args.dataset].items():
        problems += check_split(args.dataset, args.root, split, expected, args.all)
    for problem in problems:
        print(f"PROBLEM {problem}", file=sys.stderr)
    print("download looks complete" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
