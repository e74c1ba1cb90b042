"""Augmentation presets (albumentations 2) and seeding of their random state.

albumentations 2's ``Compose`` keeps its own random generator and ignores the global seeds; every
DataLoader worker starts with a copy of the same state. ``seed_transform`` and ``seed_worker`` make the
augmentations a function of the run seed, the epoch and the worker.
"""

from __future__ import annotations

from collections.abc import Sequence

import albumentations as A
import cv2
import numpy as np
import torch
from albumentations.pytorch import ToTensorV2

from ._common import IGNORE_INDEX

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _crop_hw(crop_size: int | Sequence[int]) -> tuple[int, int]:
    height, width = (crop_size, crop_size) if isinstance(crop_size, int) else tuple(crop_size)
    if not (isinstance(height, int) and isinstance(width, int) and height > 0 and width > 0):
        raise ValueError(f"crop_size must be a positive int or (height, width), got {crop_size!r}")
    return height, width


def _check_mean_std(mean: Sequence[float], std: Sequence[float]) -> None:
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        raise ValueError(f"mean and std need 3 values each (std > 0), got mean={mean!r}, std={std!r}")


def train_transform(
    crop_size: int | Sequence[int],
    mean: Sequence[float],
    std: Sequence[float],
    scale: tuple[float, float] = (0.5, 2.0),
    ignore_index: int = IGNORE_INDEX,
    *,
    seed: int | None = None,
) -> A.Compose:
    """Training augmentation: random scale, pad (mask with ``ignore_index``) and random crop to
    ``crop_size``, horizontal flip, light colour jitter, normalisation with ``mean``/``std`` (fractions
    of 255, as encoders publish them) and conversion to tensors (image ``3×H×W`` float32)."""
    height, width = _crop_hw(crop_size)
    _check_mean_std(mean, std)
    if not 0 < scale[0] <= scale[1]:
        raise ValueError(f"scale must be (low, high) with 0 < low <= high, got {scale!r}")
    return A.Compose(
        [
            A.RandomScale(
                scale_limit=(scale[0] - 1.0, scale[1] - 1.0),
                interpolation=cv2.INTER_LINEAR,
                mask_interpolation=cv2.INTER_NEAREST,
                p=1.0,
            ),
            A.RandomCrop(
                height,
                width,
                pad_if_needed=True,
                border_mode=cv2.BORDER_CONSTANT,
                fill=0,
                fill_mask=ignore_index,
            ),
            A.HorizontalFlip(p=0.5),
            A.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.02, p=0.5),
            A.Normalize(mean=tuple(mean), std=tuple(std), max_pixel_value=255.0),
            ToTensorV2(),
        ],
        seed=seed,
    )


def eval_transform(mean: Sequence[float], std: Sequence[float]) -> A.Compose:
    """Evaluation: normalisation with ``mean``/``std`` and conversion to tensors, at full resolution."""
    _check_mean_std(mean, std)
    return A.Compose([A.Normalize(mean=tuple(mean), std=tuple(std), max_pixel_value=255.0), ToTensorV2()])


def seed_transform(transform: A.BaseCompose, *seeds: int) -> int:
    """Seed ``transform``'s random state from one or more integers, e.g. ``(run_seed, epoch, worker_id)``.

    Returns the derived 32-bit seed. The same integers give the same augmentations.
    """
    if not seeds or not all(isinstance(s, (int, np.integer)) and s >= 0 for s in seeds):
        raise ValueError(f"seed_transform needs one or more non-negative ints, got {seeds!r}")
    seed = int(np.random.SeedSequence([int(s) for s in seeds]).generate_state(1)[0])
    transform.set_random_seed(seed)
    return seed


def seed_worker(worker_id: int) -> None:
    """``DataLoader`` ``worker_init_fn``: seeds the worker's copy of the dataset's transform.

    The seed is the worker's ``torch.initial_seed()``, which PyTorch derives from the loader's
    ``generator`` and the worker id; seed that generator from (run seed, epoch) and the augmentations
    of every worker are reproducible. Datasets wrapped in ``Subset``-like objects (``.dataset``) are found.
    """
    info = torch.utils.data.get_worker_info()
    if info is None:
        raise RuntimeError("seed_worker is a DataLoader worker_init_fn; call it inside a worker")
    dataset = info.dataset
    while getattr(dataset, "transform", None) is None and hasattr(dataset, "dataset"):
        dataset = dataset.dataset
    transform = getattr(dataset, "transform", None)
    if transform is not None:
        seed_transform(transform, torch.initial_seed())
