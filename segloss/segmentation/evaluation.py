"""Evaluation of a segmentation model: full-resolution prediction, the confusion matrix over a split, the
scores with the pixel-level unknown rejection of held-out classes, and the evaluation of a checkpoint
(``segloss evaluate``): the results JSON (docs/outputs.md) and prediction files (colour, train ids or
Cityscapes label ids named after the input images)."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Subset

from ..runner.checkpoint import check_trained_classes, load_run
from ..runner.distributed import Distributed, amp_dtype, autocast, distributed_initialized, resolve_device
from ..runner.progress import progress_bar
from ..runner.schema import check_class_names
from .constants import PREDICTION_FORMATS, TASK
from .data import SegmentationDataset, presets
from .data.registry import dataset_from_config
from .iou import SegmentationResults, confusion_matrix
from .models import model_from_config
from .plots import colorize
from .unknown_pixels import UnknownPixelScores, class_indices, prediction_model

logger = logging.getLogger(__name__)

# FPN and most smp decoders need sides divisible by the encoder's output stride.
SIZE_DIVISOR = 32


def predict(model: nn.Module, image: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Logits (float32) of a full-resolution batch: the image is zero-padded at the bottom/right to a
    multiple of ``SIZE_DIVISOR`` and the logits are cropped back to its size."""
    height, width = image.shape[-2:]
    pad_h, pad_w = -height % SIZE_DIVISOR, -width % SIZE_DIVISOR
    padded = F.pad(image, (0, pad_w, 0, pad_h)) if pad_h or pad_w else image
    with autocast(image.device, dtype):
        logits = model(padded)
    return logits[..., :height, :width].float()


@torch.inference_mode()
def confusion_matrix_over(
    model: nn.Module,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    num_classes: int,
    device: torch.device,
    *,
    dtype: torch.dtype | None = None,
    ignore_index: int = 255,
    progress: bool = True,
    on_prediction: Callable[[int, torch.Tensor], Any] | None = None,
    on_logits: Callable[[torch.Tensor, torch.Tensor], Any] | None = None,
) -> torch.Tensor:
    """The ``(C, C)`` confusion matrix over ``loader`` (summed over DDP ranks when initialised).

    ``on_prediction(batch_index, prediction)`` receives every batch's predicted train ids (``N×H×W``),
    ``on_logits(logits, mask)`` its float32 logits (``N×C×H×W``) and mask, both on ``device``.
    """
    model.eval()
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)
    for index, (image, mask) in enumerate(
        progress_bar(loader, progress=progress, desc="evaluating", unit="batch")
    ):
        logits = predict(model, image.to(device, non_blocking=True), dtype)
        mask = mask.to(device, non_blocking=True)
        prediction = logits.argmax(dim=1)
        confusion += confusion_matrix(prediction, mask, num_classes, ignore_index)
        if on_prediction is not None:
            on_prediction(index, prediction)
        if on_logits is not None:
            on_logits(logits, mask)
    if distributed_initialized():
        dist.all_reduce(confusion)
    return confusion.cpu()


def eval_dataset(config: Any, split: str) -> SegmentationDataset:
    """``split`` at full resolution with the evaluation preset."""
    return dataset_from_config(
        config.data, split, presets.eval_transform(presets.IMAGENET_MEAN, presets.IMAGENET_STD)
    )


def eval_loader(dataset: SegmentationDataset, num_workers: int, world: Distributed, pin: bool) -> DataLoader:
    """Full-resolution images one at a time; under DDP each rank takes every world_size-th image.

    The loader has its own generator: iterating it leaves the global RNG (dropout, the next epochs) alone,
    so evaluating during training does not change the training."""
    if world.world_size > 1:
        dataset = Subset(dataset, range(world.rank, len(dataset), world.world_size))
    return DataLoader(
        dataset, batch_size=1, num_workers=num_workers, pin_memory=pin, generator=torch.Generator()
    )


def score_model(
    model: nn.Module,
    loader: DataLoader,
    classes: tuple[str, ...],
    device: torch.device,
    dtype: torch.dtype | None,
    world: Distributed,
    progress: bool,
    *,
    held_out: Sequence[int] = (),
    unknown: Sequence[int] = (),
    on_prediction: Callable[[int, torch.Tensor], Any] | None = None,
) -> SegmentationResults:
    """Scores of the bare (not DDP-wrapped) ``model`` on ``loader``, sharded over the ranks. The classes
    ``held_out`` of its training are never predicted; with ``unknown`` classes, the pixel-level unknown
    rejection is measured too. ``on_prediction`` is ``confusion_matrix_over``'s."""
    if world.world_size > 1:
        # Each rank's last forward updated its own BatchNorm statistics: use rank 0's (the checkpoint's).
        for buffer in model.buffers():
            dist.broadcast(buffer, 0)
    pixel_scores = (
        UnknownPixelScores(classes, unknown, excluded=held_out, rank=world.rank) if unknown else None
    )
    confusion = confusion_matrix_over(
        prediction_model(model, held_out),
        loader,
        len(classes),
        device,
        dtype=dtype,
        progress=progress,
        on_prediction=on_prediction,
        on_logits=pixel_scores.update if pixel_scores is not None else None,
    )
    results = SegmentationResults.from_confusion(confusion, classes)
    if pixel_scores is None:
        return results
    pixel_scores.gather()
    return dataclasses.replace(results, pixel_rejection=pixel_scores.result())


def with_train_pixels(
    record: dict[str, Any], classes: Sequence[str], train_pixels: Sequence[int] | None
) -> dict[str, Any]:
    """``record`` with ``train_pixels`` (class name -> labelled training pixels) when they are known."""
    if train_pixels is None:
        return record
    return {**record, "train_pixels": dict(zip(classes, (int(n) for n in train_pixels), strict=True))}


def prediction_writer(
    dataset: SegmentationDataset, out_dir: str | os.PathLike, fmt: str
) -> Callable[[int, np.ndarray], None]:
    """A function ``(index, prediction)`` that saves sample ``index``'s predicted train ids (``H×W``) as
    ``out_dir/STEM.png``, ``STEM`` being the input image's: RGB in the dataset palette (``color``), train
    ids (``trainid``) or Cityscapes label ids (``cityscapes``, for cityscapesscripts' evaluation)."""
    if fmt not in PREDICTION_FORMATS:
        raise ValueError(f"unknown prediction format {fmt!r}; valid formats: {', '.join(PREDICTION_FORMATS)}")
    label_ids = getattr(dataset, "train_id_to_label_id", None)
    if fmt == "cityscapes" and label_ids is None:
        raise ValueError(f"--format cityscapes needs a Cityscapes dataset, got {type(dataset).__name__}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    def write(index: int, prediction: np.ndarray) -> None:
        if fmt == "color":
            picture = colorize(prediction, dataset.palette)  # H×W×3 uint8: RGB
        elif fmt == "trainid":
            picture = prediction.astype(np.uint8)  # H×W uint8: grayscale
        else:
            picture = label_ids[prediction].astype(np.uint8)
        Image.fromarray(picture).save(out_dir / f"{Path(dataset.image_files[index]).stem}.png")

    return write


def evaluate_checkpoint(
    checkpoint: str | os.PathLike,
    *,
    split: str | None = None,
    out: str | os.PathLike | None = None,
    save_predictions: str | os.PathLike | None = None,
    fmt: str = "color",
    device: str = "auto",
    num_workers: int | None = None,
    progress: bool = True,
    unknown_classes: Sequence[str] | None = None,
    overrides: Sequence[str] = (),
) -> SegmentationResults:
    """Scores of the model in ``checkpoint`` on ``split`` (default: the run's ``eval.split``) at full
    resolution; optionally the results JSON (docs/outputs.md) in ``out`` and one PNG per image in
    ``save_predictions``.

    ``overrides`` change the run's ``data.root`` and ``eval`` settings (``key=value``, e.g. ``data.root=DIR``
    for data that moved). Classes held out of the run's training are never predicted. ``unknown_classes``
    (default: the held-out ones) adds the pixel-level unknown rejection
    (``SegmentationResults.pixel_rejection``, also in ``out``).
    """
    state, config = load_run(checkpoint, TASK, overrides=overrides)
    split = split or config.eval.split
    dataset = eval_dataset(config, split)
    classes = tuple(dataset.classes)
    check_trained_classes(checkpoint, state, classes, repr(dataset))
    held_out = config.data.holdout_classes
    unknown_classes = held_out if unknown_classes is None else list(unknown_classes)
    if unknown_classes:
        check_class_names("unknown_classes (--unknown-classes)", unknown_classes, classes)
        seen = [name for name in unknown_classes if name not in held_out]
        if seen:
            logger.warning("%s were not held out of this run's training: the model knows them", seen)
    torch_device = resolve_device(device)
    model = model_from_config(config, len(classes), pretrained=False)
    model.load_state_dict(state["model"])
    model.to(torch_device)
    if torch_device.type in ("cuda", "cpu") and config.train.channels_last:
        model.to(memory_format=torch.channels_last)
    logger.info("evaluating %s (epoch %d) on %r", checkpoint, state["epoch"], dataset)
    writer = None
    if save_predictions is not None:
        write = prediction_writer(dataset, save_predictions, fmt)

        def writer(index: int, prediction: torch.Tensor) -> None:
            write(index, prediction[0].cpu().numpy().astype(np.uint8))

    workers = config.train.num_workers if num_workers is None else num_workers
    world = Distributed()
    results = score_model(
        model,
        eval_loader(dataset, workers, world, pin=torch_device.type == "cuda"),
        classes,
        torch_device,
        amp_dtype(config.train.amp, torch_device),
        world,
        progress,
        held_out=class_indices(classes, held_out),
        unknown=class_indices(classes, unknown_classes),
        on_prediction=writer,
    )
    if out is not None:
        record = with_train_pixels(results.to_json(), classes, state.get("train_pixels"))
        Path(out).write_text(json.dumps(record, indent=2))
    return results
