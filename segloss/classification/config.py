"""The ``task: classification`` config schema (SPEC §5 recipes), registered with ``segloss.config``.

Sections and key names follow the segmentation schema where they mean the same thing (``data.name``,
``data.root``, ``model.arch``, ``loss.*``, ``optim.*``, ``train.*``); ``eval.*`` holds the rejection
evaluations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..config import ConfigError, check_bounds, check_device, choices, register_task
from ..functional import MARGIN_PLACEMENTS, MEAN_NORMALISATIONS
from ..registry import LOSS_NAMES
from .data import DATASETS
from .engine import OPTIMIZERS
from .models import check_classifier_name
from .rejection import ATTACK_NORMS
from .unknown import DEFAULT_UNKNOWN_SAMPLES, SYNTHETIC_UNKNOWN_SETS

TASK = "classification"


@dataclass
class ClassificationDataConfig:
    """``name`` picks the dataset (``digits`` needs no files); ``root`` holds torchvision's files;
    ``imbalance_ratio`` (ρ, e.g. 100) makes the training split long-tailed."""

    name: str = choices(*DATASETS, default="digits")
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
class ClassificationLossConfig:
    """A ``segloss.build_loss`` name and the hyper-parameters of SPEC §1 (each loss uses its own)."""

    name: str = choices(*LOSS_NAMES, default="ce")
    M: float = 2000.0
    margin: float = 1.0
    tau: float = 0.04
    margin_on: str = choices(*MARGIN_PLACEMENTS, default="competitor")
    mean_over: str = choices(*MEAN_NORMALISATIONS, default="nonzero")


@dataclass
class ClassificationOptimConfig:
    """SGD or Adam; the learning rate is multiplied by ``gamma`` at each epoch of ``milestones``."""

    name: str = choices(*OPTIMIZERS, default="sgd")
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 0.0
    milestones: list[int] = field(default_factory=list)
    gamma: float = 0.1


@dataclass
class ClassificationTrainConfig:
    """The training run; ``out_dir`` defaults to ``runs/cls/DATASET/ARCH/LOSS/seedSEED``; ``device`` is
    ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``. As for segmentation, a resumed run may change only
    ``epochs``, ``eval_every``, ``progress`` and ``device`` (``segloss.config.RESUMABLE_KEYS``)."""

    batch_size: int = 128
    epochs: int = 20
    seed: int = 0
    num_workers: int = 2
    out_dir: str | None = None
    eval_every: int = 0
    device: str = "auto"
    amp: str = choices("auto", "bf16", "fp16", "off", default="auto")
    channels_last: bool = False
    progress: bool = True


@dataclass
class ClassificationEvalConfig:
    """Rejection evaluations on the test split. ``unknown_sets`` are synthetic names or dataset names read
    from ``unknown_root`` (default ``data.root``); ``attack_samples`` = 0 skips AutoAttack;
    ``attack_eps`` (one per norm) defaults to SPEC §5's budgets; ``corruptions_root`` is a CIFAR-10-C
    style folder."""

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


@register_task(TASK)
@dataclass
class ClassificationConfig:
    """Image classification with unknown-class and adversarial rejection (SPEC §5)."""

    task: str = TASK
    data: ClassificationDataConfig = field(default_factory=ClassificationDataConfig)
    model: ClassificationModelConfig = field(default_factory=ClassificationModelConfig)
    loss: ClassificationLossConfig = field(default_factory=ClassificationLossConfig)
    optim: ClassificationOptimConfig = field(default_factory=ClassificationOptimConfig)
    train: ClassificationTrainConfig = field(default_factory=ClassificationTrainConfig)
    eval: ClassificationEvalConfig = field(default_factory=ClassificationEvalConfig)

    def validate(self) -> None:
        """Value checks beyond types."""
        positive = {
            "train.batch_size": self.train.batch_size,
            "train.epochs": self.train.epochs,
            "optim.lr": self.optim.lr,
            "optim.gamma": self.optim.gamma,
            "loss.M": self.loss.M,
            "loss.tau": self.loss.tau,
            "eval.batch_size": self.eval.batch_size,
            "eval.unknown_samples": self.eval.unknown_samples,
            "eval.attack_batch_size": self.eval.attack_batch_size,
        }
        non_negative = {
            "train.seed": self.train.seed,
            "train.num_workers": self.train.num_workers,
            "train.eval_every": self.train.eval_every,
            "optim.momentum": self.optim.momentum,
            "optim.weight_decay": self.optim.weight_decay,
            "loss.margin": self.loss.margin,
            "eval.attack_samples": self.eval.attack_samples,
        }
        check_bounds(positive=positive, non_negative=non_negative)
        check_device("train.device", self.train.device)
        try:
            check_classifier_name(self.model.arch)
        except ValueError as error:
            raise ConfigError(f"model.arch: {error}") from None
        if self.data.name != "digits" and not self.data.root:
            raise ConfigError(f"data.root is required for data.name={self.data.name}")
        if self.data.imbalance_ratio is not None and not self.data.imbalance_ratio >= 1:
            raise ConfigError(f"data.imbalance_ratio must be >= 1 (or null), got {self.data.imbalance_ratio}")
        milestones = self.optim.milestones
        if milestones != sorted(set(milestones)) or any(m < 1 for m in milestones):
            raise ConfigError(f"optim.milestones must be increasing positive epochs, got {milestones}")
        valid_sets = (*SYNTHETIC_UNKNOWN_SETS, *DATASETS)
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
                / self.loss.name.replace("+", "plus")
                / f"seed{self.train.seed}"
            )
