"""segloss: the HEM+ margin loss as a fast drop-in replacement for cross-entropy.

The loss core of Spratling & Schütt, "A margin-based replacement for cross-entropy loss"
(https://arxiv.org/abs/2501.12191); the losses are described in docs/losses.md. ``import segloss`` needs
torch alone; the run machinery (``segloss.runner``) and the applications (``segloss.segmentation``,
``segloss.classification``) live in subpackages with optional dependencies.
"""

from . import comparison, functional, metrics
from .margins import hem_margin, hem_plus_margins
from .modules import (
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
from .registry import LOSS_NAMES, LOSSES, LossEntry, build_loss, register_loss

__version__ = "0.1.0"

__all__ = [
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
    "functional",
    "metrics",
    "hem_margin",
    "hem_plus_margins",
    "register_loss",
]
