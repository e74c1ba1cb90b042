"""CamVid in SegNet's layout: 11 classes, mask value 11 = void."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ._common import IGNORE_INDEX, FileSegmentationDataset, LabelTable, pair_by_stem, require_dir
from .registry import DatasetEntry, register_dataset

LAYOUT = """ROOT/
  train/      NAME.png  (367 RGB images, 360×480)
  trainannot/ NAME.png  (367 masks, values 0-11, 11 = void)
  val/        valannot/   (101 pairs)
  test/       testannot/  (233 pairs)"""

VOID = 11
# Images per split of the SegNet release.
SPLIT_SIZES = {"train": 367, "val": 101, "test": 233}


class CamVid(FileSegmentationDataset):
    """CamVid as SegNet distributes it: ``root/{split}/NAME.png``, masks in ``root/{split}annot/NAME.png``.

    Splits ``train`` (367), ``val`` (101), ``test`` (233). Mask values 0–10 are the classes, 11 (void) is
    ignored. ``image_files`` and ``mask_files`` list the files in name order.
    """

    split_sizes = SPLIT_SIZES
    classes = (
        "sky",
        "building",
        "pole",
        "road",
        "pavement",
        "tree",
        "signsymbol",
        "fence",
        "car",
        "pedestrian",
        "bicyclist",
    )
    # SegNet's colours for CamVid.
    palette = np.array(
        [
            [128, 128, 128],
            [128, 0, 0],
            [192, 192, 128],
            [128, 64, 128],
            [60, 40, 222],
            [128, 128, 0],
            [192, 128, 128],
            [64, 64, 128],
            [64, 0, 128],
            [64, 64, 0],
            [0, 128, 192],
        ],
        dtype=np.uint8,
    )
    _labels = LabelTable({**{i: i for i in range(len(classes))}, VOID: IGNORE_INDEX})

    def __init__(self, root: str | os.PathLike, split: str = "train", transform: Any = None):
        super().__init__(root, split, transform)
        layout = LAYOUT.replace("ROOT", str(self.root))
        require_dir(self.root, layout)
        self.image_files, self.mask_files = pair_by_stem(
            self.root / split, self.root / f"{split}annot", layout
        )

    def label_table(self, mask_file: Path) -> LabelTable:
        return self._labels


register_dataset(DatasetEntry("camvid", CamVid))
