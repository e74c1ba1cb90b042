"""The logits of whole datasets for image classification (training runs the shared
``segloss.runner.loop.train_one_epoch``)."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from ..runner.distributed import autocast
from ..runner.progress import progress_bar

__all__ = ["predict_logits"]


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
