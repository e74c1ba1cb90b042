"""The ``task: classification`` config schema (docs/image-level.md): the shared ``loss``, ``optim`` and
``train`` sections of ``segloss.runner.config`` with the classification keys, plus ``data``, ``model`` and
``eval`` (the rejection evaluations). Key names follow the segmentation schema where they mean the same
thing (``data.name``, ``data.root``, ``model.arch``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ..runner.config import LossConfig, OptimConfig, TrainConfig, check_shared_sections, run_folder_name
from ..runner.optim import SCHEDULES
from ..runner.schema import ConfigError, check_bounds, choices
from .constants import TASK
from .data import IMAGE_DATASETS
from .models import check_classifier_name
from .readers import UNKNOWN_SET_FILES
from .rejection import ATTACK_NORMS
from .unknown import DEFAULT_UNKNOWN_SAMPLES, SYNTHETIC_UNKNOWN_SETS


@dataclass
class ClassificationDataConfig:
    """``name`` picks the dataset (``digits`` needs no files); ``root`` holds torchvision's files;
    ``imbalance_ratio`` (ρ, e.g. 100) makes the training split long-tailed."""

    name: str = choices(*IMAGE_DATASETS, default="digits")
    root: str | None = None
    download: bool = False
    imbalance_ratio: float | None = None
    augment: bool = True


@dataclass
class ClassificationModelConfig:
    """``lenet``, ``convnet``, ``mlp``, ``resnet18`` (CIFAR stem), ``resnet32``, ``timm:NAME`` or
    ``torchvision:NAME``."""

    arch: str = "mlp"


@dataclass
class ClassificationOptimConfig(OptimConfig):
    """The shared optimizer keys; the published recipes' step schedule (``multistep``) by default."""

    lr: float = 0.1
    schedule: str = choices(*SCHEDULES, default="multistep")


@dataclass
class ClassificationTrainConfig(TrainConfig):
    """The shared train section; ``out_dir`` defaults to ``runs/cls/DATASET/ARCH/LOSS/seedSEED``."""

    batch_size: int = 128
    epochs: int = 20
    channels_last: bool = False


@dataclass
class ClassificationEvalConfig:
    """Rejection evaluations on the test split. ``unknown_sets`` are synthetic names or dataset names read
    from ``unknown_root`` (default ``data.root``); ``attack_samples`` = 0 skips AutoAttack;
    ``attack_eps`` (one per norm) defaults to the paper's budgets (docs/image-level.md); ``corruptions_root``
    is a CIFAR-10-C style folder."""

    batch_size: int = 256
    unknown_sets: list[str] = field(default_factory=lambda: list(SYNTHETIC_UNKNOWN_SETS))
    unknown_root: str | None = None
    unknown_samples: int = DEFAULT_UNKNOWN_SAMPLES
    attack_samples: int = 1000
    attack_norms: list[str] = field(default_factory=lambda: list(ATTACK_NORMS))
    attack_eps: list[float] | None = None
    attack_batch_size: int = 100
    accept_rate: float = 0.95
    corruptions_root: str | None = None


def check_image_sections(config: Any) -> None:
    """The checks of ``model.arch`` and ``data.root`` (required but for the embedded digits) of a config
    with this task's ``data`` and ``model`` keys (classification and continual learning)."""
    try:
        check_classifier_name(config.model.arch)
    except ValueError as error:
        raise ConfigError(f"model.arch: {error}") from None
    if config.data.name != "digits" and not config.data.root:
        raise ConfigError(f"data.root is required for data.name={config.data.name}")


@dataclass
class ClassificationConfig:
    """Image classification with unknown-class and adversarial rejection (docs/image-level.md)."""

    BEST_METRICS: ClassVar[tuple[str, ...]] = ("accuracy",)
    KEY_HELP: ClassVar[dict[str, str]] = {
        "task": "segmentation, classification or continual",
        "data.name": "the image dataset (docs/image-level.md)",
        "data.root": "its folder (downloaded there with data.download)",
        "data.download": "download the dataset into data.root when it is missing",
        "data.imbalance_ratio": "long-tailed training split: most / fewest images per class (null: as is)",
        "data.augment": "random crops and flips for training",
        "model.arch": "the network (the paper's lenet, mlp, convnet; resnet for CIFAR)",
        "eval.batch_size": "images per evaluation batch",
        "eval.unknown_sets": "unknown-class sets whose rejection is scored (AUROC)",
        "eval.unknown_root": "where the unknown sets' files are (default: data.root)",
        "eval.unknown_samples": "images per unknown set",
        "eval.attack_samples": "test images attacked with AutoAttack (0: no attack)",
        "eval.attack_norms": "the attacks' norms (Linf, L2)",
        "eval.attack_eps": "the attacks' budgets, one per norm",
        "eval.attack_batch_size": "images per attack batch",
        "eval.accept_rate": "the share of clean test images accepted when rejection is scored (DAR)",
        "eval.corruptions_root": "a corrupted copy of the test set to score (null: none)",
    }

    task: str = TASK
    data: ClassificationDataConfig = field(default_factory=ClassificationDataConfig)
    model: ClassificationModelConfig = field(default_factory=ClassificationModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: ClassificationOptimConfig = field(default_factory=ClassificationOptimConfig)
    train: ClassificationTrainConfig = field(default_factory=ClassificationTrainConfig)
    eval: ClassificationEvalConfig = field(default_factory=ClassificationEvalConfig)

    def validate(self) -> None:
        """Value checks beyond types."""
        check_shared_sections(self)
        check_bounds(
            positive={
                "eval.batch_size": self.eval.batch_size,
                "eval.unknown_samples": self.eval.unknown_samples,
                "eval.attack_batch_size": self.eval.attack_batch_size,
            },
            non_negative={"eval.attack_samples": self.eval.attack_samples},
        )
        check_image_sections(self)
        if self.data.imbalance_ratio is not None and not self.data.imbalance_ratio >= 1:
            raise ConfigError(f"data.imbalance_ratio must be >= 1 (or null), got {self.data.imbalance_ratio}")
        valid_sets = (*SYNTHETIC_UNKNOWN_SETS, *IMAGE_DATASETS, *UNKNOWN_SET_FILES)
        bad_sets = [name for name in self.eval.unknown_sets if name not in valid_sets]
        if bad_sets:
            raise ConfigError(f"eval.unknown_sets: unknown names {bad_sets}; valid: {', '.join(valid_sets)}")
        if self.data.name in self.eval.unknown_sets:
            raise ConfigError(f"eval.unknown_sets holds the known dataset {self.data.name!r} itself")
        bad_norms = [norm for norm in self.eval.attack_norms if norm not in ATTACK_NORMS]
        if bad_norms:
            raise ConfigError(
                f"eval.attack_norms: unknown norms {bad_norms}; valid: {', '.join(ATTACK_NORMS)}"
            )
        if self.eval.attack_eps is not None and len(self.eval.attack_eps) != len(self.eval.attack_norms):
            raise ConfigError(
                f"eval.attack_eps needs one budget per norm of eval.attack_norms {self.eval.attack_norms}, "
                f"got {self.eval.attack_eps}"
            )
        if not 0 < self.eval.accept_rate <= 1:
            raise ConfigError(f"eval.accept_rate must be in (0, 1], got {self.eval.accept_rate}")

    def resolve(self) -> None:
        """Fill derived defaults (``train.out_dir``, ``eval.unknown_root``)."""
        if self.eval.unknown_root is None:
            self.eval.unknown_root = self.data.root
        if self.train.out_dir is None:
            dataset = self.data.name
            if self.data.imbalance_ratio is not None:
                dataset += f"_lt{self.data.imbalance_ratio:g}"
            self.train.out_dir = str(
                Path("runs")
                / "cls"
                / dataset
                / self.model.arch.replace(":", "-")
                / run_folder_name(self.loss.name, self.train.seed)
            )
