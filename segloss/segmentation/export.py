"""A trained segmentation model outside segloss: ``RUN/model/`` (smp's ``save_pretrained``: safetensors
weights and ``config.json``, loadable with ``segmentation_models_pytorch.from_pretrained`` alone, plus
``segloss.json`` with the class names, colours and input normalisation), and ``segloss export RUN --onnx
FILE``, an ONNX model checked against onnxruntime (docs/deployment-and-gpus.md).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..runner.checkpoint import load_run
from ..runner.files import CHECKPOINT_FILE
from ..runner.logs import EXPECTED_ERRORS
from .constants import TASK
from .data import presets
from .data._common import indexed_palette

logger = logging.getLogger(__name__)

MODEL_DIR = "model"
METADATA_FILE = "segloss.json"
ONNX_EXTRA_HINT = "pip install 'segloss-hem[export]' (onnx and onnxruntime)"
ONNX_TOLERANCE = 1e-4
ONNX_OPSET = 17


@dataclass
class ModelInfo:
    """What predicting with a model needs besides its weights: the class names and colours, the input
    normalisation (RGB in [0, 1], then ``(x - mean) / std``), the classes held out of its training (never
    predicted) and, for Cityscapes, the label id of each train id."""

    classes: list[str]
    palette: np.ndarray
    mean: tuple[float, ...] = presets.IMAGENET_MEAN
    std: tuple[float, ...] = presets.IMAGENET_STD
    held_out: list[int] | None = None
    label_ids: np.ndarray | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "classes": list(self.classes),
            "palette": self.palette.tolist(),
            "mean": list(self.mean),
            "std": list(self.std),
            "held_out": list(self.held_out or []),
            "label_ids": None if self.label_ids is None else self.label_ids.tolist(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelInfo:
        label_ids = data.get("label_ids")
        return cls(
            classes=list(data["classes"]),
            palette=np.asarray(data["palette"], dtype=np.uint8),
            mean=tuple(data.get("mean", presets.IMAGENET_MEAN)),
            std=tuple(data.get("std", presets.IMAGENET_STD)),
            held_out=list(data.get("held_out") or []),
            label_ids=None if label_ids is None else np.asarray(label_ids, dtype=np.int64),
        )

    @classmethod
    def numbered(cls, num_classes: int) -> ModelInfo:
        """For a bare smp model: classes ``0 … C-1``, PASCAL VOC colours, ImageNet normalisation."""
        return cls([str(index) for index in range(num_classes)], indexed_palette(num_classes))


def save_model_dir(
    model: nn.Module,
    directory: str | os.PathLike,
    info: ModelInfo,
    *,
    metrics: str | None = None,
    dataset: str | None = None,
) -> Path:
    """Write ``model`` (an smp model) with ``save_pretrained`` and ``info`` as ``segloss.json`` into
    ``directory``; ``metrics`` (markdown) and ``dataset`` fill the model card's sections; returns it."""
    directory = Path(directory)
    card = {key: value for key, value in (("metrics", metrics), ("dataset", dataset)) if value}
    model.save_pretrained(str(directory), **card)
    (directory / METADATA_FILE).write_text(json.dumps(info.to_json(), indent=2))
    return directory


def dataset_info(dataset: Any, held_out: Sequence[int] = ()) -> ModelInfo:
    """The ``ModelInfo`` of a model trained on ``dataset`` (a ``SegmentationDataset``)."""
    label_ids = getattr(dataset, "train_id_to_label_id", None)
    return ModelInfo(
        classes=list(dataset.classes),
        palette=np.asarray(dataset.palette, dtype=np.uint8),
        held_out=list(held_out),
        label_ids=None if label_ids is None else np.asarray(label_ids, dtype=np.int64),
    )


def _from_checkpoint(path: Path) -> tuple[nn.Module, ModelInfo]:
    from .data.registry import dataset_from_config
    from .models import model_from_config
    from .unknown_pixels import class_indices

    state, config = load_run(path, TASK)
    classes = list(state["classes"])
    model = model_from_config(config, len(classes), pretrained=False)
    model.load_state_dict(state["model"])
    held_out = class_indices(classes, config.data.holdout_classes)
    try:  # the colours (and Cityscapes label ids) come from the dataset reader, when its data is here
        info = dataset_info(dataset_from_config(config.data, config.eval.split), held_out)
    except (OSError, ValueError, RuntimeError):
        info = ModelInfo(classes, indexed_palette(len(classes)), held_out=held_out)
    info.classes = classes
    return model, info


def _from_model_dir(directory: Path) -> tuple[nn.Module, ModelInfo]:
    import segmentation_models_pytorch as smp

    model = smp.from_pretrained(str(directory))
    metadata = directory / METADATA_FILE
    if metadata.is_file():
        return model, ModelInfo.from_json(json.loads(metadata.read_text()))
    return model, ModelInfo.numbered(int(model.config.get("classes", 1)))


def load_model(source: str | os.PathLike) -> tuple[nn.Module, ModelInfo]:
    """The model (in eval mode, on the CPU) and its ``ModelInfo`` from ``source``: a model folder
    (``config.json``, from ``save_pretrained``), a run folder (its ``model/``, else its checkpoint) or a
    ``checkpoint.pt``.

    Raises:
        FileNotFoundError: ``source`` is none of these (the message says what was expected).
    """
    path = Path(source)
    if path.is_dir() and (path / "config.json").is_file():
        model, info = _from_model_dir(path)
    elif path.is_dir() and (path / MODEL_DIR / "config.json").is_file():
        model, info = _from_model_dir(path / MODEL_DIR)
    elif path.is_dir() and (path / CHECKPOINT_FILE).is_file():
        model, info = _from_checkpoint(path / CHECKPOINT_FILE)
    elif path.is_file():
        model, info = _from_checkpoint(path)
    else:
        raise FileNotFoundError(
            f"{source} is neither a model folder (config.json and model.safetensors from save_pretrained), "
            f"a run folder (with {MODEL_DIR}/ or {CHECKPOINT_FILE}) nor a checkpoint file"
        )
    return model.eval(), info


# ---------------------------------------------------------------------------------------------------
# ONNX


def missing_onnx_packages() -> list[str]:
    """The packages of the ``export`` extra that are not installed."""
    return [name for name in ("onnx", "onnxruntime") if importlib.util.find_spec(name) is None]


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    size: tuple[int, int] = (256, 256),
    opset: int = ONNX_OPSET,
    tolerance: float = ONNX_TOLERANCE,
) -> float:
    """Write ``model`` as ONNX to ``path`` (input ``image``: ``N×3×H×W`` float32, normalised, sides
    multiples of 32, batch and sides dynamic; output ``logits``: ``N×C×H×W``), then run it with onnxruntime
    on a seeded random input of ``size`` and compare with PyTorch.

    Returns:
        The largest absolute difference between the ONNX and the PyTorch logits.

    Raises:
        RuntimeError: onnx or onnxruntime is missing (naming the extra), or the difference is above
            ``tolerance``.
    """
    missing = missing_onnx_packages()
    if missing:
        raise RuntimeError(f"ONNX export needs {' and '.join(missing)}: {ONNX_EXTRA_HINT}")
    import warnings

    import onnx
    import onnxruntime

    model = model.eval().cpu()
    height, width = size
    sample = torch.randn(1, 3, height, width, generator=torch.Generator().manual_seed(0))
    dynamic = {0: "batch", 2: "height", 3: "width"}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():  # the TorchScript exporter needs no onnxscript; torch calls it legacy
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shape checks traced as constants
        torch.onnx.export(
            model,
            (sample,),
            str(path),
            dynamo=False,
            input_names=["image"],
            output_names=["logits"],
            dynamic_axes={"image": dynamic, "logits": dynamic},
            opset_version=opset,
        )
    onnx.checker.check_model(str(path))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (exported,) = session.run(["logits"], {"image": sample.numpy()})
    with torch.inference_mode():
        reference = model(sample).numpy()
    difference = float(np.abs(exported - reference).max())
    if not difference <= tolerance:
        raise RuntimeError(
            f"the ONNX model {path} differs from PyTorch by up to {difference:.3g} on a {height}×{width} "
            f"sample (tolerance {tolerance:g})"
        )
    return difference


# ---------------------------------------------------------------------------------------------------
# segloss export

DESCRIPTION = """Export a trained segmentation model for use without segloss.

RUN is a run folder, its checkpoint.pt or a model folder. A run gets RUN/model/ (smp's save_pretrained:
model.safetensors, config.json, and segloss.json with class names, colours and normalisation) if it has none
yet; load it with segmentation_models_pytorch.from_pretrained(RUN/model). --onnx FILE also writes an ONNX
model (input "image" N×3×H×W normalised with the mean/std of segloss.json, sides multiples of 32; output
"logits"), checked against onnxruntime on a sample (needs the export extra: onnx, onnxruntime).
"""


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """``segloss export``."""
    parser = argparse.ArgumentParser(
        prog=prog, description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run", metavar="RUN", help="run folder, checkpoint.pt or model folder")
    parser.add_argument("--onnx", metavar="FILE", help="write an ONNX model here")
    parser.add_argument(
        "--size", type=int, nargs=2, default=(256, 256), metavar=("H", "W"), help="check sample size"
    )
    parser.add_argument("--opset", type=int, default=ONNX_OPSET, help=f"ONNX opset (default {ONNX_OPSET})")
    args = parser.parse_args(argv)
    if args.onnx and missing_onnx_packages():
        missing = " and ".join(missing_onnx_packages())
        sys.stderr.write(f"error: --onnx needs {missing}, not installed: {ONNX_EXTRA_HINT}\n")
        return 1
    if any(side <= 0 or side % 32 for side in args.size):
        parser.error(f"--size {args.size[0]} {args.size[1]}: sides must be positive multiples of 32")
    try:
        model, info = load_model(args.run)
        run = Path(args.run)
        if run.is_dir() and not (run / "config.json").is_file() and not (run / MODEL_DIR).is_dir():
            sys.stdout.write(f"wrote {save_model_dir(model, run / MODEL_DIR, info)}\n")
        if args.onnx:
            difference = export_onnx(model, args.onnx, size=tuple(args.size), opset=args.opset)
            sys.stdout.write(
                f"wrote {args.onnx}: onnxruntime matches PyTorch within {difference:.2e} "
                f"(max abs difference of the logits, {args.size[0]}×{args.size[1]} sample)\n"
            )
    except EXPECTED_ERRORS as error:
        sys.stderr.write(f"error: {error}\n")
        return 1
    return 0
