"""A segmentation training run from a config: data, model and loss, the epoch loop with checkpoints and
resume, and the final evaluation with its tables and plots (``train.py`` is the command line)."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, RandomSampler, Subset
from torch.utils.data.distributed import DistributedSampler
from tqdm.auto import tqdm

from . import engine, plots
from .checkpoint import load_checkpoint, rng_states, save_checkpoint, seed_everything, set_rng_states
from .config import SegmentationConfig, config_to_dict, resume_config, save_config
from .data import IGNORE_INDEX, SegmentationDataset, build_dataset, class_statistics, presets
from .models import build_model
from .registry import LOSS_HYPERPARAMETERS, LOSSES_NEEDING_COUNTS, build_loss
from .seg_metrics import SegmentationScores

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.yaml"
CHECKPOINT_FILE = "checkpoint.pt"
METRICS_FILE = "metrics.jsonl"
LOG_FILE = "train.log"
RESULTS_FILE = "results.json"
CLASS_IOU_PLOT = "class_iou.png"
OVERLAYS_PLOT = "predictions.png"
CURVES_PLOT = "curves.png"


class RunExistsError(RuntimeError):
    """The run directory already holds a checkpoint and ``resume`` was not asked for."""


# ---------------------------------------------------------------------------------------------------
# Set-up: processes, device, data, model, loss


@dataclass(frozen=True)
class Distributed:
    """This process's place in a ``torchrun`` job (rank 0 of 1 without one)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_setting: str) -> Distributed:
    """Join the process group ``torchrun`` describes in the environment (NCCL on CUDA, else gloo)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Distributed()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device_setting != "cpu" and torch.cuda.is_available()
    if not dist.is_initialized():
        if use_cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return Distributed(dist.get_rank(), dist.get_world_size(), local_rank)


def resolve_device(setting: str, local_rank: int = 0) -> torch.device:
    """``auto`` → this process's GPU when there is one, else the CPU; ``cuda`` takes the local rank's GPU."""
    if setting == "auto":
        setting = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(setting)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"train.device={setting} but CUDA is not available; use train.device=cpu")
        if device.index is None:
            device = torch.device("cuda", local_rank)
    return device


def dataset_from_config(config: SegmentationConfig, split: str, transform: Any = None) -> SegmentationDataset:
    """The dataset ``config.data`` names, for ``split``."""
    data = config.data
    options: dict[str, Any] = {}
    if data.name == "synthetic":
        size = data.size if isinstance(data.size, int) else tuple(data.size)
        samples = data.num_train if split == data.train_split else data.num_eval
        options = {"num_samples": samples, "size": size, "seed": data.seed}
    elif data.name == "folder":
        options = {"classes": data.classes, "ignore_index": data.ignore_value}
    return build_dataset(data.name, data.root, split, transform, **options)


def eval_dataset(config: SegmentationConfig, split: str) -> SegmentationDataset:
    """``split`` at full resolution with the evaluation preset."""
    return dataset_from_config(
        config, split, presets.eval_transform(presets.IMAGENET_MEAN, presets.IMAGENET_STD)
    )


def model_from_config(config: SegmentationConfig, num_classes: int, pretrained: bool = True) -> nn.Module:
    """The smp model of ``config.model``; ``pretrained=False`` skips the encoder weights (they are about
    to be replaced by a checkpoint's)."""
    weights = config.model.encoder_weights if pretrained else None
    return build_model(config.model.arch, config.model.encoder, num_classes, weights)


def loss_from_config(
    config: SegmentationConfig, train_set: SegmentationDataset, *, sync: bool = False, progress: bool = True
) -> tuple[nn.Module, np.ndarray | None]:
    """The loss of ``config.loss`` and, for the losses that need them, the class counts it was built from
    (pixels, or image-equivalents with ``loss.count_unit=images``)."""
    name = config.loss.name
    hyper_parameters = {key: getattr(config.loss, key) for key in LOSS_HYPERPARAMETERS[name]}
    counts = None
    if name in LOSSES_NEEDING_COUNTS:
        stats = class_statistics(train_set, progress=progress)
        counts = stats.counts.astype(np.float64)
        if config.loss.count_unit == "images":
            counts = counts / stats.pixels_per_image
    try:
        loss = build_loss(
            name,
            class_counts=counts,
            ignore_index=IGNORE_INDEX,
            sync=sync,
            class_names=train_set.classes,
            **hyper_parameters,
        )
    except ValueError as error:
        raise ValueError(f"loss {name!r} on the training split {train_set!r}: {error}") from error
    return loss, counts


def describe_loss(
    config: SegmentationConfig, loss: nn.Module, classes: tuple[str, ...], counts: np.ndarray | None
) -> str:
    """The loss with its hyper-parameters and, for count-based losses, a table of the class counts with
    the margins (``hem``, ``hem+``) or priors (``la``) derived from them."""
    name = config.loss.name
    settings = [f"{key} = {getattr(config.loss, key):g}" for key in LOSS_HYPERPARAMETERS[name]]
    header = f"loss {name}: {', '.join([type(loss).__name__, *settings])}"
    if counts is None:
        return header
    label, values = ("prior", loss.class_priors) if name == "la" else ("margin", loss.margin)
    unit = config.loss.count_unit
    width = max(len("class"), *(len(class_name) for class_name in classes))
    lines = [header, f"{'class':<{width}}  {unit:>16}  {label:>8}"]
    for class_name, count, value in zip(
        classes, counts.tolist(), values.expand(len(classes)).tolist(), strict=True
    ):
        lines.append(f"{class_name:<{width}}  {count:>16,.1f}  {value:>8.5f}")
    return "\n".join(lines)


def optimizer_from_config(
    config: SegmentationConfig, model: nn.Module, steps_per_epoch: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """SGD of ``config.optim`` and its per-step schedule (constant, or poly with power 0.9)."""
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=config.optim.lr,
        momentum=config.optim.momentum,
        weight_decay=config.optim.weight_decay,
    )
    total_steps = config.train.epochs * steps_per_epoch
    if config.optim.schedule == "poly":
        schedule = lambda step: max(0.0, 1.0 - step / total_steps) ** 0.9  # noqa: E731
    else:
        schedule = lambda step: 1.0  # noqa: E731
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


def train_loader(
    dataset: SegmentationDataset, config: SegmentationConfig, epoch: int, world: Distributed, pin: bool
) -> DataLoader:
    """The loader of one epoch. Shuffling, DataLoader workers and the augmentation are seeded from
    (run seed, epoch, rank), so an epoch is the same whether or not the run was resumed before it."""
    seed = config.train.seed
    epoch_seed = int(np.random.SeedSequence([seed, epoch, world.rank]).generate_state(1)[0])
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


def eval_loader(dataset: SegmentationDataset, num_workers: int, world: Distributed, pin: bool) -> DataLoader:
    """Full-resolution images one at a time; under DDP each rank takes every world_size-th image.

    The loader has its own generator: iterating it leaves the global RNG (dropout, the next epochs) alone,
    so evaluating during training does not change the training."""
    if world.world_size > 1:
        dataset = Subset(dataset, range(world.rank, len(dataset), world.world_size))
    return DataLoader(
        dataset, batch_size=1, num_workers=num_workers, pin_memory=pin, generator=torch.Generator()
    )


# ---------------------------------------------------------------------------------------------------
# Outputs of a run


def evaluate_model(
    model: nn.Module,
    loader: DataLoader,
    classes: tuple[str, ...],
    device: torch.device,
    dtype: torch.dtype | None,
    world: Distributed,
    progress: bool,
) -> SegmentationScores:
    """Scores of the bare (not DDP-wrapped) ``model`` on ``loader``, sharded over the ranks."""
    if world.world_size > 1:
        # Each rank's last forward updated its own BatchNorm statistics: use rank 0's (the checkpoint's).
        for buffer in model.buffers():
            dist.broadcast(buffer, 0)
    confusion = engine.evaluate(model, loader, len(classes), device, dtype=dtype, progress=progress)
    return SegmentationScores.from_confusion(confusion, classes)


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
            logits = engine.predict(model, normalised[None].to(device), dtype)
            samples.append((image, mask, logits.argmax(dim=1)[0].cpu().numpy().astype(np.uint8)))
    return samples


def write_results(
    run_dir: Path,
    config: SegmentationConfig,
    scores: SegmentationScores,
    model: nn.Module,
    dataset: SegmentationDataset,
    device: torch.device,
    dtype: torch.dtype | None = None,
) -> None:
    """``results.json`` (SPEC §4), the per-class IoU chart and ``eval.num_overlays`` prediction overlays
    (evenly spaced over ``dataset``) of a finished run."""
    temporary = run_dir / f".{RESULTS_FILE}.tmp"
    temporary.write_text(json.dumps(scores.to_json(), indent=2))
    os.replace(temporary, run_dir / RESULTS_FILE)
    title = f"{config.data.name} {config.eval.split}: {config.model.encoder}, {config.loss.name}"
    plots.plot_class_iou(scores, run_dir / CLASS_IOU_PLOT, title)
    count = min(config.eval.num_overlays, len(dataset))
    if count:
        indices = np.linspace(0, len(dataset) - 1, count).round().astype(int).tolist()
        overlays = predict_samples(model, dataset, indices, device, dtype)
        plots.plot_overlays(overlays, dataset.palette, dataset.classes, run_dir / OVERLAYS_PLOT)


def write_metrics(path: Path, history: list[dict[str, Any]]) -> None:
    """Rewrite ``metrics.jsonl`` from a checkpoint's history (one JSON object per epoch)."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text("".join(json.dumps(record) + "\n" for record in history))
    os.replace(temporary, path)


def _add_log_file(path: Path) -> logging.Handler:
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    logging.getLogger("segloss").addHandler(handler)
    return handler


# ---------------------------------------------------------------------------------------------------
# The run


def train(config: SegmentationConfig, *, resume: bool = False) -> SegmentationScores | None:
    """Train (or, with ``resume``, continue) the run of ``config`` in ``config.train.out_dir``.

    Returns the final scores on ``config.eval.split``, or ``None`` when a resumed run had already finished.
    Under ``torchrun`` every rank calls this; rank 0 writes the run directory.
    """
    joined_group = dist.is_available() and dist.is_initialized()
    world = init_distributed(config.train.device)
    device = resolve_device(config.train.device, world.local_rank)
    run_dir = Path(config.train.out_dir)
    checkpoint_path = run_dir / CHECKPOINT_FILE
    state = None
    if checkpoint_path.is_file():
        if not resume:
            raise RunExistsError(
                f"{run_dir} already holds a checkpoint; pass --resume to continue it or choose another "
                f"train.out_dir"
            )
        state = load_checkpoint(checkpoint_path)
        config = resume_config(state["config"], config)
    elif resume:
        logger.info("no checkpoint in %s: starting a new run", run_dir)
    if config.train.batch_size % world.world_size:
        raise ValueError(
            f"train.batch_size={config.train.batch_size} is not divisible by {world.world_size} processes"
        )

    handler = None
    if world.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        handler = _add_log_file(run_dir / LOG_FILE)
    try:
        if state is not None and world.is_main:
            write_metrics(run_dir / METRICS_FILE, state["history"])
        if state is not None and state["epoch"] >= config.train.epochs:
            logger.info("%s finished %d epochs already; nothing to do", run_dir, state["epoch"])
            return None
        if world.is_main:
            save_config(config, run_dir / CONFIG_FILE)
        return _run(config, state, world, device, run_dir)
    finally:
        if handler is not None:
            logging.getLogger("segloss").removeHandler(handler)
            handler.close()
        if world.world_size > 1 and not joined_group:
            dist.destroy_process_group()


def _run(
    config: SegmentationConfig,
    state: dict[str, Any] | None,
    world: Distributed,
    device: torch.device,
    run_dir: Path,
) -> SegmentationScores:
    progress = config.train.progress and world.is_main
    seed_everything(config.train.seed)
    logger.info(
        "%s run %s on %s (%d process%s)",
        "resuming" if state else "starting",
        run_dir,
        device,
        world.world_size,
        "es" if world.world_size > 1 else "",
    )
    crop = (
        config.train.crop_size if isinstance(config.train.crop_size, int) else tuple(config.train.crop_size)
    )
    transform = presets.train_transform(
        crop, presets.IMAGENET_MEAN, presets.IMAGENET_STD, scale=tuple(config.train.scale)
    )
    train_set = dataset_from_config(config, config.data.train_split, transform)
    evaluation_set = eval_dataset(config, config.eval.split)
    classes = tuple(train_set.classes)
    if len(train_set) < config.train.batch_size:
        raise ValueError(
            f"the training split has {len(train_set)} images, fewer than "
            f"train.batch_size={config.train.batch_size}"
        )
    logger.info("data: %r for training, %r for evaluation", train_set, evaluation_set)

    # Rank 0 counts the pixels (and fills the cache) while the other ranks wait, then they read the cache.
    if not world.is_main:
        dist.barrier()
    loss_fn, counts = loss_from_config(config, train_set, sync=world.world_size > 1, progress=progress)
    if world.is_main and world.world_size > 1:
        dist.barrier()
    loss_fn = loss_fn.to(device)
    logger.info(describe_loss(config, loss_fn, classes, counts))

    model = model_from_config(config, len(classes), pretrained=state is None).to(device)
    channels_last = config.train.channels_last and device.type == "cuda"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer, scheduler = optimizer_from_config(config, model, len(train_set) // config.train.batch_size)
    dtype = engine.amp_dtype(config.train.amp, device)
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    history: list[dict[str, Any]] = []
    start_epoch = 0
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        set_rng_states(state["rng"])
        history, start_epoch = list(state["history"]), state["epoch"]
        logger.info("resumed from %s after epoch %d", run_dir / CHECKPOINT_FILE, start_epoch)

    network = model
    if world.world_size > 1:
        if device.type == "cuda":
            network = nn.SyncBatchNorm.convert_sync_batchnorm(network)
        network = nn.parallel.DistributedDataParallel(
            network, device_ids=[device.index] if device.type == "cuda" else None
        )
    pin = device.type == "cuda"
    evaluation_loader = eval_loader(evaluation_set, config.train.num_workers, world, pin)
    scores: SegmentationScores | None = None
    epochs = tqdm(
        range(start_epoch, config.train.epochs),
        desc="training",
        unit="epoch",
        initial=start_epoch,
        total=config.train.epochs,
        disable=not progress,
    )
    for epoch in epochs:
        loader = train_loader(train_set, config, epoch, world, pin)
        try:
            record = engine.train_one_epoch(
                network,
                loss_fn,
                optimizer,
                loader,
                device,
                epoch=epoch + 1,
                scheduler=scheduler,
                scaler=scaler,
                dtype=dtype,
                channels_last=channels_last,
                progress=progress,
            )
        except engine.NonFiniteLossError as error:
            kept = (
                f"the checkpoint of epoch {history[-1]['epoch']} is kept in {run_dir / CHECKPOINT_FILE}"
                if history
                else "no checkpoint was written"
            )
            raise engine.NonFiniteLossError(
                f"{error}: training stopped; {kept}. Try a lower optim.lr (now {config.optim.lr}) or check "
                f"the data and loss settings."
            ) from None
        record = {"epoch": epoch + 1, **record}
        last = epoch + 1 == config.train.epochs
        if last or (config.train.eval_every and (epoch + 1) % config.train.eval_every == 0):
            scores = evaluate_model(model, evaluation_loader, classes, device, dtype, world, progress)
            record.update(miou=_json_number(scores.miou), pixel_accuracy=_json_number(scores.pixel_accuracy))
        history.append(record)
        logger.info(
            "epoch %d/%d: loss %.4f, %.1f images/s%s",
            epoch + 1,
            config.train.epochs,
            record["loss"],
            record["images_per_s"],
            f", mIoU {100 * scores.miou:.2f} % on {config.eval.split}" if "miou" in record else "",
        )
        if world.is_main:
            if last:  # written before the checkpoint that marks the run finished
                write_results(run_dir, config, scores, model, evaluation_set, device, dtype)
            save_checkpoint(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "scaler": scaler.state_dict() if scaler is not None else None,
                    "epoch": epoch + 1,
                    "history": history,
                    "rng": rng_states(),
                    "config": config_to_dict(config),
                    "classes": list(classes),
                    "class_counts": counts.tolist() if counts is not None else None,
                },
                run_dir / CHECKPOINT_FILE,
            )
            with open(run_dir / METRICS_FILE, "a") as metrics:
                metrics.write(json.dumps(record) + "\n")
            plots.plot_curves(history, run_dir / CURVES_PLOT)
    assert scores is not None
    logger.info("final evaluation (%s):\n%s", config.eval.split, scores.format_table())
    return scores


def _json_number(value: float) -> float | None:
    return None if np.isnan(value) else float(value)
