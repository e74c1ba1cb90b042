"""Synthetic and real unknown sets."""

import pytest
import torch
from torch.utils.data import TensorDataset

from segloss.classification.unknown import (
    SYNTHETIC_UNKNOWN_SETS,
    blobs,
    build_unknown_sets,
    permuted_pixels,
    phase_randomised,
    real_unknown_set,
    synthetic_unknown_set,
    uniform_noise,
)

from .fixtures import write_mnist


@pytest.fixture
def known_images():
    return torch.rand(6, 3, 16, 12, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", SYNTHETIC_UNKNOWN_SETS)
@pytest.mark.parametrize("shape", [(3, 16, 12), (1, 8, 8)])
def test_synthetic_sets_shape_range_and_determinism(name, shape):
    known = torch.rand(5, *shape, generator=torch.Generator().manual_seed(1))
    images = synthetic_unknown_set(name, known, num_samples=13, seed=3)
    assert images.shape == (13, *shape) and images.dtype == torch.float32
    assert images.min() >= 0 and images.max() <= 1
    assert torch.equal(images, synthetic_unknown_set(name, known, num_samples=13, seed=3))
    assert not torch.equal(images, synthetic_unknown_set(name, known, num_samples=13, seed=4))


def test_blobs_are_thresholded_blurred_bernoulli_pixels():
    images = blobs(200, (2, 16, 16), seed=0)
    nonzero = images[images > 0]
    assert nonzero.min() >= 0.75  # everything below the cut-off is 0
    assert 0.2 < (images > 0).double().mean() < 0.8  # both blobs and background
    # blurring correlates neighbours: horizontal neighbours agree far more often than chance
    same = ((images[..., 1:] > 0) == (images[..., :-1] > 0)).double().mean()
    assert same > 0.8


def test_uniform_noise_statistics():
    images = uniform_noise(100, (3, 8, 8), seed=0)
    assert abs(images.mean().item() - 0.5) < 0.01
    assert abs(images.var().item() - 1 / 12) < 0.005


def test_permuted_pixels_keep_each_images_pixels(known_images):
    permuted = permuted_pixels(known_images, seed=0)
    assert not torch.equal(permuted, known_images)
    for original, shuffled in zip(known_images, permuted, strict=True):
        # the same multiset of pixels (colour triples move together)
        key = lambda image: image.flatten(1).T.tolist()  # noqa: E731
        assert sorted(key(original)) == sorted(key(shuffled))


def test_phase_randomised_keeps_the_amplitude_spectrum():
    generator = torch.Generator().manual_seed(0)
    # low-contrast images: the randomised result stays inside (0, 1), so clipping does not touch it
    images = 0.5 + 0.05 * (torch.rand(4, 3, 16, 16, generator=generator) - 0.5)
    randomised = phase_randomised(images, seed=0)
    assert randomised.min() > 0 and randomised.max() < 1
    assert not torch.allclose(randomised, images, atol=1e-3)
    spectrum, original = torch.fft.fft2(randomised.double()), torch.fft.fft2(images.double())
    torch.testing.assert_close(spectrum.abs(), original.abs(), atol=1e-4, rtol=1e-4)
    # the added phase is shared by the channels
    shift = torch.angle(spectrum * original.conj())
    strong = original.abs().amin(1) > 1e-2  # where the phase of every channel is well defined
    for channel in (1, 2):
        difference = torch.remainder(shift[:, channel] - shift[:, 0] + torch.pi, 2 * torch.pi) - torch.pi
        assert difference[strong].abs().max() < 1e-3


def test_permuted_and_phase_sets_repeat_the_known_images(known_images):
    permuted = synthetic_unknown_set("permuted", known_images, num_samples=8, seed=0)
    # image 7 comes from known image 1
    assert sorted(permuted[7].flatten().tolist()) == sorted(known_images[1].flatten().tolist())
    low_contrast = 0.5 + 0.05 * (known_images - 0.5)  # no clipping: the amplitude spectrum is kept exactly
    phase = synthetic_unknown_set("phase", low_contrast, num_samples=8, seed=0)
    amplitude = [
        torch.fft.fft2(image.double()).abs() for image in (phase[7], low_contrast[1], low_contrast[0])
    ]
    torch.testing.assert_close(amplitude[0], amplitude[1], atol=1e-4, rtol=1e-4)
    assert not torch.allclose(amplitude[0], amplitude[2], atol=1e-2)


def test_build_unknown_sets_and_errors(known_images, tmp_path):
    sets = build_unknown_sets(["uniform", "blobs"], known_images, num_samples=4)
    assert list(sets) == ["uniform", "blobs"] and isinstance(sets["blobs"], TensorDataset)
    assert sets["blobs"].tensors[0].shape == (4, 3, 16, 12)
    with pytest.raises(ValueError, match="unknown synthetic set 'noise'; valid names: blobs, uniform"):
        synthetic_unknown_set("noise", known_images)
    with pytest.raises(ValueError, match=r"images must be in \[0, 1\] \(not normalised\)"):
        synthetic_unknown_set("phase", known_images - 0.5)
    with pytest.raises(ValueError, match="images must be a float tensor"):
        permuted_pixels(torch.zeros(3, 8, 8))
    with pytest.raises(ValueError, match="image_shape must be"):
        blobs(3, (8, 8))


def test_real_unknown_set_with_another_image_shape_is_an_error(tmp_path):
    mnist_shape = (1, 28, 28)
    with pytest.raises(ValueError) as error:
        real_unknown_set("svhn", tmp_path, mnist_shape)
    message = str(error.value)
    assert "unknown set 'svhn' has images of shape (3, 32, 32)" in message
    assert "known data has (1, 28, 28)" in message and "mnist, fashionmnist" in message
    with pytest.raises(ValueError, match="unknown unknown-set name 'lsun'"):
        build_unknown_sets(["lsun"], torch.rand(2, *mnist_shape), root=tmp_path)
    with pytest.raises(FileNotFoundError, match="FashionMNIST/raw"):
        real_unknown_set("fashionmnist", tmp_path, mnist_shape)


def test_real_unknown_set_reads_the_test_split(tmp_path):
    write_mnist(tmp_path, folder="FashionMNIST", test=7)
    dataset = real_unknown_set("fashionmnist", tmp_path, (1, 28, 28))
    assert len(dataset) == 7 and dataset[0][0].shape == (1, 28, 28)
    sets = build_unknown_sets(
        ["fashionmnist", "uniform"], torch.rand(3, 1, 28, 28), root=tmp_path, num_samples=2
    )
    assert [len(sets[name]) for name in sets] == [7, 2]
