"""SyntheticScenes: determinism, split streams, class imbalance, and that colour alone does not segment."""

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score
from sklearn.tree import DecisionTreeClassifier

from segloss.segmentation.data import SyntheticScenes, build_dataset


def test_samples_shapes_types_and_names():
    dataset = SyntheticScenes("val", num_samples=3, size=(48, 64))
    assert len(dataset) == 3 and dataset.ignore_index == 255
    image, mask = dataset[2]
    assert image.shape == (48, 64, 3) and image.dtype == np.uint8
    assert mask.shape == (48, 64) and mask.dtype == np.int64
    assert 6 <= len(dataset.classes) <= 10 and len(set(dataset.classes)) == len(dataset.classes)
    assert dataset.palette.shape == (len(dataset.classes), 3)
    assert dataset.image_files == [
        Path("synthetic_val_00000"),
        Path("synthetic_val_00001"),
        Path("synthetic_val_00002"),
    ]
    assert SyntheticScenes(size=40)[0][0].shape == (40, 40, 3)


def test_deterministic_from_seed_and_splits_are_different_streams():
    first, again = SyntheticScenes("train", 4, 64, seed=3), SyntheticScenes("train", 4, 64, seed=3)
    for index in range(4):
        np.testing.assert_array_equal(first[index][0], again[index][0])
        np.testing.assert_array_equal(first[index][1], again[index][1])
        np.testing.assert_array_equal(first.load_mask(index), first[index][1])
    others = [
        SyntheticScenes("val", 4, 64, seed=3),
        SyntheticScenes("test", 4, 64, seed=3),
        SyntheticScenes("train", 4, 64, seed=4),
    ]
    for other in others:
        for index in range(4):
            assert not np.array_equal(first[index][1], other[index][1])
    assert not np.array_equal(first[0][1], first[1][1])


def test_classes_are_strongly_imbalanced():
    dataset = SyntheticScenes("train", num_samples=48, size=96)
    counts = sum(np.bincount(dataset.load_mask(i).ravel(), minlength=len(dataset.classes)) for i in range(48))
    shares = counts / counts.sum()
    assert shares.min() > 0  # every class appears
    assert shares.max() / shares.min() >= 100
    assert shares.max() < 0.4  # no class dominates completely


def test_colour_alone_does_not_separate_classes():
    """A per-pixel RGB classifier trained on one split stays far from segmenting another."""

    def pixels(dataset):
        samples = [dataset[i] for i in range(len(dataset))]
        return np.concatenate([s[0].reshape(-1, 3) for s in samples]), np.concatenate(
            [s[1].ravel() for s in samples]
        )

    train_x, train_y = pixels(SyntheticScenes("train", num_samples=12, size=96))
    val_x, val_y = pixels(SyntheticScenes("val", num_samples=12, size=96))
    classifier = DecisionTreeClassifier(max_depth=12, min_samples_leaf=20, random_state=0).fit(
        train_x, train_y
    )
    assert balanced_accuracy_score(val_y, classifier.predict(val_x)) < 0.6


def test_build_dataset_and_bad_arguments():
    dataset = build_dataset("synthetic", None, "test", num_samples=2, size=(32, 48), seed=1)
    assert isinstance(dataset, SyntheticScenes) and dataset[0][0].shape == (32, 48, 3)
    with pytest.raises(ValueError, match="unknown split 'training'.*train, val, test"):
        SyntheticScenes("training")
    with pytest.raises(ValueError, match="size must be"):
        SyntheticScenes(size=(8, 64))
    with pytest.raises(ValueError, match="num_samples must be a positive int, got 0"):
        SyntheticScenes(num_samples=0)
    with pytest.raises(ValueError, match="seed must be a non-negative int, got -1"):
        SyntheticScenes(seed=-1)
    with pytest.raises(IndexError, match="index 5 out of range"):
        SyntheticScenes(num_samples=5)[5]
