"""The builders of a segmentation run, each from its config: the training split (with held-out classes
ignored), the evaluation split and loader, the class pixel counts, the loss with the counts it derives
margins or weights from, and each epoch's seeded loader (the model comes from
``segloss.segmentation.models``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, RandomSampler
from torch.utils.data.distributed import DistributedSampler

from ..registry import build_loss, loss_needs_counts
from ..runner.config import loss_class_weights, loss_hyper_parameters
from ..runner.distributed import Distributed
from ..runner.randomness import derive_seed
from .config import SegmentationConfig
from .data import IGNORE_INDEX, ClassStatistics, SegmentationDataset, class_statistics, presets
from .data.registry import dataset_from_config
from .evaluation import eval_dataset, eval_loader
from .unknown_pixels import HeldOutClasses, KnownClassesLoss, class_indices

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunData:
    """The data of a segmentation run.

    Attributes:
        train_set: the augmented training split (held-out classes ignored in its masks).
        eval_set: the evaluation split (``eval.split``) at full resolution.
        eval_loader: its loader, sharded over the ranks under ``torchrun``.
        held_out: the indices of ``data.holdout_classes``.
        stats: the labelled pixels (and images) per class of the training split.
    """

    train_set: SegmentationDataset
    eval_set: SegmentationDataset
    eval_loader: DataLoader
    held_out: list[int]
    stats: ClassStatistics

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.train_set.classes)


def data_from_config(
    config: SegmentationConfig, world: Distributed, device: torch.device, progress: bool = True
) -> RunData:
    """The splits of ``config`` with the training augmentation and the evaluation preset, and the training
    split's class counts (rank 0 counts them into the cache while the other ranks wait, then they read it).

    Raises:
        ValueError: the training split has fewer images than ``train.batch_size``.
    """
    crop = config.train.crop_size
    crop = crop if isinstance(crop, int) else tuple(crop)
    transform = presets.train_transform(
        crop, presets.IMAGENET_MEAN, presets.IMAGENET_STD, scale=tuple(config.train.scale)
    )
    train_set = train_dataset(config, transform)
    eval_set = eval_dataset(config, config.eval.split)
    if len(train_set) < config.train.batch_size:
        raise ValueError(
            f"the training split has {len(train_set)} images, fewer than "
            f"train.batch_size={config.train.batch_size}"
        )
    logger.info("data: %r for training, %r for evaluation", train_set, eval_set)
    warn_if_crop_exceeds_images(crop, train_set)
    if not world.is_main:
        dist.barrier()
    stats = class_statistics(train_set, progress=progress)
    if world.is_main and world.world_size > 1:
        dist.barrier()
    loader = eval_loader(eval_set, config.train.num_workers, world, pin=device.type == "cuda")
    held_out = class_indices(train_set.classes, config.data.holdout_classes)
    return RunData(train_set, eval_set, loader, held_out, stats)


def train_dataset(config: SegmentationConfig, transform: Any = None) -> SegmentationDataset:
    """The training split with ``transform``, the classes of ``data.holdout_classes`` ignored in its masks."""
    if not config.data.holdout_classes:
        return dataset_from_config(config.data, config.data.train_split, transform)
    dataset = dataset_from_config(config.data, config.data.train_split)
    return HeldOutClasses(dataset, class_indices(dataset.classes, config.data.holdout_classes), transform)


def loss_from_config(
    config: SegmentationConfig,
    train_set: SegmentationDataset,
    *,
    sync: bool = False,
    progress: bool = True,
    stats: ClassStatistics | None = None,
) -> tuple[nn.Module, np.ndarray | None]:
    """The loss of ``config.loss`` and, for the losses that need them (or ``loss.class_weighting``), the
    class counts of every class (pixels or image-equivalents, after ``loss.count_unit``). With
    ``data.holdout_classes`` the loss is a ``KnownClassesLoss`` built from the other classes' counts."""
    name = config.loss.name
    classes = tuple(train_set.classes)
    held_out = class_indices(classes, config.data.holdout_classes)
    known = [index for index in range(len(classes)) if index not in held_out]
    counts = presence = None
    if loss_needs_counts(name) or config.loss.class_weighting != "none":
        stats = stats or class_statistics(train_set, progress=progress)
        unit = stats.pixels_per_image if config.loss.count_unit == "images" else 1
        counts = stats.counts.astype(np.float64) / unit
        presence = stats.presence.astype(np.float64) / unit
    names = [classes[index] for index in known]
    try:
        weight = None
        if counts is not None:
            weight = loss_class_weights(config.loss, counts[known], presence[known], names)
        loss = build_loss(
            name,
            class_counts=None if counts is None else counts[known],
            presence_counts=None if presence is None else presence[known],
            weight=weight,
            ignore_index=IGNORE_INDEX,
            sync=sync,
            class_names=names,
            **loss_hyper_parameters(config.loss),
        )
    except ValueError as error:
        raise ValueError(f"loss {name!r} on the training split {train_set!r}: {error}") from error
    return (KnownClassesLoss(loss, known) if held_out else loss), counts


def describe_loss(
    config: SegmentationConfig, loss: nn.Module, classes: tuple[str, ...], counts: np.ndarray | None
) -> str:
    """The loss with its hyper-parameters and, when it used class counts, a table of them with the margins
    (``hem``, ``hem+``), priors (``la``) or weights derived from them (``wce``, ``loss.class_weighting``)."""
    name = config.loss.name
    held_out = config.data.holdout_classes
    inner = loss.loss if isinstance(loss, KnownClassesLoss) else loss
    settings = [
        f"{key} = {value:g}" if isinstance(value, float) else f"{key} = {value}"
        for key, value in loss_hyper_parameters(config.loss).items()
    ]
    if config.loss.class_weighting != "none":
        settings.append(f"class_weighting = {config.loss.class_weighting}")
    header = f"loss {name}: {', '.join([type(inner).__name__, *settings])}"
    if held_out:
        header += f"; held out of training: {', '.join(held_out)}"
    if counts is None:
        return header
    known = [class_name for class_name in classes if class_name not in held_out]
    columns: dict[str, dict[str, float]] = {}
    derived = inner.per_class_values() if hasattr(inner, "per_class_values") else None
    if derived is not None:
        columns[derived[0]] = dict(zip(known, derived[1].expand(len(known)).tolist(), strict=True))
    if config.loss.class_weighting != "none":
        weights = next(m.weight for m in inner.modules() if getattr(m, "weight", None) is not None)
        columns["weight"] = dict(zip(known, weights.tolist(), strict=True))
    unit = config.loss.count_unit
    width = max(len("class"), *(len(class_name) for class_name in classes))
    lines = [header, f"{'class':<{width}}  {unit:>16}" + "".join(f"  {label:>8}" for label in columns)]
    for class_name, count in zip(classes, counts.tolist(), strict=True):
        values = "".join(
            f"  {column[class_name]:>8.5f}" if class_name in column else f"  {'held out':>8}"
            for column in columns.values()
        )
        lines.append(f"{class_name:<{width}}  {count:>16,.1f}{values}")
    return "\n".join(lines)


def warn_if_crop_exceeds_images(crop: int | tuple[int, int], dataset: SegmentationDataset) -> None:
    """A warning when ``train.crop_size`` is larger than the training images (the first one's size): at
    scale 1 such crops are mostly void padding, which costs time and teaches nothing."""
    height, width = (crop, crop) if isinstance(crop, int) else crop
    image_height, image_width = dataset.load_sample(0)[0].shape[:2]
    if height > image_height or width > image_width:
        logger.warning(
            "train.crop_size=[%d,%d] is larger than the training images (%d×%d): at scale 1 each crop is "
            "mostly padding (void), which is slow and teaches nothing; set train.crop_size=[%d,%d] or less "
            "(multiples of 32)",
            height,
            width,
            image_height,
            image_width,
            min(height, image_height) // 32 * 32 or 32,
            min(width, image_width) // 32 * 32 or 32,
        )


def epoch_loader(
    dataset: SegmentationDataset, config: SegmentationConfig, epoch: int, world: Distributed, pin: bool
) -> DataLoader:
    """The loader of one epoch. Shuffling, DataLoader workers and the augmentation are seeded from
    (run seed, epoch, rank), so an epoch is the same whether or not the run was resumed before it."""
    seed = config.train.seed
    epoch_seed = derive_seed(seed, epoch, world.rank)
    generator = torch.Generator().manual_seed(epoch_seed)
    presets.seed_transform(dataset.transform, epoch_seed)  # used as is when num_workers=0
    if world.world_size > 1:
        sampler = DistributedSampler(
            dataset, world.world_size, world.rank, shuffle=True, seed=seed, drop_last=True
        )
        sampler.set_epoch(epoch)
    else:
        sampler = RandomSampler(dataset, generator=generator)
    return DataLoader(
        dataset,
        batch_size=config.train.batch_size // world.world_size,
        sampler=sampler,
        num_workers=config.train.num_workers,
        pin_memory=pin,
        drop_last=True,
        worker_init_fn=presets.seed_worker,
        generator=generator,
    )
