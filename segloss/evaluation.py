"""Evaluation of a trained segmentation checkpoint on a split (``evaluate.py`` is the command line): scores,
SPEC §4's JSON, prediction files (colour, train ids or Cityscapes label ids named after the input images)
and the pixel-level unknown rejection of held-out classes."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from . import engine
from .checkpoint import load_checkpoint
from .config import DEFAULT_TASK, check_class_names, config_from_dict
from .data import SegmentationDataset
from .pixel_rejection import SegmentationResults, class_indices
from .plots import colorize
from .training import (
    eval_dataset,
    eval_loader,
    evaluate_model,
    model_from_config,
)

logger = logging.getLogger(__name__)

PREDICTION_FORMATS = ("color", "trainid", "cityscapes")


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
) -> SegmentationResults:
    """Scores of the model in ``checkpoint`` on ``split`` (default: the run's ``eval.split``) at full
    resolution; optionally SPEC §4's JSON in ``out`` and one PNG per image in ``save_predictions``.

    Classes held out of the run's training are never predicted. ``unknown_classes`` (default: the held-out
    ones) adds the pixel-level unknown rejection (``SegmentationResults.pixel_rejection``, also in ``out``).
    """
    state = load_checkpoint(checkpoint)
    config = config_from_dict(state["config"])
    if config.task != DEFAULT_TASK:
        raise ValueError(f"{checkpoint} is a {config.task} checkpoint, not a {DEFAULT_TASK} one")
    split = split or config.eval.split
    dataset = eval_dataset(config, split)
    classes = tuple(dataset.classes)
    if list(classes) != list(state["classes"]):
        raise ValueError(
            f"{checkpoint} was trained on classes {state['classes']}, but {dataset!r} has {classes}"
        )
    held_out = config.data.holdout_classes
    unknown_classes = held_out if unknown_classes is None else list(unknown_classes)
    if unknown_classes:
        check_class_names("unknown_classes (--unknown-classes)", unknown_classes, classes)
        seen = [name for name in unknown_classes if name not in held_out]
        if seen:
            logger.warning("%s were not held out of this run's training: the model knows them", seen)
    torch_device = engine.resolve_device(device)
    model = model_from_config(config, len(classes), pretrained=False)
    model.load_state_dict(state["model"])
    model.to(torch_device)
    if torch_device.type == "cuda" and config.train.channels_last:
        model.to(memory_format=torch.channels_last)
    logger.info("evaluating %s (epoch %d) on %r", checkpoint, state["epoch"], dataset)
    writer = None
    if save_predictions is not None:
        write = prediction_writer(dataset, save_predictions, fmt)

        def writer(index: int, prediction: torch.Tensor) -> None:
            write(index, prediction[0].cpu().numpy().astype(np.uint8))

    workers = config.train.num_workers if num_workers is None else num_workers
    world = engine.Distributed()
    results = evaluate_model(
        model,
        eval_loader(dataset, workers, world, pin=torch_device.type == "cuda"),
        classes,
        torch_device,
        engine.amp_dtype(config.train.amp, torch_device),
        world,
        progress,
        held_out=class_indices(classes, held_out),
        unknown=class_indices(classes, unknown_classes),
        on_prediction=writer,
    )
    if out is not None:
        Path(out).write_text(json.dumps(results.to_json(), indent=2))
    return results
