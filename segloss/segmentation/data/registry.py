"""The segmentation datasets by name: one table from which ``data.name``'s choices, ``build_dataset``,
``dataset_from_config`` and ``segloss stats --dataset`` derive.

A dataset registers in its own file: the reader (a ``SegmentationDataset`` subclass) and, below it, one
``register_dataset(DatasetEntry(...))`` call; the package's ``__init__`` imports every reader, so the table
is complete whenever this module is used (docs/extending.md). A reader that takes ``(root, split,
transform)`` needs nothing more; one built differently gives ``build`` and, for keys of the ``data``
config section, ``config_options``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._common import SegmentationDataset


def _read_from_root(
    reader: type[SegmentationDataset], root: Path, split: str, transform: Any, **options: Any
) -> SegmentationDataset:
    return reader(root, split, transform, **options)


def _no_options(data: Any, split: str) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class DatasetEntry:
    """One dataset of the registry.

    Args:
        name: the ``data.name`` of configs and ``--dataset`` of ``segloss stats``.
        reader: the ``SegmentationDataset`` class (its ``classes`` name the classes).
        build: ``build(reader, root, split, transform, **options)`` makes a split; by default
            ``reader(root, split, transform, **options)``.
        config_options: ``config_options(data, split)``: the reader's keyword options from the ``data``
            section of a config, for ``split``.
        needs_root: whether ``data.root`` is required.
        classes_from_config: for a dataset whose classes a config gives (``folder``): the class names of the
            ``data`` section; ``None`` when the reader's ``classes`` are fixed.
    """

    name: str
    reader: type[SegmentationDataset]
    build: Callable[..., SegmentationDataset] = _read_from_root
    config_options: Callable[[Any, str], dict[str, Any]] = _no_options
    needs_root: bool = True
    classes_from_config: Callable[[Any], Sequence[str] | None] | None = None

    def class_names(self, data: Any) -> Sequence[str]:
        """The class names, in index order, of this dataset as the ``data`` config section describes it."""
        if self.classes_from_config is not None:
            return self.classes_from_config(data) or ()
        return self.reader.classes


#: The registered datasets by name.
DATASETS: dict[str, DatasetEntry] = {}


def register_dataset(entry: DatasetEntry) -> DatasetEntry:
    """Add ``entry`` to ``DATASETS``; ``ValueError`` for a name already taken."""
    if entry.name in DATASETS:
        raise ValueError(f"a dataset named {entry.name!r} is already registered")
    DATASETS[entry.name] = entry
    return entry


def build_dataset(
    name: str,
    root: str | os.PathLike | None = None,
    split: str = "train",
    transform: Any = None,
    **options: Any,
) -> SegmentationDataset:
    """The split ``split`` of the registered dataset ``name``.

    Args:
        name: a key of ``DATASETS``.
        root: its folder; ``folder`` reads ``root/images/{split}/`` and ``root/masks/{split}/`` and needs
            ``classes=[...]`` (optional ``ignore_index``, the void value in the mask files); ``synthetic``
            ignores it and takes ``num_samples``, ``size`` and ``seed``.
        split: the split to read.
        transform: an albumentations transform applied to every sample.
        **options: keyword options of the reader.

    Returns:
        The dataset of ``(image, mask)`` samples.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}")
    entry = DATASETS[name]
    if root is None and entry.needs_root:
        raise ValueError(f"dataset {name!r} needs a root folder")
    return entry.build(entry.reader, None if root is None else Path(root), split, transform, **options)


def dataset_from_config(data: Any, split: str, transform: Any = None) -> SegmentationDataset:
    """The split ``split`` of the dataset the ``data`` section of a segmentation config names; a missing
    folder's error names the page that says how to get the data offline."""
    entry = DATASETS[data.name]
    try:
        return build_dataset(data.name, data.root, split, transform, **entry.config_options(data, split))
    except FileNotFoundError as error:
        raise FileNotFoundError(f"{error}\n{how_to_get(data.name, data.root)}") from None


def how_to_get(name: str, root: str | None) -> str:
    """Where the repository says how to get dataset ``name`` (and, for CamVid at half resolution, how to
    make it)."""
    page = f"datasets/{name}.md"
    hint = f"how to get it, also offline: {page} in the segloss repository"
    if name == "camvid" and root and "half" in str(root):
        hint += (
            "; the half-resolution copy is made from the full one with "
            f"python datasets/downsample_camvid.py data/CamVid {root}"
        )
    return hint
