"""A user's own data: an images folder and a masks folder paired by file stem."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._common import IGNORE_INDEX, FileSegmentationDataset, LabelTable, indexed_palette, pair_by_stem
from .registry import DatasetEntry, register_dataset

LAYOUT = """IMAGES/NAME.{png,jpg,...}   RGB images
MASKS/NAME.png              single-channel (grayscale or palette) masks of class indices 0..C-1,
                            void pixels = ignore_index"""


class SegmentationFolder(FileSegmentationDataset):
    """Images in ``images_dir`` paired by file stem with single-channel index masks in ``masks_dir``.

    Mask values ``0 … len(classes)-1`` are the classes and ``ignore_index`` marks void pixels (returned as
    255 like every dataset). ``image_files`` and ``mask_files`` list the pairs in name order; ``split`` is
    only a label (used in cache keys).
    """

    def __init__(
        self,
        images_dir: str | os.PathLike,
        masks_dir: str | os.PathLike,
        classes: Sequence[str],
        transform: Any = None,
        ignore_index: int = IGNORE_INDEX,
        split: str = "train",
    ):
        images_dir, masks_dir = Path(images_dir).expanduser(), Path(masks_dir).expanduser()
        super().__init__(images_dir.parent, split, transform)
        if isinstance(classes, str) or len(classes) < 2:
            raise ValueError(f"classes must be a sequence of at least 2 names, got {classes!r}")
        if len(classes) > IGNORE_INDEX:
            raise ValueError(
                f"at most {IGNORE_INDEX} classes fit uint8 masks with ignore index 255, got {len(classes)}"
            )
        if not len(classes) <= ignore_index <= 255:
            raise ValueError(
                f"ignore_index must be a value in {len(classes)}..255 (not a class id), got {ignore_index}"
            )
        self.classes = tuple(str(name) for name in classes)
        self.palette = indexed_palette(len(self.classes))
        self.file_ignore_index = ignore_index
        self._labels = LabelTable({**{i: i for i in range(len(self.classes))}, ignore_index: IGNORE_INDEX})
        layout = LAYOUT.replace("IMAGES", str(images_dir)).replace("MASKS", str(masks_dir))
        self.image_files, self.mask_files = pair_by_stem(images_dir, masks_dir, layout)

    def label_table(self, mask_file: Path) -> LabelTable:
        return self._labels

    def fingerprint(self) -> dict[str, Any]:
        return {**super().fingerprint(), "file_ignore_index": self.file_ignore_index}


def _build_folder(
    reader: type[SegmentationFolder], root: Path, split: str, transform: Any, **options: Any
) -> SegmentationFolder:
    if "classes" not in options:
        raise ValueError("dataset 'folder' needs classes=[class names in index order]")
    images, masks = root / "images" / split, root / "masks" / split
    return reader(images, masks, transform=transform, split=split, **options)


def _folder_options(data: Any, split: str) -> dict[str, Any]:
    return {"classes": data.classes, "ignore_index": data.ignore_value}


register_dataset(
    DatasetEntry(
        "folder",
        SegmentationFolder,
        build=_build_folder,
        config_options=_folder_options,
        classes_from_config=lambda data: data.classes,
    )
)
