"""IDD-Lite reader on a small tree in the release's layout (JPEG images, 8-bit PNG label ids)."""

import numpy as np
import pytest
from PIL import Image

from segloss.segmentation.data import IDDLite, build_dataset
from segloss.segmentation.data.idd_lite import VAL_EVERY

LABELS = np.array([[0, 1, 2, 3], [4, 5, 6, 255]], dtype=np.uint8)


def add_frame(root, split, sequence, frame, labels=LABELS, with_label=True):
    image_dir = root / "leftImg8bit" / split / str(sequence)
    image_dir.mkdir(parents=True, exist_ok=True)
    pixels = np.full((*labels.shape, 3), (10 * sequence) % 256, np.uint8)
    Image.fromarray(pixels).save(image_dir / f"{frame}_image.jpg", quality=95)
    if with_label:
        label_dir = root / "gtFine" / split / str(sequence)
        label_dir.mkdir(parents=True, exist_ok=True)
        Image.fromarray(labels, mode="L").save(label_dir / f"{frame}_label.png")


@pytest.fixture
def idd_root(tmp_path):
    root = tmp_path / "idd20k_lite"
    # 12 train sequences (numeric names out of text order), one or two frames each; 2 val sequences
    for sequence in (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 100):
        add_frame(root, "train", sequence, f"{sequence:06d}")
        if sequence % 3 == 0:
            add_frame(root, "train", sequence, f"{sequence + 500:06d}")
    add_frame(root, "val", 40, "000040")
    add_frame(root, "val", 7, "000007")
    add_frame(root, "test", 3, "000003", with_label=False)  # the release's test has no labels
    return root


def test_splits_carve_val_from_train_by_sequence(idd_root):
    splits = {split: IDDLite(idd_root, split) for split in ("train", "val", "trainval", "test")}
    sequences = {split: [path.parent.name for path in data.image_files] for split, data in splits.items()}
    # numeric order 0, 1, ..., 10, 100: every VAL_EVERY-th sequence folder, starting with the first
    assert VAL_EVERY == 10
    assert sequences["val"] == ["0", "0", "10"]
    assert sequences["train"] == ["1", "2", "3", "3", "4", "5", "6", "6", "7", "8", "9", "9", "100"]
    assert sorted(sequences["train"] + sequences["val"]) == sorted(sequences["trainval"])
    assert sequences["test"] == ["7", "40"]  # the release's labelled val folder
    assert len(splits["trainval"]) == 16


def test_samples_and_label_values(idd_root):
    dataset = IDDLite(idd_root, "test")
    assert dataset.classes[0] == "drivable" and dataset.classes[-1] == "sky" and len(dataset.classes) == 7
    assert dataset.palette.shape == (7, 3) and dataset.ignore_index == 255
    image, mask = dataset[0]
    assert image.shape == (2, 4, 3) and image.dtype == np.uint8
    assert mask.dtype == np.int64 and mask.tolist() == LABELS.astype(np.int64).tolist()
    assert repr(build_dataset("idd_lite", idd_root, "val")).startswith("IDDLite(root=")


def test_bad_data_is_named(idd_root, tmp_path):
    with pytest.raises(ValueError, match="has the splits train, val, test, trainval; got split='dev'"):
        IDDLite(idd_root, "dev")
    with pytest.raises(FileNotFoundError, match=r"folder not found: .*leftImg8bit/train\nexpected layout"):
        IDDLite(tmp_path / "missing")
    add_frame(idd_root, "val", 41, "000041", with_label=False)
    missing = r"no label in .*gtFine/val for 1 image\(s\).*41/000041_label.png"
    with pytest.raises(FileNotFoundError, match=missing):
        IDDLite(idd_root, "test")
    bad = LABELS.copy()
    bad[0, 0] = 7
    add_frame(idd_root, "train", 200, "000200", labels=bad)
    dataset = IDDLite(idd_root, "trainval")
    with pytest.raises(ValueError, match=r"000200_label.png holds value\(s\) 7 outside the class table"):
        dataset[len(dataset) - 1]
