"""Readers of the MNIST-family files as they are published, without torchvision's download layout: IDX
files (plain or ``.gz``), MNIST as PNG folders (``train/<label>/<index>.png``), and the unknown sets of the
paper's MNIST experiments: KMNIST's ``.npz`` test set, Omniglot's zips (or their unpacked folders) and
notMNIST's IDX test set (datasets/mnist.md says where to get each offline).

Every reader returns ``uint8`` images ``(N, 28, 28)``, white strokes on black like MNIST; a missing file is
a ``FileNotFoundError`` naming it and where it comes from, a malformed one a ``ValueError`` naming it.
"""

from __future__ import annotations

import gzip
import io
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

__all__ = [
    "UNKNOWN_SET_FILES",
    "read_idx",
    "read_kmnist_test",
    "read_mnist_pngs",
    "read_notmnist_test",
    "read_omniglot",
    "read_unknown_set",
    "missing_unknown_set_file",
]

SIDE = 28
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
OMNIGLOT_PARTS = ("images_background_small1", "images_background_small2")

#: The real unknown sets only read for rejection, by ``eval.unknown_sets`` name: their files under
#: ``eval.unknown_root`` and where they come from.
UNKNOWN_SET_FILES: dict[str, tuple[tuple[str, ...], str]] = {
    "kmnist": (
        ("KMNIST/kmnist-test-imgs.npz",),
        "the public repository Vasu-Shrivastava/Kuzushiji-MNIST-Classification (kmnist-test-imgs.npz)",
    ),
    "omniglot": (
        tuple(f"omniglot/{part}.zip" for part in OMNIGLOT_PARTS),
        "the public repository brendenlake/omniglot, python/images_background_small1.zip and small2.zip "
        "(zips or their unpacked folders)",
    ),
    "notmnist": (
        ("notMNIST/t10k-images-idx3-ubyte.gz",),
        "the public repository davidflanagan/notMNIST-to-MNIST (t10k-images-idx3-ubyte.gz)",
    ),
}


def _open(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
        return gzip.decompress(raw) if path.suffix == ".gz" else raw
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    except (OSError, EOFError) as error:
        raise ValueError(f"cannot read {path}: {error}") from error


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """An IDX file (the MNIST format), plain or gzip-compressed (``.gz``), as a numpy array.

    Args:
        path: the file.

    Returns:
        The array with the file's shape and dtype (``uint8`` for MNIST images and labels).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not an IDX file, or a size that does not match its header.
    """
    path = Path(path)
    data = _open(path)
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] not in _IDX_TYPES or data[3] == 0:
        raise ValueError(f"{path} is not an IDX file (magic number {data[:4].hex() or 'missing'})")
    dims = data[3]
    header = 4 + 4 * dims
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    dtype = np.dtype(_IDX_TYPES[data[2]])
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(data) != expected:
        raise ValueError(
            f"{path}: the header says {shape} ({expected} bytes), the file has {len(data)} bytes"
        )
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _decode(data: bytes, name: str) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as image:
            gray = image.convert("L")
            if gray.size != (SIDE, SIDE):
                gray = gray.resize((SIDE, SIDE), Image.BOX)  # area averaging: strokes thin smoothly
            return np.asarray(gray, dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError) as error:
        raise ValueError(f"cannot read image {name}: {error}") from error


def read_mnist_pngs(root: str | os.PathLike, split: str) -> tuple[np.ndarray, np.ndarray]:
    """MNIST as PNG folders, ``ROOT/SPLIT/<label>/<index>.png`` (the layout of the public repository
    rasbt/mnist-pngs), in the original order (by ``index``).

    Args:
        root: the folder holding ``train/`` and ``test/``.
        split: ``train`` or ``test``.

    Returns:
        Images ``(N, 28, 28)`` uint8 and labels ``(N,)`` int64.
    """
    folder = Path(root) / split
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder (expected {folder}/<label>/<index>.png)")
    entries = []
    for label_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        if not label_dir.name.isdigit():
            raise ValueError(f"{label_dir}: label folders are named by the digit, got {label_dir.name!r}")
        for png in label_dir.glob("*.png"):
            if not png.stem.isdigit():
                raise ValueError(f"{png}: image files are named by their index in the split")
            entries.append((int(png.stem), int(label_dir.name), png))
    if not entries:
        raise FileNotFoundError(f"{folder}: no <label>/<index>.png files")
    entries.sort()
    images = np.stack([_decode(path.read_bytes(), str(path)) for _, _, path in entries])
    labels = np.array([label for _, label, _ in entries], dtype=np.int64)
    return images, labels


def read_kmnist_test(folder: str | os.PathLike) -> np.ndarray:
    """KMNIST's test images, ``FOLDER/kmnist-test-imgs.npz`` (array ``arr_0``, ``(10000, 28, 28)``)."""
    path = Path(folder) / "kmnist-test-imgs.npz"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        with np.load(path) as archive:
            images = archive[archive.files[0]]
    except (OSError, ValueError, IndexError) as error:
        raise ValueError(f"cannot read {path}: {error}") from error
    if images.ndim != 3 or images.shape[1:] != (SIDE, SIDE):
        raise ValueError(f"{path}: expected images of shape (N, 28, 28), got {images.shape}")
    return images.astype(np.uint8)


def read_notmnist_test(folder: str | os.PathLike) -> np.ndarray:
    """notMNIST's test images, ``FOLDER/t10k-images-idx3-ubyte.gz`` (IDX; letters A–J)."""
    images = read_idx(Path(folder) / "t10k-images-idx3-ubyte.gz")
    if images.ndim != 3 or images.shape[1:] != (SIDE, SIDE):
        raise ValueError(f"{folder}: expected images of shape (N, 28, 28), got {images.shape}")
    return images.astype(np.uint8)


def _omniglot_files(folder: Path) -> Iterator[tuple[str, bytes]]:
    """``(name, PNG bytes)`` of every image of the two background parts, zipped or unpacked, in name
    order."""
    for part in OMNIGLOT_PARTS:
        unpacked, archive = folder / part, folder / f"{part}.zip"
        if unpacked.is_dir():
            for path in sorted(unpacked.rglob("*.png")):
                yield str(path), path.read_bytes()
        elif archive.is_file():
            try:
                with zipfile.ZipFile(archive) as zipped:
                    for name in sorted(n for n in zipped.namelist() if n.endswith(".png")):
                        yield f"{archive}:{name}", zipped.read(name)
            except zipfile.BadZipFile as error:
                raise ValueError(f"cannot read {archive}: {error}") from error
        else:
            raise FileNotFoundError(f"{archive} (or the unpacked folder {unpacked}): no such file")


def read_omniglot(folder: str | os.PathLike) -> np.ndarray:
    """Omniglot's background images (the ``small1`` and ``small2`` parts), resized from 105×105 to 28×28
    by area averaging and inverted to white strokes on black, like MNIST.

    Args:
        folder: holds ``images_background_small1.zip`` and ``images_background_small2.zip`` (or the
            folders they unpack to).

    Returns:
        Images ``(N, 28, 28)`` uint8 (5,840 for the two parts).
    """
    images = [255 - _decode(data, name) for name, data in _omniglot_files(Path(folder))]
    if not images:
        raise FileNotFoundError(f"{folder}: the Omniglot parts hold no .png images")
    return np.stack(images)


def missing_unknown_set_file(name: str, root: str | os.PathLike) -> Path | None:
    """The first file of the unknown set ``name`` (a key of ``UNKNOWN_SET_FILES``) missing under ``root``, or
    ``None`` when its reader finds them all (Omniglot's parts zipped or unpacked)."""
    for file in UNKNOWN_SET_FILES[name][0]:
        path = Path(root) / file
        if not (path.is_file() or (name == "omniglot" and path.with_suffix("").is_dir())):
            return path
    return None


def read_unknown_set(name: str, root: str | os.PathLike) -> np.ndarray:
    """The images of the unknown set ``name`` (a key of ``UNKNOWN_SET_FILES``) under ``root`` (laid out as
    fetched: ``KMNIST/``, ``omniglot/``, ``notMNIST/``); a missing file names what to fetch."""
    files, source = UNKNOWN_SET_FILES[name]
    folder = Path(root) / Path(files[0]).parent
    try:
        reader = {"kmnist": read_kmnist_test, "omniglot": read_omniglot, "notmnist": read_notmnist_test}[name]
        return reader(folder)
    except FileNotFoundError as error:
        expected = ", ".join(str(Path(root) / f) for f in files)
        raise FileNotFoundError(
            f"unknown set {name!r}: {error}; expected {expected}, from {source}"
        ) from None


def idx_or_gz(path: Path) -> Path | None:
    """``path`` if it exists, else ``path.gz`` if that does, else ``None``."""
    gz = path.with_name(path.name + ".gz")
    return path if path.is_file() else gz if gz.is_file() else None
