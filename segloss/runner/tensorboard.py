"""TensorBoard event files of a run (``train.tensorboard=true``, the ``tensorboard`` extra), written by rank 0
into ``RUN/tensorboard/``: the training loss and learning rate per optimizer step, the epoch records (loss,
speed, the evaluation's metrics), whatever the task adds per evaluation (segmentation: per-class IoU and
prediction overlays), and the run's config as text and as TensorBoard hyper-parameters (with the final
metrics). ``metrics.jsonl`` stays the run's record; TensorBoard is a view of it."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

TENSORBOARD_DIR = "tensorboard"
MISSING_HINT = "pip install 'segloss-hem[tensorboard]' (or pip install tensorboard)"


def _summary_writer() -> type:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as error:  # torch raises ImportError naming no module when tensorboard is missing
        raise RuntimeError(f"train.tensorboard=true needs the tensorboard package: {MISSING_HINT}") from error
    return SummaryWriter


def hparam_value(value: Any) -> int | float | str | bool:
    """A config value as TensorBoard accepts it in hyper-parameters (lists and None as text)."""
    if isinstance(value, bool | int | float | str):
        return value
    return "null" if value is None else str(value)


class TensorBoardWriter:
    """A ``SummaryWriter`` on ``log_dir`` with the few calls a run makes.

    Raises:
        RuntimeError: tensorboard is not installed (the message names the extra).
    """

    def __init__(self, log_dir: str | Path):
        self.log_dir = Path(log_dir)
        self.writer = _summary_writer()(log_dir=str(self.log_dir))

    def step(self, step: int, loss: float, lr: float) -> None:
        """One optimizer step: ``train/loss`` and ``train/lr``."""
        self.writer.add_scalar("train/loss", loss, step)
        self.writer.add_scalar("train/lr", lr, step)

    def scalars(self, values: Mapping[str, Any], step: int, prefix: str = "") -> None:
        """Every finite number of ``values`` as the scalar ``PREFIX/KEY`` (NaN, None and text are left
        out)."""
        for key, value in values.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                continue
            self.writer.add_scalar(f"{prefix}/{key}" if prefix else key, value, step)

    def image(self, tag: str, image: np.ndarray, step: int) -> None:
        """An ``H×W×3`` uint8 RGB picture."""
        self.writer.add_image(tag, image, step, dataformats="HWC")

    def text(self, tag: str, text: str, step: int = 0) -> None:
        """Markdown text (shown in TensorBoard's text tab)."""
        self.writer.add_text(tag, text, step)

    def hyper_parameters(self, flat_config: Mapping[str, Any], metrics: Mapping[str, Any]) -> None:
        """The flattened config as hyper-parameters of this run, with ``metrics`` (scalar tags already
        written) as their metrics; in this run's own event file (no sub-run)."""
        from torch.utils.tensorboard.summary import hparams

        values = {key: hparam_value(value) for key, value in flat_config.items()}
        experiment, start, end = hparams(values, dict(metrics))
        for summary in (experiment, start, end):
            self.writer.file_writer.add_summary(summary)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
