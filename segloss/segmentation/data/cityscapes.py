"""Cityscapes fine annotations: 19 train ids from cityscapesscripts' label table."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from cityscapesscripts.helpers.labels import labels as CITYSCAPES_LABELS

from ._common import IGNORE_INDEX, FileSegmentationDataset, LabelTable, require_dir
from .registry import DatasetEntry, register_dataset

LAYOUT = """ROOT/
  leftImg8bit/{train,val,test}/CITY/CITY_SEQ_FRAME_leftImg8bit.png
  gtFine/{train,val,test}/CITY/CITY_SEQ_FRAME_gtFine_labelIds.png
      (or CITY_SEQ_FRAME_gtFine_labelTrainIds.png from cityscapesscripts' createTrainIdLabelImgs)"""

# Images per split of leftImg8bit_trainvaltest / gtFine_trainvaltest.
SPLIT_SIZES = {"train": 2975, "val": 500, "test": 1525}

IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_IDS_SUFFIX = "_gtFine_labelIds.png"
TRAIN_IDS_SUFFIX = "_gtFine_labelTrainIds.png"

_TRAINED = sorted(
    (label for label in CITYSCAPES_LABELS if 0 <= label.trainId < IGNORE_INDEX),
    key=lambda label: label.trainId,
)
_LABEL_ID_TABLE = LabelTable(
    {
        label.id: label.trainId if 0 <= label.trainId < IGNORE_INDEX else IGNORE_INDEX
        for label in CITYSCAPES_LABELS
        if label.id >= 0
    }
)
_TRAIN_ID_TABLE = LabelTable(
    {**{label.trainId: label.trainId for label in _TRAINED}, IGNORE_INDEX: IGNORE_INDEX}
)


class Cityscapes(FileSegmentationDataset):
    """Cityscapes with fine annotations, 19 classes (train ids 0–18; every other label id is ignored).

    Reads ``root/leftImg8bit/{split}/CITY/*_leftImg8bit.png`` in name order and, for each image,
    ``gtFine/{split}/CITY/*_gtFine_labelTrainIds.png`` when present, else ``*_gtFine_labelIds.png``
    mapped to train ids with cityscapesscripts' table. ``image_files`` and ``mask_files`` list the files;
    ``train_id_to_label_id`` (``(19,)`` int64) maps predictions back to Cityscapes label ids.
    """

    split_sizes = SPLIT_SIZES
    classes = tuple(label.name for label in _TRAINED)
    palette = np.array([label.color for label in _TRAINED], dtype=np.uint8)
    train_id_to_label_id = np.array([label.id for label in _TRAINED], dtype=np.int64)

    def __init__(self, root: str | os.PathLike, split: str = "train", transform: Any = None):
        super().__init__(root, split, transform)
        layout = LAYOUT.replace("ROOT", str(self.root))
        require_dir(self.root, layout)
        images_dir = require_dir(self.root / "leftImg8bit" / split, layout)
        labels_dir = require_dir(self.root / "gtFine" / split, layout)
        self.image_files = sorted(images_dir.glob(f"*/*{IMAGE_SUFFIX}"))
        if not self.image_files:
            raise FileNotFoundError(
                f"no *{IMAGE_SUFFIX} images in {images_dir}/CITY/\nexpected layout:\n{layout}"
            )
        for image_file in self.image_files:
            image_id = image_file.name[: -len(IMAGE_SUFFIX)]
            stem = labels_dir / image_file.parent.name / image_id
            train_ids = stem.with_name(image_id + TRAIN_IDS_SUFFIX)
            label_ids = stem.with_name(image_id + LABEL_IDS_SUFFIX)
            if train_ids.is_file():
                self.mask_files.append(train_ids)
            elif label_ids.is_file():
                self.mask_files.append(label_ids)
            else:
                raise FileNotFoundError(
                    f"no label file for image {image_id}: expected {label_ids} or {train_ids}"
                )

    def label_table(self, mask_file: Path) -> LabelTable:
        return _TRAIN_ID_TABLE if mask_file.name.endswith(TRAIN_IDS_SUFFIX) else _LABEL_ID_TABLE


register_dataset(DatasetEntry("cityscapes", Cityscapes))
