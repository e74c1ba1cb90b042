"""Confidence scores and rejection metrics (docs/image-level.md): MSP, MLS, AUROC and DAR.

Needs torch alone. AUROC is computed from ranks, never from thresholds squashed into [0, 1]: max-logit
scores are unbounded, and a sigmoid would turn large ones into float32 ties.
"""

from __future__ import annotations

import math

import torch

__all__ = ["acceptance_threshold", "auroc", "dar", "mls", "msp"]


def msp(logits: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Maximum softmax probability (MSP), the confidence score of a prediction.

    Args:
        logits: class scores, any float dtype (computed in float32 or better).
        dim: the class dimension.

    Shape:
        logits: ``(N, C)`` or ``(N, C, d1, ...)`` with ``dim=1``. Output: ``logits`` without ``dim``.

    Returns:
        The highest softmax probability of each sample.
    """
    logits = _as_float(logits, "logits")
    return logits.softmax(dim).amax(dim)


def mls(logits: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Maximum logit (MLS), the confidence score of a prediction.

    Args:
        logits: class scores, any float dtype.
        dim: the class dimension.

    Shape:
        logits: ``(N, C)`` or ``(N, C, d1, ...)`` with ``dim=1``. Output: ``logits`` without ``dim``.

    Returns:
        The highest logit of each sample.
    """
    return _as_float(logits, "logits").amax(dim)


def auroc(known_scores: torch.Tensor, unknown_scores: torch.Tensor) -> float:
    """Area under the ROC curve for telling known (positive) from unknown (negative) samples by score.

    1.0 means every known sample scores higher than every unknown one, 0.5 is chance; ties count one half
    (the Mann-Whitney statistic with average ranks, equal to scikit-learn's ``roc_auc_score``).

    Args:
        known_scores: confidence scores of the known samples (e.g. ``msp`` or ``mls``).
        unknown_scores: confidence scores of the unknown samples.

    Shape:
        known_scores: ``(K,)``; unknown_scores: ``(U,)``; both non-empty.

    Returns:
        The AUROC as a float in [0, 1].
    """
    known = _as_scores(known_scores, "known_scores")
    unknown = _as_scores(unknown_scores, "unknown_scores")
    ranks = _average_ranks(torch.cat([known, unknown]))
    num_known, num_unknown = known.numel(), unknown.numel()
    rank_sum = ranks[:num_known].sum().item()
    return (rank_sum - num_known * (num_known + 1) / 2) / (num_known * num_unknown)


def acceptance_threshold(scores: torch.Tensor, accept_rate: float = 0.95) -> float:
    """The score threshold ``t`` that accepts (``score >= t``) a fraction ``accept_rate`` of ``scores``.

    With the ``m`` scores sorted ascending, ``t`` is the one at 0-based position ``k = floor((1 - accept_rate)
    * m)``: the ``k`` lowest scores are rejected and at least ``ceil(accept_rate * m)`` are accepted (more
    only when scores tie with ``t``). For ``m = 100`` and 0.95, ``t`` is the 6th lowest score.
    """
    if not 0 < accept_rate <= 1:
        raise ValueError(f"accept_rate must be in (0, 1], got {accept_rate}")
    scores = _as_scores(scores, "scores")
    # The epsilon keeps e.g. (1 - 0.95) * 100 = 5.000000000000004 and 4.999999999999999 both at 5.
    position = math.floor((1 - accept_rate) * scores.numel() + 1e-9)
    return scores.sort().values[position].item()


def dar(
    clean_scores: torch.Tensor,
    clean_correct: torch.Tensor,
    adv_scores: torch.Tensor,
    adv_correct: torch.Tensor,
    accept_rate: float = 0.95,
) -> float:
    """Detection-adjusted robustness (DAR, docs/image-level.md): the fraction of adversarial samples handled
    correctly.

    The threshold is ``acceptance_threshold`` of the scores of the *correctly classified* clean samples, so
    that ``accept_rate`` of them are accepted (``score >= threshold``). An adversarial sample is handled
    correctly when it is accepted with a correct label or rejected with a wrong label.

    Args:
        clean_scores: confidence scores of the clean samples.
        clean_correct: whether each clean sample is classified correctly (bool).
        adv_scores: confidence scores of the adversarial samples.
        adv_correct: whether each adversarial sample is classified correctly (bool).
        accept_rate: the share of correct clean samples to accept.

    Shape:
        clean_scores, clean_correct: ``(N,)``; adv_scores, adv_correct: ``(M,)``.

    Returns:
        DAR as a float in [0, 1].
    """
    clean_scores = _as_scores(clean_scores, "clean_scores")
    clean_correct = _as_mask(clean_correct, clean_scores, "clean_correct", "clean_scores")
    adv_scores = _as_scores(adv_scores, "adv_scores")
    adv_correct = _as_mask(adv_correct, adv_scores, "adv_correct", "adv_scores")
    if not bool(clean_correct.any()):
        raise ValueError("dar needs at least one correctly classified clean sample to set the threshold")
    threshold = acceptance_threshold(clean_scores[clean_correct], accept_rate)
    accepted = adv_scores >= threshold
    return (accepted == adv_correct).double().mean().item()


def _as_float(tensor: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {_describe(tensor)}")
    if tensor.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(tensor.shape)})")
    return tensor.float() if tensor.dtype in (torch.float16, torch.bfloat16) else tensor


def _as_scores(scores: torch.Tensor, name: str) -> torch.Tensor:
    """A non-empty 1-D float64 CPU tensor of finite scores."""
    scores = torch.as_tensor(scores)
    if scores.dim() != 1:
        raise ValueError(f"{name} must be 1-D (one score per sample), got shape {tuple(scores.shape)}")
    if scores.numel() == 0:
        raise ValueError(f"{name} is empty")
    scores = scores.detach().to("cpu", torch.float64)
    if not bool(torch.isfinite(scores).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return scores


def _as_mask(mask: torch.Tensor, scores: torch.Tensor, name: str, scores_name: str) -> torch.Tensor:
    mask = torch.as_tensor(mask).detach().cpu()
    if mask.dtype != torch.bool:
        raise TypeError(f"{name} must be a bool tensor (True where the label is correct), got {mask.dtype}")
    if mask.shape != scores.shape:
        raise ValueError(
            f"{name} shape {tuple(mask.shape)} does not match {scores_name} shape {tuple(scores.shape)}"
        )
    return mask


def _average_ranks(values: torch.Tensor) -> torch.Tensor:
    """1-based ranks of ``values``; tied values share the mean of their ranks."""
    sorted_values, order = values.sort()
    _, inverse, counts = torch.unique_consecutive(sorted_values, return_inverse=True, return_counts=True)
    first_rank = counts.cumsum(0) - counts + 1
    group_rank = first_rank.double() + (counts.double() - 1) / 2
    ranks = torch.empty_like(values)
    ranks[order] = group_rank[inverse]
    return ranks


def _describe(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of dtype {value.dtype}"
    return type(value).__name__
