"""The losses by name: one table from which ``build_loss``, the ``loss.*`` config keys, ``--help-keys`` and
the names in the documentation derive (docs/losses-and-margins.md has a section per entry; a test checks it).

Adding a loss is one ``register_loss`` call next to its module (see docs/extending.md); adding a
hyper-parameter is one ``HyperParameter`` in ``HYPER_PARAMETERS`` (its config key ``loss.NAME``, type,
default and bound) plus its name in the ``hyper_parameters`` tuple of each loss that takes it.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Sequence
from dataclasses import KW_ONLY, dataclass, replace
from typing import Any

from torch import nn

from ._checks import DEFAULT_IGNORE_INDEX
from .functional import MARGIN_PLACEMENTS
from .margins import CLASS_WEIGHTINGS
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

__all__ = [
    "HYPER_PARAMETERS",
    "LOSSES",
    "LOSS_NAMES",
    "HyperParameter",
    "LossEntry",
    "build_loss",
    "loss_hyper_parameter_names",
    "loss_needs_counts",
    "loss_terms",
    "register_loss",
]


@dataclass(frozen=True)
class HyperParameter:
    """A loss hyper-parameter: the keyword of the loss module and the config key ``loss.NAME``.

    Args:
        type: the value's type (``float``, ``int``, ``str``, ``bool``).
        help: one line for ``--help-keys`` and the docs.
        bound: ``"positive"``, ``"non_negative"`` or ``None``: the check a config applies.
        choices: the accepted values, or empty for any value of ``type``.
        default: the config default; not written here but read, when a loss that takes the keyword is
            registered, from the default of that keyword in its module (``from_class_counts`` for a loss
            built from counts), so the published setting is stated once, where the loss is defined.
    """

    type: type
    help: str
    _: KW_ONLY
    bound: str | None = None
    choices: tuple[Any, ...] = ()
    default: Any = None


#: Every hyper-parameter any loss takes, by keyword. A loss lists the ones it takes in its entry.
HYPER_PARAMETERS: dict[str, HyperParameter] = {
    "M": HyperParameter(
        float, "HEM/HEM+ margin scale: margins sqrt(M / S), sqrt(M / (n s_i))", bound="positive"
    ),
    "margin": HyperParameter(float, "the one margin of the multi-class margin loss", bound="non_negative"),
    "tau": HyperParameter(float, "LogitNorm temperature", bound="positive"),
    "margin_on": HyperParameter(
        str,
        "HEM+: margin of the target class (dense default) or of the competing class (the paper)",
        choices=MARGIN_PLACEMENTS,
    ),
    "weighting": HyperParameter(str, "weighted CE: class weights from the counts", choices=CLASS_WEIGHTINGS),
    "beta": HyperParameter(float, "weighted CE: effective-number beta in (0, 1)", bound="positive"),
    "gamma": HyperParameter(float, "focal loss exponent (0: cross-entropy)", bound="non_negative"),
    "thresh": HyperParameter(
        float, "OHEM: true-class probability below which a pixel is always kept", bound="non_negative"
    ),
    "min_kept": HyperParameter(int, "OHEM: pixels kept at least per batch", bound="non_negative"),
}


@dataclass(frozen=True)
class LossEntry:
    """One loss of the registry.

    Args:
        name: the name of ``build_loss`` and ``loss.name`` (a section ``## `name``` of
            docs/losses-and-margins.md).
        module: the ``nn.Module`` class. It takes ``ignore_index``, ``reduction`` and ``sync`` keywords.
        hyper_parameters: the keys of ``HYPER_PARAMETERS`` the module takes as keywords.
        needs_counts: built with ``module.from_class_counts(counts, class_names=..., ...)`` from per-class
            training counts (margins, priors or weights), instead of ``module(...)``.
        takes_presence_counts: ``from_class_counts`` also takes ``presence_counts`` (per class, the size of
            the training images that contain it).
        summary: one line for tables.
    """

    name: str
    module: type[nn.Module]
    hyper_parameters: tuple[str, ...] = ()
    needs_counts: bool = False
    takes_presence_counts: bool = False
    summary: str = ""


#: The registered losses by name, in registration order.
LOSSES: dict[str, LossEntry] = {}


def register_loss(entry: LossEntry) -> LossEntry:
    """Add ``entry`` to ``LOSSES`` and read the defaults of its hyper-parameters from its module.

    Raises:
        ValueError: a taken name, a hyper-parameter not in ``HYPER_PARAMETERS`` or without a default in the
            module, or a default that differs from another registered loss's default of the same keyword.
    """
    if entry.name in LOSSES:
        raise ValueError(f"a loss named {entry.name!r} is already registered")
    unknown = [name for name in entry.hyper_parameters if name not in HYPER_PARAMETERS]
    if unknown:
        raise ValueError(
            f"loss {entry.name!r}: hyper-parameters {unknown} are not in HYPER_PARAMETERS "
            f"({', '.join(HYPER_PARAMETERS)}); add them there first"
        )
    defaults = {name: _declared_default(entry, name) for name in entry.hyper_parameters}
    for name, default in defaults.items():
        others = [other.name for other in LOSSES.values() if name in other.hyper_parameters]
        if others and default != HYPER_PARAMETERS[name].default:
            raise ValueError(
                f"loss {entry.name!r}: {name}={default!r} by default, but {others[0]!r} has "
                f"{HYPER_PARAMETERS[name].default!r}; one config key loss.{name} needs one default"
            )
    for name, default in defaults.items():
        HYPER_PARAMETERS[name] = replace(HYPER_PARAMETERS[name], default=default)
    LOSSES[entry.name] = entry
    return entry


def _declared_default(entry: LossEntry, name: str) -> Any:
    """The default of the keyword ``name`` where ``entry``'s module declares it: its builder
    (``from_class_counts`` for a loss built from counts), else the ``__init__`` of the class or of the base
    class it passes keywords on to."""
    counts_builder = getattr(entry.module, "from_class_counts", None) if entry.needs_counts else None
    builders = [counts_builder] if counts_builder is not None else []
    builders += [base.__init__ for base in entry.module.__mro__ if "__init__" in vars(base)]
    for builder in builders:
        parameter = inspect.signature(builder).parameters.get(name)
        if parameter is not None and parameter.default is not inspect.Parameter.empty:
            return parameter.default
    raise ValueError(
        f"loss {entry.name!r}: {entry.module.__name__} has no keyword {name!r} with a default; the default "
        f"of the config key loss.{name} is read from there"
    )


register_loss(LossEntry("ce", CrossEntropyLoss, summary="cross-entropy"))
register_loss(LossEntry("ln", LogitNormLoss, ("tau",), summary="LogitNorm"))
register_loss(LossEntry("la", LogitAdjustedLoss, needs_counts=True, summary="logit-adjusted cross-entropy"))
register_loss(LossEntry("dice", DiceLoss, summary="soft Dice"))
register_loss(LossEntry("mm", MultiMarginLoss, ("margin",), summary="multi-class margin"))
register_loss(LossEntry("hem", HEMLoss, ("M",), needs_counts=True, summary="high error margin"))
register_loss(
    LossEntry(
        "hem+",
        HEMPlusLoss,
        ("M", "margin_on"),
        needs_counts=True,
        summary="HEM with per-class margins",
    )
)

register_loss(
    LossEntry(
        "wce",
        WeightedCrossEntropyLoss,
        ("weighting", "beta"),
        needs_counts=True,
        takes_presence_counts=True,
        summary="class-weighted cross-entropy",
    )
)
register_loss(LossEntry("focal", FocalLoss, ("gamma",), summary="softmax focal loss"))
register_loss(LossEntry("lovasz", LovaszSoftmaxLoss, summary="Lovász-softmax"))
register_loss(LossEntry("ohem", OHEMCrossEntropyLoss, ("thresh", "min_kept"), summary="OHEM cross-entropy"))

#: The built-in losses (``LOSSES`` also holds any registered later).
LOSS_NAMES = tuple(LOSSES)

_WEIGHT = re.compile(r"(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\*")


def loss_terms(name: str) -> list[tuple[float, str]]:
    """The ``(weight, registered name)`` terms of a loss name: ``"hem+"`` → ``[(1.0, "hem+")]``,
    ``"ce+dice"`` → ``[(1.0, "ce"), (1.0, "dice")]``, ``"hem+ + 0.5*dice"`` → ``[(1.0, "hem+"),
    (0.5, "dice")]``. ``ValueError`` naming the registered losses for anything else."""

    def parse(text: str) -> list[tuple[float, str]] | None:
        weight, match = 1.0, _WEIGHT.match(text)
        if match:
            weight, text = float(match.group()[:-1]), text[match.end() :]
        for registered in sorted(LOSSES, key=len, reverse=True):  # "hem+" before "hem"
            if not text.startswith(registered):
                continue
            rest = text[len(registered) :]
            if not rest:
                return [(weight, registered)]
            tail = parse(rest[1:]) if rest.startswith("+") else None
            if tail is not None:
                return [(weight, registered), *tail]
        return None

    terms = parse("".join(str(name).split()))
    if terms is None:
        raise ValueError(
            f"unknown loss {name!r}; valid names: {', '.join(LOSSES)}, or a sum of them such as "
            f"'ce+dice' or 'hem+ + 0.5*dice'"
        )
    return terms


def loss_hyper_parameter_names(name: str) -> tuple[str, ...]:
    """The hyper-parameters the loss ``name`` (or every term of a sum) takes, in table order."""
    taken = {key for _, term in loss_terms(name) for key in LOSSES[term].hyper_parameters}
    return tuple(key for key in HYPER_PARAMETERS if key in taken)


def loss_needs_counts(name: str) -> bool:
    """Whether the loss ``name`` (or a term of a sum) is built from per-class training counts."""
    return any(LOSSES[term].needs_counts for _, term in loss_terms(name))


def build_loss(
    name: str,
    *,
    class_counts: Sequence[float] | Any = None,
    presence_counts: Sequence[float] | Any = None,
    weight: Sequence[float] | Any = None,
    ignore_index: int = DEFAULT_IGNORE_INDEX,
    reduction: str = "mean",
    sync: bool = False,
    class_names: Sequence[str] | None = None,
    **hyper_parameters: Any,
) -> nn.Module:
    """The registered loss ``name`` as a module, a drop-in for ``nn.CrossEntropyLoss``.

    Args:
        name: a key of ``LOSSES`` (``ce``, ``ln``, ``la``, ``dice``, ``mm``, ``hem``, ``hem+``, ``wce``,
            ``focal``, ``lovasz``, ``ohem`` built in), or a weighted sum of them (``"ce+dice"``,
            ``"hem+ + 0.5*dice"``; :func:`loss_terms`).
        class_counts: per-class training counts ``(C,)``; required by the losses with ``needs_counts``
            (``la``, ``hem``, ``hem+``, ``wce``), ignored by the others.
        presence_counts: per class, the size of the training images that contain it ``(C,)``, in the unit
            of ``class_counts``; needed by ``wce``'s median-frequency weights, ignored by the others.
        weight: ``(C,)`` per-class weights, as ``F.cross_entropy``'s ``weight`` (docs/losses-and-margins.md,
            "Per-class weights"; from class counts: :func:`segloss.margins.class_weights`); a sum passes it to
            every term. ``wce`` makes its own from the counts and takes none.
        ignore_index: target value that contributes no loss.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        sync: global batch statistics under DDP (docs/losses-and-margins.md).
        class_names: names for error messages about ``class_counts``.
        **hyper_parameters: the loss's ``hyper_parameters`` (e.g. ``M=2000`` for ``hem+``); a sum passes
            each term the ones it takes.

    Returns:
        The loss module; it maps logits ``(N, C)`` or ``(N, C, d1, ...)`` and targets ``(N)`` or
        ``(N, d1, ...)`` to a scalar (or per-sample values with ``reduction="none"``).

    Raises:
        ValueError: an unknown name, or missing class counts.
        TypeError: a hyper-parameter the loss does not take.
    """
    terms = loss_terms(name)
    unexpected = sorted(set(hyper_parameters) - set(loss_hyper_parameter_names(name)))
    if unexpected:
        accepted = ", ".join(loss_hyper_parameter_names(name)) or "none"
        raise TypeError(f"loss {name!r} got unexpected hyper-parameters {unexpected}; it accepts: {accepted}")
    if loss_needs_counts(name) and class_counts is None:
        raise ValueError(f"loss {name!r} needs class_counts (per-class training counts)")
    options = {"ignore_index": ignore_index, "reduction": reduction, "sync": sync}
    if weight is not None:
        options["weight"] = weight
    counts = {"presence_counts": presence_counts, "class_names": class_names}
    modules = []
    for _, term in terms:
        entry = LOSSES[term]
        taken = {key: value for key, value in hyper_parameters.items() if key in entry.hyper_parameters}
        if not entry.needs_counts:
            modules.append(entry.module(**taken, **options))
            continue
        extra = counts if entry.takes_presence_counts else {"class_names": class_names}
        modules.append(entry.module.from_class_counts(class_counts, **taken, **extra, **options))
    if len(terms) == 1 and terms[0][0] == 1.0:
        return modules[0]
    return WeightedSumLoss(modules, [weight for weight, _ in terms])
