"""IDD-Lite (India Driving Dataset, lite version): 7 classes at 227×320, label value 255 = void."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ._common import IGNORE_INDEX, FileSegmentationDataset, LabelTable, require_dir, shorten_list
from .registry import DatasetEntry, register_dataset

LAYOUT = """ROOT/
  leftImg8bit/{train,val,test}/SEQ/ID_image.jpg   (RGB, 227×320)
  gtFine/{train,val}/SEQ/ID_label.png             (8-bit label ids 0-6, 255 = void)"""

IMAGE_SUFFIX = "_image.jpg"
LABEL_SUFFIX = "_label.png"

# The reader's splits and the release folder each reads. The release's test split has no labels, so its
# labelled val folder is the held-out ``test`` split here, and a validation split for choosing settings is
# carved from the release's train folder by sequence (``VAL_EVERY``).
SPLIT_FOLDERS = {"train": "train", "val": "train", "test": "val", "trainval": "train"}
# ``val`` takes every VAL_EVERY-th sequence folder of the release's train split in numeric order (the
# 1st, 11th, 21st, ...: 31 of 309 sequences); ``train`` the others. Whole sequences, so no near-duplicate
# frames of one drive sit on both sides.
VAL_EVERY = 10
# Images per split of the release (idd20k_lite): train 1,403 = 1,281 + 122; its val folder (204) is ``test``.
SPLIT_SIZES = {"train": 1281, "val": 122, "test": 204, "trainval": 1403}


def _sequence_order(folder: Path) -> tuple[int, str]:
    return (int(folder.name), "") if folder.name.isdigit() else (1 << 62, folder.name)


class IDDLite(FileSegmentationDataset):
    """IDD-Lite as the release ``idd20k_lite`` ships it (datasets/idd_lite.md).

    Splits: ``train`` (1,281 images) and ``val`` (122, every 10th sequence folder of the release's train
    split), ``trainval`` (all 1,403 release train images) and ``test`` (the release's labelled ``val``
    folder, 204 images; the release's own test images have no labels). Label values 0–6 are the classes,
    255 is void. ``image_files``/``mask_files`` are sorted by sequence (numerically), then file name.
    """

    split_sizes = SPLIT_SIZES
    classes = (
        "drivable",
        "non-drivable",
        "living things",
        "vehicles",
        "roadside objects",
        "far objects",
        "sky",
    )
    # The colours of the IDD level-1 classes.
    palette = np.array(
        [
            [128, 64, 128],
            [244, 35, 232],
            [220, 20, 60],
            [0, 0, 142],
            [102, 102, 156],
            [70, 70, 70],
            [70, 130, 180],
        ],
        dtype=np.uint8,
    )
    _labels = LabelTable({**{i: i for i in range(len(classes))}, IGNORE_INDEX: IGNORE_INDEX})

    def __init__(self, root: str | os.PathLike, split: str = "train", transform: Any = None):
        if split not in SPLIT_FOLDERS:
            raise ValueError(f"IDD-Lite has the splits {', '.join(SPLIT_FOLDERS)}; got split={split!r}")
        super().__init__(root, split, transform)
        layout = LAYOUT.replace("ROOT", str(self.root))
        folder = SPLIT_FOLDERS[split]
        images_dir = require_dir(self.root / "leftImg8bit" / folder, layout)
        labels_dir = require_dir(self.root / "gtFine" / folder, layout)
        sequences = sorted((path for path in images_dir.iterdir() if path.is_dir()), key=_sequence_order)
        if split == "val":
            sequences = sequences[::VAL_EVERY]
        elif split == "train":
            sequences = [seq for index, seq in enumerate(sequences) if index % VAL_EVERY]
        for sequence in sequences:
            for image in sorted(sequence.glob(f"*{IMAGE_SUFFIX}")):
                self.image_files.append(image)
                self.mask_files.append(
                    labels_dir / sequence.name / image.name.replace(IMAGE_SUFFIX, LABEL_SUFFIX)
                )
        if not self.image_files:
            raise FileNotFoundError(f"no *{IMAGE_SUFFIX} images in {images_dir}\nexpected layout:\n{layout}")
        missing = [str(path.relative_to(labels_dir)) for path in self.mask_files if not path.is_file()]
        if missing:
            raise FileNotFoundError(
                f"no label in {labels_dir} for {len(missing)} image(s) of {images_dir}: "
                f"{shorten_list(missing)}\nexpected layout:\n{layout}"
            )

    def label_table(self, mask_file: Path) -> LabelTable:
        return self._labels


register_dataset(DatasetEntry("idd_lite", IDDLite))
