"""A continual-learning run: the experiences of a stream trained one after the other with a strategy and
any segloss loss, the accuracy on every experience after each one, a checkpoint after each (a killed run
resumes with ``--resume``), and at the end ``results.json`` and the accuracy heat map. The run folder,
resume and log handling are the runner's (``segloss.runner.run_folder.RunFolder``), and so is the epoch
loop, which the strategy joins through its hooks; ``segloss train`` and ``segloss evaluate`` are the command
lines."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from ..classification import recipe
from ..classification.loops import predict_logits
from ..runner.checkpoint import load_run
from ..runner.distributed import amp_dtype, resolve_device
from ..runner.files import write_results_json
from ..runner.randomness import derive_seed, seed_everything
from ..runner.run_folder import RunFolder
from .benchmarks import Experience, Stream, build_stream
from .config import TASK, ContinualConfig
from .metrics import summarize
from .plots import plot_accuracy_matrix
from .strategies import Strategy, build_strategy

logger = logging.getLogger(__name__)

__all__ = [
    "evaluate_checkpoint",
    "evaluate_stream",
    "format_results",
    "train",
    "train_experience",
]

HEATMAP_FILE = "accuracy_matrix.png"


def stream_from_config(config: ContinualConfig) -> Stream:
    """The stream of ``config.data`` in the order drawn from ``train.seed``."""
    data = config.data
    return build_stream(
        data.name,
        data.root,
        scenario=data.scenario,
        experiences=data.experiences,
        seed=config.train.seed,
        download=data.download,
        augment=data.augment,
    )


def train_experience(
    run: RunFolder,
    model: nn.Module,
    strategy: Strategy,
    experience: Experience,
    loss_fn: nn.Module,
) -> dict[str, float]:
    """``train.epochs`` epochs on ``experience`` with a fresh ``TrainingStep`` (optimizer, LR schedule,
    scaler, clipping) through the shared epoch loop, the strategy joining every update (its forward, its
    penalty added to the task loss, its ``after_step``).

    Returns:
        The last epoch's mean task loss, penalty and images/s, and the experience's training seconds and
        updates.

    Raises:
        NonFiniteLossError: the loss became NaN or infinite.
    """
    train = run.config.train
    strategy.before_experience(model, experience)
    step = run.training_step(model, steps_per_epoch=-(-len(experience.train) // train.batch_size))
    start, steps = time.perf_counter(), 0
    record: dict[str, float] = {}
    for epoch in range(train.epochs):
        loader = DataLoader(
            experience.train,
            batch_size=train.batch_size,
            shuffle=True,
            num_workers=train.num_workers,
            generator=torch.Generator().manual_seed(derive_seed(train.seed, experience.index, epoch)),
        )
        batches = strategy.training_batches(loader, derive_seed(train.seed, experience.index, epoch, 1))
        desc = f"experience {experience.index + 1}, epoch {epoch + 1}"
        record = run.train_epoch(model, loss_fn, step, batches, desc=desc, hooks=strategy)
        steps += record["steps"]
    return {
        "loss": record["loss"],
        "penalty": record["penalty"],
        "images_per_s": record["images_per_s"],
        "seconds": time.perf_counter() - start,
        "steps": steps,
    }


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


def train(config: ContinualConfig, *, resume: bool = False) -> dict[str, Any] | None:
    """Train (or, with ``resume``, continue) the continual run of ``config`` in ``train.out_dir``: the
    experiences one after the other, the accuracy on every experience after each, a checkpoint after each
    (its ``epoch`` counts experiences). One process (no DDP).

    Args:
        config: a ``task: continual`` config.
        resume: continue from the run's checkpoint (after its last finished experience).

    Returns:
        The run's results (``results.json``), or ``None`` when a resumed run had already finished.

    Raises:
        RunExistsError: the run folder holds a checkpoint and ``resume`` is false.
    """
    with RunFolder(config, resume=resume, unit="experience", one_process="continual") as run:
        if run.finished:
            return None
        config = run.config
        seed_everything(config.train.seed)
        stream = stream_from_config(config)
        model = recipe.model_from_config(config, stream).to(run.device)
        loss_fn = recipe.loss_from_config(config, stream).to(run.device)
        strategy = build_strategy(config.strategy, stream, config.train.seed)
        matrix = np.full((len(stream.experiences),) * 2, np.nan)
        run.restore(model=model)
        if run.state is not None:
            strategy.load_state_dict(run.state["strategy"], model)
            matrix[: run.start_epoch] = np.asarray(run.state["accuracy_matrix"])

        def checkpoint(trained: int) -> dict[str, Any]:
            return {
                "model": model.state_dict(),
                "strategy": strategy.state_dict(),
                "accuracy_matrix": matrix[:trained].tolist(),  # the rows of the experiences trained so far
                "classes": list(stream.classes),
            }

        for index in run.epochs():
            experience = stream.experiences[index]
            record = train_experience(run, model, strategy, experience, loss_fn)
            strategy.after_experience(model, experience)
            matrix[index] = evaluate_stream(
                model,
                stream,
                run.device,
                batch_size=config.eval.batch_size,
                dtype=run.dtype,
                progress=run.progress,
            )
            accuracies = " ".join(f"{100 * v:.1f}" for v in matrix[index])
            note = f", penalty {record['penalty']:.4f} (classes {experience.classes}); accuracy {accuracies}"
            run.end_epoch(
                {"experience": index + 1, **record, "accuracies": matrix[index].tolist()},
                checkpoint(index + 1),
                note=note,
            )

        results = run_results(config, stream, matrix)
        if run.is_main:
            write_results(run.dir, results)
        run.finish(checkpoint(len(run.history)), format_results(results), {})
        return results


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
    model = recipe.model_from_config(config, stream)
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
