"""Classification data: embedded digits, long-tailed splits, torchvision readers on real-format files."""

import numpy as np
import pytest
import torch

from segloss.classification.data import (
    build_image_data,
    count_labels,
    dataset_targets,
    load_split,
    long_tail_factor,
    long_tailed_class_sizes,
    long_tailed_indices,
    stack_images,
)

from .fixtures import skip_cifar_checksums, write_cifar10, write_mnist


@pytest.fixture
def mnist_root(tmp_path):
    write_mnist(tmp_path)
    return tmp_path


@pytest.fixture
def cifar10_root(tmp_path, monkeypatch):
    """10 classes × 20 training images in shuffled order, 10 test images."""
    labels = np.random.default_rng(0).permutation(np.repeat(np.arange(10), 20))
    write_cifar10(tmp_path, labels)
    skip_cifar_checksums(monkeypatch)
    return tmp_path, labels


def test_digits_is_a_deterministic_stratified_split():
    data = build_image_data("digits")
    assert (len(data.train), len(data.test)) == (1347, 450)
    assert data.image_shape == (1, 8, 8) and data.num_classes == 10
    assert data.class_counts.tolist() == [133, 136, 133, 137, 136, 136, 136, 134, 131, 135]
    images, targets = stack_images(data.test)
    assert images.shape == (450, 1, 8, 8) and images.dtype == torch.float32
    assert images.min() == 0 and images.max() == 1
    again, _ = stack_images(build_image_data("digits").test)
    assert torch.equal(images, again)
    train_images, _ = stack_images(data.train)
    assert not (train_images.flatten(1)[:, None] == images.flatten(1)[None]).all(-1).any()  # disjoint
    assert np.bincount(targets.numpy()).tolist() == [45, 46, 44, 46, 45, 46, 45, 45, 43, 45]


@pytest.mark.parametrize(
    ("num_classes", "per_class", "ratio", "spec_factor"),
    [(10, 5000, 100, 0.5995), (10, 5000, 10, 0.7743), (100, 500, 100, 0.9545), (100, 500, 10, 0.9770)],
)
def test_long_tailed_class_sizes_follow_spec_factors(num_classes, per_class, ratio, spec_factor):
    assert round(long_tail_factor(ratio, num_classes), 4) == spec_factor
    sizes = long_tailed_class_sizes(np.full(num_classes, per_class), ratio)
    expected = per_class * spec_factor ** np.arange(num_classes)  # s_j · f^j with the paper's 4-digit f
    assert sizes[0] == per_class and sizes[-1] == per_class // ratio
    assert np.all(np.abs(sizes - expected) <= 1 + 2e-3 * expected)
    assert np.all(np.diff(sizes) <= 0)


def test_long_tailed_sizes_match_the_published_splits():
    cifar10_100 = long_tailed_class_sizes(np.full(10, 5000), 100)
    assert cifar10_100.tolist() == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    assert long_tailed_class_sizes(np.full(10, 5000), 10).tolist() == [
        5000, 3871, 2997, 2320, 1796, 1391, 1077, 834, 645, 500
    ]  # fmt: skip
    assert long_tailed_class_sizes(np.full(100, 500), 100).sum() == 10847
    assert long_tailed_class_sizes(np.full(100, 500), 10).sum() == 19573


def test_long_tailed_indices_keep_the_first_samples_of_each_class():
    targets = np.array([2, 0, 1, 0, 2, 1, 0, 2, 1, 2, 0, 1])  # 4 samples per class
    # ρ = 4, 3 classes: keep 4, 4·4^-0.5 = 2, 4·4^-1 = 1
    index = long_tailed_indices(targets, 3, 4)
    assert index.tolist() == [0, 1, 2, 3, 5, 6, 10]
    assert np.bincount(targets[index]).tolist() == [4, 2, 1]


def test_long_tail_errors():
    with pytest.raises(ValueError, match="imbalance_ratio must be >= 1"):
        long_tail_factor(0.5, 10)
    with pytest.raises(ValueError, match="at least 2 classes"):
        long_tail_factor(10, 1)


def test_long_tailed_digits_counts_feed_the_margins():
    data = build_image_data("digits", imbalance_ratio=10)
    expected = long_tailed_class_sizes(np.array([133, 136, 133, 137, 136, 136, 136, 134, 131, 135]), 10)
    assert data.class_counts.tolist() == expected.tolist()
    assert expected[-1] == 13 and len(data.train) == expected.sum()
    assert len(data.test) == 450  # the test split stays balanced


def test_mnist_reader_on_idx_files(mnist_root):
    data = build_image_data("mnist", mnist_root)
    assert (len(data.train), len(data.test)) == (12, 5)
    image, label = data.train[3]
    assert image.shape == (1, 28, 28) and image.dtype == torch.float32 and label == 3
    raw = np.frombuffer((mnist_root / "MNIST/raw/train-images-idx3-ubyte").read_bytes()[16:], np.uint8)
    torch.testing.assert_close(image[0], torch.from_numpy(raw.reshape(12, 28, 28)[3] / 255).float())
    assert data.class_counts.tolist() == [2, 2, 1, 1, 1, 1, 1, 1, 1, 1]
    assert data.classes[0] == "0 - zero"


def test_cifar10_reader_on_pickle_batches_with_long_tail(cifar10_root):
    root, labels = cifar10_root
    data = build_image_data("cifar10", root, imbalance_ratio=10)
    expected = long_tailed_class_sizes(np.full(10, 20), 10)  # 20, 15, 11, ..., 2
    assert data.class_counts.tolist() == expected.tolist()
    kept = dataset_targets(data.train)
    first = [np.flatnonzero(labels == c)[: expected[c]] for c in range(10)]
    assert data.train.indices.tolist() == sorted(np.concatenate(first).tolist())
    assert kept.tolist() == labels[data.train.indices].tolist()
    image, label = data.train[0]
    assert image.shape == (3, 32, 32) and image.min() >= 0 and image.max() <= 1  # augmented (crop, flip)
    assert data.classes[:2] == ["airplane", "automobile"]
    test_images, test_targets = stack_images(data.test)
    assert test_images.shape == (10, 3, 32, 32) and test_targets.tolist() == list(range(10))
    assert count_labels(data.test, 10).tolist() == [1] * 10


def test_missing_local_dataset_names_layout_and_download(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        load_split("cifar10", tmp_path / "nowhere")
    message = str(error.value)
    assert "cifar-10-batches-py/data_batch_1" in message and "expected layout" in message
    assert (
        "data.download=true" in message and f"d.CIFAR10('{tmp_path / 'nowhere'}', download=True)" in message
    )
    with pytest.raises(FileNotFoundError, match=r"MNIST/raw/t10k-labels-idx1-ubyte"):
        load_split("mnist", tmp_path, "test")
    with pytest.raises(ValueError, match=r"dataset 'svhn' needs a root folder \(data.root\)"):
        load_split("svhn")
    # torchvision's SVHN reads only the split's file
    with pytest.raises(FileNotFoundError, match="missing test_32x32.mat.\n"):
        load_split("svhn", tmp_path, "test")


def test_corrupted_cifar_files_name_the_checksum(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]:
        (folder / name).write_bytes(b"not a pickle")
    with pytest.raises(RuntimeError, match="corrupted or incomplete"):
        load_split("cifar10", tmp_path)


def test_bad_dataset_and_split_names():
    with pytest.raises(ValueError, match="unknown dataset 'cifar1'; valid names: digits, mnist"):
        build_image_data("cifar1")
    with pytest.raises(ValueError, match="split must be one of"):
        load_split("digits", split="val")
