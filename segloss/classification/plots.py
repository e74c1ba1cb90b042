"""Confidence histograms of known against unknown samples, one panel per loss."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from ..metrics import auroc

__all__ = ["plot_confidence_histograms"]


def plot_confidence_histograms(
    scores: Mapping[str, tuple[torch.Tensor, torch.Tensor]],
    path: str | os.PathLike,
    *,
    score_name: str = "MSP",
    unknown_label: str = "unknown",
    bins: int = 40,
) -> Path:
    """Write a PNG with one panel per entry of ``scores`` (e.g. per loss): histograms of the known and
    unknown samples' confidence ``(known_scores, unknown_scores)``, with the AUROC in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not scores:
        raise ValueError("plot_confidence_histograms needs at least one (known, unknown) pair")
    columns = min(len(scores), 4)
    rows = -(-len(scores) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 2.8 * rows), squeeze=False)
    for ax, (title, (known, unknown)) in zip(axes.flat, scores.items(), strict=False):
        known = torch.as_tensor(known).double().numpy()
        unknown = torch.as_tensor(unknown).double().numpy()
        edges = np.histogram_bin_edges(np.concatenate([known, unknown]), bins=bins)
        ax.hist(known, bins=edges, density=True, alpha=0.6, color="tab:blue", label="known (test)")
        ax.hist(unknown, bins=edges, density=True, alpha=0.6, color="tab:red", label=unknown_label)
        ax.set_title(f"{title}: AUROC {100 * auroc(torch.from_numpy(known), torch.from_numpy(unknown)):.1f}%")
        ax.set_xlabel(score_name)
        ax.set_yticks([])
    for ax in axes.flat[len(scores) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize="small")
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
