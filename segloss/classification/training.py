"""A classification training run (docs/recipes.md) on the shared run machinery of
``segloss.runner.engine.TrainingRun`` (run directory, checkpoints, resume, the epoch loop, the shared
training step), and at the end the full evaluation (accuracy, unknown-set AUROC,
AutoAttack, corruptions) in ``results.json`` with confidence histograms. ``segloss train`` and
``segloss evaluate`` are the command lines."""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

from torch.utils.data import DataLoader

from ..runner.checkpoint import check_trained_classes, load_run
from ..runner.distributed import amp_dtype, resolve_device
from ..runner.engine import TrainingRun, run_training
from ..runner.files import write_results_json
from . import recipe
from .config import TASK, ClassificationConfig
from .evaluation import ClassificationReport
from .loops import predict_logits
from .plots import plot_confidence_histograms
from .rejection import SCORES

logger = logging.getLogger(__name__)

__all__ = ["ClassificationRun", "evaluate_checkpoint", "train", "write_results"]

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


class ClassificationRun(TrainingRun):
    """A classification run: test accuracy every ``train.eval_every`` epochs, the full evaluation of
    ``recipe.report_from_config`` after the last one. One process (no DDP)."""

    def setup(self, resuming: bool) -> None:
        if self.world.world_size > 1:
            raise ValueError("classification runs use one process: start train.py without torchrun")
        config = self.config
        self.data = recipe.data_from_config(config)
        recipe.check_evaluation_inputs(config, self.data)
        self.model = recipe.model_from_config(config, self.data).to(self.device)
        self.loss_fn = recipe.loss_from_config(config, self.data).to(self.device)
        self.step = self.training_step(len(recipe.train_loader_from_config(config, self.data)))
        self.report: ClassificationReport | None = None
        self.accuracy = math.nan

    def train_loader(self, epoch: int) -> DataLoader:
        return recipe.train_loader_from_config(self.config, self.data, epoch)

    def evaluate(self, final: bool) -> dict[str, Any]:
        if not final:
            logits, targets = predict_logits(
                self.model,
                self.data.test,
                self.device,
                batch_size=self.config.eval.batch_size,
                dtype=self.dtype,
                desc="test",
                progress=self.progress,
            )
            self.accuracy = (logits.argmax(1) == targets).double().mean().item()
            return {"accuracy": self.accuracy}
        self.report = recipe.report_from_config(
            self.config, self.model, self.data, self.device, dtype=self.dtype
        )
        self.accuracy = self.report.accuracy
        record = {"accuracy": self.accuracy}
        if self.report.unknown is not None:
            record.update({f"unknown_auroc_{score}": v for score, v in self.report.unknown.mean.items()})
        return record

    def describe_evaluation(self) -> str:
        return f", test accuracy {100 * self.accuracy:.2f} %"

    def write_results(self) -> None:
        write_results(self.run_dir, self.report)

    def summary(self) -> str:
        return self.report.format()

    def result(self) -> ClassificationReport:
        return self.report

    def checkpoint_extras(self) -> dict[str, Any]:
        return {"classes": list(self.data.classes), "class_counts": self.data.class_counts.tolist()}


def train(config: ClassificationConfig, *, resume: bool = False) -> ClassificationReport | None:
    """Train (or, with ``resume``, continue) the classification run of ``config`` in ``train.out_dir``.

    Returns the final report, or ``None`` when a resumed run had already finished.
    """
    return run_training(ClassificationRun, config, resume=resume)


def evaluate_checkpoint(
    checkpoint: str | os.PathLike,
    *,
    out: str | os.PathLike | None = None,
    device: str = "auto",
    progress: bool = True,
) -> ClassificationReport:
    """The full evaluation of the classifier in ``checkpoint`` with its run's ``eval`` settings (what the
    run wrote to ``results.json``); ``out`` gets the same JSON."""
    state, config = load_run(checkpoint, TASK)
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
