"""A segmentation training run (``segloss train``), the whole of it in ``train``: data, loss, model, the
optimizer step and the wrapped model, the loop over epochs in its ``segloss.runner.run_folder.RunFolder``
(which keeps the folder, checkpoints, logs and resume), and the final evaluation with its files. Classes
named in ``data.holdout_classes`` are held out (see :mod:`segloss.segmentation.unknown_pixels`).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from torch import nn

from ..runner.distributed import wrap_model
from ..runner.files import write_results_json
from ..runner.loop import train_one_epoch
from ..runner.optim import TrainingStep
from ..runner.randomness import seed_everything
from ..runner.run_folder import RunFolder
from . import plots
from .config import SegmentationConfig
from .data import SegmentationDataset
from .evaluation import predict, score_model, with_train_pixels
from .export import MODEL_DIR, dataset_info, save_model_dir
from .iou import SegmentationResults
from .models import model_from_config
from .recipe import RunData, data_from_config, describe_loss, epoch_loader, loss_from_config
from .unknown_pixels import prediction_model

logger = logging.getLogger(__name__)

CLASS_IOU_PLOT = "class_iou.png"
OVERLAYS_PLOT = "predictions.png"
CURVES_PLOT = "curves.png"


def train(config: SegmentationConfig, *, resume: bool = False) -> SegmentationResults | None:
    """Train (or, with ``resume``, continue) the segmentation run of ``config`` in ``config.train.out_dir``
    (docs/training.md): an smp model, the loss of ``config.loss``, per-class IoU on ``eval.split`` every
    ``train.eval_every`` epochs and in full at the end (with pixel-level rejection of held-out classes).

    Returns the final results on ``config.eval.split``, or ``None`` when a resumed run had already finished.
    Under ``torchrun`` every rank calls this; rank 0 writes the run directory.
    """
    with RunFolder(config, resume=resume) as run:
        if run.finished:
            return None
        config, device = run.config, run.device
        seed_everything(config.train.seed)
        data = data_from_config(config, run.world, device, progress=run.progress)
        loss_fn, counts = loss_from_config(
            config, data.train_set, sync=run.world.world_size > 1, stats=data.stats
        )
        loss_fn = loss_fn.to(device)
        logger.info(describe_loss(config, loss_fn, data.classes, counts))
        model = model_from_config(config, len(data.classes), pretrained=run.state is None).to(device)
        steps_per_epoch = len(data.train_set) // config.train.batch_size
        step = TrainingStep.from_config(
            model.parameters(), config, steps_per_epoch, fp16=run.dtype == torch.float16
        )
        run.restore(model=model, step=step)
        network = wrap_model(
            model, run.world, device, channels_last=run.channels_last, compile=config.train.compile
        )

        def checkpoint() -> dict[str, Any]:
            return {
                "model": model.state_dict(),
                "step": step.state_dict(),
                "classes": list(data.classes),
                "class_counts": None if counts is None else counts.tolist(),
                "train_pixels": data.stats.counts.tolist(),
            }

        def evaluate(final: bool = False) -> SegmentationResults:
            unknown = data.held_out if final else ()  # pixel-level rejection of held-out classes at the end
            return score_model(
                model, data.eval_loader, data.classes, device, run.dtype, run.world, run.progress,
                held_out=data.held_out, unknown=unknown,
            )  # fmt: skip

        for epoch in run.epochs():
            loader = epoch_loader(data.train_set, config, epoch, run.world, pin=device.type == "cuda")
            record = train_one_epoch(network, loss_fn, step, loader, **run.loop_settings())
            results = evaluate() if run.evaluate_now(epoch) else None
            run.end_epoch({"epoch": epoch + 1, **record}, checkpoint(), *scores(results, config.eval.split))
            after_evaluation(run, results, model, data)

        results = evaluate(final=True)
        if run.is_main:
            write_results(run, model, data, results)
        summary = results.format_table(f"{config.data.name} {config.eval.split}")
        run.finish(checkpoint(), summary, *scores(results, config.eval.split))
        after_evaluation(run, results, model, data)
        return results


def scores(results: SegmentationResults | None, split: str) -> tuple[dict[str, Any] | None, str]:
    """An evaluation's numbers for the epoch's record (mIoU, pixel accuracy, unknown-pixel AUROC) and a few
    words for its log line; ``(None, "")`` without one."""
    if results is None:
        return None, ""
    record = {"miou": _json_number(results.miou), "pixel_accuracy": _json_number(results.pixel_accuracy)}
    if results.pixel_rejection is not None:
        record.update({f"unknown_auroc_{s}": v for s, v in results.pixel_rejection.auroc.items()})
    return record, f", mIoU {100 * results.miou:.2f} % on {split}"


def write_results(run: RunFolder, model: nn.Module, data: RunData, results: SegmentationResults) -> None:
    """The final evaluation's files in the run folder: ``results.json`` (docs/outputs.md, with
    ``pixel_rejection`` when measured and ``train_pixels``, the labelled training pixels per class), the
    per-class IoU chart, ``eval.num_overlays`` prediction overlays (evenly spaced over the evaluation split),
    and ``RUN/model``, the model for use without segloss (``smp.from_pretrained``,
    docs/deployment-and-gpus.md)."""
    config = run.config
    write_results_json(run.dir, with_train_pixels(results.to_json(), data.classes, data.stats.counts))
    title = f"{config.data.name} {config.eval.split}: {config.model.encoder}, {config.loss.name}"
    plots.plot_class_iou(results, run.dir / CLASS_IOU_PLOT, title)
    indices = overlay_indices(config.eval.num_overlays, data.eval_set)
    if indices:
        predictor = prediction_model(model, data.held_out)
        overlays = predict_samples(predictor, data.eval_set, indices, run.device, run.dtype)
        plots.plot_overlays(overlays, data.eval_set.palette, data.classes, run.dir / OVERLAYS_PLOT)
    split = f"{config.data.name} {config.eval.split}"
    save_model_dir(
        model,
        run.dir / MODEL_DIR,
        dataset_info(data.eval_set, data.held_out),
        metrics=f"Per-class IoU on {split}, after the last epoch:\n\n```\n{results.format_table(split)}\n```",
        dataset=f"{config.data.name} (trained on {config.data.train_split})",
    )


def after_evaluation(
    run: RunFolder, results: SegmentationResults | None, model: nn.Module, data: RunData
) -> None:
    """Rank 0 after an epoch: the training curves, and the evaluation's per-class IoU (``iou/CLASS``) and
    ``eval.num_overlays`` prediction overlays (image | ground truth | prediction) in TensorBoard."""
    if not run.is_main:
        return
    plots.plot_curves(run.history, run.dir / CURVES_PLOT)
    writer, epoch = run.tensorboard, len(run.history)
    if results is None or writer is None:
        return
    writer.scalars(dict(zip(data.classes, results.iou.tolist(), strict=True)), epoch, "iou")
    indices = overlay_indices(run.config.eval.num_overlays, data.eval_set)
    if indices:
        samples = predict_samples(
            prediction_model(model, data.held_out), data.eval_set, indices, run.device, run.dtype
        )
        writer.image("predictions", plots.overlay_grid(samples, data.eval_set.palette), epoch)
    writer.flush()


def predict_samples(
    model: nn.Module,
    dataset: SegmentationDataset,
    indices: list[int],
    device: torch.device,
    dtype: torch.dtype | None = None,
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``(image, ground truth, prediction)`` as numpy arrays for the samples ``indices``."""
    model.eval()
    samples = []
    with torch.inference_mode():
        for index in indices:
            image, mask = dataset.load_sample(index)
            normalised, _ = dataset[index]
            logits = predict(model, normalised[None].to(device), dtype)
            samples.append((image, mask, logits.argmax(dim=1)[0].cpu().numpy().astype(np.uint8)))
    return samples


def overlay_indices(count: int, dataset: SegmentationDataset) -> list[int]:
    """``count`` sample indices evenly spaced over ``dataset``."""
    count = min(count, len(dataset))
    return np.linspace(0, len(dataset) - 1, count).round().astype(int).tolist() if count else []


def _json_number(value: float) -> float | None:
    return None if np.isnan(value) else float(value)
