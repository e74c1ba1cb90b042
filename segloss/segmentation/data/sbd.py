"""SBD (Semantic Boundaries Dataset) class masks: 21 PASCAL VOC classes from ``cls/ID.mat``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io

from ._common import (
    FileSegmentationDataset,
    LabelTable,
    indexed_palette,
    require_dir,
    require_file,
    shorten_list,
)
from .registry import DatasetEntry, register_dataset

LAYOUT = """ROOT/              (benchmark_RELEASE/dataset, or its parent benchmark_RELEASE)
  img/ID.jpg
  cls/ID.mat        (struct GTcls, field Segmentation: class ids 0-20)
  train.txt         (8498 ids, one per line)
  val.txt           (2857 ids)"""

# Ids per list file of benchmark_RELEASE.
SPLIT_SIZES = {"train": 8498, "val": 2857}


class SBD(FileSegmentationDataset):
    """SBD's semantic masks: ``root/img/ID.jpg`` with ``root/cls/ID.mat``, ids from ``root/{split}.txt``.

    ``root`` is ``benchmark_RELEASE/dataset``; its parent ``benchmark_RELEASE`` is accepted too. Samples
    are in the order of the list file. ``image_files`` and ``mask_files`` list the files.
    """

    split_sizes = SPLIT_SIZES
    classes = (
        "background",
        "aeroplane",
        "bicycle",
        "bird",
        "boat",
        "bottle",
        "bus",
        "car",
        "cat",
        "chair",
        "cow",
        "diningtable",
        "dog",
        "horse",
        "motorbike",
        "person",
        "pottedplant",
        "sheep",
        "sofa",
        "train",
        "tvmonitor",
    )
    palette = indexed_palette(len(classes))
    _labels = LabelTable({i: i for i in range(len(classes))})

    def __init__(self, root: str | os.PathLike, split: str = "train", transform: Any = None):
        super().__init__(root, split, transform)
        if not (self.root / "img").is_dir() and (self.root / "dataset" / "img").is_dir():
            self.root = self.root / "dataset"
        layout = LAYOUT.replace("ROOT", str(self.root))
        require_dir(self.root, layout)
        images_dir = require_dir(self.root / "img", layout)
        masks_dir = require_dir(self.root / "cls", layout)
        list_file = require_file(self.root / f"{split}.txt", layout)
        ids = [line.strip() for line in list_file.read_text().splitlines() if line.strip()]
        if not ids:
            raise ValueError(f"list file {list_file} holds no ids")
        images = {path.stem for path in images_dir.glob("*.jpg")}
        masks = {path.stem for path in masks_dir.glob("*.mat")}
        missing = [i for i in ids if i not in images or i not in masks]
        if missing:
            raise FileNotFoundError(
                f"id(s) {shorten_list(missing)} in {list_file} lack img/ID.jpg or cls/ID.mat in {self.root}"
            )
        self.image_files = [images_dir / f"{i}.jpg" for i in ids]
        self.mask_files = [masks_dir / f"{i}.mat" for i in ids]

    def read_raw_mask(self, mask_file: Path) -> np.ndarray:
        try:
            return scipy.io.loadmat(mask_file)["GTcls"][0]["Segmentation"][0]
        except (OSError, ValueError, KeyError, IndexError, TypeError, scipy.io.matlab.MatReadError) as error:
            raise OSError(
                f"cannot read SBD mask {mask_file} (expected a .mat file with GTcls.Segmentation): {error!r}"
            ) from error

    def label_table(self, mask_file: Path) -> LabelTable:
        return self._labels


register_dataset(DatasetEntry("sbd", SBD))
