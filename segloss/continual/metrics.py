"""Continual-learning metrics from the accuracy matrix ``R``: ``R[i, j]`` is the test accuracy on experience
``j`` after training on experiences ``0..i``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["average_accuracy", "forgetting", "stream_accuracy", "summarize"]


def average_accuracy(matrix: np.ndarray) -> float:
    """The final average accuracy ``(1/T) Σ_j R[T-1, j]`` (Lopez-Paz and Ranzato 2017; Chaudhry et al. 2018).

    Args:
        matrix: ``(T, T)`` accuracy matrix.

    Returns:
        The mean of its last row.
    """
    return float(np.mean(matrix[-1]))


def stream_accuracy(matrix: np.ndarray, test_sizes: Sequence[int]) -> float:
    """The accuracy over the union of the test sets after the last experience (Avalanche's stream accuracy,
    the paper's metric): the last row weighted by the test set sizes."""
    return float(np.average(matrix[-1], weights=np.asarray(test_sizes, dtype=np.float64)))


def forgetting(matrix: np.ndarray) -> np.ndarray:
    """The forgetting of each experience but the last (Chaudhry et al., "Riemannian walk for incremental
    learning", ECCV 2018): ``f_j = max_{l < T-1} R[l, j] − R[T-1, j]`` for ``j < T-1``.

    Args:
        matrix: ``(T, T)`` accuracy matrix, ``T ≥ 2``.

    Returns:
        ``(T-1,)`` forgetting values (the average forgetting is their mean).
    """
    if matrix.shape[0] < 2:
        raise ValueError("forgetting needs at least two experiences")
    last = matrix.shape[0] - 1
    return matrix[:last, :last].max(axis=0) - matrix[last, :last]


def summarize(matrix: np.ndarray, test_sizes: Sequence[int]) -> dict[str, Any]:
    """The JSON-ready metrics of a finished stream: the matrix, average and stream accuracy, forgetting.

    Args:
        matrix: ``(T, T)`` accuracy matrix (fractions).
        test_sizes: test samples per experience.

    Returns:
        ``accuracy_matrix``, ``average_accuracy``, ``stream_accuracy``, ``forgetting`` (per experience) and
        ``average_forgetting``.
    """
    per_experience = forgetting(matrix)
    return {
        "accuracy_matrix": matrix.tolist(),
        "average_accuracy": average_accuracy(matrix),
        "stream_accuracy": stream_accuracy(matrix, test_sizes),
        "forgetting": per_experience.tolist(),
        "average_forgetting": float(per_experience.mean()),
    }
