"""SegmentationFolder: a user's images/ + masks/ folders, and dataset lookup by name."""

import json

import cv2
import numpy as np
import pytest
from PIL import Image

from segloss.segmentation.data import SegmentationFolder, build_dataset
from segloss.segmentation.data.stats import main

CLASSES = ["background", "cat", "dog"]
MASK = np.array([[0, 1, 2, 200], [2, 2, 1, 0]])  # 200 = the user's void value in the tests below


def write_image(path, rgb):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def write_palette_mask(path, mask):
    """An indexed-colour PNG (like PASCAL VOC's): pixel values are indices, the palette only colours them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(mask.astype(np.uint8))
    image.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [9] * (3 * 253))
    assert image.mode == "P"
    image.save(path)


@pytest.fixture
def folder_root(tmp_path):
    """``root/images/{train,val}`` and ``root/masks/{train,val}`` with mixed image formats."""
    rgb = np.zeros((2, 4, 3), np.uint8)
    rgb[..., 2] = 250  # blue
    write_image(tmp_path / "images" / "train" / "b.png", rgb)
    write_image(tmp_path / "images" / "train" / "a.bmp", rgb)
    write_palette_mask(tmp_path / "masks" / "train" / "a.png", MASK)
    assert cv2.imwrite(
        str(tmp_path / "masks" / "train" / "b.png"), MASK.astype(np.uint16)
    )  # 16-bit grayscale
    write_image(tmp_path / "images" / "val" / "c.png", rgb)
    write_palette_mask(tmp_path / "masks" / "val" / "c.png", np.zeros((2, 4)))
    return tmp_path


def test_pairs_by_stem_and_reads_indices(folder_root):
    dataset = SegmentationFolder(
        folder_root / "images/train", folder_root / "masks/train", CLASSES, ignore_index=200
    )
    assert len(dataset) == 2 and list(dataset.classes) == CLASSES and dataset.ignore_index == 255
    assert [p.name for p in dataset.image_files] == ["a.bmp", "b.png"]
    assert [p.name for p in dataset.mask_files] == ["a.png", "b.png"]
    expected = np.where(MASK == 200, 255, MASK)
    for index in range(2):
        image, mask = dataset[index]
        assert image[0, 0].tolist() == [0, 0, 250]
        assert mask.dtype == np.int64
        np.testing.assert_array_equal(mask, expected)
    assert dataset.palette.shape == (3, 3)


def test_build_dataset_uses_images_and_masks_split_folders(folder_root):
    dataset = build_dataset("folder", folder_root, "val", classes=CLASSES)
    assert isinstance(dataset, SegmentationFolder) and dataset.split == "val"
    assert [p.name for p in dataset.image_files] == ["c.png"]
    with pytest.raises(ValueError, match="needs classes"):
        build_dataset("folder", folder_root, "val")
    with pytest.raises(ValueError, match="needs a root folder"):
        build_dataset("folder", None, "val", classes=CLASSES)


def test_value_outside_classes_names_file_and_value(folder_root):
    dataset = SegmentationFolder(folder_root / "images/train", folder_root / "masks/train", CLASSES)
    with pytest.raises(
        ValueError, match=r"a\.png holds value\(s\) 200 outside the class table; valid raw values 0-2, 255"
    ):
        dataset[0]
    assert cv2.imwrite(str(folder_root / "masks/train/b.png"), np.full((2, 4), 300, np.uint16))
    with pytest.raises(ValueError, match=r"b\.png holds value\(s\) 300"):
        dataset[1]


def test_colour_mask_is_rejected(folder_root):
    write_image(folder_root / "masks" / "val" / "c.png", np.zeros((2, 4, 3), np.uint8))
    with pytest.raises(ValueError, match=r"c\.png has image mode 'RGB'; expected a single-channel"):
        build_dataset("folder", folder_root, "val", classes=CLASSES)[0]


def test_unpaired_and_duplicate_stems_are_named(folder_root):
    write_image(folder_root / "images" / "val" / "d.png", np.zeros((2, 4, 3), np.uint8))
    with pytest.raises(FileNotFoundError, match=r"no mask in .*masks/val for image\(s\) d"):
        build_dataset("folder", folder_root, "val", classes=CLASSES)
    write_palette_mask(folder_root / "masks" / "val" / "d.png", np.zeros((2, 4)))
    write_palette_mask(folder_root / "masks" / "val" / "e.png", np.zeros((2, 4)))
    with pytest.raises(FileNotFoundError, match=r"no image in .*images/val for mask\(s\) e"):
        build_dataset("folder", folder_root, "val", classes=CLASSES)
    write_image(folder_root / "images" / "val" / "e.jpg", np.zeros((2, 4, 3), np.uint8))
    write_image(folder_root / "images" / "val" / "e.png", np.zeros((2, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="two image files with the stem 'e'"):
        build_dataset("folder", folder_root, "val", classes=CLASSES)


def test_bad_class_list_and_ignore_index(folder_root):
    images, masks = folder_root / "images/val", folder_root / "masks/val"
    with pytest.raises(ValueError, match="at least 2 names"):
        SegmentationFolder(images, masks, "cat")
    with pytest.raises(ValueError, match="ignore_index must be a value in 3..255 .* got 1"):
        SegmentationFolder(images, masks, CLASSES, ignore_index=1)


def test_missing_folder_names_path_and_layout(tmp_path):
    with pytest.raises(
        FileNotFoundError, match=f"folder not found: {tmp_path / 'images'}(.|\n)*single-channel"
    ):
        SegmentationFolder(tmp_path / "images", tmp_path / "masks", CLASSES)


def test_stats_command_on_a_folder_dataset(folder_root, tmp_path, capsys):
    out = tmp_path / "folder.json"
    argv = ["--dataset", "folder", "--root", str(folder_root), "--classes", *CLASSES, "--ignore-index", "200"]
    assert main([*argv, "--out", str(out), "--cache-dir", str(tmp_path / "cache"), "--no-progress"]) == 0
    report = json.loads(out.read_text())
    # Two copies of MASK: background 2+2, cat 2+2, dog 3+3 pixels, one void pixel each.
    assert [row["pixels"] for row in report["classes"]] == [4, 4, 6]
    assert report["ignored_pixels"] == 2 and report["pixels_per_image"] == 8.0
    assert "SegmentationFolder train: 2 images" in capsys.readouterr().out
