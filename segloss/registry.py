"""The losses by name: one table from which ``build_loss``, the ``loss.*`` config keys, ``--help-keys`` and
the names in the documentation derive (docs/losses.md has a section per entry; a test checks it).

Adding a loss is one ``register_loss`` call next to its module (see docs/extending.md); adding a
hyper-parameter is one ``HyperParameter`` in ``HYPER_PARAMETERS`` (its config key ``loss.NAME``, type,
default and bound) plus its name in the ``hyper_parameters`` tuple of each loss that takes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from ._checks import DEFAULT_IGNORE_INDEX
from .functional import MARGIN_PLACEMENTS, MEAN_NORMALISATIONS
from .margins import DEFAULT_M
from .modules import (
    CrossEntropyLoss,
    DiceLoss,
    HEMLoss,
    HEMPlusLoss,
    LogitAdjustedLoss,
    LogitNormLoss,
    MultiMarginLoss,
)

__all__ = [
    "HYPER_PARAMETERS",
    "LOSSES",
    "LOSS_NAMES",
    "HyperParameter",
    "LossEntry",
    "build_loss",
    "register_loss",
]


@dataclass(frozen=True)
class HyperParameter:
    """A loss hyper-parameter: the keyword of the loss module and the config key ``loss.NAME``.

    Args:
        type: the value's type (``float``, ``int``, ``str``, ``bool``).
        default: the config default (the published setting).
        help: one line for ``--help-keys`` and the docs.
        bound: ``"positive"``, ``"non_negative"`` or ``None``: the check a config applies.
        choices: the accepted values, or empty for any value of ``type``.
    """

    type: type
    default: Any
    help: str
    bound: str | None = None
    choices: tuple[Any, ...] = ()


#: Every hyper-parameter any loss takes, by keyword. A loss lists the ones it takes in its entry.
HYPER_PARAMETERS: dict[str, HyperParameter] = {
    "M": HyperParameter(
        float, DEFAULT_M, "HEM/HEM+ margin scale: margins sqrt(M / S), sqrt(M / (n s_i))", "positive"
    ),
    "margin": HyperParameter(float, 1.0, "the one margin of the multi-class margin loss", "non_negative"),
    "tau": HyperParameter(float, 0.04, "LogitNorm temperature", "positive"),
    "margin_on": HyperParameter(
        str,
        "competitor",
        "HEM+: margin of the competing class (the paper) or of the target class",
        choices=MARGIN_PLACEMENTS,
    ),
    "mean_over": HyperParameter(
        str,
        "nonzero",
        "HEM/HEM+ batch mean over samples with loss > 0 (the paper) or all valid ones",
        choices=MEAN_NORMALISATIONS,
    ),
}


@dataclass(frozen=True)
class LossEntry:
    """One loss of the registry.

    Args:
        name: the name of ``build_loss`` and ``loss.name`` (a section ``## `name``` of docs/losses.md).
        module: the ``nn.Module`` class. It takes ``ignore_index``, ``reduction`` and ``sync`` keywords.
        hyper_parameters: the keys of ``HYPER_PARAMETERS`` the module takes as keywords.
        needs_counts: built with ``module.from_class_counts(counts, class_names=..., ...)`` from per-class
            training counts (margins or priors), instead of ``module(...)``.
        summary: one line for tables.
    """

    name: str
    module: type[nn.Module]
    hyper_parameters: tuple[str, ...] = ()
    needs_counts: bool = False
    summary: str = ""


#: The registered losses by name, in registration order.
LOSSES: dict[str, LossEntry] = {}


def register_loss(entry: LossEntry) -> LossEntry:
    """Add ``entry`` to ``LOSSES``; ``ValueError`` for a taken name or an unknown hyper-parameter."""
    if entry.name in LOSSES:
        raise ValueError(f"a loss named {entry.name!r} is already registered")
    unknown = [name for name in entry.hyper_parameters if name not in HYPER_PARAMETERS]
    if unknown:
        raise ValueError(
            f"loss {entry.name!r}: hyper-parameters {unknown} are not in HYPER_PARAMETERS "
            f"({', '.join(HYPER_PARAMETERS)}); add them there first"
        )
    LOSSES[entry.name] = entry
    return entry


register_loss(LossEntry("ce", CrossEntropyLoss, summary="cross-entropy"))
register_loss(LossEntry("ln", LogitNormLoss, ("tau",), summary="LogitNorm"))
register_loss(LossEntry("la", LogitAdjustedLoss, needs_counts=True, summary="logit-adjusted cross-entropy"))
register_loss(LossEntry("dice", DiceLoss, summary="soft Dice"))
register_loss(LossEntry("mm", MultiMarginLoss, ("margin",), summary="multi-class margin"))
register_loss(LossEntry("hem", HEMLoss, ("M", "mean_over"), needs_counts=True, summary="high error margin"))
register_loss(
    LossEntry(
        "hem+",
        HEMPlusLoss,
        ("M", "margin_on", "mean_over"),
        needs_counts=True,
        summary="HEM with per-class margins",
    )
)

#: The built-in losses (``LOSSES`` also holds any registered later).
LOSS_NAMES = tuple(LOSSES)


def build_loss(
    name: str,
    *,
    class_counts: Sequence[float] | Any = None,
    ignore_index: int = DEFAULT_IGNORE_INDEX,
    reduction: str = "mean",
    sync: bool = False,
    class_names: Sequence[str] | None = None,
    **hyper_parameters: Any,
) -> nn.Module:
    """The registered loss ``name`` as a module, a drop-in for ``nn.CrossEntropyLoss``.

    Args:
        name: a key of ``LOSSES`` (``ce``, ``ln``, ``la``, ``dice``, ``mm``, ``hem``, ``hem+`` built in).
        class_counts: per-class training counts ``(C,)``; required by the losses with ``needs_counts``
            (``la``, ``hem``, ``hem+``), ignored by the others.
        ignore_index: target value that contributes no loss.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        sync: global batch means under DDP (docs/losses.md).
        class_names: names for error messages about ``class_counts``.
        **hyper_parameters: the loss's ``hyper_parameters`` (e.g. ``M=2000`` for ``hem+``).

    Returns:
        The loss module; it maps logits ``(N, C)`` or ``(N, C, d1, ...)`` and targets ``(N)`` or
        ``(N, d1, ...)`` to a scalar (or per-sample values with ``reduction="none"``).

    Raises:
        ValueError: an unknown name, or missing class counts.
        TypeError: a hyper-parameter the loss does not take.
    """
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; valid names: {', '.join(LOSSES)}")
    entry = LOSSES[name]
    unexpected = sorted(set(hyper_parameters) - set(entry.hyper_parameters))
    if unexpected:
        accepted = ", ".join(entry.hyper_parameters) or "none"
        raise TypeError(f"loss {name!r} got unexpected hyper-parameters {unexpected}; it accepts: {accepted}")
    options = {"ignore_index": ignore_index, "reduction": reduction, "sync": sync}
    if not entry.needs_counts:
        return entry.module(**hyper_parameters, **options)
    if class_counts is None:
        raise ValueError(f"loss {name!r} needs class_counts (per-class training counts)")
    return entry.module.from_class_counts(
        class_counts, **hyper_parameters, class_names=class_names, **options
    )
