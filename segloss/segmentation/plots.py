"""Pictures of a run: per-class IoU bars, prediction overlays, training curves.

Figures are drawn with matplotlib's object API (no pyplot), so the global backend is left alone.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ..runner.grouping import LOSS_KEY, key_labels, value_text
from .iou import SegmentationScores

if TYPE_CHECKING:
    from ..runner.report import Summary

IGNORE_COLOUR = (0, 0, 0)


def colorize(mask: np.ndarray, palette: np.ndarray, ignore_index: int = 255) -> np.ndarray:
    """``H×W`` train ids as an ``H×W×3`` uint8 image in ``palette`` colours (ignored pixels black)."""
    lookup = np.zeros((256, 3), dtype=np.uint8)
    lookup[: len(palette)] = palette
    lookup[ignore_index] = IGNORE_COLOUR
    return lookup[mask.astype(np.uint8)]


def plot_class_iou(scores: SegmentationScores, path: str | os.PathLike, title: str = "") -> None:
    """Horizontal bars of per-class IoU (%) with the mIoU as a dashed line."""
    iou = 100 * np.nan_to_num(scores.iou, nan=0.0)
    fig = Figure(figsize=(7, 0.35 * len(scores.classes) + 1.5))
    ax = fig.subplots()
    positions = np.arange(len(scores.classes))
    ax.barh(positions, iou, color="tab:blue")
    for position, value, missing in zip(positions, iou, np.isnan(scores.iou), strict=True):
        ax.text(value + 0.5, position, "n/a" if missing else f"{value:.1f}", va="center", fontsize=8)
    if not math.isnan(scores.miou):
        ax.axvline(100 * scores.miou, color="tab:red", linestyle="--", label=f"mIoU {100 * scores.miou:.1f}")
        ax.legend(loc="lower right")
    ax.set_yticks(positions, scores.classes)
    ax.invert_yaxis()
    ax.set_xlim(0, 105)
    ax.set_xlabel("IoU (%)")
    ax.set_title(title or "per-class IoU")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def plot_overlays(
    samples: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    palette: np.ndarray,
    classes: Sequence[str],
    path: str | os.PathLike,
    ignore_index: int = 255,
) -> None:
    """One row per ``(image, ground truth, prediction)``: the RGB image, and both masks in ``palette``
    colours blended over it (ignored pixels black), with a legend of the classes."""
    rows = len(samples)
    fig = Figure(figsize=(10, 3.2 * rows + 0.6))
    axes = fig.subplots(rows, 3, squeeze=False)
    for row, (image, truth, prediction) in enumerate(samples):
        panels = (
            image,
            blend(image, colorize(truth, palette, ignore_index)),
            blend(image, colorize(prediction, palette, ignore_index)),
        )
        for ax, panel, title in zip(axes[row], panels, ("image", "ground truth", "prediction"), strict=True):
            ax.imshow(panel)
            ax.set_axis_off()
            ax.set_title(title, fontsize=9)
    handles = [Patch(color=colour / 255, label=name) for name, colour in zip(classes, palette, strict=True)]
    fig.legend(handles=handles, loc="lower center", ncols=min(len(classes), 7), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.6 / (3.2 * rows + 0.6) + 0.02 * (len(classes) > 7), 1, 1))
    fig.savefig(path, dpi=100)


def blend(image: np.ndarray, colours: np.ndarray, alpha: float = 0.6) -> np.ndarray:
    """``colours`` (``H×W×3`` uint8) laid over ``image`` with opacity ``alpha``."""
    return (alpha * colours + (1 - alpha) * image).astype(np.uint8)


def overlay_grid(
    samples: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], palette: np.ndarray, ignore_index: int = 255
) -> np.ndarray:
    """One ``H×W×3`` uint8 picture: a row per ``(image, ground truth, prediction)`` with the image and both
    masks blended over it (rows padded with black to the widest)."""
    rows = [
        np.concatenate(
            [
                image,
                blend(image, colorize(truth, palette, ignore_index)),
                blend(image, colorize(pred, palette)),
            ],
            axis=1,
        )
        for image, truth, pred in samples
    ]
    width = max(row.shape[1] for row in rows)
    return np.concatenate([np.pad(row, ((0, 0), (0, width - row.shape[1]), (0, 0))) for row in rows], axis=0)


def plot_curves(history: Sequence[dict[str, Any]], path: str | os.PathLike) -> None:
    """Training loss per epoch and, where evaluated, mIoU (%) per epoch."""
    epochs = [record["epoch"] for record in history]
    evaluated = [record for record in history if record.get("miou") is not None]
    fig = Figure(figsize=(10, 3.5))
    loss_ax, miou_ax = fig.subplots(1, 2, sharex=True)
    loss_ax.plot(epochs, [record["loss"] for record in history], marker="o", markersize=3)
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("training loss")
    miou_ax.plot(
        [record["epoch"] for record in evaluated], [100 * record["miou"] for record in evaluated], marker="o"
    )
    miou_ax.set_xlabel("epoch")
    miou_ax.set_ylabel("mIoU (%)")
    for ax in (loss_ax, miou_ax):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def plot_report(
    summary: Summary, path: str | os.PathLike, metric: str = "miou", label: str = "mIoU (%)"
) -> None:
    """``metric`` per group of a report, one row each (top to bottom in table order): every run as a point,
    mean ± sd as an error bar; baseline groups in grey, with a dashed line at their mean."""
    labels = key_labels(summary.varying)
    names = [
        " · ".join(
            value_text(v) if k == LOSS_KEY else f"{labels[k]}={value_text(v)}"
            for k, v in group.key
            if v is not None
        )
        or "all"
        for group in summary.groups
    ]
    # wide enough for the longest group name at 8 pt (about 0.07 inch a character) beside the axes
    width = max(8.0, 4.0 + 0.07 * max(map(len, names)))
    fig = Figure(figsize=(width, 1.2 + 0.42 * len(summary.groups)))
    ax = fig.subplots()
    rows = [
        ([run.values[metric] for run in group.runs if not math.isnan(run.values.get(metric, math.nan))],
         LOSS_KEY in summary.varying and group.value(LOSS_KEY) == summary.baseline)
        for group in summary.groups
    ]  # fmt: skip
    _draw_rows(ax, rows)
    ax.set_yticks(range(len(summary.groups)), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(label)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def plot_by_dataset(
    baseline: str,
    path: str | os.PathLike,
    row_keys: Sequence[str],
    cells: Mapping[tuple, Mapping[str, Any]],
    rare_iou: Callable[[Any], float],
) -> None:
    """The datasets of a report side by side: a column per dataset, mIoU (%) above and ``rare_iou`` (a run's
    mean IoU of its dataset's rare classes, %) below, a row per entry of ``cells`` (the values of
    ``row_keys`` -> {dataset: report group}, in row order): every run a point, mean ± sd an error bar, the
    ``baseline`` loss in grey with a dashed line at its mean."""
    datasets = sorted({dataset for groups in cells.values() for dataset in groups})
    labels = key_labels(row_keys)
    names = [
        " · ".join(value_text(v) if k == LOSS_KEY else f"{labels[k]}={value_text(v)}"
                   for k, v in zip(row_keys, values, strict=True) if v is not None) or "all"
        for values in cells
    ]  # fmt: skip
    fig = Figure(figsize=(4.0 + 3.2 * len(datasets), 2.0 + 0.8 * len(cells)))
    axes = fig.subplots(2, len(datasets), sharey=True, squeeze=False)
    for column, dataset in enumerate(datasets):
        for row, (read, label) in enumerate(
            [(lambda run: run.values["miou"], "mIoU (%)"), (rare_iou, "rare classes' IoU (%)")]
        ):
            rows = []
            for groups in cells.values():
                group = groups.get(dataset)
                found = [] if group is None else [read(run) for run in group.runs]
                is_baseline = group is not None and dict(group.key).get(LOSS_KEY) == baseline
                rows.append(([value for value in found if not math.isnan(value)], is_baseline))
            ax = axes[row][column]
            _draw_rows(ax, rows)
            ax.set_xlabel(label)
            if row == 0:
                ax.set_title(dataset, fontsize=10)
    axes[0][0].set_yticks(range(len(cells)), names)
    axes[0][0].invert_yaxis()
    for ax in axes[:, 0]:
        ax.tick_params(axis="y", labelsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def _draw_rows(ax: Any, rows: Sequence[tuple[Sequence[float], bool]]) -> None:
    """One row per entry of ``rows`` (its values and whether it is the baseline): the values as points,
    mean ± sd as an error bar; baselines in grey, with a dashed line at their mean."""
    rng = np.random.default_rng(0)  # jitter only
    for row, (values, is_baseline) in enumerate(rows):
        if not len(values):
            continue
        color = "0.45" if is_baseline else "C0"
        ax.scatter(values, row + 0.15 + rng.uniform(-0.06, 0.06, len(values)), s=14, color=color, alpha=0.6)
        std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
        ax.errorbar(
            float(np.mean(values)), row - 0.1, xerr=std, fmt="|", markersize=12, capsize=4, color=color
        )
        if is_baseline:
            ax.axvline(float(np.mean(values)), color=color, linestyle="--", linewidth=0.8)
    ax.grid(axis="x", alpha=0.3)
