"""The ``task: continual`` config schema (docs/image-level.md).

The shared ``loss``, ``optim`` and ``train`` sections of ``segloss.runner.config`` (``optim`` with the
classification keys: SGD or Adam, milestones), ``data`` describing the stream of experiences, ``model``
and ``strategy``, the continual-learning strategy with its hyper-parameters. One run is one (dataset,
scenario, strategy, loss, seed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from ..classification.config import ClassificationOptimConfig, check_image_sections
from ..classification.data import IMAGE_DATASETS
from ..runner.config import LossConfig, TrainConfig, check_shared_sections, run_folder_name
from ..runner.optim import OPTIMIZERS
from ..runner.schema import ConfigError, check_bounds, choices
from .benchmarks import SCENARIOS
from .constants import TASK
from .strategies import STRATEGY_NAMES


@dataclass
class ContinualDataConfig:
    """``name`` picks the dataset (``digits`` needs no files), ``root`` holds torchvision's files;
    ``scenario`` ``split`` gives each experience its own classes (class-incremental, one head), ``permuted``
    every class under a new fixed pixel permutation per experience; ``experiences`` is the stream length."""

    name: str = choices(*IMAGE_DATASETS, default="digits")
    root: str | None = None
    download: bool = False
    scenario: str = choices(*SCENARIOS, default="split")
    experiences: int = 5
    augment: bool = True


@dataclass
class ContinualModelConfig:
    """``mlp`` (MNIST-sized data), ``resnet18`` (CIFAR stem) or any ``build_classifier`` name; one output
    per class of the whole stream."""

    arch: str = "mlp"


@dataclass
class StrategyConfig:
    """The strategy and its hyper-parameters (each strategy reads its own).

    ``memory_size``: replay buffer size (samples); ``ewc_lambda``: EWC's λ; ``si_lambda``/``si_xi``: SI's c
    and damping ξ; ``lwf_alpha``/``lwf_temperature``: LwF's distillation weight λ_o and temperature T;
    ``lfl_lambda``: LFL's feature-distance weight λ_e. ``fisher_batch_size`` bounds the per-sample gradients
    held at once for EWC's Fisher."""

    name: str = choices(*STRATEGY_NAMES, default="naive")
    memory_size: int = 200
    ewc_lambda: float = 100.0
    fisher_batch_size: int = 64
    si_lambda: float = 1.0
    si_xi: float = 0.001
    lwf_alpha: float = 1.0
    lwf_temperature: float = 2.0
    lfl_lambda: float = 0.01


@dataclass
class ContinualOptimConfig(ClassificationOptimConfig):
    """The classification optimizer keys, Adam 1e-3 by default; a new optimizer and LR schedule per
    experience (``milestones`` count the epochs of an experience)."""

    name: str = choices(*OPTIMIZERS, default="adam")
    lr: float = 1e-3


@dataclass
class ContinualTrainConfig(TrainConfig):
    """The shared train section. ``epochs`` are passes over each experience; ``out_dir`` defaults to
    ``runs/cl/DATASET_SCENARIO/ARCH/STRATEGY/LOSS/seedSEED``. ``seed`` fixes the initial weights and the
    experience order (class split or permutations), the same for every loss and strategy. Every
    experience ends with an evaluation on all of them, so ``eval_every`` and ``keep_best`` are refused;
    so are ``channels_last`` and ``compile`` (one process, no DDP; strategies address the plain model's
    parameters). A resumed run may change only the train keys of ``RESUMABLE_KEYS`` (``epochs``,
    ``progress``, ``device``, ...)."""

    batch_size: int = 64
    epochs: int = 10
    num_workers: int = 0
    channels_last: bool = False


@dataclass
class ContinualEvalConfig:
    """Batch size of the evaluations after each experience."""

    batch_size: int = 256


@dataclass
class ContinualConfig:
    """Continual learning: a stream of experiences, a strategy, any segloss loss as the task loss."""

    KEY_HELP: ClassVar[dict[str, str]] = {
        "task": "segmentation, classification or continual",
        "data.name": "the image dataset the stream is made of",
        "data.root": "its folder (downloaded there with data.download)",
        "data.download": "download the dataset into data.root when it is missing",
        "data.scenario": "split (own classes per experience) or permuted (own pixel permutation)",
        "data.experiences": "experiences in the stream",
        "data.augment": "random crops and flips for training",
        "model.arch": "the network",
        "strategy.name": "the continual-learning strategy (docs/image-level.md)",
        "strategy.memory_size": "replay: past samples kept",
        "strategy.ewc_lambda": "EWC: penalty weight",
        "strategy.fisher_batch_size": "EWC: batch size of the Fisher estimate",
        "strategy.si_lambda": "SI: penalty weight c",
        "strategy.si_xi": "SI: damping xi",
        "strategy.lwf_alpha": "LwF: distillation weight",
        "strategy.lwf_temperature": "LwF: distillation temperature",
        "strategy.lfl_lambda": "LFL: feature-distance weight",
        "eval.batch_size": "images per evaluation batch",
    }

    task: str = TASK
    data: ContinualDataConfig = field(default_factory=ContinualDataConfig)
    model: ContinualModelConfig = field(default_factory=ContinualModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: ContinualOptimConfig = field(default_factory=ContinualOptimConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    train: ContinualTrainConfig = field(default_factory=ContinualTrainConfig)
    eval: ContinualEvalConfig = field(default_factory=ContinualEvalConfig)

    def validate(self) -> None:
        """Value checks beyond types."""
        strategy = self.strategy
        check_shared_sections(self)
        check_bounds(
            positive={
                "data.experiences": self.data.experiences,
                "eval.batch_size": self.eval.batch_size,
                "strategy.memory_size": strategy.memory_size,
                "strategy.fisher_batch_size": strategy.fisher_batch_size,
                "strategy.si_xi": strategy.si_xi,
                "strategy.lwf_temperature": strategy.lwf_temperature,
            },
            non_negative={
                "strategy.ewc_lambda": strategy.ewc_lambda,
                "strategy.si_lambda": strategy.si_lambda,
                "strategy.lwf_alpha": strategy.lwf_alpha,
                "strategy.lfl_lambda": strategy.lfl_lambda,
            },
        )
        check_image_sections(self)
        ignored = {
            "train.eval_every": self.train.eval_every != 0,
            "train.channels_last": self.train.channels_last,
            "train.compile": self.train.compile,
        }
        if any(ignored.values()):
            names = ", ".join(key for key, given in ignored.items() if given)
            raise ConfigError(
                f"{names}: continual runs do not use them (every experience ends with an evaluation of all "
                f"of them; the strategies train the plain model); leave them at their defaults"
            )
        num_classes = IMAGE_DATASETS[self.data.name].num_classes
        if self.data.scenario == "split" and (
            self.data.experiences < 2 or num_classes % self.data.experiences
        ):
            raise ConfigError(
                f"data.experiences={self.data.experiences}: a split stream needs at least 2 experiences that "
                f"divide the {num_classes} classes of {self.data.name}"
            )

    def run_length(self) -> int:
        """A continual checkpoint's ``epoch`` counts experiences (``runner.run_folder.run_length``)."""
        return self.data.experiences

    def resolve(self) -> None:
        """Fill the derived default ``train.out_dir``."""
        if self.train.out_dir is None:
            self.train.out_dir = str(
                Path("runs")
                / "cl"
                / f"{self.data.name}_{self.data.scenario}"
                / self.model.arch.replace(":", "-")
                / self.strategy.name
                / run_folder_name(self.loss.name, self.train.seed)
            )
