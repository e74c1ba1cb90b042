"""evaluate.py on a Cityscapes-layout fixture: label-id PNGs accepted by cityscapesscripts' official
evaluation, which agrees with our per-class IoU; the other prediction formats; errors."""

import json
import shutil

import numpy as np
import pytest
from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as official
from PIL import Image

from segloss.runner.cli import evaluate_main
from segloss.runner.config import config_from_dict
from segloss.segmentation import training
from segloss.segmentation.data import Cityscapes, SyntheticScenes
from segloss.segmentation.evaluation import prediction_writer

from ..helpers import TINY_ENCODER

# Sides not divisible by 32, so inference pads and crops back.
HEIGHT, WIDTH = 48, 100
# unlabeled, ego vehicle, road, sidewalk, building, vegetation, sky, person, car
LABEL_IDS = np.array([0, 1, 7, 8, 11, 21, 23, 24, 26], dtype=np.uint8)
FRAMES = {"train": [("aachen", "000000_000019"), ("aachen", "000001_000019")],
          "val": [("lindau", "000000_000019"), ("munster", "000003_000019")]}  # fmt: skip


def write_cityscapes(root, seed=0):
    rng = np.random.default_rng(seed)
    for split, frames in FRAMES.items():
        for city, frame in frames:
            stem = f"{city}_{frame}"
            blocks = rng.choice(LABEL_IDS, (HEIGHT // 8, WIDTH // 4 + 1))
            labels = np.kron(blocks, np.ones((8, 4), np.uint8))[:HEIGHT, :WIDTH]  # blocks of 8×4 pixels
            image = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
            (root / "leftImg8bit" / split / city).mkdir(parents=True, exist_ok=True)
            (root / "gtFine" / split / city).mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png")
            Image.fromarray(labels).save(root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png")


@pytest.fixture(scope="module")
def cityscapes_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cityscapes")
    write_cityscapes(root)
    config = config_from_dict(
        {},
        [
            "data.name=cityscapes",
            f"data.root={root}",
            f"model.encoder={TINY_ENCODER}",
            "model.encoder_weights=null",
            "train.crop_size=32",
            "train.batch_size=2",
            "train.epochs=1",
            "train.num_workers=0",
            "train.progress=false",
            f"train.out_dir={root / 'run'}",
        ],
    )
    training.train(config)
    return root, root / "run" / "checkpoint.pt"


@pytest.mark.usefixtures("one_thread")
def test_cityscapes_predictions_pass_the_official_evaluation(cityscapes_run, tmp_path, monkeypatch):
    root, checkpoint = cityscapes_run
    out, predictions = tmp_path / "results.json", tmp_path / "predictions"
    evaluate = evaluate_main
    argv = ["--checkpoint", str(checkpoint), "--split", "val", "--out", str(out), "--no-progress"]
    assert evaluate([*argv, "--save-predictions", str(predictions), "--format", "cityscapes"]) == 0
    ours = json.loads(out.read_text())

    files = sorted(p.name for p in predictions.iterdir())
    assert files == [f"{city}_{frame}_leftImg8bit.png" for city, frame in FRAMES["val"]]
    for name in files:
        prediction = np.array(Image.open(predictions / name))
        assert prediction.shape == (HEIGHT, WIDTH) and prediction.dtype == np.uint8
        assert set(np.unique(prediction)) <= set(Cityscapes.train_id_to_label_id.tolist())

    monkeypatch.setattr(official.args, "predictionPath", str(predictions))
    monkeypatch.setattr(official.args, "predictionWalk", None)
    monkeypatch.setattr(official.args, "quiet", True)
    monkeypatch.setattr(official.args, "JSONOutput", False)
    # Pixel-level IoU only: the instance-level (iIoU) part calls np.in1d, which numpy 2.4 removed.
    monkeypatch.setattr(official.args, "evalInstLevelScore", False)
    ground_truth = sorted(str(p) for p in (root / "gtFine" / "val").glob("*/*_gtFine_labelIds.png"))
    matched = [official.getPrediction(official.args, path) for path in ground_truth]
    result = official.evaluateImgLists(matched, ground_truth, official.args)

    for row in ours["per_class"]:
        theirs = result["classScores"][row["class"]]
        if row["iou"] is None:
            assert np.isnan(theirs), row["class"]
        else:
            assert row["iou"] == pytest.approx(theirs), row["class"]
    assert ours["miou"] == pytest.approx(result["averageScoreClasses"])
    assert sum(row["iou"] is None for row in ours["per_class"]) >= 10  # absent classes are excluded
    assert any(row["iou"] for row in ours["per_class"])  # not a comparison of zeros

    # The same model as train ids and as colours; all three formats tell the same prediction.
    assert evaluate([*argv, "--save-predictions", str(tmp_path / "ids"), "--format", "trainid"]) == 0
    assert evaluate([*argv, "--save-predictions", str(tmp_path / "rgb"), "--format", "color"]) == 0
    for name in files:
        train_ids = np.array(Image.open(tmp_path / "ids" / name))
        label_ids = np.array(Image.open(predictions / name))
        colours = np.array(Image.open(tmp_path / "rgb" / name))
        assert np.array_equal(Cityscapes.train_id_to_label_id[train_ids], label_ids)
        assert np.array_equal(Cityscapes.palette[train_ids], colours)


def test_evaluate_errors(cityscapes_run, tmp_path, capsys):
    with pytest.raises(
        ValueError, match="--format cityscapes needs a Cityscapes dataset, got SyntheticScenes"
    ):
        prediction_writer(SyntheticScenes("val", num_samples=1, size=32), tmp_path, "cityscapes")
    evaluate = evaluate_main
    assert evaluate(["--checkpoint", str(tmp_path / "none.pt")]) == 1
    assert "checkpoint not found" in capsys.readouterr().err
    _, checkpoint = cityscapes_run
    assert evaluate(["--checkpoint", str(checkpoint), "--split", "nosuchsplit", "--no-progress"]) == 1
    assert "nosuchsplit" in capsys.readouterr().err


def test_evaluate_reads_data_that_moved(cityscapes_run, tmp_path, capsys):
    root, checkpoint = cityscapes_run
    argv = ["--checkpoint", str(checkpoint), "--split", "val", "--no-progress"]
    evaluate = evaluate_main
    assert evaluate([*argv, f"data.root={tmp_path / 'gone'}"]) == 1
    assert str(tmp_path / "gone") in capsys.readouterr().err
    moved = tmp_path / "moved"
    for folder in ("leftImg8bit", "gtFine"):
        shutil.copytree(root / folder, moved / folder)
    assert evaluate([*argv, "--out", str(tmp_path / "moved.json"), f"data.root={moved}"]) == 0
    assert evaluate([*argv, "--out", str(tmp_path / "here.json")]) == 0
    read = [json.loads((tmp_path / f"{name}.json").read_text()) for name in ("moved", "here")]
    assert read[0] == read[1]
    assert evaluate([*argv, "model.encoder=resnet34"]) == 1
    assert (
        "override 'model.encoder=resnet34': an evaluation may change only data.root, data.download, eval.*"
        in capsys.readouterr().err
    )
