"""Shared pieces of the training/evaluation tests (segmentation and classification): tiny run settings, the
installed ``segloss`` command, a kill in the middle of a run, on-disk fixtures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
# The recipes that ship with the package.
CONFIGS = REPO / "configs"
TINY_ENCODER = "tu-mobilenetv3_small_100"


def tiny_overrides(out_dir: Path, **settings: object) -> list[str]:
    """Overrides for a run of a few seconds on synthetic 64×64 scenes; ``settings`` replace or add keys
    (``train__epochs=3`` → ``train.epochs=3``)."""
    values: dict[str, object] = {
        "model.encoder": TINY_ENCODER,
        "model.encoder_weights": "null",
        "data.size": 64,
        "data.num_train": 16,
        "data.num_eval": 4,
        "train.crop_size": 64,
        "train.batch_size": 4,
        "train.epochs": 2,
        "train.num_workers": 0,
        "train.progress": "false",
        "eval.num_overlays": 2,
        "train.out_dir": out_dir,
    }
    values.update({key.replace("__", "."): value for key, value in settings.items()})
    return [f"{key}={value}" for key, value in values.items()]


def cli_env(cache_dir: Path) -> dict[str, str]:
    """The environment of a CLI subprocess: the class-count cache in a temporary folder, one CPU thread
    (like ``one_thread``, so that runs in and out of the test process compute alike)."""
    return {**os.environ, "SEGLOSS_CACHE": str(cache_dir), "OMP_NUM_THREADS": "1"}


def segloss_command() -> list[str]:
    """The installed ``segloss`` command: the console script next to this interpreter (``pip install -e .``
    puts it there), else ``python -m segloss`` (the same entry point) when the package is only on the
    path."""
    script = Path(sys.executable).with_name("segloss")
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "segloss"]


def run_cli(args: list[str], cache_dir: Path, **kwargs) -> subprocess.CompletedProcess:
    """Run ``segloss ARGS`` in a subprocess (from a temporary folder: nothing of the checkout is used)."""
    kwargs.setdefault("cwd", cache_dir)
    return subprocess.run(
        [*segloss_command(), *args],
        env=cli_env(cache_dir),
        capture_output=True,
        text=True,
        timeout=300,
        **kwargs,
    )


def train_and_kill(args: list[str], run_dir: Path, cache_dir: Path) -> int:
    """Start ``segloss train args`` in a subprocess, SIGKILL it as soon as ``run_dir/checkpoint.pt`` appears
    and return that checkpoint's epoch (after checking that the run was still going)."""
    from segloss.runner.checkpoint import load_checkpoint

    process = subprocess.Popen(
        [*segloss_command(), "train", *args],
        env=cli_env(cache_dir),
        cwd=cache_dir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    checkpoint = run_dir / "checkpoint.pt"
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    return load_checkpoint(checkpoint)["epoch"]


def read_metrics(run_dir: Path) -> list[dict]:
    """The epoch records of ``run_dir/metrics.jsonl``."""
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def write_folder_dataset(root: Path, split: str, masks: list[np.ndarray], seed: int = 0) -> None:
    """``root/images/{split}/NAME.png`` (random RGB) and ``root/masks/{split}/NAME.png`` (``masks``)."""
    rng = np.random.default_rng(seed)
    (root / "images" / split).mkdir(parents=True, exist_ok=True)
    (root / "masks" / split).mkdir(parents=True, exist_ok=True)
    for index, mask in enumerate(masks):
        image = rng.integers(0, 256, (*mask.shape, 3), dtype=np.uint8)
        Image.fromarray(image).save(root / "images" / split / f"img{index:02d}.png")
        Image.fromarray(mask.astype(np.uint8), mode="L").save(root / "masks" / split / f"img{index:02d}.png")
