"""Augmentation presets: image/mask alignment, padding, normalisation, seeding and DataLoader workers."""

import cv2
import numpy as np
import pytest
import torch

from segloss.segmentation.data import SyntheticScenes
from segloss.segmentation.data.presets import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    eval_transform,
    seed_transform,
    seed_worker,
    train_transform,
)

MEAN, STD = np.array(IMAGENET_MEAN), np.array(IMAGENET_STD)


def blocks_image(seed=0, height=72, width=96, block=12):
    """Grey blocks, bright (170-230) or dark (20-80); the mask (1 = bright) is a function of the image."""
    rng = np.random.default_rng(seed)
    rows, cols = height // block, width // block
    bright = rng.random((rows, cols)) < 0.5
    levels = np.where(bright, rng.integers(170, 231, (rows, cols)), rng.integers(20, 81, (rows, cols)))
    grey = np.kron(levels, np.ones((block, block))).astype(np.uint8)
    image = np.repeat(grey[..., None], 3, axis=2)
    return image, (image[..., 0] > 128).astype(np.uint8)


def unnormalise(image):
    return image.permute(1, 2, 0).numpy() * STD + MEAN


def test_train_preset_keeps_image_and_mask_aligned():
    transform = train_transform((64, 80), IMAGENET_MEAN, IMAGENET_STD, seed=0)
    image, mask = blocks_image()
    for _ in range(30):
        out = transform(image=image, mask=mask)
        assert out["image"].shape == (3, 64, 80) and out["image"].dtype == torch.float32
        grey = unnormalise(out["image"]).mean(axis=2)
        out_mask = out["mask"].numpy()
        kernel = np.ones((3, 3), np.uint8)  # away from block edges, where interpolation mixes
        inner_bright = cv2.erode((out_mask == 1).astype(np.uint8), kernel).astype(bool)
        inner_dark = cv2.erode((out_mask == 0).astype(np.uint8), kernel).astype(bool)
        assert inner_bright.sum() > 50 and inner_dark.sum() > 50
        assert grey[inner_bright].min() > grey[inner_dark].max()


def test_scale_two_without_crop_loss_is_nearest_upsampling_of_the_mask():
    image, mask = blocks_image(seed=1, height=24, width=36, block=6)
    transform = train_transform((48, 72), IMAGENET_MEAN, IMAGENET_STD, scale=(2.0, 2.0), seed=0)
    expected = np.kron(mask, np.ones((2, 2), np.uint8))
    flips = set()
    for _ in range(12):
        out_mask = transform(image=image, mask=mask)["mask"].numpy()
        flipped = np.array_equal(out_mask, expected[:, ::-1])
        assert flipped or np.array_equal(out_mask, expected)
        flips.add(flipped)
    assert flips == {True, False}  # the horizontal flip happens, sometimes


def test_padding_uses_ignore_index_for_the_mask_and_zero_for_the_image():
    image = np.full((20, 30, 3), 255, np.uint8)
    mask = np.ones((20, 30), np.uint8)
    transform = train_transform(40, IMAGENET_MEAN, IMAGENET_STD, scale=(1.0, 1.0), seed=0)
    out = transform(image=image, mask=mask)
    out_mask, pixels = out["mask"].numpy(), unnormalise(out["image"])
    assert out_mask.shape == (40, 40)
    assert (out_mask == 1).sum() == 600 and (out_mask == 255).sum() == 1600 - 600
    np.testing.assert_allclose(pixels[out_mask == 255], 0.0, atol=1e-5)
    assert pixels[out_mask == 1].min() > 0.5


def test_eval_preset_only_normalises():
    image, mask = blocks_image(seed=2)
    out = eval_transform(IMAGENET_MEAN, IMAGENET_STD)(image=image, mask=mask)
    expected = (image / 255.0 - MEAN) / STD
    np.testing.assert_allclose(out["image"].permute(1, 2, 0).numpy(), expected, atol=1e-5)
    np.testing.assert_array_equal(out["mask"].numpy(), mask)


def test_seed_transform_makes_augmentations_repeatable():
    image, mask = blocks_image(seed=3)
    transform = train_transform(48, IMAGENET_MEAN, IMAGENET_STD)

    def draws(*seeds):
        seed_transform(transform, *seeds)
        return [transform(image=image, mask=mask)["mask"] for _ in range(3)]

    first, again, other = draws(7, 2, 0), draws(7, 2, 0), draws(7, 2, 1)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))
    with pytest.raises(ValueError, match="non-negative ints"):
        seed_transform(transform, -1)


def test_bad_preset_arguments():
    with pytest.raises(ValueError, match="crop_size must be a positive int or"):
        train_transform(0, IMAGENET_MEAN, IMAGENET_STD)
    with pytest.raises(ValueError, match="mean and std need 3 values"):
        train_transform(32, (0.5, 0.5), IMAGENET_STD)
    with pytest.raises(ValueError, match=r"scale must be \(low, high\)"):
        train_transform(32, IMAGENET_MEAN, IMAGENET_STD, scale=(2.0, 1.0))
    with pytest.raises(RuntimeError, match="worker_init_fn"):
        seed_worker(0)


def test_dataloader_with_two_workers_is_reproducible_and_varies_by_epoch():
    dataset = SyntheticScenes(
        "train", num_samples=8, size=64, transform=train_transform(48, IMAGENET_MEAN, IMAGENET_STD)
    )

    def two_epochs(seed):
        loader = torch.utils.data.DataLoader(
            dataset,
            batch_size=2,
            num_workers=2,
            worker_init_fn=seed_worker,
            generator=torch.Generator().manual_seed(seed),
        )
        epochs = []
        for _ in range(2):
            batches = list(loader)
            for images, masks in batches:
                assert images.shape == (2, 3, 48, 48) and images.dtype == torch.float32
                assert masks.shape == (2, 48, 48) and masks.dtype == torch.int64
            epochs.append(torch.cat([masks for _, masks in batches]))
        return epochs

    first, again = two_epochs(0), two_epochs(0)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(first[0], first[1])  # workers are re-seeded every epoch
    assert set(first[0].unique().tolist()) <= set(range(9)) | {255}
