"""Margins from class counts: HEM's single margin and HEM+'s per-class margins
(docs/losses-and-margins.md)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

DEFAULT_M = 2000.0
# training samples per class, (C,): a sequence, a tensor or a NumPy array
CountsLike = Sequence[float] | torch.Tensor


def check_class_counts(counts: CountsLike, class_names: Sequence[str] | None = None) -> torch.Tensor:
    """Counts as a float64 ``(C,)`` tensor; ``ValueError`` naming the classes whose count is not positive."""
    counts = torch.as_tensor(counts, dtype=torch.float64).detach().cpu()
    if counts.dim() != 1 or counts.numel() < 2:
        raise ValueError(
            f"class counts must be a 1-D sequence of at least 2 classes, got shape {tuple(counts.shape)}"
        )
    if not torch.isfinite(counts).all():
        raise ValueError(f"class counts must be finite, got {counts.tolist()}")
    bad = torch.nonzero(counts <= 0).flatten().tolist()
    if bad:
        if class_names is not None and len(class_names) == counts.numel():
            named = ", ".join(f"{class_names[i]!r} (class {i}): {counts[i].item():g}" for i in bad)
        else:
            named = ", ".join(f"class {i}: {counts[i].item():g}" for i in bad)
        raise ValueError(
            f"every class needs a positive training count for count-based margins/priors; "
            f"zero or negative counts for {named}"
        )
    return counts


def _check_m(M: float) -> float:
    if not M > 0:
        raise ValueError(f"M must be positive, got {M}")
    return float(M)


def hem_margin(
    counts: CountsLike, M: float = DEFAULT_M, *, class_names: Sequence[str] | None = None
) -> float:
    """HEM's single margin ``sqrt(M / S)`` (Spratling & Schütt, https://arxiv.org/abs/2501.12191).

    Args:
        counts: per-class training counts ``s_j``, all positive (``S = Σ s_j``).
        M: the margin scale (2000 in the paper).
        class_names: names for the error message about a non-positive count.

    Shape:
        counts: ``(C,)``, ``C >= 2``.

    Returns:
        The margin as a float (50 000 CIFAR-10 images: 0.2).
    """
    counts = check_class_counts(counts, class_names)
    return float(torch.sqrt(_check_m(M) / counts.sum()))


def hem_plus_margins(
    counts: CountsLike, M: float = DEFAULT_M, *, class_names: Sequence[str] | None = None
) -> torch.Tensor:
    """HEM+'s per-class margins ``sqrt(M / (n s_i))``: rare classes get large margins
    (docs/losses-and-margins.md).

    Args:
        counts: per-class training counts ``s_i``, all positive.
        M: the margin scale (2000 in the paper).
        class_names: names for the error message about a non-positive count.

    Shape:
        counts: ``(C,)``, ``C >= 2`` (``n = C``). Output: ``(C,)``.

    Returns:
        The margins as a float64 tensor.
    """
    counts = check_class_counts(counts, class_names)
    return torch.sqrt(_check_m(M) / (counts.numel() * counts))


def class_priors(counts: CountsLike, *, class_names: Sequence[str] | None = None) -> torch.Tensor:
    """Class priors ``p_j = s_j / S`` for the logit-adjusted loss.

    Args:
        counts: per-class training counts ``s_j``, all positive.
        class_names: names for the error message about a non-positive count.

    Shape:
        counts: ``(C,)``. Output: ``(C,)``.

    Returns:
        The priors as a float64 tensor summing to 1.
    """
    counts = check_class_counts(counts, class_names)
    return counts / counts.sum()


CLASS_WEIGHTINGS = ("median_frequency", "inverse", "effective_number")


def class_weights(
    counts: CountsLike,
    weighting: str = "median_frequency",
    *,
    beta: float = 0.9999,
    presence_counts: CountsLike | None = None,
    class_names: Sequence[str] | None = None,
) -> torch.Tensor:
    """Class weights for the weighted cross-entropy from per-class training counts ``n_c``.

    - ``median_frequency`` (Eigen & Fergus 2015, SegNet's CamVid weights): ``w_c = median_k(g_k) / g_c``
      with ``g_c = n_c / P_c``, ``P_c`` the size of the training images that contain class ``c``
      (``presence_counts``, in the unit of ``counts``).
    - ``inverse``: ``w_c ∝ 1 / n_c``.
    - ``effective_number`` (Cui et al. 2019, https://arxiv.org/abs/1901.05555):
      ``w_c ∝ (1 − β) / (1 − β^n_c)``.

    ``inverse`` and ``effective_number`` are normalised to ``Σ_c w_c = C``.

    Args:
        counts: per-class training counts ``n_c``, all positive.
        weighting: one of ``CLASS_WEIGHTINGS``.
        beta: the effective-number β in (0, 1).
        presence_counts: ``P_c`` (needed by ``median_frequency``): per class, the size of the training
            images that contain it, at least ``n_c``.
        class_names: names for the error message about a non-positive count.

    Shape:
        counts, presence_counts: ``(C,)``. Output: ``(C,)``.

    Returns:
        The weights as a float64 tensor.
    """
    counts = check_class_counts(counts, class_names)
    if weighting == "median_frequency":
        if presence_counts is None:
            raise ValueError(
                "median_frequency weights need presence_counts: per class, the size of the training images "
                "that contain it, in the unit of the counts. segloss.count_classes(train_set, C) gives both: "
                "class_counts=c.image_equivalents(), presence_counts=c.presence_image_equivalents(); or use "
                "weighting='inverse' (segmentation runs take them from the class statistics)"
            )
        presence = check_class_counts(presence_counts, class_names)
        if presence.shape != counts.shape or bool((presence < counts).any()):
            raise ValueError(
                f"presence_counts must be ({counts.numel()},) and at least the class counts, got "
                f"{presence.tolist()} for counts {counts.tolist()}"
            )
        frequency = counts / presence
        return torch.quantile(frequency, 0.5) / frequency
    if weighting == "inverse":
        weights = 1 / counts
    elif weighting == "effective_number":
        if not 0 < beta < 1:
            raise ValueError(f"beta must be in (0, 1), got {beta}")
        weights = (1 - beta) / -torch.expm1(counts * torch.log(torch.tensor(beta, dtype=torch.float64)))
    else:
        raise ValueError(f"weighting must be one of {CLASS_WEIGHTINGS}, got {weighting!r}")
    return weights * (counts.numel() / weights.sum())
