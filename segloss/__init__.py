"""segloss: the HEM+ margin loss as a fast drop-in replacement for cross-entropy.

The loss core of Spratling & Schütt, "A margin-based replacement for cross-entropy loss"
(https://arxiv.org/abs/2501.12191); the losses are described in docs/losses-and-margins.md.
``import segloss`` needs torch alone; the run machinery (``segloss.runner``) and the applications
(``segloss.segmentation``, ``segloss.classification``) live in subpackages with optional dependencies.
"""

import torch as _torch

MIN_TORCH = (2, 4)  # torch.library.custom_op; pyproject.toml's floor (a test keeps them equal)
if tuple(int(part) for part in _torch.__version__.split(".")[:2]) < MIN_TORCH:
    raise ImportError(
        f"segloss needs torch >= {'.'.join(map(str, MIN_TORCH))}, found {_torch.__version__}: "
        f"pip install --upgrade 'torch>={'.'.join(map(str, MIN_TORCH))}'"
    )

from . import comparison, functional, metrics  # noqa: E402
from .counting import ClassCounts, count_classes  # noqa: E402
from .margins import hem_margin, hem_plus_margins  # noqa: E402
from .modules import (  # noqa: E402
    CrossEntropyLoss,
    DiceLoss,
    FocalLoss,
    HEMLoss,
    HEMPlusLoss,
    LogitAdjustedLoss,
    LogitNormLoss,
    LovaszSoftmaxLoss,
    MultiMarginLoss,
    OHEMCrossEntropyLoss,
    WeightedCrossEntropyLoss,
    WeightedSumLoss,
)
from .registry import LOSS_NAMES, LOSSES, LossEntry, build_loss, register_loss  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "ClassCounts",
    "LOSSES",
    "LOSS_NAMES",
    "CrossEntropyLoss",
    "DiceLoss",
    "FocalLoss",
    "HEMLoss",
    "HEMPlusLoss",
    "LogitAdjustedLoss",
    "LogitNormLoss",
    "LossEntry",
    "LovaszSoftmaxLoss",
    "MultiMarginLoss",
    "OHEMCrossEntropyLoss",
    "WeightedCrossEntropyLoss",
    "WeightedSumLoss",
    "build_loss",
    "comparison",
    "count_classes",
    "functional",
    "metrics",
    "hem_margin",
    "hem_plus_margins",
    "register_loss",
]
