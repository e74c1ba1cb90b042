"""The ``task: segmentation`` config schema (docs/training.md): the shared ``loss``, ``optim`` and ``train``
sections of ``segloss.runner.config`` with the segmentation keys, plus ``data``, ``model`` and ``eval``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from ..registry import LOSSES
from ..runner.config import LossConfig, OptimConfig, TrainConfig, check_shared_sections, run_folder_name
from ..runner.schema import ConfigError, check_bounds, check_class_names, dynamic_choices
from .constants import TASK
from .data.registry import DATASETS


@dataclass
class DataConfig:
    """``name`` picks the reader (``segloss.segmentation.data.registry``); ``root`` its folder.
    ``classes``/``ignore_value`` describe a ``folder`` dataset (void value in its mask files); ``num_train``,
    ``num_eval``, ``size`` and ``seed`` shape the ``synthetic`` one. ``holdout_classes`` are ignored in the
    training masks (pixel-level unknown rejection)."""

    name: str = dynamic_choices(lambda: DATASETS, default="synthetic")
    root: str | None = None
    train_split: str = "train"
    classes: list[str] | None = None
    ignore_value: int = 255
    num_train: int = 256
    num_eval: int = 64
    size: int | list[int] = 128
    seed: int = 0
    holdout_classes: list[str] = field(default_factory=list)


@dataclass
class ModelConfig:
    """An smp architecture (``FPN``, ``Unet``, ``DeepLabV3Plus`` …) with an smp or ``tu-`` timm encoder."""

    arch: str = "FPN"
    encoder: str = "resnet34"
    encoder_weights: str | None = "imagenet"


COUNT_UNITS = ("pixels", "images")


@dataclass
class SegmentationLossConfig(LossConfig):
    """The shared loss section; ``count_unit`` is what a class count counts for the count-based losses:
    labelled ``pixels`` or ``images`` (image-equivalents: pixels ÷ pixels per image;
    docs/losses-and-margins.md).
    Dense defaults from the margin study (docs/studies/margins.md): ``images`` and HEM+ margins on the
    ``target`` class; the paper's formulation is ``count_unit=pixels margin_on=competitor``."""

    count_unit: str = field(
        default="images",
        metadata={
            "choices": COUNT_UNITS,
            "taken_by": lambda: [n for n, e in LOSSES.items() if e.needs_counts],
        },
    )


@dataclass
class SegmentationTrainConfig(TrainConfig):
    """The shared train section; ``crop_size`` (an int or ``[H, W]``) and ``scale`` (``[low, high]``) shape
    the training augmentation; ``out_dir`` defaults to ``runs/DATASET/ENCODER/LOSS/seedSEED`` (DATASET is
    ``NAME_without_CLASS`` with held-out classes)."""

    crop_size: int | list[int] = 512
    scale: list[float] = field(default_factory=lambda: [0.5, 2.0])


@dataclass
class EvalConfig:
    """The split of the final evaluation (and of ``eval_every``) and how many overlays to draw."""

    split: str = "val"
    num_overlays: int = 4


@dataclass
class SegmentationConfig:
    """Semantic segmentation (docs/training.md)."""

    BEST_METRICS: ClassVar[tuple[str, ...]] = ("miou", "pixel_accuracy")
    KEY_HELP: ClassVar[dict[str, str]] = {
        "task": "segmentation, classification or continual",
        "data.name": "the dataset reader (docs/datasets.md); folder reads your own images/ and masks/",
        "data.root": "the dataset's folder",
        "data.train_split": "the split to train on",
        "data.classes": "folder: class names in index order, one per mask value 0, 1, ...",
        "data.ignore_value": "folder: the void value in your mask files",
        "data.num_train": "synthetic: training scenes",
        "data.num_eval": "synthetic: evaluation scenes",
        "data.size": "synthetic: scene size",
        "data.seed": "synthetic: the generator's seed",
        "data.holdout_classes": "classes left out of training (pixel-level unknown rejection)",
        "model.arch": "smp architecture: FPN, Unet, DeepLabV3Plus, ...",
        "model.encoder": "smp encoder (resnet34, efficientnet-b4, ...) or a timm model as tu-NAME",
        "model.encoder_weights": "pretrained weights (imagenet) or null to train from scratch (offline)",
        "loss.count_unit": "what a class count counts: images (image-equivalents, default) or pixels",
        "loss.margin_on": "HEM+: the target class's margin (default) or the competing class's (the paper)",
        "train.crop_size": "training crop, an int or [H, W] (not larger than the images)",
        "train.scale": "random scale range [low, high] before the crop",
        "eval.split": "the split of the evaluations during and after training",
        "eval.num_overlays": "prediction overlays drawn after training",
    }

    task: str = TASK
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: SegmentationLossConfig = field(default_factory=SegmentationLossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: SegmentationTrainConfig = field(default_factory=SegmentationTrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def validate(self) -> None:
        """Value checks beyond types."""
        check_shared_sections(self)
        check_bounds(
            positive={"data.num_train": self.data.num_train, "data.num_eval": self.data.num_eval},
            non_negative={"eval.num_overlays": self.eval.num_overlays, "data.seed": self.data.seed},
        )
        for key, size in (("train.crop_size", self.train.crop_size), ("data.size", self.data.size)):
            sizes = [size] if isinstance(size, int) else size
            if len(sizes) not in (1, 2) or min(sizes) <= 0:
                raise ConfigError(f"{key} must be a positive int or [height, width], got {size}")
        if len(self.train.scale) != 2 or not 0 < self.train.scale[0] <= self.train.scale[1]:
            raise ConfigError(f"train.scale must be [low, high] with 0 < low <= high, got {self.train.scale}")
        dataset = DATASETS[self.data.name]
        if dataset.needs_root and not self.data.root:
            raise ConfigError(f"data.root is required for data.name={self.data.name}")
        if dataset.classes_from_config is not None and not self.data.classes:
            raise ConfigError(
                f"data.classes (class names in index order) is required for data.name={self.data.name}: "
                f"one name per mask value 0, 1, ..., e.g. 'data.classes=[background,road,building]' (quoted "
                f"for the shell); datasets/folder.md"
            )
        if self.data.holdout_classes:
            check_class_names("data.holdout_classes", self.data.holdout_classes, self.dataset_classes())
        from .models import check_names  # smp: imported only when a config is checked

        try:
            check_names(self.model.arch, self.model.encoder)
        except ValueError as error:
            raise ConfigError(str(error)) from None

    def dataset_classes(self) -> list[str]:
        """The class names of ``data.name`` (``data.classes`` for a folder dataset)."""
        return list(DATASETS[self.data.name].class_names(self.data))

    def resolve(self) -> None:
        """Fill derived defaults (``train.out_dir``; runs with held-out classes get their own folder)."""
        if self.train.out_dir is None:
            dataset = self.data.name
            if self.data.holdout_classes:
                dataset += "_without_" + "+".join(
                    name.replace(" ", "_") for name in self.data.holdout_classes
                )
            self.train.out_dir = str(
                Path("runs") / dataset / self.model.encoder / run_folder_name(self.loss.name, self.train.seed)
            )
