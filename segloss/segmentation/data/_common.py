"""Shared pieces of the segmentation readers: the base class, image and mask reading, label tables."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

IGNORE_INDEX = 255
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def read_image(path: Path) -> np.ndarray:
    """An image file as an ``H×W×3`` uint8 RGB array; ``OSError`` naming the file if it cannot be decoded."""
    try:
        with Image.open(path) as image:
            image = image.convert("RGB") if image.mode != "RGB" else image
            return np.array(image)
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as error:
        raise OSError(f"cannot read image {path}: {error}") from error


def read_mask(path: Path) -> np.ndarray:
    """A single-channel (grayscale or palette) mask file as a 2-D integer array of raw values."""
    try:
        with Image.open(path) as mask:
            mode = mask.mode
            values = np.array(mask) if mode in ("L", "P", "I", "I;16", "I;16B", "I;16L", "1") else None
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as error:
        raise OSError(f"cannot read mask {path}: {error}") from error
    if values is None:
        raise ValueError(
            f"mask {path} has image mode {mode!r}; expected a single-channel (grayscale or palette) "
            f"image of class indices, not a colour-coded mask"
        )
    return values.astype(np.uint8) if values.dtype == bool else values


def require_dir(path: Path, layout: str) -> Path:
    """``path`` if it is a folder, else ``FileNotFoundError`` naming it and the expected layout."""
    if not path.is_dir():
        raise FileNotFoundError(f"folder not found: {path}\nexpected layout:\n{layout}")
    return path


def require_file(path: Path, layout: str) -> Path:
    """``path`` if it is a file, else ``FileNotFoundError`` naming it and the expected layout."""
    if not path.is_file():
        raise FileNotFoundError(f"file not found: {path}\nexpected layout:\n{layout}")
    return path


def shorten_list(items: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", … ({len(items)} in all)" if len(items) > limit else "")


def pair_by_stem(images_dir: Path, masks_dir: Path, layout: str) -> tuple[list[Path], list[Path]]:
    """Image and mask files of two folders paired by file stem, sorted by name.

    Every image needs exactly one mask and vice versa; otherwise ``FileNotFoundError`` names the stems.
    """

    def files_by_stem(folder: Path, kind: str) -> dict[str, Path]:
        files: dict[str, Path] = {}
        for path in sorted(require_dir(folder, layout).iterdir()):
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            if path.stem in files:
                raise ValueError(
                    f"two {kind} files with the stem {path.stem!r}: {files[path.stem]} and {path}"
                )
            files[path.stem] = path
        return files

    images = files_by_stem(images_dir, "image")
    masks = files_by_stem(masks_dir, "mask")
    if not images:
        raise FileNotFoundError(
            f"no images ({', '.join(IMAGE_SUFFIXES)}) in {images_dir}\nexpected layout:\n{layout}"
        )
    without_mask = sorted(images.keys() - masks.keys())
    if without_mask:
        raise FileNotFoundError(f"no mask in {masks_dir} for image(s) {shorten_list(without_mask)}")
    without_image = sorted(masks.keys() - images.keys())
    if without_image:
        raise FileNotFoundError(f"no image in {images_dir} for mask(s) {shorten_list(without_image)}")
    stems = sorted(images)
    return [images[stem] for stem in stems], [masks[stem] for stem in stems]


class LabelTable:
    """Maps raw mask values (0–255) to train ids; raw values outside the table are an error.

    ``mapping`` gives the train id (or ``IGNORE_INDEX``) of every valid raw value.
    """

    def __init__(self, mapping: Mapping[int, int]):
        self.lookup = np.zeros(256, dtype=np.uint8)
        self.invalid = np.ones(256, dtype=np.uint8)
        for raw, train_id in mapping.items():
            if not (0 <= raw <= 255 and 0 <= train_id <= 255):
                raise ValueError(f"label table entry {raw} -> {train_id} is outside 0..255")
            self.lookup[raw] = train_id
            self.invalid[raw] = 0
        valid = sorted(mapping)
        ignored = [raw for raw in valid if mapping[raw] == IGNORE_INDEX]
        self.description = f"valid raw values {_ranges(valid)}" + (
            f" ({_ranges(ignored)} ignored)" if ignored else ""
        )

    def __call__(self, raw: np.ndarray, path: Path) -> np.ndarray:
        """Train ids (uint8, ``IGNORE_INDEX`` for ignored pixels) of the raw mask read from ``path``."""
        if raw.dtype != np.uint8:
            if raw.size and (raw.min() < 0 or raw.max() > 255):
                out_of_range = np.unique(raw[(raw < 0) | (raw > 255)])
                raise ValueError(f"mask {path} holds value(s) {_values(out_of_range)}; {self.description}")
            raw = raw.astype(np.uint8)
        raw = np.ascontiguousarray(raw)
        if cv2.LUT(raw, self.invalid).any():
            bad = np.unique(raw[self.invalid[raw].astype(bool)])
            raise ValueError(
                f"mask {path} holds value(s) {_values(bad)} outside the class table; {self.description}"
            )
        return cv2.LUT(raw, self.lookup)


def _values(values: np.ndarray, limit: int = 10) -> str:
    return shorten_list([str(v) for v in values.tolist()], limit)


def _ranges(values: Sequence[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``"0-2, 5"``."""
    runs: list[list[int]] = []
    for value in values:
        if runs and value == runs[-1][1] + 1:
            runs[-1][1] = value
        else:
            runs.append([value, value])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def indexed_palette(num_classes: int) -> np.ndarray:
    """The PASCAL VOC colour map for ``num_classes`` classes, ``(C, 3)`` uint8."""
    index = np.arange(num_classes)
    palette = np.zeros((num_classes, 3), dtype=np.uint8)
    for bit in range(8):
        for channel in range(3):
            palette[:, channel] |= (((index >> (3 * bit + channel)) & 1) << (7 - bit)).astype(np.uint8)
    return palette


class SegmentationDataset(torch.utils.data.Dataset):
    """Base of every ``segloss.segmentation.data`` dataset.

    ``dataset[i]`` is ``(image, mask)``: without a transform an ``H×W×3`` uint8 RGB array and an ``H×W``
    int64 array of train ids (``ignore_index`` = 255 for ignored pixels); with an albumentations
    transform, whatever it returns for ``image`` and ``mask``, the mask as int64.

    Attributes: ``classes`` (names in index order), ``palette`` (``(C, 3)`` uint8 colours),
    ``ignore_index``, ``split``, ``transform``, ``image_files`` (one path per sample, for naming outputs) and,
    for a published dataset, ``split_sizes`` (the official number of images of each split, which
    ``datasets/check_download.py`` checks a download against).
    """

    classes: tuple[str, ...]
    palette: np.ndarray
    ignore_index: int = IGNORE_INDEX
    split_sizes: ClassVar[dict[str, int]] = {}

    def __init__(self, split: str, transform: Any = None):
        self.split = split
        self.transform = transform
        self.image_files: list[Path] = []

    def __len__(self) -> int:
        return len(self.image_files)

    def load_image(self, index: int) -> np.ndarray:
        """Image ``index`` as ``H×W×3`` uint8 RGB, without transform."""
        raise NotImplementedError

    def load_mask(self, index: int) -> np.ndarray:
        """Mask ``index`` as ``H×W`` uint8 train ids (255 for ignored pixels), without transform."""
        raise NotImplementedError

    def load_sample(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Image and mask ``index`` without transform (mask as uint8)."""
        return self.load_image(index), self.load_mask(index)

    def fingerprint(self) -> dict[str, Any]:
        """What the masks of this split depend on; ``class_counts`` hashes it into its cache key."""
        raise NotImplementedError

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {type(self).__name__} with {len(self)} samples")
        image, mask = self.load_sample(index % len(self))
        if self.transform is None:
            return image, mask.astype(np.int64)
        out = self.transform(image=image, mask=mask)
        mask = out["mask"]
        mask = mask.long() if isinstance(mask, torch.Tensor) else np.asarray(mask, dtype=np.int64)
        return out["image"], mask

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(split={self.split!r}, {len(self)} samples, {len(self.classes)} classes)"
        )


class FileSegmentationDataset(SegmentationDataset):
    """A dataset of image files with one mask file each; subclasses fill the file lists."""

    def __init__(self, root: str | os.PathLike, split: str, transform: Any = None):
        super().__init__(split, transform)
        self.root = Path(root).expanduser()
        self.mask_files: list[Path] = []

    def label_table(self, mask_file: Path) -> LabelTable:
        """The raw value → train id table for ``mask_file``."""
        raise NotImplementedError

    def read_raw_mask(self, mask_file: Path) -> np.ndarray:
        """The raw values stored in ``mask_file``."""
        return read_mask(mask_file)

    def load_image(self, index: int) -> np.ndarray:
        return read_image(self.image_files[index])

    def load_mask(self, index: int) -> np.ndarray:
        mask_file = self.mask_files[index]
        return self.label_table(mask_file)(self.read_raw_mask(mask_file), mask_file)

    def load_sample(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        image, mask = self.load_image(index), self.load_mask(index)
        if image.shape[:2] != mask.shape:
            raise ValueError(
                f"image {self.image_files[index]} is {image.shape[0]}×{image.shape[1]} but its mask "
                f"{self.mask_files[index]} is {mask.shape[0]}×{mask.shape[1]}"
            )
        return image, mask

    def fingerprint(self) -> dict[str, Any]:
        files = []
        for path in self.mask_files:
            stat = path.stat()
            files.append([os.path.abspath(path), stat.st_size, stat.st_mtime_ns])
        return {
            "dataset": type(self).__name__,
            "split": self.split,
            "classes": list(self.classes),
            "mask_files": files,
        }

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(root={str(self.root)!r}, split={self.split!r}, "
            f"{len(self)} samples, {len(self.classes)} classes)"
        )
