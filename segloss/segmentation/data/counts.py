"""Per-class pixel counts of a split, cached on disk: the ``s_j`` of the count-based losses."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..._cache import default_cache_dir
from ...counting import count_classes
from ...runner.files import write_text_atomically
from ...runner.progress import progress_bar
from ._common import IGNORE_INDEX, SegmentationDataset

logger = logging.getLogger(__name__)

# Bump when the counting or the cache file changes, so that old cache entries are not reused.
CACHE_FORMAT = 2


@dataclass(frozen=True)
class ClassStatistics:
    """Pixel statistics of one split: ``counts`` (``(C,)`` int64 labelled pixels per class), ``ignored``
    pixels, ``num_images`` and ``presence`` (``(C,)`` int64: per class, the pixels, labelled and ignored, of
    the images that contain it; the denominator of median-frequency weights)."""

    classes: tuple[str, ...]
    counts: np.ndarray
    ignored: int
    num_images: int
    presence: np.ndarray

    @property
    def pixels_per_image(self) -> float:
        """Mean number of pixels (labelled and ignored) per image."""
        return (int(self.counts.sum()) + self.ignored) / self.num_images


def cache_key(dataset: SegmentationDataset) -> str:
    """Hash of everything the split's masks depend on (dataset, split, mask files with sizes and mtimes)."""
    description = json.dumps({"format": CACHE_FORMAT, **dataset.fingerprint()}, sort_keys=True)
    return hashlib.sha256(description.encode()).hexdigest()[:32]


def _load_cached(path: Path, classes: tuple[str, ...]) -> ClassStatistics | None:
    try:
        cached = json.loads(path.read_text())
        stats = ClassStatistics(
            tuple(cached["classes"]),
            np.array(cached["counts"], dtype=np.int64),
            cached["ignored"],
            cached["num_images"],
            np.array(cached["presence"], dtype=np.int64),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as error:
        logger.warning("ignoring unreadable class-count cache %s: %s", path, error)
        return None
    return stats if stats.classes == classes and len(stats.counts) == len(classes) else None


def _save_cached(path: Path, stats: ClassStatistics, dataset: SegmentationDataset) -> None:
    record = {
        "dataset": type(dataset).__name__,
        "split": dataset.split,
        "classes": list(stats.classes),
        "counts": stats.counts.tolist(),
        "ignored": stats.ignored,
        "num_images": stats.num_images,
        "presence": stats.presence.tolist(),
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomically(path, json.dumps(record, indent=1))
    except OSError as error:
        logger.warning("could not write the class-count cache %s: %s", path, error)


def class_statistics(
    dataset: SegmentationDataset,
    *,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    num_threads: int | None = None,
) -> ClassStatistics:
    """Labelled pixels per class, ignored pixels and image count of ``dataset``'s split.

    Reads every raw mask (no transform) once, with a progress bar, counts them with
    :func:`segloss.count_classes`, and caches the result in ``cache_dir`` (default
    ``default_cache_dir()``) under a key that changes with the files and the split.
    """
    classes = tuple(dataset.classes)
    cache_file = (
        Path(cache_dir or default_cache_dir()).expanduser() / f"class_counts-{cache_key(dataset)}.json"
    )
    cached = _load_cached(cache_file, classes)
    if cached is not None:
        logger.info("class counts of %r from %s", dataset, cache_file)
        return cached

    threads = num_threads or min(4, os.cpu_count() or 1)
    description = f"counting pixels of {type(dataset).__name__} {dataset.split}"
    with ThreadPoolExecutor(threads) as pool:
        masks = pool.map(lambda index: (None, dataset.load_mask(index)), range(len(dataset)))
        bar = progress_bar(masks, progress=progress, total=len(dataset), desc=description, unit="mask")
        try:
            counted = count_classes(bar, len(classes), ignore_index=IGNORE_INDEX)
        except ValueError as error:
            raise ValueError(f"masks of {dataset!r}: {error}") from None
    stats = ClassStatistics(
        classes, counted.pixels.numpy(), counted.ignored, counted.images, counted.presence_pixels.numpy()
    )
    _save_cached(cache_file, stats, dataset)
    logger.info("class counts of %r saved to %s", dataset, cache_file)
    return stats


def class_counts(
    dataset: SegmentationDataset, *, cache_dir: str | os.PathLike | None = None, progress: bool = True
) -> np.ndarray:
    """Labelled pixels per class of ``dataset``'s split, ``(C,)`` int64, ignored pixels excluded (cached)."""
    return class_statistics(dataset, cache_dir=cache_dir, progress=progress).counts
