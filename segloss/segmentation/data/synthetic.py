"""Procedural street scenes: the embedded default dataset (no files, deterministic from a seed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ._common import SegmentationDataset
from .registry import DatasetEntry, register_dataset

SPLITS = ("train", "val", "test")
# Bump when the generator changes, so that cached class counts of the old scenes are not reused.
GENERATOR_VERSION = 1

SKY, BUILDING, ROAD, SIDEWALK, VEGETATION, CAR, PEDESTRIAN, POLE, SIGN = range(9)
# Texture strength per class: pixel grain and low-frequency blotches (relative to the base colour).
FINE_GRAIN = np.array([0.02, 0.06, 0.10, 0.05, 0.12, 0.03, 0.05, 0.04, 0.02], dtype=np.float32)
BLOTCHES = np.array([0.03, 0.05, 0.04, 0.05, 0.30, 0.02, 0.05, 0.02, 0.01], dtype=np.float32)


def _rgb(*colours: list[int]) -> np.ndarray:
    return np.array(colours, dtype=np.float32)


# Base colours (RGB) several classes share, so that colour alone does not tell them apart.
GREYS = _rgb([90, 90, 95], [130, 130, 135], [165, 165, 170], [200, 198, 195])
SKY_COLOURS = _rgb([110, 150, 205], [165, 170, 180], [140, 170, 210])
BUILDING_COLOURS = np.vstack([GREYS, _rgb([150, 110, 85], [185, 160, 125], [120, 70, 60])])
VEGETATION_COLOURS = _rgb([70, 110, 45], [95, 125, 60], [120, 90, 50], [60, 85, 60])
CAR_COLOURS = np.vstack([GREYS, _rgb([30, 30, 35], [170, 30, 30], [40, 60, 150], [220, 220, 225])])
CLOTHES_COLOURS = np.vstack([GREYS, _rgb([40, 40, 60], [150, 40, 40], [60, 100, 160], [120, 90, 50])])
SIGN_COLOURS = _rgb([200, 30, 30], [40, 70, 170], [230, 200, 40], [220, 220, 220])
SKIN = (200.0, 160.0, 130.0)
TRUNK = (90.0, 70.0, 50.0)
CAR_WINDOW = (45.0, 55.0, 65.0)
TYRE = (20.0, 20.0, 20.0)


def _pick(rng: np.random.Generator, colours: np.ndarray, jitter: float = 12.0) -> tuple[float, ...]:
    return tuple((colours[rng.integers(len(colours))] + rng.normal(0.0, jitter, 3)).tolist())


def _box(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]).round().astype(np.int32)


def draw_scene(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Class mask (uint8) and flat base colours (float32 RGB) of one street scene."""
    h, w = height, width
    mask = np.full((h, w), SKY, dtype=np.uint8)
    colour = np.empty((h, w, 3), dtype=np.float32)
    colour[:] = _pick(rng, SKY_COLOURS)

    def fill(polygon: np.ndarray, label: int, rgb: tuple[float, ...]) -> None:
        cv2.fillPoly(mask, [polygon], label)
        cv2.fillPoly(colour, [polygon], rgb)

    def ellipse(
        centre: tuple[float, float], axes: tuple[float, float], label: int, rgb: tuple[float, ...]
    ) -> None:
        centre_px = (round(centre[0]), round(centre[1]))
        axes_px = (max(1, round(axes[0])), max(1, round(axes[1])))
        cv2.ellipse(mask, centre_px, axes_px, 0, 0, 360, label, -1)
        cv2.ellipse(colour, centre_px, axes_px, 0, 0, 360, rgb, -1)

    horizon = h * rng.uniform(0.38, 0.52)
    ground = h - horizon
    fill(_box(0, horizon, w, h), SIDEWALK, _pick(rng, GREYS[1:]))

    # The road narrows towards a vanishing point on the horizon; lane dashes are road too.
    vanishing_x = w * rng.uniform(0.35, 0.65)
    half_top, half_bottom = w * rng.uniform(0.02, 0.05), w * rng.uniform(0.35, 0.6)
    corners_x = vanishing_x + np.array([-half_top, half_top, half_bottom, -half_bottom])
    road = np.stack([corners_x, [horizon, horizon, h, h]], axis=1)
    fill(road.round().astype(np.int32), ROAD, _pick(rng, GREYS[:3]))
    dash = _pick(rng, GREYS[3:], jitter=5.0)
    for start in np.arange(rng.uniform(0.0, 0.2), 1.0, 0.2):
        y0, y1 = horizon + ground * start, horizon + ground * min(start + 0.1, 1.0)
        thickness = max(1, round(w * 0.012 * (start + 0.1)))
        cv2.line(colour, (round(vanishing_x), round(y0)), (round(vanishing_x), round(y1)), dash, thickness)

    def road_half_width(y: float) -> float:
        return half_top + (half_bottom - half_top) * (y - horizon) / ground

    # A row of buildings on the horizon, with gaps of sky.
    x = -w * rng.uniform(0.0, 0.1)
    while x < w:
        building_width = w * rng.uniform(0.1, 0.3)
        if rng.random() < 0.8:
            top = max(0.0, horizon - h * rng.uniform(0.12, 0.42))
            fill(_box(x, top, x + building_width, horizon + 1), BUILDING, _pick(rng, BUILDING_COLOURS))
        x += building_width

    for _ in range(rng.integers(0, 4)):
        crown_x, trunk_bottom = w * rng.uniform(0.0, 1.0), horizon + ground * rng.uniform(0.0, 0.15)
        crown_axes = (w * rng.uniform(0.04, 0.11), h * rng.uniform(0.06, 0.14))
        crown_y = trunk_bottom - h * rng.uniform(0.12, 0.22)
        fill(_box(crown_x - w * 0.008, crown_y, crown_x + w * 0.008, trunk_bottom), VEGETATION, TRUNK)
        ellipse((crown_x, crown_y), crown_axes, VEGETATION, _pick(rng, VEGETATION_COLOURS))

    # Poles beside the road, some carrying a sign; size grows with nearness.
    for _ in range(rng.integers(1, 4)):
        depth = rng.uniform(0.05, 0.7)
        base = horizon + ground * depth
        side = rng.choice([-1.0, 1.0])
        pole_x = vanishing_x + side * (road_half_width(base) + w * rng.uniform(0.01, 0.05))
        half_width = max(0.5, w * 0.004 * (0.5 + depth))
        top = base - h * rng.uniform(0.25, 0.4) * (0.5 + depth)
        fill(_box(pole_x - half_width, top, pole_x + half_width, base), POLE, _pick(rng, GREYS))
        if rng.random() < 0.7:
            radius = max(1.0, w * 0.018 * (0.5 + depth))
            sign_colour = _pick(rng, SIGN_COLOURS, jitter=8.0)
            if rng.random() < 0.5:
                ellipse((pole_x, top), (radius, radius), SIGN, sign_colour)
            else:
                fill(_box(pole_x - radius, top - radius, pole_x + radius, top + radius), SIGN, sign_colour)

    for _ in range(rng.integers(0, 4)):
        depth = rng.uniform(0.1, 0.9)
        foot = horizon + ground * depth
        person_height = h * 0.3 * depth + 4
        side = rng.choice([-1.0, 1.0])
        person_x = vanishing_x + side * (road_half_width(foot) + w * rng.uniform(0.02, 0.15))
        body = (person_x, foot - 0.4 * person_height), (0.14 * person_height, 0.4 * person_height)
        ellipse(*body, PEDESTRIAN, _pick(rng, CLOTHES_COLOURS))
        head = (person_x, foot - 0.88 * person_height), (0.09 * person_height, 0.1 * person_height)
        ellipse(*head, PEDESTRIAN, SKIN)

    # Cars on the road, far ones first so that near ones occlude them.
    for depth in np.sort(rng.uniform(0.15, 1.0, size=rng.integers(1, 5))):
        bottom = horizon + ground * depth
        car_width = w * 0.3 * depth + 4
        car_x = vanishing_x + rng.uniform(-0.6, 0.6) * road_half_width(bottom)
        body_top, roof = bottom - 0.28 * car_width, bottom - 0.45 * car_width
        half = car_width / 2
        fill(_box(car_x - half, body_top, car_x + half, bottom), CAR, _pick(rng, CAR_COLOURS))
        fill(_box(car_x - 0.6 * half, roof, car_x + 0.6 * half, body_top), CAR, CAR_WINDOW)
        for wheel_x in (car_x - 0.6 * half, car_x + 0.6 * half):
            ellipse((wheel_x, bottom - 0.03 * car_width), (0.09 * car_width, 0.06 * car_width), CAR, TYRE)
    return mask, colour


def render_scene(rng: np.random.Generator, mask: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """The uint8 RGB image: base colours with per-class textures, window and paving patterns, and noise."""
    h, w = mask.shape
    grain = rng.standard_normal((h, w), dtype=np.float32)
    blotches = cv2.resize(rng.standard_normal((h // 8 + 2, w // 8 + 2), dtype=np.float32), (w, h))
    gain = 1.0 + np.take(FINE_GRAIN, mask) * grain + np.take(BLOTCHES, mask) * blotches

    rows, cols = np.arange(h)[:, None], np.arange(w)[None, :]
    window_h, window_w = rng.integers(6, 14), rng.integers(6, 14)
    window_rows = (rows + rng.integers(window_h)) % window_h < window_h // 2
    windows = window_rows & (cols % window_w < window_w // 2)
    gain[windows & (mask == BUILDING)] *= rng.uniform(0.45, 0.7)
    tile = rng.integers(8, 20)
    joints = (rows % tile == 0) | (cols % tile == 0)
    gain[joints & (mask == SIDEWALK)] *= 0.75
    gain *= np.float32(1.0) + np.float32(rng.uniform(-0.15, 0.15)) * (rows / h).astype(np.float32)

    gain *= np.float32(rng.uniform(0.8, 1.2))
    image = colour * gain[..., None]
    image += rng.integers(-10, 11, (h, w, 3), dtype=np.int8)
    return np.clip(image, 0, 255, out=image).astype(np.uint8)


class SyntheticScenes(SegmentationDataset):
    """Street-like scenes drawn on the fly, deterministic from ``(seed, split, index)``; needs no files.

    Nine strongly imbalanced classes (road, building and sky cover most pixels; poles, pedestrians and
    signs well under 1 %), with per-class textures, shared colours and noise. The splits ``train``,
    ``val`` and ``test`` are independent streams of the same seed. ``size`` is an int or ``(H, W)``.
    ``image_files`` holds pseudo file names (``synthetic_train_00000`` …) for naming outputs.
    """

    classes = ("sky", "building", "road", "sidewalk", "vegetation", "car", "pedestrian", "pole", "sign")
    palette = np.array(
        [
            [70, 130, 180],
            [70, 70, 70],
            [128, 64, 128],
            [244, 35, 232],
            [107, 142, 35],
            [0, 0, 142],
            [220, 20, 60],
            [153, 153, 153],
            [220, 220, 0],
        ],
        dtype=np.uint8,
    )

    def __init__(
        self,
        split: str = "train",
        num_samples: int = 256,
        size: int | tuple[int, int] = 256,
        seed: int = 0,
        transform: Any = None,
    ):
        if split not in SPLITS:
            raise ValueError(
                f"unknown split {split!r} for SyntheticScenes; valid splits: {', '.join(SPLITS)}"
            )
        height, width = (size, size) if isinstance(size, int) else tuple(size)
        if not (isinstance(height, int) and isinstance(width, int) and height >= 32 and width >= 32):
            raise ValueError(f"size must be an int or (H, W) of ints >= 32, got {size!r}")
        if not (isinstance(num_samples, int) and num_samples > 0):
            raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")
        if not (isinstance(seed, int) and seed >= 0):
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        super().__init__(split, transform)
        self.num_samples, self.size, self.seed = num_samples, (height, width), seed
        self.image_files = [Path(f"synthetic_{split}_{i:05d}") for i in range(num_samples)]

    def _generators(self, index: int) -> list[np.random.Generator]:
        sequence = np.random.SeedSequence(self.seed, spawn_key=(SPLITS.index(self.split), index))
        return [np.random.default_rng(child) for child in sequence.spawn(2)]

    def load_mask(self, index: int) -> np.ndarray:
        layout_rng, _ = self._generators(index)
        return draw_scene(layout_rng, *self.size)[0]

    def load_sample(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        layout_rng, texture_rng = self._generators(index)
        mask, colour = draw_scene(layout_rng, *self.size)
        return render_scene(texture_rng, mask, colour), mask

    def load_image(self, index: int) -> np.ndarray:
        return self.load_sample(index)[0]

    def fingerprint(self) -> dict[str, Any]:
        return {
            "dataset": type(self).__name__,
            "generator_version": GENERATOR_VERSION,
            "split": self.split,
            "num_samples": self.num_samples,
            "size": list(self.size),
            "seed": self.seed,
        }

    def __repr__(self) -> str:
        return (
            f"SyntheticScenes(split={self.split!r}, num_samples={self.num_samples}, size={self.size}, "
            f"seed={self.seed})"
        )


def _build_synthetic(
    reader: type[SegmentationDataset], root: Path | None, split: str, transform: Any, **options: Any
) -> SegmentationDataset:
    return reader(split, transform=transform, **options)


def _synthetic_options(data: Any, split: str) -> dict[str, Any]:
    size = data.size if isinstance(data.size, int) else tuple(data.size)
    samples = data.num_train if split == data.train_split else data.num_eval
    return {"num_samples": samples, "size": size, "seed": data.seed}


register_dataset(
    DatasetEntry(
        "synthetic",
        SyntheticScenes,
        build=_build_synthetic,
        config_options=_synthetic_options,
        needs_root=False,
    )
)
