"""Training-pipeline throughput (images/s) for CamVid-sized images with the train preset.

Writes a temporary CamVid-layout tree of 360×480 PNGs (scenes from SyntheticScenes), then times a
DataLoader over ``CamVid`` with ``train_transform`` for 0 and 2 workers (after one warm-up batch,
median of interleaved repeats).
For context it also times reading alone (no transform) and generating synthetic scenes in memory.

    .venv/bin/python benchmarks/bench_data.py [--images 48] [--epochs 2] [--workers 0 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from segloss.segmentation.data import CamVid, SyntheticScenes
from segloss.segmentation.data.presets import IMAGENET_MEAN, IMAGENET_STD, seed_worker, train_transform

HEIGHT, WIDTH = 360, 480
CROP = (352, 480)  # a multiple of 32, as FPN needs
BATCH = 12  # the CamVid recipe's batch (docs/training.md)


def write_camvid_tree(root: Path, num_images: int) -> None:
    """``root/train/NAME.png`` + ``root/trainannot/NAME.png`` with CamVid's values (0-10, 11 void)."""
    (root / "train").mkdir(parents=True)
    (root / "trainannot").mkdir()
    scenes = SyntheticScenes("train", num_samples=num_images, size=(HEIGHT, WIDTH))
    for index in range(num_images):
        image, mask = scenes.load_sample(index)
        name = f"0001TP_{index:06d}.png"
        cv2.imwrite(str(root / "train" / name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(root / "trainannot" / name), np.where(mask == 8, 11, mask).astype(np.uint8))


def loader_throughput(dataset: torch.utils.data.Dataset, workers: int, epochs: int) -> float:
    """Images per second over ``epochs`` passes, not counting the first batch (worker start-up)."""
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=BATCH,
        shuffle=True,
        num_workers=workers,
        worker_init_fn=seed_worker if workers else None,
        persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(0),
    )
    images, start = 0, None
    for _ in range(epochs):
        for batch_images, batch_masks in loader:
            assert batch_masks.dtype == torch.int64
            if start is None:
                start = time.perf_counter()
                continue
            images += len(batch_images)
    return images / (time.perf_counter() - start)


def per_sample_ms(load, count: int) -> float:
    times = []
    for index in range(count):
        start = time.perf_counter()
        load(index)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=48, help="images in the temporary CamVid split")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per setting (median reported)")
    args = parser.parse_args()

    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "CamVid"
        write_camvid_tree(root, args.images)
        transform = train_transform(CROP, IMAGENET_MEAN, IMAGENET_STD)
        camvid = CamVid(root, "train", transform=transform)
        plain = CamVid(root, "train")
        rates: dict[int, list[float]] = {workers: [] for workers in args.workers}
        for _ in range(args.repeats):  # interleaved, so that load from other processes hits every setting
            for workers in args.workers:
                rates[workers].append(loader_throughput(camvid, workers, args.epochs))
        read_ms = per_sample_ms(plain.__getitem__, len(plain))
        augment_ms = per_sample_ms(camvid.__getitem__, len(camvid)) - read_ms

    synthetic_ms = {
        size: per_sample_ms(SyntheticScenes("train", num_samples=64, size=size).__getitem__, 64)
        for size in (256, (HEIGHT, WIDTH))
    }

    pipeline = f"CamVid {HEIGHT}×{WIDTH} PNG, train preset, crop {CROP[0]}×{CROP[1]}, batch {BATCH}"
    print(f"\n| pipeline | workers | images/s (median of {args.repeats}) |\n|---|---:|---:|")
    for workers, runs in rates.items():
        print(f"| {pipeline} | {workers} | {statistics.median(runs):.1f} |")
    print("\n| per sample (median, one process) | ms |\n|---|---:|")
    print(f"| read + decode a {HEIGHT}×{WIDTH} CamVid PNG pair | {read_ms:.2f} |")
    print(f"| train preset on it (scale, crop, flip, jitter, normalise, to tensor) | {augment_ms:.2f} |")
    for size, ms in synthetic_ms.items():
        label = f"{size}×{size}" if isinstance(size, int) else f"{size[0]}×{size[1]}"
        print(f"| SyntheticScenes sample {label} | {ms:.2f} |")


if __name__ == "__main__":
    main()
