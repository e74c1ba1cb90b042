"""CamVid reader on a small SegNet-layout tree written with cv2."""

import re

import cv2
import numpy as np
import pytest
import torch

from segloss.segmentation.data import CamVid, build_dataset
from segloss.segmentation.data.presets import eval_transform

PUBLISHED_CLASSES = [
    "sky",
    "building",
    "pole",
    "road",
    "pavement",
    "tree",
    "signsymbol",
    "fence",
    "car",
    "pedestrian",
    "bicyclist",
]


def write_rgb(path, rgb):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def write_mask(path, mask):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), mask.astype(np.uint8))


def red_blue_image(height=6, width=8):
    """Left half pure red, right half pure blue (RGB)."""
    image = np.zeros((height, width, 3), np.uint8)
    image[:, : width // 2, 0] = 255
    image[:, width // 2 :, 2] = 255
    return image


@pytest.fixture
def camvid_root(tmp_path):
    root = tmp_path / "CamVid"
    mask = np.arange(48).reshape(6, 8) % 12  # values 0..11, 11 = void
    for name in ["0016E5_07959", "0001TP_006690", "Seq05VD_f00000"]:
        write_rgb(root / "train" / f"{name}.png", red_blue_image())
        write_mask(root / "trainannot" / f"{name}.png", mask)
    write_rgb(root / "val" / "0016E5_08000.png", red_blue_image())
    write_mask(root / "valannot" / "0016E5_08000.png", np.full((6, 8), 3))
    return root


def test_lengths_classes_order_and_palette(camvid_root):
    train, val = CamVid(camvid_root, "train"), CamVid(camvid_root, split="val")
    assert (len(train), len(val)) == (3, 1)
    assert list(train.classes) == PUBLISHED_CLASSES
    assert train.ignore_index == 255
    assert [p.name for p in train.image_files] == [
        "0001TP_006690.png",
        "0016E5_07959.png",
        "Seq05VD_f00000.png",
    ]
    assert [p.parent.name for p in train.mask_files] == ["trainannot"] * 3
    assert train.palette.shape == (11, 3) and train.palette.dtype == np.uint8
    assert train.palette[3].tolist() == [128, 64, 128]  # road


def test_sample_is_rgb_uint8_and_void_becomes_255(camvid_root):
    image, mask = CamVid(camvid_root)[0]
    assert image.dtype == np.uint8 and image.shape == (6, 8, 3)
    assert image[0, 0].tolist() == [255, 0, 0] and image[0, -1].tolist() == [0, 0, 255]
    assert mask.dtype == np.int64 and mask.shape == (6, 8)
    expected = np.arange(48).reshape(6, 8) % 12
    expected[expected == 11] = 255
    np.testing.assert_array_equal(mask, expected)
    assert CamVid(camvid_root, "val")[-1][1].tolist() == np.full((6, 8), 3).tolist()


def test_transform_gives_tensors_and_int64_mask(camvid_root):
    dataset = CamVid(camvid_root, transform=eval_transform((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)))
    image, mask = dataset[1]
    assert isinstance(image, torch.Tensor) and image.shape == (3, 6, 8) and image.dtype == torch.float32
    assert image[:, 0, 0].tolist() == [1.0, -1.0, -1.0]  # red: (255/255 - 0.5) / 0.5 = 1
    assert isinstance(mask, torch.Tensor) and mask.dtype == torch.int64 and mask[0, 3].item() == 3


def test_build_dataset_by_name(camvid_root):
    dataset = build_dataset("camvid", camvid_root, "val")
    assert isinstance(dataset, CamVid) and len(dataset) == 1
    with pytest.raises(ValueError, match="valid names: camvid, cityscapes, folder, idd_lite, sbd, synthetic"):
        build_dataset("camvid2", camvid_root)


def test_missing_root_and_split_name_the_path_and_layout(tmp_path, camvid_root):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "nowhere")) + "(.|\n)*trainannot/"):
        CamVid(tmp_path / "nowhere")
    with pytest.raises(
        FileNotFoundError, match=re.escape(str(camvid_root / "test")) + "(.|\n)*expected layout"
    ):
        CamVid(camvid_root, "test")


def test_image_without_mask_names_it(camvid_root):
    write_rgb(camvid_root / "train" / "lonely.png", red_blue_image())
    with pytest.raises(FileNotFoundError, match="no mask in .*trainannot for image\\(s\\) lonely"):
        CamVid(camvid_root)


def test_size_mismatch_names_both_files(camvid_root):
    write_mask(camvid_root / "trainannot" / "0001TP_006690.png", np.zeros((5, 8)))
    image_file, mask_file = (
        camvid_root / "train" / "0001TP_006690.png",
        camvid_root / "trainannot" / "0001TP_006690.png",
    )
    with pytest.raises(
        ValueError,
        match=f"{re.escape(str(image_file))} is 6×8 but its mask {re.escape(str(mask_file))} is 5×8",
    ):
        CamVid(camvid_root)[0]


def test_mask_value_outside_class_table_names_file_and_value(camvid_root):
    bad = np.zeros((6, 8))
    bad[2, 2], bad[3, 3] = 12, 200
    write_mask(camvid_root / "trainannot" / "0016E5_07959.png", bad)
    with pytest.raises(
        ValueError, match=r"0016E5_07959\.png holds value\(s\) 12, 200 outside the class table"
    ):
        CamVid(camvid_root)[1]


def test_corrupt_image_names_the_file(camvid_root):
    path = camvid_root / "train" / "Seq05VD_f00000.png"
    path.write_bytes(path.read_bytes()[:40])  # truncated PNG
    with pytest.raises(OSError, match=f"cannot read image {re.escape(str(path))}"):
        CamVid(camvid_root)[2]
    path.write_bytes(b"not an image at all")
    with pytest.raises(OSError, match=f"cannot read image {re.escape(str(path))}"):
        CamVid(camvid_root)[2]
