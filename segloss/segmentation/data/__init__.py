"""Segmentation data (docs/datasets.md): dataset readers, augmentation presets and class statistics.

Needs the ``seg`` extra (opencv, albumentations, scipy, cityscapesscripts, tqdm).
"""

from . import presets
from ._common import IGNORE_INDEX, SegmentationDataset
from .camvid import CamVid
from .cityscapes import Cityscapes
from .counts import ClassStatistics, class_counts, class_statistics
from .folder import SegmentationFolder
from .idd_lite import IDDLite
from .registry import DATASETS, build_dataset
from .sbd import SBD
from .synthetic import SyntheticScenes

__all__ = [
    "DATASETS",
    "IGNORE_INDEX",
    "SBD",
    "CamVid",
    "Cityscapes",
    "ClassStatistics",
    "IDDLite",
    "SegmentationDataset",
    "SegmentationFolder",
    "SyntheticScenes",
    "build_dataset",
    "class_counts",
    "class_statistics",
    "presets",
]
