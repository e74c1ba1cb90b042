"""``nn.Module`` wrappers of the losses in :mod:`segloss.functional`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from . import comparison
from . import functional as F
from ._checks import DEFAULT_IGNORE_INDEX, ClassWeight, check_reduction, check_weight_values
from .margins import DEFAULT_M, CountsLike, class_priors, class_weights, hem_margin, hem_plus_margins


class _Loss(nn.Module):
    """The options every loss module takes: ``weight`` (per-class weights, a float32 buffer that moves with
    the module, checked here once), ``ignore_index``, ``reduction`` and ``sync``."""

    weight: torch.Tensor | None

    def __init__(
        self,
        ignore_index: int = DEFAULT_IGNORE_INDEX,
        reduction: str = "mean",
        sync: bool = False,
        *,
        weight: ClassWeight = None,
    ):
        super().__init__()
        check_reduction(reduction)
        self.ignore_index = ignore_index
        self.reduction = reduction
        self.sync = sync
        if weight is not None:
            weight = torch.as_tensor(weight, dtype=torch.float32).clone()
            check_weight_values(weight)
        self.register_buffer("weight", weight)

    def _options(self) -> dict:
        return {
            "weight": self.weight,
            "ignore_index": self.ignore_index,
            "reduction": self.reduction,
            "sync": self.sync,
        }

    def extra_repr(self) -> str:
        weight = "" if self.weight is None else f"weight={[round(w, 4) for w in self.weight.tolist()]}, "
        return f"{weight}ignore_index={self.ignore_index}, reduction={self.reduction!r}, sync={self.sync}"


class CrossEntropyLoss(_Loss):
    """Cross-entropy (``ce``)."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, target, **self._options())


class LogitNormLoss(_Loss):
    """LogitNorm (``ln``) with temperature ``tau``."""

    def __init__(self, tau: float = 0.04, **kw):
        super().__init__(**kw)
        self.tau = tau

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.logit_norm_loss(logits, target, self.tau, **self._options())

    def extra_repr(self) -> str:
        return f"tau={self.tau}, {super().extra_repr()}"


class LogitAdjustedLoss(_Loss):
    """Logit-adjusted cross-entropy (``la``) with class priors ``p_j = s_j / S``."""

    def __init__(self, class_priors: Sequence[float] | torch.Tensor, **kw):
        super().__init__(**kw)
        # float32 buffers: the module can move to any device (MPS has no float64); the losses cast them
        # to the logits' dtype
        self.register_buffer("class_priors", torch.as_tensor(class_priors, dtype=torch.float32).clone())

    @classmethod
    def from_class_counts(
        cls, counts: CountsLike, *, class_names: Sequence[str] | None = None, **kw
    ) -> LogitAdjustedLoss:
        return cls(class_priors(counts, class_names=class_names), **kw)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.logit_adjusted_loss(logits, target, self.class_priors, **self._options())

    def per_class_values(self) -> tuple[str, torch.Tensor]:
        """What the loss derived from the class counts: ``("prior", (C,) priors)``."""
        return "prior", self.class_priors


class DiceLoss(_Loss):
    """Soft Dice over the batch (``dice``)."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.dice_loss(logits, target, **self._options())


class MultiMarginLoss(_Loss):
    """Multi-class margin loss (``mm``) with one margin for every class, or ``(C,)`` margins placed on the
    competing class (``margin_on="competitor"``) or on the true class (``"target"``)."""

    def __init__(
        self, margin: float | Sequence[float] | torch.Tensor = 1.0, *, margin_on: str = "target", **kw
    ):
        super().__init__(**kw)
        self.register_buffer("margin", torch.as_tensor(margin, dtype=torch.float32).clone())
        self.margin_on = margin_on

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.multi_margin_loss(logits, target, self.margin, margin_on=self.margin_on, **self._options())

    def extra_repr(self) -> str:
        return f"margin={self.margin.tolist()}, margin_on={self.margin_on!r}, {super().extra_repr()}"


class HEMLoss(MultiMarginLoss):
    """High error margin loss (``hem``): one margin (float) or per-class ``(C,)`` margins.

    ``margin_on`` is that of :func:`segloss.functional.hem_loss`: by default the true class's margin (what
    segmentation trains best with); ``margin_on="competitor"`` is the paper's placement.
    """

    def __init__(
        self,
        margin: float | Sequence[float] | torch.Tensor,
        ignore_index: int = DEFAULT_IGNORE_INDEX,
        reduction: str = "mean",
        sync: bool = False,
        *,
        margin_on: str = "target",
        weight: ClassWeight = None,
    ):
        super().__init__(
            margin,
            margin_on=margin_on,
            ignore_index=ignore_index,
            reduction=reduction,
            sync=sync,
            weight=weight,
        )

    @classmethod
    def from_class_counts(
        cls, counts: CountsLike, M: float = DEFAULT_M, *, class_names: Sequence[str] | None = None, **kw
    ) -> HEMLoss:
        """HEM with margin ``sqrt(M / S)``; ``counts`` are training samples per class.

        For segmentation pass *image-equivalents*, labelled pixels per class ÷ pixels per image (what
        ``loss.count_unit=images``, the segmentation default, does): pixel counts make the margin tiny and
        trained 8–10 mIoU points below cross-entropy in docs/studies/margins.md.
        """
        return cls(hem_margin(counts, M, class_names=class_names), **kw)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.hem_loss(
            logits,
            target,
            self.margin,
            margin_on=self.margin_on,
            **self._options(),
        )

    def per_class_values(self) -> tuple[str, torch.Tensor]:
        """What the loss derived from the class counts: ``("margin", the margin or (C,) margins)``."""
        return "margin", self.margin


class HEMPlusLoss(HEMLoss):
    """HEM+ (``hem+``): HEM with per-class margins, usually ``sqrt(M / (n s_i))`` from class counts."""

    def __init__(
        self,
        margins: Sequence[float] | torch.Tensor,
        ignore_index: int = DEFAULT_IGNORE_INDEX,
        reduction: str = "mean",
        sync: bool = False,
        **options: Any,
    ):
        margins = torch.as_tensor(margins)
        if margins.dim() != 1:
            raise ValueError(
                f"HEMPlusLoss needs a (C,) tensor of per-class margins, got shape {tuple(margins.shape)}"
            )
        super().__init__(margins, ignore_index=ignore_index, reduction=reduction, sync=sync, **options)

    @classmethod
    def from_class_counts(
        cls, counts: CountsLike, M: float = DEFAULT_M, *, class_names: Sequence[str] | None = None, **kw
    ) -> HEMPlusLoss:
        """HEM+ with margins ``sqrt(M / (n s_i))``; ``counts`` are training samples per class.

        For segmentation, what docs/studies/margins.md measured best (the defaults): ``counts`` in
        image-equivalents (labelled pixels per class ÷ pixels per image, ``ClassCounts.image_equivalents()``)
        and ``margin_on="target"``. The paper's formulation, pixel counts with the margin on the competing
        class (``margin_on="competitor"``, which the classification recipes name), trained 8–9 points
        below cross-entropy there.
        """
        return cls(hem_plus_margins(counts, M, class_names=class_names), **kw)


class WeightedCrossEntropyLoss(_Loss):
    """Class-weighted cross-entropy (``wce``): cross-entropy with ``weight=class_weights`` derived from
    the class counts (:func:`segloss.margins.class_weights`); ``build_loss("ce", weight=...)`` is the same
    loss with weights of your own."""

    def __init__(self, class_weights: Sequence[float] | torch.Tensor, **kw):
        if kw.get("weight") is not None:
            raise ValueError(
                "wce derives its weights from the class counts (its weighting); pass weights of your own "
                "to 'ce' instead: build_loss('ce', weight=...)"
            )
        super().__init__(**{**kw, "weight": class_weights})

    @property
    def class_weights(self) -> torch.Tensor:
        return self.weight

    @classmethod
    def from_class_counts(
        cls,
        counts: CountsLike,
        weighting: str = "median_frequency",
        beta: float = 0.9999,
        *,
        presence_counts: CountsLike | None = None,
        class_names: Sequence[str] | None = None,
        **kw,
    ) -> WeightedCrossEntropyLoss:
        """Weights from training counts by :func:`segloss.margins.class_weights` (``median_frequency``
        needs ``presence_counts``, the size of the training images that contain each class)."""
        weights = class_weights(
            counts, weighting, beta=beta, presence_counts=presence_counts, class_names=class_names
        )
        return cls(weights, **kw)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, target, **self._options())

    def per_class_values(self) -> tuple[str, torch.Tensor]:
        """What the loss derived from the class counts: ``("weight", (C,) weights)``."""
        return "weight", self.class_weights


class FocalLoss(_Loss):
    """Softmax focal loss (``focal``), :func:`segloss.comparison.focal_loss`."""

    def __init__(self, gamma: float = 2.0, **kw):
        super().__init__(**kw)
        self.gamma = gamma

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return comparison.focal_loss(logits, target, self.gamma, **self._options())

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, {super().extra_repr()}"


class LovaszSoftmaxLoss(_Loss):
    """Lovász-softmax over the batch (``lovasz``), :func:`segloss.comparison.lovasz_softmax`."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return comparison.lovasz_softmax(logits, target, **self._options())


class OHEMCrossEntropyLoss(_Loss):
    """OHEM cross-entropy (``ohem``), :func:`segloss.comparison.ohem_cross_entropy`."""

    def __init__(self, thresh: float = 0.7, min_kept: int = 100_000, **kw):
        super().__init__(**kw)
        self.thresh = thresh
        self.min_kept = min_kept

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return comparison.ohem_cross_entropy(logits, target, self.thresh, self.min_kept, **self._options())

    def extra_repr(self) -> str:
        return f"thresh={self.thresh}, min_kept={self.min_kept}, {super().extra_repr()}"


class WeightedSumLoss(nn.Module):
    """``Σ_k w_k · loss_k(logits, target)`` of loss modules (``ce+dice``, ``hem+ + 0.5*dice``), as
    MMSegmentation's list of decode losses. Each term reduces as it was built; with ``reduction="none"``
    the terms must give outputs of one shape."""

    def __init__(self, terms: Sequence[nn.Module], weights: Sequence[float]):
        super().__init__()
        if len(terms) != len(weights) or not terms:
            raise ValueError(f"need one weight per term, got {len(terms)} terms and {len(weights)} weights")
        self.terms = nn.ModuleList(terms)
        self.weights = [float(weight) for weight in weights]

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        outputs = [term(logits, target) for term in self.terms]
        shapes = {tuple(output.shape) for output in outputs}
        if len(shapes) > 1:
            raise ValueError(f"the terms of a loss sum give outputs of different shapes {sorted(shapes)}")
        return sum(weight * output for weight, output in zip(self.weights, outputs, strict=True))

    def per_class_values(self) -> tuple[str, torch.Tensor] | None:
        """The per-class values of the first term derived from class counts, if any."""
        for term in self.terms:
            if hasattr(term, "per_class_values"):
                return term.per_class_values()
        return None

    def extra_repr(self) -> str:
        return f"weights={self.weights}"
