"""Count the classes of your own data: ``count_classes`` reads any ``Dataset`` or ``DataLoader`` of
``(image, mask)`` pairs and returns everything ``build_loss`` takes from class counts."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["ClassCounts", "count_classes"]


@dataclass(frozen=True)
class ClassCounts:
    """Pixel statistics of a training split.

    Attributes:
        pixels: ``(C,)`` int64, labelled pixels per class (ignored pixels excluded).
        presence_pixels: ``(C,)`` int64, per class the pixels (labelled and ignored) of the images that
            contain it: the denominator of median-frequency weights (``build_loss(presence_counts=...)``).
        images: the number of images.
        pixels_per_image: the mean number of pixels (labelled and ignored) of an image.
        ignored: pixels whose mask value is ``ignore_index``.
    """

    pixels: torch.Tensor
    presence_pixels: torch.Tensor
    images: int
    pixels_per_image: float
    ignored: int

    def image_equivalents(self) -> torch.Tensor:
        """Labelled pixels per class ÷ pixels per image (float64): the class counts HEM+'s margins use
        for dense prediction (docs/losses-and-margins.md)."""
        return self.pixels.double() / self.pixels_per_image

    def presence_image_equivalents(self) -> torch.Tensor:
        """``presence_pixels`` in the unit of :meth:`image_equivalents`."""
        return self.presence_pixels.double() / self.pixels_per_image


def _masks_of(item: Any, position: int) -> torch.Tensor:
    """The mask(s) of one item of the data as an integer tensor of 2-D masks ``(N, H, W)``."""
    if not isinstance(item, (tuple, list)) or len(item) < 2:
        raise TypeError(
            f"count_classes needs data that yields (image, mask) pairs; item {position} is a "
            f"{type(item).__name__}. Wrap it, e.g. ((s['pixel_values'], s['labels']) for s in data)"
        )
    mask = torch.as_tensor(item[1])
    if mask.is_floating_point() or mask.is_complex():
        raise TypeError(f"masks must hold integer class indices; item {position} has dtype {mask.dtype}")
    if mask.dim() == 4 and mask.shape[1] == 1:  # (N, 1, H, W)
        mask = mask[:, 0]
    if mask.dim() == 2:
        mask = mask.unsqueeze(0)
    if mask.dim() != 3:
        raise ValueError(
            f"masks must be (H, W) or a batch (N, H, W); item {position} has shape {tuple(mask.shape)}"
        )
    return mask


def count_classes(data: Iterable[Any], num_classes: int, *, ignore_index: int = 255) -> ClassCounts:
    """Per-class pixel counts of ``data``, for ``build_loss(class_counts=..., presence_counts=...)``.

    Args:
        data: a ``Dataset``, ``DataLoader`` or any iterable yielding ``(image, mask)`` (more items are
            ignored); masks as tensors or arrays, one ``(H, W)`` mask or a batch ``(N, H, W)``. Count the
            training split without random augmentation (crops and scaling change the counts).
        num_classes: C; every mask value is in ``[0, C)`` or ``ignore_index``.
        ignore_index: the mask value of void pixels (255 in segloss's readers, as in most datasets).

    Returns:
        :class:`ClassCounts`: ``pixels`` per class, ``presence_pixels``, ``images``, ``pixels_per_image``.

    Raises:
        ValueError: a mask value outside ``[0, num_classes)`` that is not ``ignore_index`` (named, with the
            item), a mask of another shape, or no data.
        TypeError: items that are not ``(image, mask)`` pairs, or float masks.

    Example::

        counts = segloss.count_classes(train_set, num_classes=11)
        criterion = segloss.build_loss("hem+", class_counts=counts.image_equivalents(), ignore_index=255)
    """
    if not (isinstance(num_classes, int) and num_classes >= 2):
        raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
    pixels = torch.zeros(num_classes, dtype=torch.int64)
    presence = torch.zeros(num_classes, dtype=torch.int64)
    images = ignored = 0
    for position, item in enumerate(data):
        for mask in _masks_of(item, position).cpu().long():
            labelled = mask[mask != ignore_index]
            if labelled.numel() and (labelled.min() < 0 or labelled.max() >= num_classes):
                bad = labelled[(labelled < 0) | (labelled >= num_classes)][0].item()
                raise ValueError(
                    f"mask value {bad} in item {position} is outside [0, {num_classes}) and is not "
                    f"ignore_index ({ignore_index}); pass the ignore_index your masks use for void pixels, "
                    f"or the right num_classes"
                )
            histogram = torch.bincount(labelled, minlength=num_classes)
            pixels += histogram
            presence += (histogram > 0) * mask.numel()
            ignored += mask.numel() - labelled.numel()
            images += 1
    if images == 0:
        raise ValueError("count_classes found no (image, mask) pairs in the data")
    total = int(pixels.sum()) + ignored
    return ClassCounts(pixels, presence, images, total / images, ignored)
