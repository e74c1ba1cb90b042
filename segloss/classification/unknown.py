"""Unknown-class image sets (docs/image-level.md): four synthetic sets, deterministic from a seed for any
image shape, and real datasets from a local root.

Every synthetic set is a float32 tensor ``(N, C, H, W)`` in [0, 1], like the known data.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

from .data import IMAGE_DATASETS, check_split_files, load_split
from .readers import SIDE, UNKNOWN_SET_FILES, missing_unknown_set_file, read_unknown_set

__all__ = [
    "DEFAULT_UNKNOWN_SAMPLES",
    "SYNTHETIC_UNKNOWN_SETS",
    "blobs",
    "build_unknown_sets",
    "check_image_shape",
    "check_unknown_sets",
    "permuted_pixels",
    "phase_randomised",
    "real_unknown_set",
    "synthetic_unknown_set",
    "uniform_noise",
]

DEFAULT_UNKNOWN_SAMPLES = 10_000
BLOB_PROBABILITY = 0.7
BLOB_SIGMA = 1.5
BLOB_CUTOFF = 0.75
_FFT_CHUNK = 1024

ImageShape = Sequence[int]


def _check_shape(image_shape: ImageShape) -> tuple[int, int, int]:
    shape = tuple(image_shape)
    if len(shape) != 3 or not all(isinstance(s, int) and s > 0 for s in shape):
        raise ValueError(f"image_shape must be (C, H, W) with positive ints, got {image_shape!r}")
    return shape


def _check_images(images: torch.Tensor) -> np.ndarray:
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or not images.is_floating_point():
        raise ValueError(f"images must be a float tensor (N, C, H, W), got {_describe(images)}")
    if images.shape[0] == 0:
        raise ValueError("images is empty")
    low, high = images.min().item(), images.max().item()
    if low < 0 or high > 1:
        raise ValueError(f"images must be in [0, 1] (not normalised), got values in [{low:.3g}, {high:.3g}]")
    return images.detach().cpu().numpy().astype(np.float32, copy=False)


def _describe(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"shape {tuple(value.shape)}, dtype {value.dtype}"
    return type(value).__name__


def _to_tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


def blobs(num_samples: int, image_shape: ImageShape, *, seed: int = 0) -> torch.Tensor:
    """Bernoulli(0.7) pixels, Gaussian-blurred (σ = 1.5, per channel), values below 0.75 set to 0."""
    from scipy.ndimage import gaussian_filter

    shape = (num_samples, *_check_shape(image_shape))
    pixels = np.random.default_rng(seed).binomial(1, BLOB_PROBABILITY, size=shape).astype(np.float32)
    blurred = gaussian_filter(pixels, sigma=(0, 0, BLOB_SIGMA, BLOB_SIGMA))
    blurred[blurred < BLOB_CUTOFF] = 0
    return _to_tensor(blurred.clip(0, 1))


def uniform_noise(num_samples: int, image_shape: ImageShape, *, seed: int = 0) -> torch.Tensor:
    """Independent uniform pixels in [0, 1)."""
    shape = (num_samples, *_check_shape(image_shape))
    return _to_tensor(np.random.default_rng(seed).random(shape, dtype=np.float32))


def permuted_pixels(images: torch.Tensor, *, seed: int = 0) -> torch.Tensor:
    """Each image with its pixel positions randomly permuted (its own permutation, shared by its channels)."""
    array = _check_images(images)
    n, c, h, w = array.shape
    order = np.argsort(np.random.default_rng(seed).random((n, h * w)), axis=1)
    return _to_tensor(
        np.take_along_axis(array.reshape(n, c, h * w), order[:, None, :], axis=2).reshape(n, c, h, w)
    )


def phase_randomised(images: torch.Tensor, *, seed: int = 0) -> torch.Tensor:
    """Each image with its Fourier amplitude spectrum kept and a random phase added, shared by its channels;
    real part, clipped to [0, 1].

    The phase is that of a real white-noise image's spectrum (uniform and antisymmetric, 0 at the mean), so
    the result is real up to rounding and keeps the amplitude spectrum exactly until clipping.
    """
    array = _check_images(images)
    n, _, h, w = array.shape
    rng = np.random.default_rng(seed)
    randomised = np.empty_like(array)
    for start in range(0, n, _FFT_CHUNK):  # bounds the memory of the complex spectra
        chunk = array[start : start + _FFT_CHUNK]
        noise = rng.random((len(chunk), 1, h, w), dtype=np.float32)  # positive mean: phase 0 at frequency 0
        rotation = np.exp(1j * np.angle(np.fft.fft2(noise))).astype(np.complex64)
        randomised[start : start + _FFT_CHUNK] = np.fft.ifft2(np.fft.fft2(chunk) * rotation).real
    return _to_tensor(randomised.clip(0, 1))


SYNTHETIC_UNKNOWN_SETS = ("blobs", "uniform", "permuted", "phase")


def synthetic_unknown_set(
    name: str, known_images: torch.Tensor, *, num_samples: int = DEFAULT_UNKNOWN_SAMPLES, seed: int = 0
) -> torch.Tensor:
    """``num_samples`` images of the synthetic unknown set ``name`` shaped like ``known_images`` (the known
    test images, ``(N, C, H, W)`` in [0, 1]); ``permuted`` and ``phase`` transform them in turn, repeating
    them when ``num_samples`` exceeds N."""
    if name not in SYNTHETIC_UNKNOWN_SETS:
        raise ValueError(f"unknown synthetic set {name!r}; valid names: {', '.join(SYNTHETIC_UNKNOWN_SETS)}")
    if num_samples < 1:
        raise ValueError(f"num_samples must be positive, got {num_samples}")
    _check_images(known_images)
    if name == "blobs":
        return blobs(num_samples, known_images.shape[1:], seed=seed)
    if name == "uniform":
        return uniform_noise(num_samples, known_images.shape[1:], seed=seed)
    source = known_images[torch.arange(num_samples) % known_images.shape[0]]
    transform = permuted_pixels if name == "permuted" else phase_randomised
    return transform(source, seed=seed)


def check_image_shape(shape: ImageShape, expected: ImageShape, what: str) -> None:
    """``ValueError`` naming ``what`` when its image shape differs from the known data's."""
    if tuple(shape) != tuple(expected):
        same = [name for name, spec in IMAGE_DATASETS.items() if spec.image_shape == tuple(expected)]
        raise ValueError(
            f"{what} has images of shape {tuple(shape)} but the known data has {tuple(expected)} (C, H, W); "
            f"datasets of that shape: {', '.join(same) or 'none'}"
        )


def _check_real_unknown_set(
    name: str, root: str | os.PathLike | None, image_shape: ImageShape, download: bool
) -> None:
    if name not in IMAGE_DATASETS and name not in UNKNOWN_SET_FILES:
        valid = ", ".join([*SYNTHETIC_UNKNOWN_SETS, *IMAGE_DATASETS, *UNKNOWN_SET_FILES])
        raise ValueError(f"unknown unknown-set name {name!r}; valid names: {valid}")
    shape = IMAGE_DATASETS[name].image_shape if name in IMAGE_DATASETS else (1, SIDE, SIDE)
    check_image_shape(shape, image_shape, f"unknown set {name!r}")
    if root is None:
        raise ValueError(f"unknown set {name!r} is read from a root folder (eval.unknown_root); none given")
    if name in UNKNOWN_SET_FILES:
        missing = missing_unknown_set_file(name, root)
        if missing is not None:
            source = UNKNOWN_SET_FILES[name][1]
            raise FileNotFoundError(f"unknown set {name!r}: {missing} not found; fetch it from {source}")
    elif not download:
        check_split_files(name, root, "test")


def check_unknown_sets(
    names: Sequence[str],
    image_shape: ImageShape,
    *,
    root: str | os.PathLike | None = None,
    download: bool = False,
) -> None:
    """What ``build_unknown_sets`` would fail on, without building anything: an unknown name, or a real
    dataset with another image shape than the known data's or (unless ``download``) without its test files
    under ``root``."""
    for name in names:
        if name not in SYNTHETIC_UNKNOWN_SETS:
            _check_real_unknown_set(name, root, image_shape, download)


def real_unknown_set(
    name: str, root: str | os.PathLike | None, image_shape: ImageShape, *, download: bool = False
) -> Dataset:
    """The test split of dataset ``name`` (e.g. CIFAR-100 against CIFAR-10), or an unknown-only set of
    ``readers.UNKNOWN_SET_FILES`` (KMNIST, Omniglot, notMNIST), as an unknown set; its images must have
    ``image_shape``, the known data's."""
    _check_real_unknown_set(name, root, image_shape, download)
    if name in UNKNOWN_SET_FILES:
        images = torch.from_numpy(read_unknown_set(name, root)).float().div_(255).unsqueeze(1)
        return TensorDataset(images)
    dataset, _ = load_split(name, root, "test", download=download)
    return dataset


def build_unknown_sets(
    names: Sequence[str],
    known_images: torch.Tensor,
    *,
    root: str | os.PathLike | None = None,
    num_samples: int = DEFAULT_UNKNOWN_SAMPLES,
    seed: int = 0,
    download: bool = False,
) -> dict[str, Dataset]:
    """Unknown sets by name: synthetic ones (``SYNTHETIC_UNKNOWN_SETS``, as ``TensorDataset`` of images) or
    the test split of a dataset under ``root``."""
    sets: dict[str, Dataset] = {}
    for name in names:
        if name in SYNTHETIC_UNKNOWN_SETS:
            images = synthetic_unknown_set(name, known_images, num_samples=num_samples, seed=seed)
            sets[name] = TensorDataset(images)
        else:
            sets[name] = real_unknown_set(name, root, known_images.shape[1:], download=download)
    return sets
