"""The loops of image classification: ``fit`` (epochs of the shared
``segloss.runner.loop.train_one_epoch``), the logits of whole datasets, and top-1 accuracy."""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from ..runner.distributed import autocast
from ..runner.loop import train_one_epoch
from ..runner.optim import TrainingStep
from ..runner.progress import progress_bar

logger = logging.getLogger(__name__)

__all__ = ["accuracy", "fit", "predict_logits"]

LossFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def fit(
    model: nn.Module,
    loader: DataLoader,
    loss_fn: LossFunction,
    step: TrainingStep,
    epochs: int,
    device: torch.device | str,
    *,
    dtype: torch.dtype | None = None,
    channels_last: bool = False,
    progress: bool = True,
) -> list[dict[str, float]]:
    """``epochs`` passes of the shared training loop with the update ``step`` (optimizer, per-update schedule,
    scaler); ``dtype`` autocasts. Returns the per-epoch metrics (``loss``, ``images_per_s``, ``seconds``,
    ``lr``)."""
    device = torch.device(device)
    history = []
    for epoch in progress_bar(range(epochs), progress=progress, desc="training", unit="epoch"):
        metrics = train_one_epoch(
            model,
            loss_fn,
            step,
            loader,
            device,
            desc=f"epoch {epoch + 1}",
            dtype=dtype,
            channels_last=channels_last,
            progress=progress,
        )
        logger.info("epoch %d: loss %.4f, lr %.3g", epoch, metrics["loss"], metrics["lr"])
        history.append(metrics)
    return history


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    data: Dataset | DataLoader | torch.Tensor,
    device: torch.device | str,
    *,
    batch_size: int = 256,
    dtype: torch.dtype | None = None,
    desc: str = "predict",
    progress: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Float32 CPU logits ``(N, C)`` of every image in ``data`` (a tensor of images, or a dataset or loader
    of images or ``(image, target)`` pairs) and the targets when there are any; ``dtype`` autocasts. The
    global random state is left alone (a loader passed in is used as it is)."""
    device = torch.device(device)
    if isinstance(data, torch.Tensor):
        data = TensorDataset(data)
    # A loader of our own has its own generator: iterating it leaves the global RNG alone, so that
    # evaluating during training (``train.eval_every``) does not change the training.
    loader = (
        data
        if isinstance(data, DataLoader)
        else DataLoader(data, batch_size=batch_size, shuffle=False, generator=torch.Generator())
    )
    model.eval()
    logits, targets = [], []
    for batch in progress_bar(loader, progress=progress, desc=desc, unit="batch", leave=False):
        labelled = isinstance(batch, (list, tuple)) and len(batch) > 1
        images = batch[0] if isinstance(batch, (list, tuple)) else batch
        with autocast(device, dtype):
            logits.append(model(images.to(device, non_blocking=True)).float().cpu())
        if labelled:
            targets.append(torch.as_tensor(batch[1]).long())
    if not logits:
        raise ValueError(f"{desc}: no images to predict")
    return torch.cat(logits), (torch.cat(targets) if targets else None)


def accuracy(
    model: nn.Module, data: Dataset | DataLoader, device: torch.device | str, *, progress: bool = True
) -> float:
    """Top-1 accuracy (a fraction) on a labelled dataset or loader."""
    logits, targets = predict_logits(model, data, device, desc="evaluate", progress=progress)
    if targets is None:
        raise ValueError("accuracy needs (image, target) samples")
    return (logits.argmax(1) == targets).double().mean().item()
