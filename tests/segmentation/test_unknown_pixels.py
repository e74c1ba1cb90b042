"""Pixel-level unknown rejection: a class held out of segmentation training (ignored in the training masks,
no logit in the loss, never predicted) and the per-pixel MSP/MLS AUROC of its pixels against the others."""

import json
import math

import numpy as np
import pytest
import torch

import segloss
from segloss.runner.checkpoint import load_checkpoint
from segloss.runner.cli import evaluate_main
from segloss.runner.config import ConfigError, config_from_dict
from segloss.segmentation import evaluation, models, recipe, training, unknown_pixels
from segloss.segmentation.data import SyntheticScenes, class_statistics
from segloss.segmentation.data.registry import dataset_from_config

from ..helpers import tiny_overrides

PEDESTRIAN = SyntheticScenes.classes.index("pedestrian")


def test_held_out_pixels_are_ignored_in_the_training_masks_and_counts(tmp_path):
    config = config_from_dict({}, ["data.holdout_classes=[pedestrian]", "data.size=64", "data.num_train=4"])
    raw = dataset_from_config(config.data, "train")
    held_out = recipe.train_dataset(config)
    assert held_out.classes == raw.classes and len(held_out) == 4
    pedestrian_pixels = 0
    for index in range(4):
        mask, expected = held_out[index][1], raw[index][1].copy()
        pedestrian_pixels += int((expected == PEDESTRIAN).sum())
        expected[expected == PEDESTRIAN] = 255
        assert np.array_equal(mask, expected)
    assert pedestrian_pixels > 0  # the check above changed something

    raw_stats = class_statistics(raw, cache_dir=tmp_path, progress=False)
    stats = class_statistics(held_out, cache_dir=tmp_path, progress=False)  # its own cache entry
    assert stats.counts[PEDESTRIAN] == 0 and raw_stats.counts[PEDESTRIAN] == pedestrian_pixels
    assert stats.ignored == raw_stats.ignored + pedestrian_pixels
    others = np.arange(9) != PEDESTRIAN
    assert np.array_equal(stats.counts[others], raw_stats.counts[others])

    # With the training augmentation (crop, flips) the class never reaches the loss either.
    transform = segloss.segmentation.data.presets.train_transform(32, (0.5,) * 3, (0.25,) * 3, seed=0)
    augmented = recipe.train_dataset(config, transform)
    assert all(PEDESTRIAN not in augmented[i][1].unique() for i in range(4))


def test_the_loss_sees_only_the_known_classes(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGLOSS_CACHE", str(tmp_path))
    config = config_from_dict(
        {}, ["data.holdout_classes=[pedestrian]", "data.size=64", "data.num_train=4", "loss.name=hem+"]
    )
    train_set = recipe.train_dataset(config)
    loss, counts = recipe.loss_from_config(config, train_set, progress=False)
    assert isinstance(loss, unknown_pixels.KnownClassesLoss) and counts[PEDESTRIAN] == 0
    known = [c for c in range(9) if c != PEDESTRIAN]
    torch.testing.assert_close(loss.loss.margin.double(), segloss.hem_plus_margins(counts[known]))

    logits = torch.randn(2, 9, 4, 4, requires_grad=True)
    target = torch.randint(0, 8, (2, 4, 4))
    target[target >= PEDESTRIAN] += 1  # ids of the known classes only
    target[0, 0] = 255
    renumbered = target.clone()
    renumbered[target > PEDESTRIAN] -= 1
    renumbered[target == 255] = 255
    value = loss(logits, target)
    assert value == loss.loss(logits[:, known], renumbered)
    value.backward()
    assert logits.grad[:, PEDESTRIAN].abs().sum() == 0 and logits.grad[:, known].abs().sum() > 0
    target[1, 2, 3] = PEDESTRIAN  # a held-out pixel that was not ignored: never a silent wrong class
    with pytest.raises(ValueError, match="target value 6 is neither a known class"):
        loss(logits, target)
    text = recipe.describe_loss(config, loss, SyntheticScenes.classes, counts)
    assert "HEMPlusLoss, M = 2000, margin_on = target; held out of training: pedestrian" in text
    assert "pedestrian               0.0  held out" in text


def pixel_counts(result):
    return result.known_pixels, result.unknown_pixels, result.scored_known, result.scored_unknown


def test_pixel_auroc_of_a_hand_made_case():
    # 3 classes, class 2 unknown. Logits of classes 0 and 1 per pixel; class 2's logit (100) is left out.
    logits = torch.tensor(
        [[[3.0, 0.0, 2.5], [0.5, 9.0, 1.0]], [[0.0, 2.0, 0.0], [0.5, 0.0, 1.0]], [[100.0] * 3] * 2]
    )[None]
    mask = torch.tensor([[[0, 1, 2], [2, 255, 0]]])
    # known pixels: MLS 3, 2, 1 and MSP σ(3), σ(2), 1/2; unknown: MLS 2.5, 0.5 and MSP σ(2.5), 1/2.
    # MLS: 4 of the 6 (known, unknown) pairs are ordered right; MSP: 3 right and one tie (1/2 vs 1/2).
    scores = unknown_pixels.UnknownPixelScores(("a", "b", "c"), unknown=[2], excluded=[])
    scores.update(logits, mask)
    result = scores.result()
    assert result.auroc == {"msp": pytest.approx(3.5 / 6), "mls": pytest.approx(4 / 6)}
    assert pixel_counts(result) == (3, 2, 3, 2)
    assert result.to_json() == {
        "unknown_classes": ["c"],
        "excluded_logits": ["c"],
        "auroc_msp": pytest.approx(3.5 / 6),
        "auroc_mls": pytest.approx(4 / 6),
        "known_pixels": 3,
        "unknown_pixels": 2,
        "scored_known_pixels": 3,
        "scored_unknown_pixels": 2,
    }
    assert (
        "MLS       66.67" in result.format_table()
        and "known pixels 3, unknown pixels 2" in result.format_table()
    )

    with pytest.raises(ValueError, match="two classes left to score"):  # class 0's logit alone: no score
        unknown_pixels.UnknownPixelScores(("a", "b", "c"), unknown=[2], excluded=[1])

    # Capped at 2 pixels per group, in two batches: a uniform sample, the same on every call, said so.
    def capped():
        sample = unknown_pixels.UnknownPixelScores(
            ("a", "b", "c"), unknown=[2], excluded=[], max_pixels=2, seed=3
        )
        sample.update(logits[..., :2], mask[..., :2])
        sample.update(logits[..., 2:], mask[..., 2:])
        return sample.result()

    first = capped()
    assert first == capped()
    assert pixel_counts(first) == (3, 2, 2, 2)
    assert "known pixels 3 (2 scored: a uniform sample), unknown pixels 2" in first.format_table()
    assert first.auroc["mls"] in (3 / 4, 2 / 4)  # known MLS {3, 2} or {3, 1}: 3 of 4 pairs; {2, 1}: 2 of 4


def test_excluded_logits_are_never_predicted():
    model = torch.nn.Conv2d(3, 4, 1)
    with torch.no_grad():
        model.bias.copy_(torch.tensor([0.0, 0.0, 50.0, 0.0]))  # class 2 wins everywhere
    logits = unknown_pixels.ExcludedClassLogits(model, [2])(torch.randn(1, 3, 5, 5))
    assert logits.shape == (1, 4, 5, 5) and torch.isneginf(logits[:, 2]).all()
    assert (logits.argmax(1) != 2).all() and torch.isfinite(logits[:, [0, 1, 3]]).all()
    assert torch.allclose(logits.softmax(1).sum(1), torch.ones(1, 5, 5))


@pytest.mark.usefixtures("one_thread")
def test_holdout_run_and_evaluate_unknown_classes(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SEGLOSS_CACHE", str(tmp_path / "cache"))
    run_dir = tmp_path / "run"
    overrides = tiny_overrides(
        run_dir, train__epochs=1, loss__name="hem+", data__holdout_classes="[pedestrian]"
    )
    torch.manual_seed(0)
    config = config_from_dict({}, overrides)
    initial_head = models.model_from_config(config, 9, pretrained=False).state_dict()
    results = training.train(config)

    # results.json: the scores' keys first (docs/outputs.md), the rejection under its own key.
    saved = json.loads((run_dir / "results.json").read_text())
    assert list(saved) == [
        "miou", "pixel_accuracy", "per_class", "pixel_rejection", "train_pixels", "environment"
    ]  # fmt: skip
    assert saved.pop("environment")[0]["precision"] == "fp32"
    assert saved["train_pixels"]["pedestrian"] == 0  # held out of training: its pixels are ignored
    assert {key: value for key, value in saved.items() if key != "train_pixels"} == results.to_json()
    pedestrian = saved["per_class"][PEDESTRIAN]
    assert pedestrian == {"class": "pedestrian", "iou": 0.0, "accuracy": 0.0}  # never predicted
    rejection = saved["pixel_rejection"]
    assert rejection["unknown_classes"] == ["pedestrian"] and rejection["excluded_logits"] == ["pedestrian"]
    counts = class_statistics(evaluation.eval_dataset(config, "val"), progress=False).counts
    assert rejection["unknown_pixels"] == counts[PEDESTRIAN] > 0
    assert rejection["known_pixels"] == counts.sum() - counts[PEDESTRIAN]
    assert all(0 <= rejection[f"auroc_{s}"] <= 1 for s in ("msp", "mls"))
    last = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()][-1]
    assert last["unknown_auroc_mls"] == rejection["auroc_mls"]

    # The held-out class's output was never trained: its row of the last layer kept the initial weights.
    trained = load_checkpoint(run_dir / "checkpoint.pt")["model"]
    head = "segmentation_head.0.weight"
    assert torch.equal(trained[head][PEDESTRIAN], initial_head[head][PEDESTRIAN])
    assert not torch.equal(trained[head][PEDESTRIAN - 1], initial_head[head][PEDESTRIAN - 1])

    # evaluate.py: by default the run's held-out classes (reproducing results.json); or the classes given.
    evaluate = evaluate_main
    argv = ["--checkpoint", str(run_dir / "checkpoint.pt"), "--no-progress", "--out"]
    assert evaluate([*argv, str(tmp_path / "default.json")]) == 0
    assert json.loads((tmp_path / "default.json").read_text()) == saved
    assert evaluate([*argv, str(tmp_path / "two.json"), "--unknown-classes", "pole", "pedestrian"]) == 0
    two = json.loads((tmp_path / "two.json").read_text())
    assert two["per_class"] == saved["per_class"]
    assert two["pixel_rejection"]["unknown_classes"] == ["pedestrian", "pole"]
    assert two["pixel_rejection"]["unknown_pixels"] == counts[PEDESTRIAN] + counts[PEDESTRIAN + 1]
    assert not math.isclose(two["pixel_rejection"]["auroc_mls"], rejection["auroc_mls"])
    capsys.readouterr()
    assert evaluate([*argv, str(tmp_path / "bad.json"), "--unknown-classes", "person"]) == 1
    assert "unknown_classes (--unknown-classes) names classes the dataset does not have: ['person']" in (
        capsys.readouterr().err
    )


def test_bad_holdout_classes_are_named():
    with pytest.raises(
        ConfigError, match=r"holdout_classes names classes the dataset does not have: \['person'\]"
    ):
        config_from_dict({}, ["data.holdout_classes=[person]"])
    with pytest.raises(ConfigError, match="data.holdout_classes names a class twice"):
        config_from_dict({}, ["data.holdout_classes=[sign, sign]"])
    with pytest.raises(ConfigError, match="data.holdout_classes must be list"):
        config_from_dict({}, ["data.holdout_classes=pedestrian"])
    folder = ["data.name=folder", "data.root=x", "data.classes=[road, car, sign]"]
    with pytest.raises(
        ConfigError, match=r"\['car', 'sign'\] leaves fewer than two of the classes road, car, sign"
    ):
        config_from_dict({}, [*folder, "data.holdout_classes=[car, sign]"])
    config = config_from_dict({}, [*folder, "data.holdout_classes=[car]"])
    assert config.train.out_dir == "runs/folder_without_car/resnet34/ce/seed0"  # not the full run's folder
