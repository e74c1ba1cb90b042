"""A continual-learning run: the experiences of a stream trained one after the other with a strategy and
any segloss loss, the accuracy on every experience after each one, a checkpoint after each (a killed run
resumes with ``--resume``), and at the end ``results.json`` and the accuracy heat map. The run folder,
resume and log handling are the runner's (``segloss.runner.run_folder.RunFolder``), and so is the epoch
loop, which the strategy joins through its hooks; ``segloss train`` and ``segloss evaluate`` are the command
lines."""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from ..classification import recipe as classification_recipe
from ..runner.loop import train_one_epoch
from ..runner.optim import TrainingStep
from ..runner.randomness import derive_seed, seed_everything
from ..runner.run_folder import RunFolder
from .benchmarks import Experience
from .config import ContinualConfig
from .evaluation import evaluate_stream, format_results, run_results, write_results
from .recipe import strategy_from_config, stream_from_config
from .strategies import Strategy

logger = logging.getLogger(__name__)

__all__ = ["train", "train_experience"]


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
    steps_per_epoch = -(-len(experience.train) // train.batch_size)
    step = TrainingStep.from_config(
        model.parameters(), run.config, steps_per_epoch, fp16=run.dtype == torch.float16
    )
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
        record = train_one_epoch(model, loss_fn, step, batches, hooks=strategy, **run.loop_settings(desc))
        steps += record["steps"]
    return {
        "loss": record["loss"],
        "penalty": record["penalty"],
        "images_per_s": record["images_per_s"],
        "seconds": time.perf_counter() - start,
        "steps": steps,
    }


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
        model = classification_recipe.model_from_config(config, stream).to(run.device)
        loss_fn = classification_recipe.loss_from_config(config, stream).to(run.device)
        strategy = strategy_from_config(config, stream)
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
