"""Streams of experiences built from the classification datasets: class-incremental splits (SplitMNIST,
SplitCIFAR10/100) and pixel permutations (PermutedMNIST), as in Avalanche's classic benchmarks.

The experience order (which classes go together, which permutations) is drawn from the run seed alone, so
every loss and strategy with the same seed sees the same stream, and another seed another one.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from ..classification.data import IMAGE_DATASETS, count_labels, dataset_targets, load_split
from ..runner.randomness import derive_seed

logger = logging.getLogger(__name__)

__all__ = ["SCENARIOS", "Experience", "PermutedImages", "Stream", "build_stream", "experience_order"]

SCENARIOS = ("split", "permuted")
# Mixed into the run seed for the order of the stream, so that it does not coincide with other seeded draws.
ORDER_STREAM = 1


@dataclass
class Experience:
    """One experience of a stream: its position, the classes it holds, its training and test data."""

    index: int
    classes: list[int]
    train: Dataset
    test: Dataset


@dataclass
class Stream:
    """A sequence of experiences over one dataset with what models and losses need to know.

    ``order`` is the drawn order: ``(experiences, classes per experience)`` class indices for ``split``,
    ``(experiences, pixels)`` pixel permutations for ``permuted``. ``class_counts`` are the training samples
    per class of the dataset's training split (one copy of each image)."""

    name: str
    scenario: str
    experiences: list[Experience]
    classes: list[str]
    image_shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    class_counts: np.ndarray
    order: np.ndarray

    @property
    def num_classes(self) -> int:
        return len(self.classes)


class PermutedImages(Dataset):
    """``dataset``'s ``(image, target)`` pairs with the pixels of every image (all channels alike)
    reordered by ``permutation``, a permutation of ``H·W`` positions."""

    def __init__(self, dataset: Dataset, permutation: np.ndarray):
        self.dataset = dataset
        self.permutation = torch.as_tensor(permutation, dtype=torch.long)
        self.targets = dataset_targets(dataset)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image, target = self.dataset[index]
        return image.flatten(1)[:, self.permutation].view_as(image), target


def experience_order(
    scenario: str, num_classes: int, num_pixels: int, experiences: int, seed: int
) -> np.ndarray:
    """The stream's order for ``seed``: a random partition of the classes into ``experiences`` equal groups
    (``split``) or one random pixel permutation per experience (``permuted``).

    Args:
        scenario: ``split`` or ``permuted``.
        num_classes: classes of the dataset (divisible by ``experiences`` for ``split``).
        num_pixels: ``H·W`` of its images.
        experiences: length of the stream.
        seed: the run seed.

    Returns:
        ``(experiences, num_classes / experiences)`` class indices or ``(experiences, num_pixels)``
        permutations, int64.
    """
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; valid: {', '.join(SCENARIOS)}")
    rng = np.random.default_rng(derive_seed(seed, ORDER_STREAM))
    if scenario == "split":
        if experiences < 1 or num_classes % experiences:
            raise ValueError(f"{num_classes} classes do not split into {experiences} equal experiences")
        return rng.permutation(num_classes).reshape(experiences, -1)
    return np.stack([rng.permutation(num_pixels) for _ in range(experiences)])


def _subset(dataset: Dataset, classes: np.ndarray) -> Subset:
    return Subset(dataset, np.flatnonzero(np.isin(dataset_targets(dataset), classes)).tolist())


def build_stream(
    name: str,
    root: str | os.PathLike | None = None,
    *,
    scenario: str = "split",
    experiences: int = 5,
    seed: int = 0,
    download: bool = False,
    augment: bool = True,
) -> Stream:
    """The stream of ``experiences`` experiences over dataset ``name`` (a key of the classification
    ``IMAGE_DATASETS``; read from ``root`` like there: a missing file names the expected layout and how
    to get it).

    Args:
        name: dataset name (``digits`` is embedded).
        root: folder with torchvision's files.
        scenario: ``split`` (class-incremental) or ``permuted`` (new input distribution, same classes).
        experiences: stream length.
        seed: run seed; it alone decides the order (``experience_order``).
        download: let torchvision download missing files.
        augment: the dataset's training augmentation (crops and flips for CIFAR).

    Returns:
        The ``Stream``.
    """
    spec = IMAGE_DATASETS[name]
    train, classes = load_split(name, root, "train", download=download, augment=augment)
    test, _ = load_split(name, root, "test", download=download)
    channels, height, width = spec.image_shape
    order = experience_order(scenario, spec.num_classes, height * width, experiences, seed)
    stream_experiences = []
    for index, row in enumerate(order):
        if scenario == "split":
            experience = Experience(index, sorted(row.tolist()), _subset(train, row), _subset(test, row))
        else:
            every_class = list(range(spec.num_classes))
            experience = Experience(index, every_class, PermutedImages(train, row), PermutedImages(test, row))
        stream_experiences.append(experience)
    logger.info(
        "%s %s stream of %d experiences (seed %d)%s",
        name,
        scenario,
        experiences,
        seed,
        f": classes {[e.classes for e in stream_experiences]}" if scenario == "split" else "",
    )
    counts = count_labels(train, spec.num_classes)
    return Stream(
        name, scenario, stream_experiences, classes, spec.image_shape, spec.mean, spec.std, counts, order
    )
