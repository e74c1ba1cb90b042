"""A continual-learning run: the experiences of a stream trained one after the other with a strategy and
any segloss loss, the accuracy on every experience after each one, a checkpoint after each (a killed run
resumes with ``--resume``), and at the end ``results.json`` and the accuracy heat map. The run folder,
resume and log handling are the runner's (``segloss.runner.engine.run_training``); ``segloss train`` and
``segloss evaluate`` are the command lines."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from ..classification import recipe
from ..classification.loops import predict_logits
from ..runner.checkpoint import load_run, save_checkpoint
from ..runner.config import config_to_dict
from ..runner.distributed import amp_dtype, autocast, resolve_device
from ..runner.engine import TrainingRun, run_training
from ..runner.files import CHECKPOINT_FILE, METRICS_FILE, write_results_json
from ..runner.loop import NonFiniteLossError
from ..runner.optim import TrainingStep
from ..runner.progress import progress_bar
from ..runner.randomness import derive_seed, rng_states, seed_everything, set_rng_states
from .benchmarks import Experience, Stream, build_stream
from .config import TASK, ContinualConfig
from .metrics import summarize
from .plots import plot_accuracy_matrix
from .strategies import Strategy, build_strategy

logger = logging.getLogger(__name__)

__all__ = [
    "ContinualRun",
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
    model: nn.Module,
    strategy: Strategy,
    experience: Experience,
    loss_fn: nn.Module,
    config: ContinualConfig,
    device: torch.device,
    dtype: torch.dtype | None = None,
) -> dict[str, float]:
    """``train.epochs`` epochs on ``experience`` with a fresh ``TrainingStep`` (optimizer, LR schedule,
    scaler, clipping): task loss plus the strategy's penalty, its ``after_step`` after every update. The
    losses are summed on the device and read once an epoch.

    Args:
        model: the classifier (on ``device``).
        strategy: the continual strategy (its hooks are called around every step).
        experience: the experience to learn.
        loss_fn: the task loss (any ``segloss.build_loss`` loss).
        config: the run's config (``optim``, ``train``).
        device: where to train.
        dtype: autocast dtype or ``None``.

    Returns:
        The last epoch's mean task loss and penalty, and the experience's training seconds.

    Raises:
        NonFiniteLossError: the loss became NaN or infinite.
    """
    train = config.train
    strategy.before_experience(model, experience)
    trainable = [p for p in model.parameters() if p.requires_grad]
    steps_per_epoch = -(-len(experience.train) // train.batch_size)
    step = TrainingStep.from_config(trainable, config, steps_per_epoch, fp16=dtype == torch.float16)
    start = time.perf_counter()
    record: dict[str, float] = {}
    for epoch in progress_bar(
        range(train.epochs), progress=train.progress, desc=f"experience {experience.index + 1}", leave=False
    ):
        loader = DataLoader(
            experience.train,
            batch_size=train.batch_size,
            shuffle=True,
            num_workers=train.num_workers,
            generator=torch.Generator().manual_seed(derive_seed(train.seed, experience.index, epoch)),
        )
        model.train()
        sums = torch.zeros(2, dtype=torch.float64, device=device)
        steps = 0
        for images, targets in strategy.training_batches(
            loader, derive_seed(train.seed, experience.index, epoch, 1)
        ):
            images, targets = images.to(device, non_blocking=True), targets.to(device, non_blocking=True)
            with autocast(device, dtype):
                logits = strategy.forward(model, images)
                penalty = strategy.penalty(model, images, logits)
            task_loss = loss_fn(logits, targets.long())
            penalty = torch.zeros((), device=device) if penalty is None else penalty
            step(task_loss + penalty, after_update=lambda: strategy.after_step(model))  # unscaled gradients
            sums += torch.stack([task_loss.detach(), penalty.detach()]).double()
            steps += 1
        task_mean, penalty_mean = (sums / max(steps, 1)).tolist()
        if not np.isfinite([task_mean, penalty_mean]).all():
            raise NonFiniteLossError(
                f"the loss is {task_mean + penalty_mean} in experience {experience.index + 1}, epoch "
                f"{epoch + 1}: try a lower optim.lr (now {config.optim.lr}) or smaller strategy weights"
            )
        record = {"loss": task_mean, "penalty": penalty_mean}
    record["seconds"] = time.perf_counter() - start
    return record


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


class ContinualRun(TrainingRun):
    """A continual run inside the runner's run folder handling (``run_training``: the check for an existing
    run, the resumed config, ``config.yaml``, ``train.log``, ``metrics.jsonl`` and "nothing to do" for a
    finished run). Its loop over experiences replaces ``TrainingRun``'s epoch loop: a checkpoint after
    every experience, whose ``epoch`` counts the finished experiences (``ContinualConfig.run_length``).
    One process (no DDP)."""

    config: ContinualConfig

    def run(self, state: dict[str, Any] | None) -> dict[str, Any]:
        """Train the experiences after the checkpoint ``state`` (all without one), then write the results."""
        if self.world.world_size > 1:
            raise ValueError("continual runs use one process: start segloss train without torchrun")
        config, device, run_dir = self.config, self.device, self.run_dir
        total = config.data.experiences
        done = state["epoch"] if state is not None else 0
        seed_everything(config.train.seed)
        logger.info("%s run %s on %s", "resuming" if state else "starting", run_dir, device)
        stream = stream_from_config(config)
        model = recipe.model_from_config(config, stream).to(device)
        loss_fn = recipe.loss_from_config(config, stream).to(device)
        strategy = build_strategy(config.strategy, stream, config.train.seed)
        matrix = np.full((total, total), np.nan)
        history: list[dict[str, Any]] = []
        if state is not None:
            model.load_state_dict(state["model"])
            strategy.load_state_dict(state["strategy"], model)
            matrix[:done] = np.asarray(state["accuracy_matrix"])
            history = list(state["history"])
            set_rng_states(state["rng"])
            logger.info("resumed %s after experience %d of %d", run_dir, done, total)
        for experience in stream.experiences[done:]:
            record = train_experience(model, strategy, experience, loss_fn, config, device, self.dtype)
            strategy.after_experience(model, experience)
            row = evaluate_stream(
                model,
                stream,
                device,
                batch_size=config.eval.batch_size,
                dtype=self.dtype,
                progress=self.progress,
            )
            matrix[experience.index] = row
            record = {"experience": experience.index + 1, **record, "accuracies": row.tolist()}
            history.append(record)
            logger.info(
                "experience %d/%d (classes %s): loss %.4f, penalty %.4f, %.1f s; accuracy per experience %s",
                experience.index + 1,
                total,
                experience.classes,
                record["loss"],
                record["penalty"],
                record["seconds"],
                " ".join(f"{100 * v:.1f}" for v in row),
            )
            save_checkpoint(
                {
                    "model": model.state_dict(),
                    "strategy": strategy.state_dict(),
                    "epoch": experience.index + 1,  # experiences trained
                    "accuracy_matrix": matrix[: experience.index + 1].tolist(),
                    "history": history,
                    "rng": rng_states(),
                    "config": config_to_dict(config),
                    "device": device.type,
                    "finished": experience.index + 1 == total,  # results.json follows at once
                    "classes": list(stream.classes),
                },
                run_dir / CHECKPOINT_FILE,
            )
            with open(run_dir / METRICS_FILE, "a") as metrics:
                metrics.write(json.dumps(record) + "\n")
        results = run_results(config, stream, matrix)
        write_results(run_dir, results)
        logger.info("final accuracies:\n%s", format_results(results))
        return results


def train(config: ContinualConfig, *, resume: bool = False) -> dict[str, Any] | None:
    """Train (or, with ``resume``, continue) the continual run of ``config`` in ``train.out_dir``.

    Args:
        config: a ``task: continual`` config.
        resume: continue from the run's checkpoint (after its last finished experience).

    Returns:
        The run's results (``results.json``), or ``None`` when a resumed run had already finished.

    Raises:
        RunExistsError: the run folder holds a checkpoint and ``resume`` is false.
    """
    return run_training(ContinualRun, config, resume=resume)


def evaluate_checkpoint(
    checkpoint: str | os.PathLike,
    *,
    out: str | os.PathLike | None = None,
    device: str = "auto",
    progress: bool = True,
) -> dict[str, Any]:
    """The results of the continual run in ``checkpoint``, its last row of the accuracy matrix evaluated
    anew from the checkpoint's model; ``out`` gets them as JSON.

    Args:
        checkpoint: ``checkpoint.pt`` of a continual run (finished or not).
        out: optional JSON path.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        progress: show progress bars.

    Returns:
        The ``results.json`` dict of the run (partial for an unfinished one).
    """
    state, config = load_run(checkpoint, TASK)
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
