"""The pieces of a classification run built from a ``ClassificationConfig``: data, model, loss, optimizer
and schedule, loader, unknown sets and the evaluation."""

from __future__ import annotations

import logging

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..registry import build_loss, loss_needs_counts
from ..runner.config import ConfigError, loss_class_weights, loss_hyper_parameters
from ..runner.randomness import derive_seed
from .config import ClassificationConfig
from .data import ImageData, build_image_data, stack_images
from .evaluation import ClassificationReport, evaluate_classifier
from .models import build_classifier
from .rejection import check_corruptions_root, import_torchattacks
from .unknown import build_unknown_sets, check_unknown_sets

logger = logging.getLogger(__name__)

__all__ = [
    "check_evaluation_inputs",
    "data_from_config",
    "report_from_config",
    "loss_from_config",
    "model_from_config",
    "train_loader_from_config",
    "unknown_sets_from_config",
]


def data_from_config(config: ClassificationConfig) -> ImageData:
    """The training (possibly long-tailed) and test splits of ``config.data``."""
    data = config.data
    return build_image_data(
        data.name,
        data.root,
        download=data.download,
        augment=data.augment,
        imbalance_ratio=data.imbalance_ratio,
    )


def model_from_config(config: ClassificationConfig, data: ImageData) -> nn.Module:
    """``model.arch`` for the data's image shape and classes, normalising with the data's statistics."""
    channels, height, width = data.image_shape
    return build_classifier(
        config.model.arch, data.num_classes, channels, (height, width), mean=data.mean, std=data.std
    )


def loss_from_config(config: ClassificationConfig, data: ImageData) -> nn.Module:
    """The loss of ``config.loss``; the count-based losses use the training split's class counts (an image
    holds one class, so ``wce``'s median-frequency weights are all 1 here)."""
    name = config.loss.name
    counts, names = data.class_counts, data.classes
    loss = build_loss(
        name,
        class_counts=counts,
        presence_counts=counts,
        weight=loss_class_weights(config.loss, counts, counts, names),
        class_names=names,
        **loss_hyper_parameters(config.loss),
    )
    if loss_needs_counts(name) or config.loss.class_weighting != "none":
        logger.info("loss %s from class counts %s", loss, data.class_counts.tolist())
    return loss


def train_loader_from_config(config: ClassificationConfig, data: ImageData, epoch: int = 0) -> DataLoader:
    """Shuffled training batches of ``epoch``. The shuffling and the workers' augmentation are seeded from
    (``train.seed``, epoch), so an epoch is the same whether or not the run was resumed before it; iterated
    for several epochs, the loader shuffles anew each time."""
    return DataLoader(
        data.train,
        batch_size=config.train.batch_size,
        shuffle=True,
        num_workers=config.train.num_workers,
        pin_memory=torch.cuda.is_available(),
        generator=torch.Generator().manual_seed(derive_seed(config.train.seed, epoch)),
    )


def unknown_sets_from_config(config: ClassificationConfig, data: ImageData) -> dict[str, Dataset]:
    """The unknown sets of ``eval.unknown_sets``, shaped like the known test images."""
    if not config.eval.unknown_sets:
        return {}
    test_images, _ = stack_images(data.test)
    return build_unknown_sets(
        config.eval.unknown_sets,
        test_images,
        root=config.eval.unknown_root,
        num_samples=config.eval.unknown_samples,
        download=config.data.download,
    )


def check_evaluation_inputs(config: ClassificationConfig, data: ImageData) -> None:
    """Fail now, not after training, when the evaluation of ``config.eval`` would: a real unknown set
    without its files under ``eval.unknown_root`` (or of another image shape), a missing
    ``eval.corruptions_root``, or AutoAttack (``eval.attack_samples`` > 0) without torchattacks."""
    evaluation = config.eval
    try:
        check_unknown_sets(
            evaluation.unknown_sets,
            data.image_shape,
            root=evaluation.unknown_root,
            download=config.data.download,
        )
    except FileNotFoundError as error:
        raise FileNotFoundError(f"eval.unknown_sets: {error}") from error
    except ValueError as error:
        raise ConfigError(f"eval.unknown_sets: {error}") from error
    if evaluation.corruptions_root is not None:
        try:
            check_corruptions_root(evaluation.corruptions_root)
        except FileNotFoundError as error:
            raise FileNotFoundError(f"eval.corruptions_root: {error}") from error
    if evaluation.attack_samples > 0:
        try:
            import_torchattacks()
        except ImportError as error:
            raise ConfigError(
                f"eval.attack_samples={evaluation.attack_samples}: {error}; or set eval.attack_samples=0 to "
                f"skip AutoAttack"
            ) from error


def report_from_config(
    config: ClassificationConfig,
    model: nn.Module,
    data: ImageData,
    device: torch.device,
    unknown_sets: dict[str, Dataset] | None = None,
    *,
    dtype: torch.dtype | None = None,
) -> ClassificationReport:
    """``evaluate_classifier`` with the options of ``config.eval`` (unknown sets built unless given)."""
    evaluation = config.eval
    if unknown_sets is None:
        unknown_sets = unknown_sets_from_config(config, data)
    return evaluate_classifier(
        model,
        data,
        device,
        unknown_sets=unknown_sets,
        attack_samples=evaluation.attack_samples,
        attack_norms=evaluation.attack_norms,
        attack_eps=evaluation.attack_eps,
        attack_batch_size=evaluation.attack_batch_size,
        accept_rate=evaluation.accept_rate,
        corruptions_root=evaluation.corruptions_root,
        batch_size=evaluation.batch_size,
        dtype=dtype,
        progress=config.train.progress,
    )
