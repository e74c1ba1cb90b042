"""A segmentation training run from a config (``segloss train``): data, model and loss, the loop over
epochs in its ``segloss.runner.run_folder.RunFolder``, and the final evaluation with its tables and plots.
Classes named in ``data.holdout_classes`` are held out (see :mod:`segloss.segmentation.unknown_pixels`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, RandomSampler
from torch.utils.data.distributed import DistributedSampler

from ..registry import build_loss, loss_needs_counts
from ..runner.config import loss_class_weights, loss_hyper_parameters
from ..runner.distributed import Distributed
from ..runner.files import write_results_json
from ..runner.optim import TrainingStep
from ..runner.randomness import derive_seed, seed_everything
from ..runner.run_folder import RunFolder
from . import plots
from .config import SegmentationConfig
from .data import IGNORE_INDEX, ClassStatistics, SegmentationDataset, class_statistics, presets
from .data.registry import dataset_from_config
from .evaluation import eval_dataset, eval_loader, predict, score_model
from .export import MODEL_DIR, dataset_info, save_model_dir
from .iou import SegmentationResults
from .models import model_from_config
from .unknown_pixels import HeldOutClasses, KnownClassesLoss, class_indices, prediction_model

logger = logging.getLogger(__name__)

CLASS_IOU_PLOT = "class_iou.png"
OVERLAYS_PLOT = "predictions.png"
CURVES_PLOT = "curves.png"


# ---------------------------------------------------------------------------------------------------
# Set-up: data, model, loss


def train_dataset(config: SegmentationConfig, transform: Any = None) -> SegmentationDataset:
    """The training split with ``transform``, the classes of ``data.holdout_classes`` ignored in its masks."""
    if not config.data.holdout_classes:
        return dataset_from_config(config.data, config.data.train_split, transform)
    dataset = dataset_from_config(config.data, config.data.train_split)
    return HeldOutClasses(dataset, class_indices(dataset.classes, config.data.holdout_classes), transform)


def loss_from_config(
    config: SegmentationConfig,
    train_set: SegmentationDataset,
    *,
    sync: bool = False,
    progress: bool = True,
    stats: ClassStatistics | None = None,
) -> tuple[nn.Module, np.ndarray | None]:
    """The loss of ``config.loss`` and, for the losses that need them (or ``loss.class_weighting``), the
    class counts of every class (pixels or image-equivalents, after ``loss.count_unit``). With
    ``data.holdout_classes`` the loss is a ``KnownClassesLoss`` built from the other classes' counts."""
    name = config.loss.name
    classes = tuple(train_set.classes)
    held_out = class_indices(classes, config.data.holdout_classes)
    known = [index for index in range(len(classes)) if index not in held_out]
    counts = presence = None
    if loss_needs_counts(name) or config.loss.class_weighting != "none":
        stats = stats or class_statistics(train_set, progress=progress)
        unit = stats.pixels_per_image if config.loss.count_unit == "images" else 1
        counts = stats.counts.astype(np.float64) / unit
        presence = stats.presence.astype(np.float64) / unit
    names = [classes[index] for index in known]
    try:
        weight = None
        if counts is not None:
            weight = loss_class_weights(config.loss, counts[known], presence[known], names)
        loss = build_loss(
            name,
            class_counts=None if counts is None else counts[known],
            presence_counts=None if presence is None else presence[known],
            weight=weight,
            ignore_index=IGNORE_INDEX,
            sync=sync,
            class_names=names,
            **loss_hyper_parameters(config.loss),
        )
    except ValueError as error:
        raise ValueError(f"loss {name!r} on the training split {train_set!r}: {error}") from error
    return (KnownClassesLoss(loss, known) if held_out else loss), counts


def describe_loss(
    config: SegmentationConfig, loss: nn.Module, classes: tuple[str, ...], counts: np.ndarray | None
) -> str:
    """The loss with its hyper-parameters and, when it used class counts, a table of them with the margins
    (``hem``, ``hem+``), priors (``la``) or weights derived from them (``wce``, ``loss.class_weighting``)."""
    name = config.loss.name
    held_out = config.data.holdout_classes
    inner = loss.loss if isinstance(loss, KnownClassesLoss) else loss
    settings = [
        f"{key} = {value:g}" if isinstance(value, float) else f"{key} = {value}"
        for key, value in loss_hyper_parameters(config.loss).items()
    ]
    if config.loss.class_weighting != "none":
        settings.append(f"class_weighting = {config.loss.class_weighting}")
    header = f"loss {name}: {', '.join([type(inner).__name__, *settings])}"
    if held_out:
        header += f"; held out of training: {', '.join(held_out)}"
    if counts is None:
        return header
    known = [class_name for class_name in classes if class_name not in held_out]
    columns: dict[str, dict[str, float]] = {}
    derived = inner.per_class_values() if hasattr(inner, "per_class_values") else None
    if derived is not None:
        columns[derived[0]] = dict(zip(known, derived[1].expand(len(known)).tolist(), strict=True))
    if config.loss.class_weighting != "none":
        weights = next(m.weight for m in inner.modules() if getattr(m, "weight", None) is not None)
        columns["weight"] = dict(zip(known, weights.tolist(), strict=True))
    unit = config.loss.count_unit
    width = max(len("class"), *(len(class_name) for class_name in classes))
    lines = [header, f"{'class':<{width}}  {unit:>16}" + "".join(f"  {label:>8}" for label in columns)]
    for class_name, count in zip(classes, counts.tolist(), strict=True):
        values = "".join(
            f"  {column[class_name]:>8.5f}" if class_name in column else f"  {'held out':>8}"
            for column in columns.values()
        )
        lines.append(f"{class_name:<{width}}  {count:>16,.1f}{values}")
    return "\n".join(lines)


def warn_if_crop_exceeds_images(crop: int | tuple[int, int], dataset: SegmentationDataset) -> None:
    """A warning when ``train.crop_size`` is larger than the training images (the first one's size): at
    scale 1 such crops are mostly void padding, which costs time and teaches nothing."""
    height, width = (crop, crop) if isinstance(crop, int) else crop
    image_height, image_width = dataset.load_sample(0)[0].shape[:2]
    if height > image_height or width > image_width:
        logger.warning(
            "train.crop_size=[%d,%d] is larger than the training images (%d×%d): at scale 1 each crop is "
            "mostly padding (void), which is slow and teaches nothing; set train.crop_size=[%d,%d] or less "
            "(multiples of 32)",
            height,
            width,
            image_height,
            image_width,
            min(height, image_height) // 32 * 32 or 32,
            min(width, image_width) // 32 * 32 or 32,
        )


def epoch_loader(
    dataset: SegmentationDataset, config: SegmentationConfig, epoch: int, world: Distributed, pin: bool
) -> DataLoader:
    """The loader of one epoch. Shuffling, DataLoader workers and the augmentation are seeded from
    (run seed, epoch, rank), so an epoch is the same whether or not the run was resumed before it."""
    seed = config.train.seed
    epoch_seed = derive_seed(seed, epoch, world.rank)
    generator = torch.Generator().manual_seed(epoch_seed)
    presets.seed_transform(dataset.transform, epoch_seed)  # used as is when num_workers=0
    if world.world_size > 1:
        sampler = DistributedSampler(
            dataset, world.world_size, world.rank, shuffle=True, seed=seed, drop_last=True
        )
        sampler.set_epoch(epoch)
    else:
        sampler = RandomSampler(dataset, generator=generator)
    return DataLoader(
        dataset,
        batch_size=config.train.batch_size // world.world_size,
        sampler=sampler,
        num_workers=config.train.num_workers,
        pin_memory=pin,
        drop_last=True,
        worker_init_fn=presets.seed_worker,
        generator=generator,
    )


# ---------------------------------------------------------------------------------------------------
# Evaluation and outputs of a run


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


def write_results(
    run_dir: Path,
    config: SegmentationConfig,
    results: SegmentationResults,
    model: nn.Module,
    dataset: SegmentationDataset,
    device: torch.device,
    dtype: torch.dtype | None = None,
    *,
    train_pixels: np.ndarray | None = None,
) -> None:
    """``results.json`` (docs/results.md, with ``pixel_rejection`` when measured, and ``train_pixels``, the
    labelled training pixels per class, when given), the per-class IoU chart and ``eval.num_overlays``
    prediction overlays of ``model`` (evenly spaced over ``dataset``)."""
    write_results_json(run_dir, with_train_pixels(results.to_json(), dataset.classes, train_pixels))
    title = f"{config.data.name} {config.eval.split}: {config.model.encoder}, {config.loss.name}"
    plots.plot_class_iou(results, run_dir / CLASS_IOU_PLOT, title)
    indices = overlay_indices(config.eval.num_overlays, dataset)
    if indices:
        overlays = predict_samples(model, dataset, indices, device, dtype)
        plots.plot_overlays(overlays, dataset.palette, dataset.classes, run_dir / OVERLAYS_PLOT)


def with_train_pixels(
    record: dict[str, Any], classes: Sequence[str], train_pixels: Sequence[int] | None
) -> dict[str, Any]:
    """``record`` with ``train_pixels`` (class name -> labelled training pixels) when they are known."""
    if train_pixels is None:
        return record
    return {**record, "train_pixels": dict(zip(classes, (int(n) for n in train_pixels), strict=True))}


def overlay_indices(count: int, dataset: SegmentationDataset) -> list[int]:
    """``count`` sample indices evenly spaced over ``dataset``."""
    count = min(count, len(dataset))
    return np.linspace(0, len(dataset) - 1, count).round().astype(int).tolist() if count else []


# ---------------------------------------------------------------------------------------------------
# The run


def train(config: SegmentationConfig, *, resume: bool = False) -> SegmentationResults | None:
    """Train (or, with ``resume``, continue) the segmentation run of ``config`` in ``config.train.out_dir``
    (docs/recipes.md): an smp model, the loss of ``config.loss``, per-class IoU on ``eval.split`` every
    ``train.eval_every`` epochs and in full at the end (with pixel-level rejection of held-out classes).

    Returns the final results on ``config.eval.split``, or ``None`` when a resumed run had already finished.
    Under ``torchrun`` every rank calls this; rank 0 writes the run directory.
    """
    with RunFolder(config, resume=resume) as run:
        if run.finished:
            return None
        config = run.config
        seed_everything(config.train.seed)
        data = SegmentationData.from_config(config, run)
        model = model_from_config(config, len(data.classes), pretrained=run.state is None).to(run.device)
        step = run.training_step(model, steps_per_epoch=len(data.train_set) // config.train.batch_size)
        run.restore(model=model, step=step)
        network = run.network(model)

        for epoch in run.epochs():
            loader = epoch_loader(data.train_set, config, epoch, run.world, pin=run.device.type == "cuda")
            record = {"epoch": epoch + 1, **run.train_epoch(network, data.loss_fn, step, loader)}
            results = data.evaluate(model, run) if run.evaluate_now(epoch) else None
            run.end_epoch(record, data.checkpoint(model, step), *data.scores(results))
            after_evaluation(run, results, model, data)

        results = data.evaluate(model, run, final=True)
        if run.is_main:
            data.write_results(run, model, results)
        summary = results.format_table(f"{config.data.name} {config.eval.split}")
        run.finish(data.checkpoint(model, step), summary, *data.scores(results))
        after_evaluation(run, results, model, data)
        return results


@dataclass
class SegmentationData:
    """What a segmentation run trains and evaluates with: the augmented training split, the evaluation
    split and its loader, the classes (and those held out), the labelled training pixels per class, and the
    loss with the class counts it was built from."""

    config: SegmentationConfig
    train_set: SegmentationDataset
    eval_set: SegmentationDataset
    eval_loader: DataLoader
    held_out: list[int]
    train_pixels: np.ndarray
    loss_fn: nn.Module
    counts: np.ndarray | None

    @classmethod
    def from_config(cls, config: SegmentationConfig, run: RunFolder) -> SegmentationData:
        crop = config.train.crop_size
        crop = crop if isinstance(crop, int) else tuple(crop)
        mean, std = presets.IMAGENET_MEAN, presets.IMAGENET_STD
        transform = presets.train_transform(crop, mean, std, scale=tuple(config.train.scale))
        train_set = train_dataset(config, transform)
        eval_set = eval_dataset(config, config.eval.split)
        if len(train_set) < config.train.batch_size:
            raise ValueError(
                f"the training split has {len(train_set)} images, fewer than "
                f"train.batch_size={config.train.batch_size}"
            )
        logger.info("data: %r for training, %r for evaluation", train_set, eval_set)
        warn_if_crop_exceeds_images(crop, train_set)
        world = run.world
        # Rank 0 counts the pixels (and fills the cache) while the other ranks wait, then they read the cache.
        if not world.is_main:
            dist.barrier()
        stats = class_statistics(train_set, progress=run.progress)
        train_pixels = stats.counts  # reports rank classes by it
        loss_fn, counts = loss_from_config(config, train_set, sync=world.world_size > 1, stats=stats)
        if world.is_main and world.world_size > 1:
            dist.barrier()
        loss_fn = loss_fn.to(run.device)
        logger.info(describe_loss(config, loss_fn, tuple(train_set.classes), counts))
        loader = eval_loader(eval_set, config.train.num_workers, world, pin=run.device.type == "cuda")
        held_out = class_indices(train_set.classes, config.data.holdout_classes)
        return cls(config, train_set, eval_set, loader, held_out, train_pixels, loss_fn, counts)

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.train_set.classes)

    def evaluate(self, model: nn.Module, run: RunFolder, final: bool = False) -> SegmentationResults:
        """Per-class IoU of ``model`` on the evaluation split (and unknown-pixel rejection when ``final``)."""
        unknown = self.held_out if final else ()
        return score_model(
            model,
            self.eval_loader,
            self.classes,
            run.device,
            run.dtype,
            run.world,
            run.progress,
            held_out=self.held_out,
            unknown=unknown,
        )

    def scores(self, results: SegmentationResults | None) -> tuple[dict[str, Any] | None, str]:
        """An evaluation's numbers for the epoch's record (mIoU, pixel accuracy, unknown-pixel AUROC) and a
        few words for its log line; ``(None, "")`` without one."""
        if results is None:
            return None, ""
        record = {"miou": _json_number(results.miou), "pixel_accuracy": _json_number(results.pixel_accuracy)}
        if results.pixel_rejection is not None:
            record.update({f"unknown_auroc_{s}": v for s, v in results.pixel_rejection.auroc.items()})
        return record, f", mIoU {100 * results.miou:.2f} % on {self.config.eval.split}"

    def write_results(self, run: RunFolder, model: nn.Module, results: SegmentationResults) -> None:
        """The final evaluation's files in the run folder (``write_results``) and ``RUN/model``, the model
        for use without segloss (``smp.from_pretrained``, docs/deployment.md)."""
        write_results(
            run.dir,
            self.config,
            results,
            self.prediction_model(model),
            self.eval_set,
            run.device,
            run.dtype,
            train_pixels=self.train_pixels,
        )
        split = f"{self.config.data.name} {self.config.eval.split}"
        table = results.format_table(split)
        save_model_dir(
            model,
            run.dir / MODEL_DIR,
            dataset_info(self.eval_set, self.held_out),
            metrics=f"Per-class IoU on {split}, after the last epoch:\n\n```\n{table}\n```",
            dataset=f"{self.config.data.name} (trained on {self.config.data.train_split})",
        )

    def prediction_model(self, model: nn.Module) -> nn.Module:
        """``model`` as it predicts: never a held-out class."""
        return prediction_model(model, self.held_out)

    def checkpoint(self, model: nn.Module, step: TrainingStep) -> dict[str, Any]:
        """The task's entries of a checkpoint."""
        return {
            "model": model.state_dict(),
            "step": step.state_dict(),
            "classes": list(self.classes),
            "class_counts": None if self.counts is None else self.counts.tolist(),
            "train_pixels": self.train_pixels.tolist(),
        }


def after_evaluation(
    run: RunFolder, results: SegmentationResults | None, model: nn.Module, data: SegmentationData
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
        samples = predict_samples(data.prediction_model(model), data.eval_set, indices, run.device, run.dtype)
        writer.image("predictions", plots.overlay_grid(samples, data.eval_set.palette), epoch)
    writer.flush()


def _json_number(value: float) -> float | None:
    return None if np.isnan(value) else float(value)
