"""Tiny files in the real on-disk formats of torchvision's MNIST and CIFAR-10 readers."""

import os
import pickle
import struct
from pathlib import Path

import numpy as np

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def write_idx(path: Path, array: np.ndarray) -> None:
    """An uncompressed MNIST idx file of unsigned bytes."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def write_mnist(root: Path, folder: str = "MNIST", train: int = 12, test: int = 5, seed: int = 0) -> None:
    """``root/folder/raw/`` with the four idx files; labels cycle through 0..9."""
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for prefix, count in (("train", train), ("t10k", test)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (count, 28, 28)))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(count) % 10)


def write_cifar10(root: Path, train_labels: np.ndarray, test: int = 10, seed: int = 0) -> None:
    """``root/cifar-10-batches-py/`` with five training batches, the test batch and the meta file."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(seed)
    for index, part in enumerate(np.array_split(train_labels, 5), start=1):
        batch = {"data": rng.integers(0, 256, (len(part), 3072), dtype=np.uint8), "labels": part.tolist()}
        (folder / f"data_batch_{index}").write_bytes(pickle.dumps(batch))
    batch = {
        "data": rng.integers(0, 256, (test, 3072), dtype=np.uint8),
        "labels": [i % 10 for i in range(test)],
    }
    (folder / "test_batch").write_bytes(pickle.dumps(batch))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": CIFAR10_CLASSES}))


def skip_cifar_checksums(monkeypatch) -> None:
    """torchvision checks the md5 sums of the real CIFAR files; fixtures only have the real format."""
    monkeypatch.setattr(
        "torchvision.datasets.cifar.check_integrity", lambda path, md5=None: os.path.isfile(path)
    )
