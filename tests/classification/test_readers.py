"""The MNIST-family readers on tiny files written in the published formats: IDX (plain and ``.gz``),
MNIST's PNG folders, KMNIST's ``.npz``, Omniglot's zips and folders, notMNIST's IDX test set."""

import gzip
import io
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from segloss.classification.data import load_split
from segloss.classification.readers import (
    read_idx,
    read_kmnist_test,
    read_mnist_pngs,
    read_notmnist_test,
    read_omniglot,
    read_unknown_set,
)
from segloss.classification.unknown import build_unknown_sets, check_unknown_sets
from segloss.runner.config import load_config
from segloss.runner.schema import ConfigError

from ..helpers import CONFIGS
from .fixtures import write_idx

RNG = np.random.default_rng(0)


def gzip_idx(path, array):
    write_idx(path.with_suffix(""), array)
    path.write_bytes(gzip.compress(path.with_suffix("").read_bytes()))
    path.with_suffix("").unlink()


def png_bytes(array, mode="L"):
    buffer = io.BytesIO()
    Image.fromarray(array).convert(mode).save(buffer, format="PNG")
    return buffer.getvalue()


def test_idx_plain_and_gzip_and_bad_files(tmp_path):
    images = RNG.integers(0, 256, (3, 28, 28)).astype(np.uint8)
    write_idx(tmp_path / "plain-idx3-ubyte", images)
    gzip_idx(tmp_path / "packed-idx3-ubyte.gz", images)
    assert np.array_equal(read_idx(tmp_path / "plain-idx3-ubyte"), images)
    assert np.array_equal(read_idx(tmp_path / "packed-idx3-ubyte.gz"), images)
    (tmp_path / "short").write_bytes((tmp_path / "plain-idx3-ubyte").read_bytes()[:-5])
    with pytest.raises(ValueError, match=r"short: the header says \(3, 28, 28\)"):
        read_idx(tmp_path / "short")
    (tmp_path / "text").write_text("not an idx file")
    with pytest.raises(ValueError, match="text is not an IDX file"):
        read_idx(tmp_path / "text")
    with pytest.raises(FileNotFoundError, match="missing: no such file"):
        read_idx(tmp_path / "missing")


def write_mnist_pngs(root, split, labels):
    images = RNG.integers(0, 256, (len(labels), 28, 28)).astype(np.uint8)
    for index, (image, label) in enumerate(zip(images, labels, strict=True)):
        folder = root / split / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{index}.png").write_bytes(png_bytes(image))
    return images


def test_mnist_from_png_folders_in_the_original_order(tmp_path):
    labels = [3, 1, 3, 0, 9, 1, 2, 2, 7, 5, 4, 6]  # index order differs from the folders' order
    images = write_mnist_pngs(tmp_path, "train", labels)
    write_mnist_pngs(tmp_path, "test", [0, 1, 2])
    got_images, got_labels = read_mnist_pngs(tmp_path, "train")
    assert np.array_equal(got_images, images) and got_labels.tolist() == labels
    dataset, classes = load_split("mnist", tmp_path, "train")
    assert classes[0] == "0 - zero" and len(classes) == 10  # torchvision's MNIST class names
    image, label = dataset[0]
    assert image.shape == (1, 28, 28) and image.dtype == torch.float32 and int(label) == 3
    assert torch.allclose(image[0] * 255, torch.from_numpy(images[0]).float())
    (tmp_path / "test" / "x").mkdir()
    with pytest.raises(ValueError, match="label folders are named by the digit"):
        read_mnist_pngs(tmp_path, "test")


def test_fashion_mnist_from_debians_gzip_files(tmp_path):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, count in (("train", 6), ("t10k", 4)):
        gzip_idx(raw / f"{prefix}-images-idx3-ubyte.gz", RNG.integers(0, 256, (count, 28, 28)))
        gzip_idx(raw / f"{prefix}-labels-idx1-ubyte.gz", np.arange(count) % 10)
    test, classes = load_split("fashionmnist", tmp_path, "test")
    assert len(test) == 4 and classes[0] == "T-shirt/top"
    with pytest.raises(FileNotFoundError, match=r"or the same files gzip-compressed.*rasbt/mnist-pngs"):
        load_split("mnist", tmp_path, "test")


def write_omniglot(folder, zipped=True):
    """Two background parts; each image black strokes (a square) on white, 105×105, mode 1 like Omniglot."""
    stroke = np.full((105, 105), 255, dtype=np.uint8)
    stroke[30:75, 30:75] = 0
    folder.mkdir(parents=True, exist_ok=True)
    for part in ("images_background_small1", "images_background_small2"):
        names = [f"{part}/Alphabet/character0{c}/0{c}0{i}_0{i}.png" for c in (1, 2) for i in (1, 2)]
        if zipped:
            with zipfile.ZipFile(folder / f"{part}.zip", "w") as archive:
                for name in names:
                    archive.writestr(name, png_bytes(stroke, mode="1"))
        else:
            for name in names:
                (folder / name).parent.mkdir(parents=True, exist_ok=True)
                (folder / name).write_bytes(png_bytes(stroke, mode="1"))


@pytest.mark.parametrize("zipped", [True, False])
def test_omniglot_is_resized_and_inverted_like_mnist(tmp_path, zipped):
    write_omniglot(tmp_path / "omniglot", zipped)
    images = read_omniglot(tmp_path / "omniglot")
    assert images.shape == (8, 28, 28) and images.dtype == np.uint8
    assert images[0, 14, 14] == 255 and images[0, 1, 1] == 0  # white strokes on black


def test_kmnist_and_notmnist_test_sets(tmp_path):
    (tmp_path / "KMNIST").mkdir()
    kmnist = RNG.integers(0, 256, (5, 28, 28)).astype(np.uint8)
    np.savez(tmp_path / "KMNIST" / "kmnist-test-imgs.npz", kmnist)
    assert np.array_equal(read_kmnist_test(tmp_path / "KMNIST"), kmnist)
    (tmp_path / "notMNIST").mkdir()
    letters = RNG.integers(0, 256, (4, 28, 28)).astype(np.uint8)
    gzip_idx(tmp_path / "notMNIST" / "t10k-images-idx3-ubyte.gz", letters)
    assert np.array_equal(read_notmnist_test(tmp_path / "notMNIST"), letters)
    with pytest.raises(FileNotFoundError, match="brendenlake/omniglot"):
        read_unknown_set("omniglot", tmp_path)


def test_only_omniglot_may_be_an_unpacked_folder(tmp_path):
    (tmp_path / "KMNIST" / "kmnist-test-imgs").mkdir(parents=True)  # a folder where the .npz belongs
    with pytest.raises(FileNotFoundError, match="unknown set 'kmnist': .*kmnist-test-imgs.npz not found"):
        check_unknown_sets(["kmnist"], (1, 28, 28), root=tmp_path)
    write_omniglot(tmp_path / "omniglot", zipped=False)
    check_unknown_sets(["omniglot"], (1, 28, 28), root=tmp_path)


def test_cls_mnist_evaluates_the_papers_seven_unknown_sets_from_local_files(tmp_path):
    config = load_config(CONFIGS / "cls_mnist.yaml", [f"eval.unknown_root={tmp_path}"])
    assert config.eval.unknown_sets == [
        "omniglot", "fashionmnist", "kmnist", "blobs", "uniform", "permuted", "phase",
    ]  # fmt: skip
    with pytest.raises(FileNotFoundError, match="unknown set 'omniglot'.*brendenlake/omniglot"):
        check_unknown_sets(config.eval.unknown_sets, (1, 28, 28), root=tmp_path)
    write_omniglot(tmp_path / "omniglot")
    (tmp_path / "KMNIST").mkdir()
    np.savez(tmp_path / "KMNIST" / "kmnist-test-imgs.npz", RNG.integers(0, 256, (5, 28, 28)).astype(np.uint8))
    (tmp_path / "notMNIST").mkdir()
    gzip_idx(tmp_path / "notMNIST" / "t10k-images-idx3-ubyte.gz", RNG.integers(0, 256, (4, 28, 28)))
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, count in (("train", 3), ("t10k", 3)):
        gzip_idx(raw / f"{prefix}-images-idx3-ubyte.gz", RNG.integers(0, 256, (count, 28, 28)))
        gzip_idx(raw / f"{prefix}-labels-idx1-ubyte.gz", np.arange(count))
    names = [*config.eval.unknown_sets, "notmnist"]
    check_unknown_sets(names, (1, 28, 28), root=tmp_path)
    known = torch.rand(6, 1, 28, 28)
    sets = build_unknown_sets(names, known, root=tmp_path, num_samples=7)
    assert {name: len(dataset) for name, dataset in sets.items()} == {
        "omniglot": 8, "fashionmnist": 3, "kmnist": 5, "blobs": 7, "uniform": 7, "permuted": 7, "phase": 7,
        "notmnist": 4,
    }  # fmt: skip
    with pytest.raises(ConfigError, match="eval.unknown_sets: unknown names \\['emnist'\\]"):
        load_config(CONFIGS / "cls_mnist.yaml", ["eval.unknown_sets=[emnist]"])
