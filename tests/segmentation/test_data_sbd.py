"""SBD reader on a small benchmark_RELEASE tree: JPEG images and GTcls .mat masks written with scipy."""

import re

import cv2
import numpy as np
import pytest
import scipy.io
import scipy.sparse

from segloss.segmentation.data import SBD, build_dataset

PUBLISHED_CLASSES = [
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
    "tvmonitor",
]  # fmt: skip


def save_gtcls(path, segmentation):
    """A cls/ID.mat file as SBD has it: a 1×1 struct GTcls (Boundaries, Segmentation, CategoriesPresent)."""
    boundaries = np.empty((21, 1), dtype=object)
    for class_id in range(21):
        boundaries[class_id, 0] = scipy.sparse.csc_matrix(np.zeros(segmentation.shape))
    present = np.unique(segmentation[segmentation > 0]).astype(np.uint8)[:, None]
    gtcls = {
        "Boundaries": boundaries,
        "Segmentation": segmentation.astype(np.uint8),
        "CategoriesPresent": present,
    }
    scipy.io.savemat(path, {"GTcls": gtcls})


def segmentation_for(index):
    mask = np.zeros((4, 6), np.uint8)
    mask[1:3, 1:4] = index  # a block of class `index`
    return mask


@pytest.fixture
def sbd_release(tmp_path):
    """``benchmark_RELEASE`` with ``dataset/{img,cls,train.txt,val.txt}``."""
    dataset = tmp_path / "benchmark_RELEASE" / "dataset"
    (dataset / "img").mkdir(parents=True)
    (dataset / "cls").mkdir()
    ids = ["2008_000009", "2008_000002", "2008_000016", "2008_000019"]
    for index, image_id in enumerate(ids, start=1):
        image = np.zeros((4, 6, 3), np.uint8)
        image[...] = (230, 20, 20)  # red in RGB
        assert cv2.imwrite(str(dataset / "img" / f"{image_id}.jpg"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        save_gtcls(dataset / "cls" / f"{image_id}.mat", segmentation_for(index))
    (dataset / "train.txt").write_text("2008_000009\n2008_000002\n2008_000016\n")
    (dataset / "val.txt").write_text("2008_000019\n")
    return tmp_path / "benchmark_RELEASE"


def test_list_file_order_lengths_and_classes(sbd_release):
    dataset = SBD(sbd_release / "dataset", "train")
    assert list(dataset.classes) == PUBLISHED_CLASSES and dataset.ignore_index == 255
    assert [p.stem for p in dataset.image_files] == ["2008_000009", "2008_000002", "2008_000016"]
    assert [p.name for p in dataset.mask_files] == ["2008_000009.mat", "2008_000002.mat", "2008_000016.mat"]
    assert len(SBD(sbd_release / "dataset", "val")) == 1
    assert dataset.palette.shape == (21, 3) and dataset.palette[1].tolist() == [128, 0, 0]  # VOC colours


def test_parent_folder_is_accepted(sbd_release):
    dataset = build_dataset("sbd", sbd_release, "val")
    assert dataset.root == sbd_release / "dataset" and dataset.image_files[0].stem == "2008_000019"


def test_sample_reads_jpeg_as_rgb_and_gtcls_segmentation(sbd_release):
    image, mask = SBD(sbd_release)[1]
    assert image.dtype == np.uint8 and image.shape == (4, 6, 3)
    assert np.abs(image.astype(int) - [230, 20, 20]).max() <= 8  # JPEG is lossy
    assert mask.dtype == np.int64
    np.testing.assert_array_equal(mask, segmentation_for(2))


def test_missing_id_is_named(sbd_release):
    (sbd_release / "dataset" / "cls" / "2008_000016.mat").unlink()
    with pytest.raises(
        FileNotFoundError, match=r"id\(s\) 2008_000016 in .*train\.txt lack img/ID\.jpg or cls/ID\.mat"
    ):
        SBD(sbd_release)


def test_missing_list_file_names_path_and_layout(sbd_release):
    expected = re.escape(str(sbd_release / "dataset" / "test.txt")) + "(.|\n)*cls/ID.mat"
    with pytest.raises(FileNotFoundError, match=expected):
        SBD(sbd_release, "test")
    with pytest.raises(
        FileNotFoundError, match=f"folder not found: {re.escape(str(sbd_release / 'nope'))}\n"
    ):
        SBD(sbd_release / "nope")


def test_class_value_outside_table_names_file_and_value(sbd_release):
    save_gtcls(sbd_release / "dataset" / "cls" / "2008_000019.mat", segmentation_for(21))
    with pytest.raises(ValueError, match=r"2008_000019\.mat holds value\(s\) 21 outside the class table"):
        SBD(sbd_release, "val")[0]


def test_corrupt_mat_names_the_file(sbd_release):
    path = sbd_release / "dataset" / "cls" / "2008_000019.mat"
    path.write_bytes(b"MATLAB 5.0 MAT-file garbage")
    with pytest.raises(OSError, match=f"cannot read SBD mask {re.escape(str(path))}"):
        SBD(sbd_release, "val")[0]
