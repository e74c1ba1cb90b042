"""``build_loss``: every loss of SPEC §1 by name, with margins and priors from class counts."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from ._checks import DEFAULT_IGNORE_INDEX
from .modules import (
    CrossEntropyLoss,
    DiceLoss,
    HEMLoss,
    HEMPlusLoss,
    LogitAdjustedLoss,
    LogitNormLoss,
    MultiMarginLoss,
)

LOSS_NAMES = ("ce", "ln", "la", "dice", "mm", "hem", "hem+")
# The keyword hyper-parameters each loss takes (SPEC §4's loss.tau, loss.margin, loss.M).
LOSS_HYPERPARAMETERS: dict[str, tuple[str, ...]] = {
    "ce": (),
    "ln": ("tau",),
    "la": (),
    "dice": (),
    "mm": ("margin",),
    "hem": ("M", "mean_over"),
    "hem+": ("M", "margin_on", "mean_over"),
}
LOSSES_NEEDING_COUNTS = frozenset({"la", "hem", "hem+"})


def build_loss(
    name: str,
    *,
    class_counts=None,
    ignore_index: int = DEFAULT_IGNORE_INDEX,
    reduction: str = "mean",
    sync: bool = False,
    class_names: Sequence[str] | None = None,
    **kw,
) -> nn.Module:
    """The loss ``name`` (one of ``LOSS_NAMES``) as a module.

    ``class_counts`` (per-class training counts) are required by ``la``, ``hem`` and ``hem+`` and ignored by
    the others; ``class_names`` only improve error messages. ``kw`` holds the loss's hyper-parameters
    (``LOSS_HYPERPARAMETERS[name]``); any other keyword is a ``TypeError``.
    """
    if name not in LOSS_HYPERPARAMETERS:
        raise ValueError(f"unknown loss {name!r}; valid names: {', '.join(LOSS_NAMES)}")
    unexpected = sorted(set(kw) - set(LOSS_HYPERPARAMETERS[name]))
    if unexpected:
        accepted = ", ".join(LOSS_HYPERPARAMETERS[name]) or "none"
        raise TypeError(f"loss {name!r} got unexpected hyper-parameters {unexpected}; it accepts: {accepted}")
    if name in LOSSES_NEEDING_COUNTS and class_counts is None:
        raise ValueError(f"loss {name!r} needs class_counts (per-class training counts)")
    options = {"ignore_index": ignore_index, "reduction": reduction, "sync": sync}
    if name == "ce":
        return CrossEntropyLoss(**options)
    if name == "ln":
        return LogitNormLoss(**kw, **options)
    if name == "la":
        return LogitAdjustedLoss.from_class_counts(class_counts, class_names=class_names, **options)
    if name == "dice":
        return DiceLoss(**options)
    if name == "mm":
        return MultiMarginLoss(**kw, **options)
    loss = HEMLoss if name == "hem" else HEMPlusLoss
    return loss.from_class_counts(class_counts, **kw, class_names=class_names, **options)
