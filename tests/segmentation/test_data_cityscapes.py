"""Cityscapes reader on a small leftImg8bit/gtFine tree written with cv2."""

import re

import cv2
import numpy as np
import pytest

from segloss.segmentation.data import Cityscapes, build_dataset

PUBLISHED_CLASSES = [
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
    "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
]  # fmt: skip

# label id -> train id, written out by hand from the Cityscapes label table.
LABEL_IDS = np.array([[0, 7, 8, 11, 26, 33], [9, 24, 23, 1, 31, 6]])
TRAIN_IDS = np.array([[255, 0, 1, 2, 13, 18], [255, 11, 10, 255, 16, 255]])


def write_png(path, array, rgb=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(array, cv2.COLOR_RGB2BGR) if rgb else array.astype(np.uint8))


def add_frame(root, split, city, frame, label_ids=LABEL_IDS, train_ids=None):
    image = np.zeros((*label_ids.shape, 3), np.uint8)
    image[..., 1] = 200  # pure green in RGB
    write_png(root / "leftImg8bit" / split / city / f"{city}_{frame}_leftImg8bit.png", image, rgb=True)
    write_png(root / "gtFine" / split / city / f"{city}_{frame}_gtFine_labelIds.png", label_ids)
    if train_ids is not None:
        write_png(root / "gtFine" / split / city / f"{city}_{frame}_gtFine_labelTrainIds.png", train_ids)


@pytest.fixture
def cityscapes_root(tmp_path):
    root = tmp_path / "cityscapes"
    add_frame(root, "train", "zurich", "000000_000019")
    add_frame(root, "train", "aachen", "000001_000019")
    add_frame(root, "train", "aachen", "000000_000019", train_ids=np.full((2, 6), 5))
    add_frame(root, "val", "lindau", "000000_000019")
    return root


def test_classes_tables_and_order(cityscapes_root):
    dataset = Cityscapes(cityscapes_root)
    assert list(dataset.classes) == PUBLISHED_CLASSES and dataset.ignore_index == 255
    assert dataset.train_id_to_label_id.tolist() == [
        7,
        8,
        11,
        12,
        13,
        17,
        19,
        20,
        21,
        22,
        23,
        24,
        25,
        26,
        27,
        28,
        31,
        32,
        33,
    ]
    assert dataset.palette.shape == (19, 3) and dataset.palette[0].tolist() == [128, 64, 128]
    assert [p.name for p in dataset.image_files] == [
        "aachen_000000_000019_leftImg8bit.png",
        "aachen_000001_000019_leftImg8bit.png",
        "zurich_000000_000019_leftImg8bit.png",
    ]
    assert len(Cityscapes(cityscapes_root, "val")) == 1


def test_label_ids_map_to_train_ids(cityscapes_root):
    image, mask = Cityscapes(cityscapes_root)[1]
    assert image.shape == (2, 6, 3) and image[0, 0].tolist() == [0, 200, 0]
    assert mask.dtype == np.int64
    np.testing.assert_array_equal(mask, TRAIN_IDS)


def test_label_train_ids_are_preferred_when_present(cityscapes_root):
    dataset = Cityscapes(cityscapes_root)
    assert dataset.mask_files[0].name == "aachen_000000_000019_gtFine_labelTrainIds.png"
    assert dataset.mask_files[1].name == "aachen_000001_000019_gtFine_labelIds.png"
    np.testing.assert_array_equal(dataset[0][1], np.full((2, 6), 5))


def test_prediction_round_trip_through_inverse_table(cityscapes_root):
    mask = Cityscapes(cityscapes_root)[1][1]
    valid = mask != 255
    np.testing.assert_array_equal(Cityscapes.train_id_to_label_id[mask[valid]], LABEL_IDS[valid])


def test_build_dataset(cityscapes_root):
    assert len(build_dataset("cityscapes", cityscapes_root, "train")) == 3


def test_unknown_label_id_names_file_and_value(cityscapes_root):
    add_frame(cityscapes_root, "val", "lindau", "000000_000019", label_ids=np.full((2, 6), 34))
    with pytest.raises(ValueError, match=r"lindau_000000_000019_gtFine_labelIds\.png holds value\(s\) 34 "):
        Cityscapes(cityscapes_root, "val")[0]


def test_train_id_outside_table_names_file_and_value(cityscapes_root):
    add_frame(cityscapes_root, "val", "lindau", "000000_000019", train_ids=np.full((2, 6), 19))
    with pytest.raises(
        ValueError, match=r"labelTrainIds\.png holds value\(s\) 19 .*valid raw values 0-18, 255"
    ):
        Cityscapes(cityscapes_root, "val")[0]


def test_missing_label_file_names_the_image_id(cityscapes_root):
    (cityscapes_root / "gtFine" / "train" / "zurich" / "zurich_000000_000019_gtFine_labelIds.png").unlink()
    with pytest.raises(FileNotFoundError, match="no label file for image zurich_000000_000019"):
        Cityscapes(cityscapes_root)


def test_missing_split_names_path_and_layout(cityscapes_root):
    expected = re.escape(str(cityscapes_root / "leftImg8bit" / "test")) + "(.|\n)*gtFine_labelIds.png"
    with pytest.raises(FileNotFoundError, match=expected):
        Cityscapes(cityscapes_root, "test")


def test_size_mismatch_names_both_files(cityscapes_root):
    add_frame(cityscapes_root, "val", "lindau", "000000_000019")
    write_png(
        cityscapes_root / "gtFine/val/lindau/lindau_000000_000019_gtFine_labelIds.png", np.zeros((3, 6))
    )
    with pytest.raises(
        ValueError, match=r"lindau_000000_000019_leftImg8bit\.png is 2×6 but its mask .*labelIds\.png is 3×6"
    ):
        Cityscapes(cityscapes_root, "val")[0]
