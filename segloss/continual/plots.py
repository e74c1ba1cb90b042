"""The accuracy matrix of a continual run as a heat map."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["plot_accuracy_matrix"]


def plot_accuracy_matrix(matrix: np.ndarray, path: str | os.PathLike, *, title: str = "") -> Path:
    """Write a PNG heat map of ``matrix`` (rows: after training experience i; columns: test experience j),
    each cell annotated with its accuracy in %.

    Args:
        matrix: ``(T, T)`` accuracies in [0, 1].
        path: the PNG to write.
        title: figure title.

    Returns:
        ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = matrix.shape[0]
    figure, ax = plt.subplots(figsize=(1.0 + 0.8 * size, 0.8 + 0.8 * size))
    image = ax.imshow(100 * matrix, vmin=0, vmax=100, cmap="viridis")
    for (row, column), value in np.ndenumerate(100 * matrix):
        ax.text(
            column, row, f"{value:.0f}", ha="center", va="center", color="white" if value < 60 else "black"
        )
    labels = [str(i + 1) for i in range(size)]
    ax.set_xticks(range(size), labels)
    ax.set_yticks(range(size), labels)
    ax.set_xlabel("tested on experience")
    ax.set_ylabel("after training experience")
    ax.set_title(title, fontsize="small")
    figure.colorbar(image, ax=ax, label="accuracy (%)")
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
