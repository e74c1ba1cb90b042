"""segloss: the HEM+ margin loss as a fast drop-in replacement for cross-entropy (SPEC §1–2).

``import segloss`` needs torch alone; datasets, models and training live in optional submodules.
"""

from . import functional, metrics
from .margins import hem_margin, hem_plus_margins
from .modules import (
    CrossEntropyLoss,
    DiceLoss,
    HEMLoss,
    HEMPlusLoss,
    LogitAdjustedLoss,
    LogitNormLoss,
    MultiMarginLoss,
)
from .registry import LOSS_NAMES, build_loss

__version__ = "0.1.0"

__all__ = [
    "LOSS_NAMES",
    "CrossEntropyLoss",
    "DiceLoss",
    "HEMLoss",
    "HEMPlusLoss",
    "LogitAdjustedLoss",
    "LogitNormLoss",
    "MultiMarginLoss",
    "build_loss",
    "functional",
    "metrics",
    "hem_margin",
    "hem_plus_margins",
]
