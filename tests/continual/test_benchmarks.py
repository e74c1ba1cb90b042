"""Streams (order per seed, split and permuted experiences), metrics, configs and missing data."""

import numpy as np
import pytest
import torch

from segloss.classification.data import dataset_targets
from segloss.continual.benchmarks import experience_order
from segloss.continual.metrics import average_accuracy, forgetting, stream_accuracy
from segloss.continual.recipe import stream_from_config
from segloss.runner.config import ConfigError, load_config


def digits_config(*overrides):
    return load_config("cl_digits", list(overrides))


@pytest.mark.parametrize("scenario", ["split", "permuted"])
def test_same_seed_gives_the_same_order_for_every_loss_and_strategy(scenario):
    orders = [
        stream_from_config(
            digits_config(f"data.scenario={scenario}", f"loss.name={loss}", f"strategy.name={s}")
        )
        for loss, s in (("ce", "naive"), ("hem", "ewc"), ("mm", "replay"))
    ]
    assert all(np.array_equal(stream.order, orders[0].order) for stream in orders)
    other = stream_from_config(digits_config(f"data.scenario={scenario}", "train.seed=1"))
    assert not np.array_equal(other.order, orders[0].order)


def test_split_experiences_partition_the_classes():
    stream = stream_from_config(digits_config())
    classes = [c for experience in stream.experiences for c in experience.classes]
    assert sorted(classes) == list(range(10)) and all(len(e.classes) == 2 for e in stream.experiences)
    for experience in stream.experiences:
        assert set(dataset_targets(experience.train)) == set(experience.classes)
        assert set(dataset_targets(experience.test)) == set(experience.classes)
    assert sum(len(e.train) for e in stream.experiences) == int(stream.class_counts.sum()) == 1347


def test_permuted_experiences_permute_the_pixels_of_every_image():
    stream = stream_from_config(digits_config("data.scenario=permuted"))
    base = stream_from_config(digits_config("data.scenario=permuted")).experiences[0].train.dataset
    for experience, permutation in zip(stream.experiences, stream.order, strict=True):
        assert experience.classes == list(range(10)) and len(experience.train) == 1347
        image, target = experience.train[5]
        original, original_target = base[5]
        assert target == original_target
        torch.testing.assert_close(image.flatten(), original.flatten()[torch.as_tensor(permutation)])
    assert experience_order("permuted", 10, 64, 5, 0).shape == (5, 64)


def test_metrics_follow_their_definitions():
    matrix = np.array([[0.9, 0.0, 0.0], [0.5, 0.8, 0.0], [0.6, 0.4, 0.7]])
    assert average_accuracy(matrix) == pytest.approx((0.6 + 0.4 + 0.7) / 3)
    assert forgetting(matrix).tolist() == pytest.approx([0.9 - 0.6, 0.8 - 0.4])
    assert stream_accuracy(matrix, [1, 1, 2]) == pytest.approx((0.6 + 0.4 + 1.4) / 4)


def test_config_checks_and_benchmark_configs():
    with pytest.raises(ConfigError, match="divide the 10 classes"):
        digits_config("data.experiences=3")
    with pytest.raises(ConfigError, match="strategy.name must be one of"):
        digits_config("strategy.name=gem")
    mnist = load_config("cl_split_mnist")
    cifar10 = load_config("cl_split_cifar10")
    cifar100 = load_config("cl_split_cifar100")
    permuted = load_config("cl_permuted_mnist")
    assert (mnist.model.arch, permuted.model.arch, cifar10.model.arch, cifar100.model.arch) == (
        "mlp",
        "mlp",
        "resnet18",
        "resnet18",
    )
    assert (
        cifar10.train.epochs == cifar100.train.epochs == 10 * mnist.train.epochs == 10 * permuted.train.epochs
    )
    assert all(c.data.experiences == 5 for c in (mnist, permuted, cifar10, cifar100))
    assert permuted.data.scenario == "permuted" and cifar100.data.name == "cifar100"


def test_missing_data_names_the_expected_files(tmp_path):
    config = load_config("cl_split_mnist", [f"data.root={tmp_path}"])
    with pytest.raises(FileNotFoundError, match="expected layout") as error:
        stream_from_config(config)
    assert "train-images-idx3-ubyte" in str(error.value) and "download" in str(error.value)
