"""class_counts / class_statistics (counts, cache and its invalidation) and the stats command."""

import json
import math
import os

import cv2
import numpy as np
import pytest

from segloss._cache import default_cache_dir
from segloss.segmentation.data import CamVid, SyntheticScenes, class_counts, class_statistics
from segloss.segmentation.data.stats import main

# Two 4×5 CamVid masks; 11 is void.
MASK_A = np.array([[0, 0, 0, 3, 3], [3, 3, 3, 3, 11], [8, 8, 1, 1, 1], [1, 1, 1, 1, 11]])
MASK_B = np.array([[0, 0, 0, 0, 0], [3, 3, 3, 3, 3], [3, 3, 9, 10, 11], [2, 4, 5, 6, 7]])
# Per class over both masks: sky 3+5, building 7+0, pole 0+1, road 6+7, pavement 0+1, tree 0+1,
# signsymbol 0+1, fence 0+1, car 2+0, pedestrian 0+1, bicyclist 0+1; void 2+1.
EXPECTED = np.array([8, 7, 1, 13, 1, 1, 1, 1, 2, 1, 1])


def write_pair(root, split, name, mask):
    for folder in (root / split, root / f"{split}annot"):
        folder.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(root / split / f"{name}.png"), np.zeros((*mask.shape, 3), np.uint8))
    assert cv2.imwrite(str(root / f"{split}annot" / f"{name}.png"), mask.astype(np.uint8))


@pytest.fixture
def camvid_root(tmp_path):
    root = tmp_path / "CamVid"
    write_pair(root, "train", "a", MASK_A)
    write_pair(root, "train", "b", MASK_B)
    write_pair(root, "val", "c", MASK_A)
    return root


def test_counts_exclude_void(camvid_root, tmp_path):
    counts = class_counts(CamVid(camvid_root), cache_dir=tmp_path / "cache", progress=False)
    assert counts.dtype == np.int64 and counts.shape == (11,)
    np.testing.assert_array_equal(counts, EXPECTED)
    stats = class_statistics(CamVid(camvid_root), cache_dir=tmp_path / "cache", progress=False)
    assert (stats.ignored, stats.num_images, stats.pixels_per_image) == (3, 2, 20.0)


def test_cache_is_reused(camvid_root, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    class_counts(CamVid(camvid_root), cache_dir=cache, progress=False)
    assert len(list(cache.glob("class_counts-*.json"))) == 1

    def unreadable(self, index):
        raise AssertionError("masks must not be read again")

    monkeypatch.setattr(CamVid, "load_mask", unreadable)
    np.testing.assert_array_equal(
        class_counts(CamVid(camvid_root), cache_dir=cache, progress=False), EXPECTED
    )


def test_cache_key_changes_with_files_and_split(camvid_root, tmp_path):
    cache = tmp_path / "cache"
    class_counts(CamVid(camvid_root), cache_dir=cache, progress=False)
    val_counts = class_counts(CamVid(camvid_root, "val"), cache_dir=cache, progress=False)
    np.testing.assert_array_equal(val_counts, [3, 7, 0, 6, 0, 0, 0, 0, 2, 0, 0])
    assert len(list(cache.glob("*.json"))) == 2

    # Same size, new content: the modification time changes the key.
    mask_file = camvid_root / "trainannot" / "b.png"
    write_pair(camvid_root, "train", "b", np.where(MASK_B == 0, 1, MASK_B))
    os.utime(mask_file, ns=(mask_file.stat().st_atime_ns, mask_file.stat().st_mtime_ns + 10**9))
    expected = EXPECTED.copy()
    expected[[0, 1]] = [3, 12]
    np.testing.assert_array_equal(
        class_counts(CamVid(camvid_root), cache_dir=cache, progress=False), expected
    )

    # A new file in the split changes the key too.
    write_pair(camvid_root, "train", "c", np.full((4, 5), 10))
    expected[10] += 20
    np.testing.assert_array_equal(
        class_counts(CamVid(camvid_root), cache_dir=cache, progress=False), expected
    )
    assert len(list(cache.glob("*.json"))) == 4


def test_default_cache_dir_follows_environment(camvid_root, tmp_path, monkeypatch):
    monkeypatch.setenv("SEGLOSS_CACHE", str(tmp_path / "env-cache"))
    assert default_cache_dir() == tmp_path / "env-cache"
    class_counts(CamVid(camvid_root), progress=False)
    assert len(list((tmp_path / "env-cache").glob("class_counts-*.json"))) == 1


def test_corrupt_cache_file_is_recounted(camvid_root, tmp_path):
    cache = tmp_path / "cache"
    class_counts(CamVid(camvid_root), cache_dir=cache, progress=False)
    (cache_file,) = cache.glob("*.json")
    cache_file.write_text("{not json")
    np.testing.assert_array_equal(
        class_counts(CamVid(camvid_root), cache_dir=cache, progress=False), EXPECTED
    )
    assert json.loads(cache_file.read_text())["counts"] == EXPECTED.tolist()


def test_synthetic_counts_match_masks_and_key_follows_parameters(tmp_path):
    dataset = SyntheticScenes("train", num_samples=3, size=40)
    expected = sum(np.bincount(dataset.load_mask(i).ravel(), minlength=9) for i in range(3))
    np.testing.assert_array_equal(class_counts(dataset, cache_dir=tmp_path, progress=False), expected)
    class_counts(SyntheticScenes("train", num_samples=3, size=40, seed=1), cache_dir=tmp_path, progress=False)
    class_counts(SyntheticScenes("val", num_samples=3, size=40), cache_dir=tmp_path, progress=False)
    assert len(list(tmp_path.glob("*.json"))) == 3


def test_stats_command_prints_and_writes_margins(camvid_root, tmp_path, capsys):
    out = tmp_path / "stats.json"
    argv = ["--dataset", "camvid", "--root", str(camvid_root), "--M", "50", "--out", str(out)]
    assert main([*argv, "--cache-dir", str(tmp_path / "cache"), "--no-progress"]) == 0
    report = json.loads(out.read_text())
    assert (report["num_images"], report["pixels_per_image"], report["ignored_pixels"]) == (2, 20.0, 3)
    rows = {row["class"]: row for row in report["classes"]}
    assert rows["road"]["pixels"] == 13 and rows["road"]["share"] == pytest.approx(13 / 40)
    # HEM: sqrt(M / S) with S = 37 labelled pixels; HEM+: sqrt(M / (n s_i)) with n = 11.
    assert report["hem_margin"] == pytest.approx(math.sqrt(50 / 37))
    assert rows["road"]["hem_plus_margin"] == pytest.approx(math.sqrt(50 / (11 * 13)))
    # Image-equivalents: counts divided by 20 pixels per image.
    assert report["hem_margin_images"] == pytest.approx(math.sqrt(50 / (37 / 20)))
    assert rows["pole"]["hem_plus_margin_images"] == pytest.approx(math.sqrt(50 / (11 * 1 / 20)))
    printed = capsys.readouterr().out
    assert "CamVid train: 2 images, 20 pixels per image, 7.50 % ignored" in printed
    road_line = next(line for line in printed.splitlines() if line.startswith("road"))
    assert road_line.split() == ["road", "13", "32.50", "0.5913", "2.644"]
    assert f"HEM margin (M = 50): {math.sqrt(50 / 37):.4g} counting pixels" in printed


def test_stats_command_reports_classes_without_pixels(camvid_root, tmp_path, capsys):
    out = tmp_path / "val.json"
    argv = [
        "--dataset",
        "camvid",
        "--root",
        str(camvid_root),
        "--split",
        "val",
        "--out",
        str(out),
        "--no-progress",
    ]
    assert main([*argv, "--cache-dir", str(tmp_path / "cache")]) == 0
    report = json.loads(out.read_text())
    assert report["hem_margin"] is None and report["classes"][2]["hem_plus_margin"] is None
    assert "'pole' (class 2)" in report["error"] and "'pole' (class 2)" in capsys.readouterr().out


def test_stats_command_names_a_missing_root(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--dataset", "camvid", "--root", str(tmp_path / "missing"), "--out", str(tmp_path / "x.json")])
    assert exit_info.value.code == 2
    assert f"folder not found: {tmp_path / 'missing'}" in capsys.readouterr().err
