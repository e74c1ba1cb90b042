"""Image classification data (docs/image-level.md): MNIST, FashionMNIST, CIFAR-10/100 and SVHN from a local
root through torchvision's readers (MNIST and Fashion-MNIST also as published: gzip-compressed IDX files,
or MNIST's PNG folders; ``readers``), scikit-learn's 8×8 digits as the offline default, and long-tailed
training splits.

Images come as float tensors in [0, 1] (``C×H×W``); models normalise them (``build_classifier``'s mean/std).
Nothing is downloaded unless ``download=True``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Subset, TensorDataset

from .readers import idx_or_gz, read_idx, read_mnist_pngs

logger = logging.getLogger(__name__)

__all__ = [
    "IMAGE_DATASETS",
    "DatasetSpec",
    "ImageData",
    "build_image_data",
    "check_split_files",
    "count_labels",
    "dataset_targets",
    "load_split",
    "long_tail_factor",
    "long_tailed_class_sizes",
    "long_tailed_indices",
    "stack_images",
]

SPLITS = ("train", "test")
MNIST_FAMILY = ("mnist", "fashionmnist")  # also read as published (gzip-compressed IDX, MNIST's PNG folders)
DIGITS_TEST_SIZE = 450  # of scikit-learn's 1797 digits: a stratified split with random_state=0
_IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
_CIFAR10_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch", "batches.meta")


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset's image shape, class count, normalisation statistics and files under its root."""

    image_shape: tuple[int, int, int]
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    reader: str = ""  # the torchvision.datasets class; empty for the embedded digits
    files: tuple[str, ...] = ()  # relative to the root
    augmentation: tuple[str, ...] = ()  # "crop" (pad 4, random crop) and/or "flip" for training


IMAGE_DATASETS: dict[str, DatasetSpec] = {
    "digits": DatasetSpec((1, 8, 8), 10, (0.3052,), (0.3760,)),
    "mnist": DatasetSpec(
        (1, 28, 28), 10, (0.1307,), (0.3081,), "MNIST", tuple(f"MNIST/raw/{f}" for f in _IDX_FILES)
    ),
    "fashionmnist": DatasetSpec(
        (1, 28, 28),
        10,
        (0.2860,),
        (0.3530,),
        "FashionMNIST",
        tuple(f"FashionMNIST/raw/{f}" for f in _IDX_FILES),
    ),
    "cifar10": DatasetSpec(
        (3, 32, 32),
        10,
        (0.4914, 0.4822, 0.4465),
        (0.2470, 0.2435, 0.2616),
        "CIFAR10",
        tuple(f"cifar-10-batches-py/{f}" for f in _CIFAR10_FILES),
        ("crop", "flip"),
    ),
    "cifar100": DatasetSpec(
        (3, 32, 32),
        100,
        (0.5071, 0.4865, 0.4409),
        (0.2673, 0.2564, 0.2762),
        "CIFAR100",
        ("cifar-100-python/train", "cifar-100-python/test", "cifar-100-python/meta"),
        ("crop", "flip"),
    ),
    "svhn": DatasetSpec(
        (3, 32, 32),
        10,
        (0.4377, 0.4438, 0.4728),
        (0.1980, 0.2010, 0.1970),
        "SVHN",
        ("train_32x32.mat", "test_32x32.mat"),
        ("crop",),  # no flips for digits
    ),
}


@dataclass
class ImageData:
    """A dataset's training and test splits with what models, losses and evaluation need to know."""

    name: str
    train: Dataset
    test: Dataset
    classes: list[str]
    image_shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    class_counts: np.ndarray  # training samples per class (after any long-tailed subsampling)

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def _spec(name: str) -> DatasetSpec:
    if name not in IMAGE_DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(IMAGE_DATASETS)}")
    return IMAGE_DATASETS[name]


def _download_command(spec: DatasetSpec, root: Path) -> str:
    if spec.reader == "SVHN":  # one file per split
        call = f"[d.SVHN('{root}', split=s, download=True) for s in ('train', 'test')]"
    else:
        call = f"d.{spec.reader}('{root}', download=True)"
    return f'python -c "import torchvision.datasets as d; {call}"'


def _published_mnist_layout(name: str, spec: DatasetSpec, root: Path, split: str) -> bool:
    """Whether ``split`` of MNIST or Fashion-MNIST is under ``root`` as gzip-compressed IDX files or (MNIST)
    PNG folders."""
    if name not in MNIST_FAMILY:
        return False
    prefix = "train" if split == "train" else "t10k"
    raw = root / spec.reader / "raw"
    gz = all((raw / f"{prefix}-{kind}.gz").is_file() for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"))
    return gz or (name == "mnist" and (root / split).is_dir())


def _check_files(name: str, spec: DatasetSpec, root: Path, split: str) -> None:
    # torchvision's SVHN reads one file per split; the other readers check every file of the dataset
    needed = [f for f in spec.files if spec.reader != "SVHN" or f.startswith(split)]
    missing = [f for f in needed if not (root / f).is_file()]
    if missing and not _published_mnist_layout(name, spec, root, split):
        layout = "\n".join(f"  {root / f}" for f in spec.files)
        if name in MNIST_FAMILY:
            layout += "\nor the same files gzip-compressed (NAME.gz)"
        if name == "mnist":
            layout += f", or PNG folders {root}/{{train,test}}/<label>/<index>.png (rasbt/mnist-pngs)"
        if name == "fashionmnist":
            layout += (
                "\n(offline: Debian's package dataset-fashion-mnist installs the .gz files in "
                f"/usr/share/datasets/fashion-mnist/; link that folder as {root / spec.reader / 'raw'})"
            )
        raise FileNotFoundError(
            f"dataset {name!r} not found under {root}: missing {', '.join(missing)}.\n"
            f"expected layout (torchvision's {spec.reader}):\n{layout}\n"
            f"to download it (needs internet): set data.download=true, or run\n"
            f"  {_download_command(spec, root)}"
        )


def check_split_files(name: str, root: str | os.PathLike, split: str) -> None:
    """``FileNotFoundError`` showing the expected layout and how to download, unless the files that
    ``load_split(name, root, split)`` reads are under ``root`` (nothing to check for the embedded digits)."""
    spec = _spec(name)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if spec.files:
        _check_files(name, spec, Path(root).expanduser(), split)


def _transform(spec: DatasetSpec, augment: bool):
    from torchvision import transforms

    steps = []
    if augment and "crop" in spec.augmentation:
        steps.append(transforms.RandomCrop(spec.image_shape[1:], padding=4))
    if augment and "flip" in spec.augmentation:
        steps.append(transforms.RandomHorizontalFlip())
    return transforms.Compose([*steps, transforms.ToTensor()])


def _digits(split: str) -> tuple[Dataset, list[str]]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    train_index, test_index = train_test_split(
        np.arange(len(digits.target)), test_size=DIGITS_TEST_SIZE, stratify=digits.target, random_state=0
    )
    index = np.sort(train_index if split == "train" else test_index)
    images = torch.from_numpy(digits.images[index] / 16.0).float().unsqueeze(1)
    targets = torch.from_numpy(digits.target[index]).long()
    return TensorDataset(images, targets), [str(c) for c in digits.target_names]


def _published_mnist_files(name: str, spec: DatasetSpec, root: Path, split: str) -> Dataset | None:
    """MNIST or Fashion-MNIST as published, when torchvision's plain files are not there: the IDX files
    gzip-compressed (``RAW/*-ubyte.gz``, as Debian's ``dataset-fashion-mnist`` ships them) or, for MNIST, PNG
    folders (``ROOT/SPLIT/<label>/<index>.png``); ``None`` when neither is there."""
    if not _published_mnist_layout(name, spec, root, split):
        return None
    raw = root / spec.reader / "raw"
    prefix = "train" if split == "train" else "t10k"
    images = idx_or_gz(raw / f"{prefix}-images-idx3-ubyte")
    labels = idx_or_gz(raw / f"{prefix}-labels-idx1-ubyte")
    if images is not None and labels is not None:
        pixels, targets = read_idx(images), read_idx(labels).astype(np.int64)
    elif name == "mnist" and (root / split).is_dir():
        pixels, targets = read_mnist_pngs(root, split)
    else:
        return None
    if len(pixels) != len(targets):
        raise ValueError(f"{root}: {len(pixels)} {split} images but {len(targets)} labels")
    images_tensor = torch.from_numpy(np.ascontiguousarray(pixels)).float().div_(255).unsqueeze(1)
    return TensorDataset(images_tensor, torch.from_numpy(targets))


def load_split(
    name: str,
    root: str | os.PathLike | None = None,
    split: str = "train",
    *,
    download: bool = False,
    augment: bool = False,
) -> tuple[Dataset, list[str]]:
    """One split (``train`` or ``test``) of dataset ``name`` (a key of ``IMAGE_DATASETS``) and its class
    names.

    Files are read from ``root`` with torchvision's readers; a missing file is a ``FileNotFoundError``
    that shows the expected layout and how to download. ``augment`` adds the dataset's training
    augmentation (random crop with 4-pixel padding, horizontal flips for CIFAR).
    """
    spec = _spec(name)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if name == "digits":
        return _digits(split)
    if root is None:
        raise ValueError(f"dataset {name!r} needs a root folder (data.root)")
    root = Path(root).expanduser()
    from torchvision import datasets

    if not download:
        plain = all((root / f).is_file() for f in spec.files)
        published = None if plain else _published_mnist_files(name, spec, root, split)
        if published is not None:
            return published, [str(c) for c in getattr(datasets, spec.reader).classes]
        _check_files(name, spec, root, split)

    reader = getattr(datasets, spec.reader)
    train_or_split = {"split": split} if spec.reader == "SVHN" else {"train": split == "train"}
    transform = _transform(spec, augment)
    try:
        dataset = reader(str(root), **train_or_split, transform=transform, download=download)
    except RuntimeError as error:  # torchvision's "Dataset not found or corrupted"
        raise RuntimeError(
            f"torchvision's {spec.reader} reader rejected the files under {root} ({error}); they may be "
            f"corrupted or incomplete (checksums are checked): delete them and download again with\n"
            f"  {_download_command(spec, root)}"
        ) from error
    except OSError as error:  # the download itself failed (offline)
        raise OSError(f"downloading {name!r} to {root} failed: {error}") from error
    classes = [str(c) for c in getattr(dataset, "classes", range(spec.num_classes))]
    return dataset, classes


def dataset_targets(dataset: Dataset) -> np.ndarray:
    """The class index of every sample, in order, without loading images."""
    if isinstance(dataset, Subset):
        return dataset_targets(dataset.dataset)[np.asarray(dataset.indices)]
    if isinstance(dataset, ConcatDataset):
        return np.concatenate([dataset_targets(part) for part in dataset.datasets])
    if isinstance(dataset, TensorDataset):
        return dataset.tensors[1].numpy().astype(np.int64)
    for attribute in ("targets", "labels"):
        if hasattr(dataset, attribute):
            return np.asarray(getattr(dataset, attribute), dtype=np.int64)
    raise TypeError(f"cannot read the targets of a {type(dataset).__name__} (no targets or labels attribute)")


def count_labels(dataset: Dataset, num_classes: int) -> np.ndarray:
    """Samples per class (int64, length ``num_classes``): the ``s_j`` of HEM+'s margins."""
    targets = dataset_targets(dataset)
    if targets.size and (targets.min() < 0 or targets.max() >= num_classes):
        raise ValueError(f"targets outside [0, {num_classes}): {targets.min()}..{targets.max()}")
    return np.bincount(targets, minlength=num_classes).astype(np.int64)


def long_tail_factor(imbalance_ratio: float, num_classes: int) -> float:
    """The per-class size factor ``f = ρ^(-1/(n-1))``: class ``j`` keeps a fraction ``f^j`` of its samples."""
    if not imbalance_ratio >= 1:
        raise ValueError(f"imbalance_ratio must be >= 1, got {imbalance_ratio}")
    if num_classes < 2:
        raise ValueError(f"a long-tailed split needs at least 2 classes, got {num_classes}")
    return imbalance_ratio ** (-1.0 / (num_classes - 1))


def long_tailed_class_sizes(class_sizes: np.ndarray, imbalance_ratio: float) -> np.ndarray:
    """``⌊s_j · ρ^(-j/(n-1))⌋`` for every class ``j`` of sizes ``s_j`` (long-tailed CIFAR;
    docs/image-level.md)."""
    class_sizes = np.asarray(class_sizes, dtype=np.int64)
    n = len(class_sizes)
    long_tail_factor(imbalance_ratio, n)  # checks
    exponents = -np.arange(n) / (n - 1)
    # the epsilon keeps products that are whole numbers in exact arithmetic (5000 · 100^-1 = 50) whole
    return np.floor(class_sizes * float(imbalance_ratio) ** exponents + 1e-9).astype(np.int64)


def long_tailed_indices(targets: np.ndarray, num_classes: int, imbalance_ratio: float) -> np.ndarray:
    """Sorted indices of a long-tailed subset: class ``j`` keeps its first ``⌊s_j · ρ^(-j/(n-1))⌋``
    samples."""
    targets = np.asarray(targets)
    sizes = np.bincount(targets, minlength=num_classes)
    keep = long_tailed_class_sizes(sizes, imbalance_ratio)
    order = np.argsort(targets, kind="stable")  # grouped by class, dataset order within a class
    class_starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    rank_in_class = np.empty_like(order)
    rank_in_class[order] = np.arange(len(targets)) - np.repeat(class_starts, sizes)
    return np.flatnonzero(rank_in_class < keep[targets])


def build_image_data(
    name: str,
    root: str | os.PathLike | None = None,
    *,
    download: bool = False,
    augment: bool = True,
    imbalance_ratio: float | None = None,
) -> ImageData:
    """Training and test splits of dataset ``name``; ``imbalance_ratio`` (ρ, e.g. 100) makes the training
    split long-tailed, the test split stays as it is."""
    spec = _spec(name)
    train, classes = load_split(name, root, "train", download=download, augment=augment)
    test, _ = load_split(name, root, "test", download=download)
    if imbalance_ratio is not None:
        train = Subset(train, long_tailed_indices(dataset_targets(train), spec.num_classes, imbalance_ratio))
    counts = count_labels(train, spec.num_classes)
    logger.info(
        "%s: %d training images (per class %d..%d), %d test images",
        name,
        len(train),
        counts.min(),
        counts.max(),
        len(test),
    )
    return ImageData(name, train, test, classes, spec.image_shape, spec.mean, spec.std, counts)


def stack_images(dataset: Dataset, batch_size: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """All images ``(N, C, H, W)`` and targets ``(N,)`` of a dataset as two tensors."""
    if isinstance(dataset, TensorDataset):
        return dataset.tensors[0], dataset.tensors[1]
    if len(dataset) == 0:
        raise ValueError("the dataset is empty")
    # the loader's own generator leaves the global random state alone
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, generator=torch.Generator())
    images, targets = zip(*loader, strict=True)
    return torch.cat(images), torch.cat(targets).long()
