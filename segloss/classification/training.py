"""A classification training run (docs/image-level.md): its loop over epochs in a
``segloss.runner.run_folder.RunFolder`` (run directory, checkpoints, resume) with the shared training step,
and at the end the full evaluation (accuracy, unknown-set AUROC, AutoAttack, corruptions) in
``results.json`` with confidence histograms. ``segloss train`` and ``segloss evaluate`` are the command
lines."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..runner.checkpoint import check_trained_classes, load_run
from ..runner.config import parse_override
from ..runner.distributed import amp_dtype, resolve_device, wrap_model
from ..runner.files import write_results_json
from ..runner.loop import train_one_epoch
from ..runner.optim import TrainingStep
from ..runner.randomness import seed_everything
from ..runner.run_folder import RunFolder
from . import recipe
from .config import ClassificationConfig
from .constants import TASK
from .data import ImageData
from .evaluation import ClassificationReport
from .loops import predict_logits
from .plots import plot_confidence_histograms
from .rejection import SCORES

logger = logging.getLogger(__name__)

__all__ = ["evaluate_checkpoint", "train", "write_results"]

CONFIDENCE_PLOT = "confidence_{score}.png"


def write_results(run_dir: Path, report: ClassificationReport) -> None:
    """``results.json`` (``report.to_dict()``) and, when there were unknown sets, a histogram PNG per score
    (``confidence_msp.png``, ``confidence_mls.png``): known test images against each unknown set."""
    write_results_json(run_dir, report.to_dict())
    if report.test_logits is None or not report.unknown_logits:
        return
    for name, score in SCORES.items():
        known = score(report.test_logits)
        panels = {
            unknown_set: (known, score(logits)) for unknown_set, logits in report.unknown_logits.items()
        }
        plot_confidence_histograms(
            panels, run_dir / CONFIDENCE_PLOT.format(score=name), score_name=name.upper()
        )


def train(config: ClassificationConfig, *, resume: bool = False) -> ClassificationReport | None:
    """Train (or, with ``resume``, continue) the classification run of ``config`` in ``train.out_dir``: test
    accuracy every ``train.eval_every`` epochs, the full evaluation of ``recipe.report_from_config``
    (accuracy, unknown-set AUROC, AutoAttack, corruptions) after the last one. One process (no DDP).

    Returns the final report, or ``None`` when a resumed run had already finished.
    """
    with RunFolder(config, resume=resume, one_process="classification") as run:
        if run.finished:
            return None
        config = run.config
        seed_everything(config.train.seed)
        data = recipe.data_from_config(config)
        recipe.check_evaluation_inputs(config, data)  # fail now rather than after training
        model = recipe.model_from_config(config, data).to(run.device)
        loss_fn = recipe.loss_from_config(config, data).to(run.device)
        steps_per_epoch = len(recipe.train_loader_from_config(config, data))
        step = TrainingStep.from_config(
            model.parameters(), config, steps_per_epoch, fp16=run.dtype == torch.float16
        )
        run.restore(model=model, step=step)
        network = wrap_model(
            model, run.world, run.device, channels_last=run.channels_last, compile=config.train.compile
        )

        def checkpoint() -> dict[str, Any]:
            extras = {"classes": list(data.classes), "class_counts": data.class_counts.tolist()}
            return {"model": model.state_dict(), "step": step.state_dict(), **extras}

        for epoch in run.epochs():
            loader = recipe.train_loader_from_config(config, data, epoch)
            record = {
                "epoch": epoch + 1,
                **train_one_epoch(network, loss_fn, step, loader, **run.loop_settings()),
            }
            accuracy = test_accuracy(model, data, run) if run.evaluate_now(epoch) else None
            evaluation = None if accuracy is None else {"accuracy": accuracy}
            run.end_epoch(record, checkpoint(), evaluation, describe(accuracy))

        report = recipe.report_from_config(config, model, data, run.device, dtype=run.dtype)
        evaluation = {"accuracy": report.accuracy}
        if report.unknown is not None:
            evaluation.update({f"unknown_auroc_{score}": v for score, v in report.unknown.mean.items()})
        if run.is_main:
            write_results(run.dir, report)
        run.finish(checkpoint(), report.format(), evaluation, describe(report.accuracy))
        return report


def test_accuracy(model: nn.Module, data: ImageData, run: RunFolder) -> float:
    """``model``'s accuracy on the test split (between epochs)."""
    logits, targets = predict_logits(
        model,
        data.test,
        run.device,
        batch_size=run.config.eval.batch_size,
        dtype=run.dtype,
        desc="test",
        progress=run.progress,
    )
    return (logits.argmax(1) == targets).double().mean().item()


def describe(accuracy: float | None) -> str:
    """An evaluation in a few words for the epoch's log line."""
    return "" if accuracy is None else f", test accuracy {100 * accuracy:.2f} %"


def evaluate_checkpoint(
    checkpoint: str | os.PathLike,
    *,
    out: str | os.PathLike | None = None,
    device: str = "auto",
    progress: bool = True,
    overrides: Sequence[str] = (),
) -> ClassificationReport:
    """The full evaluation of the classifier in ``checkpoint`` with its run's ``eval`` settings (what the
    run wrote to ``results.json``) changed by ``overrides`` (``data.root``/``eval.*`` ``key=value``, e.g.
    ``eval.attack_samples=5000``); ``out`` gets the same JSON. Unknown sets the run read from its
    ``data.root`` (the default ``eval.unknown_root``) are read from a new ``data.root`` too."""
    state, config = load_run(checkpoint, TASK, overrides=overrides)
    saved = state["config"]
    overridden = {parse_override(text)[0] for text in overrides}
    read_from_data_root = saved["eval"].get("unknown_root") == saved["data"].get("root")
    if read_from_data_root and "eval.unknown_root" not in overridden:
        config.eval.unknown_root = config.data.root
    config.train.progress = progress
    data = recipe.data_from_config(config)
    check_trained_classes(checkpoint, state, data.classes, data.name)
    torch_device = resolve_device(device)
    model = recipe.model_from_config(config, data)
    model.load_state_dict(state["model"])
    model.to(torch_device)
    logger.info("evaluating %s (epoch %d) on %s", checkpoint, state["epoch"], data.name)
    report = recipe.report_from_config(
        config, model, data, torch_device, dtype=amp_dtype(config.train.amp, torch_device)
    )
    if out is not None:
        Path(out).write_text(json.dumps(report.to_dict(), indent=2))
    return report
