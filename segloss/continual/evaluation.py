"""Evaluating a continual run: the accuracy on every experience of the stream (a row of the accuracy
matrix), the run's results (``results.json``) and their text, and ``segloss evaluate`` of a checkpoint."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..classification import recipe as classification_recipe
from ..classification.loops import predict_logits
from ..runner.checkpoint import load_run
from ..runner.distributed import amp_dtype, resolve_device
from ..runner.files import write_results_json
from .benchmarks import Stream
from .config import ContinualConfig
from .constants import TASK
from .metrics import summarize
from .plots import plot_accuracy_matrix
from .recipe import stream_from_config

HEATMAP_FILE = "accuracy_matrix.png"


def evaluate_stream(
    model: nn.Module,
    stream: Stream,
    device: torch.device,
    *,
    batch_size: int = 256,
    dtype: torch.dtype | None = None,
    progress: bool = True,
) -> np.ndarray:
    """Test accuracy (fraction) on every experience of ``stream``: one row of the accuracy matrix."""
    row = []
    for experience in stream.experiences:
        logits, targets = predict_logits(
            model,
            experience.test,
            device,
            batch_size=batch_size,
            dtype=dtype,
            desc=f"test {experience.index + 1}",
            progress=progress,
        )
        row.append((logits.argmax(1) == targets).double().mean().item())
    return np.asarray(row)


def run_results(config: ContinualConfig, stream: Stream, matrix: np.ndarray) -> dict[str, Any]:
    """The JSON of a run: what was trained, the stream's classes and test sizes, and the metrics
    (``summarize``) once every experience is trained (before that: the finished rows of the matrix)."""
    test_sizes = [len(experience.test) for experience in stream.experiences]
    trained = int(np.isfinite(matrix).all(axis=1).sum())
    results: dict[str, Any] = {
        "task": TASK,
        "dataset": stream.name,
        "scenario": stream.scenario,
        "model": config.model.arch,
        "strategy": config.strategy.name,
        "loss": config.loss.name,
        "seed": config.train.seed,
        "experiences_trained": trained,
        "experience_classes": [experience.classes for experience in stream.experiences],
        "test_sizes": test_sizes,
    }
    if trained == len(stream.experiences):
        results.update(summarize(matrix, test_sizes))
    else:
        results["accuracy_matrix"] = matrix[:trained].tolist()
    return results


def format_results(results: dict[str, Any]) -> str:
    """The accuracy matrix (%) and, for a finished run, average accuracy, stream accuracy and forgetting."""
    rows = results["accuracy_matrix"]
    size = len(results["test_sizes"])
    lines = ["after \\ test " + " ".join(f"{j + 1:>6}" for j in range(size))]
    lines += [f"{i + 1:>12} " + " ".join(f"{100 * v:6.1f}" for v in row) for i, row in enumerate(rows)]
    if "average_accuracy" in results:
        lines.append(
            f"average accuracy {100 * results['average_accuracy']:.2f} %, stream accuracy "
            f"{100 * results['stream_accuracy']:.2f} %, average forgetting "
            f"{100 * results['average_forgetting']:.2f} points"
        )
    return "\n".join(lines)


def write_results(run_dir: Path, results: dict[str, Any]) -> None:
    """The heat map ``accuracy_matrix.png``, then ``results.json`` (whose presence marks a finished run)."""
    title = f"{results['dataset']} {results['scenario']}, {results['strategy']}, {results['loss']}"
    plot_accuracy_matrix(np.asarray(results["accuracy_matrix"]), run_dir / HEATMAP_FILE, title=title)
    write_results_json(run_dir, results)


def evaluate_checkpoint(
    checkpoint: str | os.PathLike,
    *,
    out: str | os.PathLike | None = None,
    device: str = "auto",
    progress: bool = True,
    overrides: Sequence[str] = (),
) -> dict[str, Any]:
    """The results of the continual run in ``checkpoint``, its last row of the accuracy matrix evaluated
    anew from the checkpoint's model; ``out`` gets them as JSON.

    Args:
        checkpoint: ``checkpoint.pt`` of a continual run (finished or not).
        out: optional JSON path.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        progress: show progress bars.
        overrides: ``key=value`` changes of ``data.root`` and ``eval.*`` (e.g. ``data.root=DIR``).

    Returns:
        The ``results.json`` dict of the run (partial for an unfinished one).
    """
    state, config = load_run(checkpoint, TASK, overrides=overrides)
    stream = stream_from_config(config)
    torch_device = resolve_device(device)
    model = classification_recipe.model_from_config(config, stream)
    model.load_state_dict(state["model"])
    model.to(torch_device)
    done = state["epoch"]
    matrix = np.full((config.data.experiences, config.data.experiences), np.nan)
    matrix[:done] = np.asarray(state["accuracy_matrix"])
    matrix[done - 1] = evaluate_stream(
        model,
        stream,
        torch_device,
        batch_size=config.eval.batch_size,
        dtype=amp_dtype(config.train.amp, torch_device),
        progress=progress,
    )
    results = run_results(config, stream, matrix)
    if out is not None:
        Path(out).write_text(json.dumps(results, indent=2))
    return results
