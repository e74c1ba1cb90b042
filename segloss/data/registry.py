"""Dataset lookup by name, for configs and command lines."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ._common import SegmentationDataset
from .camvid import CamVid
from .cityscapes import Cityscapes
from .folder import SegmentationFolder
from .sbd import SBD
from .synthetic import SyntheticScenes

DATASETS: dict[str, type[SegmentationDataset]] = {
    "camvid": CamVid,
    "cityscapes": Cityscapes,
    "sbd": SBD,
    "folder": SegmentationFolder,
    "synthetic": SyntheticScenes,
}


def build_dataset(
    name: str,
    root: str | os.PathLike | None = None,
    split: str = "train",
    transform: Any = None,
    **kwargs: Any,
) -> SegmentationDataset:
    """The dataset ``name`` (a key of ``DATASETS``) for ``split``.

    ``folder`` reads ``root/images/{split}/`` and ``root/masks/{split}/`` and needs ``classes=[...]``
    (optional ``ignore_index``, the void value in the mask files); ``synthetic`` ignores ``root`` and
    takes ``num_samples``, ``size`` and ``seed``.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}")
    if name == "synthetic":
        return SyntheticScenes(split, transform=transform, **kwargs)
    if root is None:
        raise ValueError(f"dataset {name!r} needs a root folder")
    if name == "folder":
        if "classes" not in kwargs:
            raise ValueError("dataset 'folder' needs classes=[class names in index order]")
        root = Path(root)
        return SegmentationFolder(
            root / "images" / split, root / "masks" / split, transform=transform, split=split, **kwargs
        )
    return DATASETS[name](root, split, transform, **kwargs)
