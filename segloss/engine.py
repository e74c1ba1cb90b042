"""The training and evaluation loops (one epoch / one split), AMP and DDP aware."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .seg_metrics import confusion_matrix

# FPN and most smp decoders need sides divisible by the encoder's output stride.
SIZE_DIVISOR = 32


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


def amp_dtype(setting: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``train.amp``: ``auto`` = bf16 on CUDA where supported, else fp16; CPU: none."""
    if device.type != "cuda" or setting == "off":
        return None
    if setting == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[setting]


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """Mixed precision for ``dtype``, or nothing when ``dtype`` is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def train_one_epoch(
    model: nn.Module,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device,
    *,
    epoch: int,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    scaler: torch.amp.GradScaler | None = None,
    dtype: torch.dtype | None = None,
    channels_last: bool = False,
    progress: bool = True,
) -> dict[str, float]:
    """One pass over ``loader``; returns the mean loss, images/s (all ranks), seconds and the last lr.

    Raises ``NonFiniteLossError`` before the update when the loss is NaN or infinite (on any rank).
    """
    model.train()
    world_size = dist.get_world_size() if _distributed() else 1
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    total_loss, steps, images = 0.0, 0, 0
    start = time.perf_counter()
    bar = tqdm(loader, desc=f"epoch {epoch}", unit="step", leave=False, disable=not progress)
    for image, mask in bar:
        image = image.to(device, non_blocking=True).contiguous(memory_format=memory_format)
        mask = mask.to(device, non_blocking=True).long()
        with autocast(device, dtype):
            logits = model(image)
        loss = loss_fn(logits, mask)  # outside autocast: segloss computes half-precision logits in float32

        reported = loss.detach().clone()
        if world_size > 1:
            dist.all_reduce(reported)
            reported /= world_size
        value = reported.item()
        if not math.isfinite(value):
            raise NonFiniteLossError(f"the loss is {value} at epoch {epoch}, step {steps + 1}")

        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        if scheduler is not None:
            scheduler.step()

        total_loss += value
        steps += 1
        images += image.shape[0] * world_size
        bar.set_postfix(loss=f"{value:.4f}", img_s=f"{images / (time.perf_counter() - start):.1f}")
    seconds = time.perf_counter() - start
    return {
        "loss": total_loss / max(steps, 1),
        "images_per_s": images / seconds,
        "seconds": seconds,
        "lr": optimizer.param_groups[0]["lr"],
    }


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
def evaluate(
    model: nn.Module,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    num_classes: int,
    device: torch.device,
    *,
    dtype: torch.dtype | None = None,
    ignore_index: int = 255,
    progress: bool = True,
    on_prediction: Callable[[int, torch.Tensor], Any] | None = None,
) -> torch.Tensor:
    """The ``(C, C)`` confusion matrix over ``loader`` (summed over DDP ranks when initialised).

    ``on_prediction(batch_index, prediction)`` receives every batch's predicted train ids (``N×H×W``).
    """
    model.eval()
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)
    for index, (image, mask) in enumerate(
        tqdm(loader, desc="evaluating", unit="batch", disable=not progress)
    ):
        prediction = predict(model, image.to(device, non_blocking=True), dtype).argmax(dim=1)
        confusion += confusion_matrix(
            prediction, mask.to(device, non_blocking=True), num_classes, ignore_index
        )
        if on_prediction is not None:
            on_prediction(index, prediction)
    if _distributed():
        dist.all_reduce(confusion)
    return confusion.cpu()
