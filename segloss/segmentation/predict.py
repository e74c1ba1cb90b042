"""``segloss predict``: a trained model on every image of a folder, any size (docs/deployment-and-gpus.md).

An image is padded to a multiple of 32 and predicted whole, or, with ``--tile SIZE``, when a side is larger
than the tile, predicted in ``SIZE``×``SIZE`` windows that overlap by ``--overlap`` pixels; the logits of
overlapping windows are blended with weights that fall linearly towards each window's inner edges, so no
seam shows. One PNG per image (palette colours, train ids or Cityscapes label ids) named after it, and a
colour overlay per image in ``OUT/overlays/``. An unreadable image is reported by name and skipped; the
command exits non-zero at the end when any was.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..runner.distributed import resolve_device
from ..runner.logs import EXPECTED_ERRORS
from ..runner.progress import progress_bar
from .constants import PREDICTION_FORMATS
from .data._common import read_image
from .evaluation import predict
from .export import ModelInfo, load_model
from .plots import blend, colorize
from .unknown_pixels import prediction_model

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm")
OVERLAY_DIR = "overlays"
CITYSCAPES_ONLY = "--format cityscapes needs a model trained on Cityscapes (label ids in segloss.json)"


def image_files(folder: str | os.PathLike) -> list[Path]:
    """The image files of ``folder`` (by suffix, not recursive), sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"--images {folder}: no such folder")
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def window_weights(size: int, overlap: int) -> torch.Tensor:
    """``(size,)`` weights of one window side: 1 in the middle, falling linearly over ``overlap`` pixels to
    ``1 / (overlap + 1)`` at each edge (never 0, so a pixel only one window covers keeps its logits)."""
    ramp = torch.arange(1, size + 1, dtype=torch.float32)
    return torch.minimum(torch.minimum(ramp, ramp.flip(0)), torch.tensor(overlap + 1.0)) / (overlap + 1)


def window_starts(length: int, tile: int, stride: int) -> list[int]:
    """Window offsets along a side of ``length``: every ``stride`` pixels, the last one flush with the
    end (one window at 0 when the side fits in the tile)."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, stride))
    return [*starts, length - tile]


@torch.inference_mode()
def sliding_window_logits(model: nn.Module, image: torch.Tensor, tile: int, overlap: int) -> torch.Tensor:
    """Logits ``(1, C, H, W)`` of ``image`` (``1×3×H×W``, normalised) from ``tile``×``tile`` windows that
    overlap by ``overlap`` pixels, blended by ``window_weights``; a side smaller than the tile is predicted
    whole (padded to a multiple of 32)."""
    if not 0 <= overlap < tile:
        raise ValueError(f"--overlap {overlap} must be >= 0 and smaller than --tile {tile}")
    height, width = image.shape[-2:]
    stride = tile - overlap
    logits = weights = None
    for top in window_starts(height, tile, stride):
        for left in window_starts(width, tile, stride):
            window = image[..., top : top + tile, left : left + tile]
            part = predict(model, window)
            h, w = part.shape[-2:]
            weight = window_weights(h, overlap)[:, None] * window_weights(w, overlap)[None, :]
            weight = weight.to(part.device)
            if logits is None:
                logits = part.new_zeros(1, part.shape[1], height, width)
                weights = part.new_zeros(height, width)
            logits[..., top : top + h, left : left + w] += part * weight
            weights[top : top + h, left : left + w] += weight
    return logits / weights


@torch.inference_mode()
def predict_image(
    model: nn.Module,
    image: np.ndarray,
    info: ModelInfo,
    device: torch.device,
    *,
    tile: int | None = None,
    overlap: int = 0,
) -> np.ndarray:
    """Train ids ``H×W`` (uint8) for an ``H×W×3`` uint8 RGB ``image``: whole (padded to a multiple of 32),
    or in blended windows when ``tile`` is given and a side is larger."""
    mean = torch.tensor(info.mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(info.std, dtype=torch.float32).view(1, 3, 1, 1)
    tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 255.0
    tensor = ((tensor - mean) / std).to(device)
    if tile is not None and max(image.shape[:2]) > tile:
        logits = sliding_window_logits(model, tensor, tile, overlap)
    else:
        logits = predict(model, tensor)
    return logits.argmax(dim=1)[0].cpu().numpy().astype(np.uint8)


def prediction_picture(prediction: np.ndarray, info: ModelInfo, fmt: str) -> np.ndarray:
    """The output PNG's pixels: RGB colours (``color``), train ids (``trainid``) or Cityscapes label ids."""
    if fmt == "color":
        return colorize(prediction, info.palette)
    if fmt == "trainid":
        return prediction
    if info.label_ids is None:
        raise ValueError(CITYSCAPES_ONLY)
    return info.label_ids[prediction].astype(np.uint8)


def predict_folder(
    model: nn.Module,
    info: ModelInfo,
    images: str | os.PathLike,
    out: str | os.PathLike,
    *,
    fmt: str = "color",
    tile: int | None = None,
    overlap: int = 0,
    device: torch.device | None = None,
    overlays: bool = True,
    progress: bool = True,
) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Predict every image of the folder ``images`` into ``out/STEM.png`` (and ``out/overlays/STEM.png``).

    Returns:
        The files written, and ``(image, error)`` for each image that could not be predicted.
    """
    if fmt not in PREDICTION_FORMATS:
        raise ValueError(f"unknown format {fmt!r}; valid formats: {', '.join(PREDICTION_FORMATS)}")
    if fmt == "cityscapes" and info.label_ids is None:
        raise ValueError(CITYSCAPES_ONLY)
    device = device or torch.device("cpu")
    model = prediction_model(model, info.held_out or []).to(device).eval()
    files = image_files(images)
    if not files:
        raise FileNotFoundError(f"--images {images}: no image files ({', '.join(IMAGE_SUFFIXES)})")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if overlays:
        (out / OVERLAY_DIR).mkdir(exist_ok=True)
    written, failed = [], []
    for path in progress_bar(files, progress=progress, desc="predicting", unit="image"):
        try:
            image = read_image(path)
            prediction = predict_image(model, image, info, device, tile=tile, overlap=overlap)
        except (OSError, RuntimeError) as error:
            logger.error("%s: %s; skipped", path.name, error)
            failed.append((path, str(error)))
            continue
        target = out / f"{path.stem}.png"
        Image.fromarray(prediction_picture(prediction, info, fmt)).save(target)
        written.append(target)
        if overlays:
            Image.fromarray(blend(image, colorize(prediction, info.palette))).save(
                out / OVERLAY_DIR / f"{path.stem}.png"
            )
    return written, failed


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """``segloss predict``."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", required=True, help="run folder, its checkpoint.pt, or a model folder")
    parser.add_argument("--images", required=True, metavar="DIR", help="folder of images (any size)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument(
        "--format",
        choices=PREDICTION_FORMATS,
        default="color",
        help="output PNGs: palette colours, train ids, or Cityscapes label ids (default: color)",
    )
    parser.add_argument(
        "--tile", type=int, metavar="SIZE", help="sliding windows of SIZE×SIZE for larger images"
    )
    parser.add_argument("--overlap", type=int, default=64, metavar="PX", help="window overlap (default 64)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--no-overlays", action="store_true", help="do not write OUT/overlays/")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)
    if args.tile is not None and (args.tile <= 0 or args.tile % 32):
        parser.error(f"--tile {args.tile}: must be a positive multiple of 32")
    if args.tile is not None and not 0 <= args.overlap < args.tile:
        parser.error(f"--overlap {args.overlap}: must be >= 0 and smaller than --tile {args.tile}")
    try:
        model, info = load_model(args.model)
        written, failed = predict_folder(
            model,
            info,
            args.images,
            args.out,
            fmt=args.format,
            tile=args.tile,
            overlap=args.overlap,
            device=resolve_device(args.device),
            overlays=not args.no_overlays,
            progress=not args.no_progress,
        )
    except EXPECTED_ERRORS as error:
        sys.stderr.write(f"error: {error}\n")
        return 1
    sys.stdout.write(f"wrote {len(written)} predictions to {args.out}\n")
    if failed:
        names = ", ".join(path.name for path, _ in failed)
        sys.stderr.write(f"error: {len(failed)} image(s) could not be predicted: {names}\n")
        return 1
    return 0
