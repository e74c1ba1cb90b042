"""Training runs end to end: SIGKILL + resume reproduces an uninterrupted run; run-directory contents;
NaN stop; class counts, margins and their errors; atomic checkpoints and RNG states."""

import json
import random

import numpy as np
import pytest
import torch

from segloss.runner.checkpoint import load_checkpoint, save_checkpoint
from segloss.runner.cli import evaluate_main, train_main
from segloss.runner.config import ConfigError, config_from_dict
from segloss.runner.loop import NonFiniteLossError
from segloss.runner.randomness import rng_states, set_rng_states
from segloss.runner.run_folder import RunExistsError
from segloss.segmentation import recipe, training
from segloss.segmentation.data import SyntheticScenes
from segloss.segmentation.data.registry import dataset_from_config

from ..helpers import (
    read_metrics,
    run_cli,
    tiny_overrides,
    train_and_kill,
    write_folder_dataset,
)

pytestmark = pytest.mark.usefixtures("one_thread")

EPOCHS = 5


def test_sigkill_resume_matches_uninterrupted_run(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("SEGLOSS_CACHE", str(cache))
    # Workers, augmentation and dropout all draw random numbers; HEM+ needs class counts.
    settings = {
        "train__epochs": EPOCHS,
        "train__num_workers": 1,
        "loss__name": "hem+",
        "train__eval_every": 2,
    }
    reference_dir, killed_dir = tmp_path / "reference", tmp_path / "killed"
    reference = training.train(config_from_dict({}, tiny_overrides(reference_dir, **settings)))

    killed_at = train_and_kill(tiny_overrides(killed_dir, **settings), killed_dir, cache)
    assert 1 <= killed_at < EPOCHS
    checkpoint = killed_dir / "checkpoint.pt"

    resumed = run_cli(["train", *tiny_overrides(killed_dir, **settings), "--resume"], cache)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed from {checkpoint} after epoch {killed_at}" in resumed.stderr

    # Same losses every epoch, same evaluations, same weights, same final results.
    ours, theirs = read_metrics(reference_dir), read_metrics(killed_dir)
    assert [r["epoch"] for r in theirs] == list(range(1, EPOCHS + 1))
    for key in ("loss", "miou", "pixel_accuracy"):
        assert [r.get(key) for r in theirs] == [r.get(key) for r in ours]
    assert "miou" in ours[1] and "miou" not in ours[2] and "miou" in ours[-1]  # eval_every=2 and the last
    final_a, final_b = load_checkpoint(reference_dir / "checkpoint.pt"), load_checkpoint(checkpoint)
    for name, tensor in final_a["model"].items():
        assert torch.equal(tensor, final_b["model"][name]), name
    results = json.loads((killed_dir / "results.json").read_text())
    reference_results = json.loads((reference_dir / "results.json").read_text())
    # Where each trained: the killed run's one environment (same machine and settings on resume).
    environments = results.pop("environment")
    assert {(e["precision"], e["device"]) for e in environments} == {("fp32", "cpu")}
    assert reference_results.pop("environment")[0]["cpu"] == environments[0]["cpu"]
    assert results == reference_results
    assert results["miou"] == pytest.approx(reference.miou)
    assert [row["class"] for row in results["per_class"]] == list(SyntheticScenes.classes)

    # The run directory.
    for name in ("config.yaml", "train.log", "class_iou.png", "predictions.png", "curves.png"):
        assert (killed_dir / name).stat().st_size > 0, name
    log = (killed_dir / "train.log").read_text()
    assert "HEMPlusLoss" in log and "sign" in log and "margin" in log  # margins logged at start

    # evaluate.py on the resumed checkpoint reproduces the run's final evaluation.
    out = tmp_path / "eval.json"
    assert evaluate_main(["--checkpoint", str(checkpoint), "--out", str(out), "--no-progress"]) == 0
    assert json.loads(out.read_text()) == results

    # A finished run: --resume does nothing; without --resume the folder is refused; settings are kept.
    again = run_cli(["train", *tiny_overrides(killed_dir, **settings), "--resume"], cache)
    assert again.returncode == 0 and "nothing to do" in again.stderr
    assert len(read_metrics(killed_dir)) == EPOCHS
    with pytest.raises(RunExistsError, match="--resume"):
        training.train(config_from_dict({}, tiny_overrides(killed_dir, **settings)))
    with pytest.raises(ConfigError, match=r"optim.lr: 0.01 -> 0.5"):
        training.train(
            config_from_dict({}, tiny_overrides(killed_dir, **settings, optim__lr=0.5)), resume=True
        )


def test_evaluating_during_training_does_not_change_it(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGLOSS_CACHE", str(tmp_path / "cache"))
    losses = {}
    for every in (0, 1):
        run_dir = tmp_path / f"every{every}"
        training.train(
            config_from_dict({}, tiny_overrides(run_dir, train__epochs=2, train__eval_every=every))
        )
        history = read_metrics(run_dir)
        assert ["miou" in record for record in history] == [bool(every), True]
        losses[every] = [record["loss"] for record in history]
    assert losses[0] == losses[1]


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGLOSS_CACHE", str(tmp_path / "cache"))
    build = recipe.loss_from_config
    calls = 0

    class Poisoned(torch.nn.Module):
        """The real loss, NaN at the 5th call (4 steps per epoch: epoch 2, step 1)."""

        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, logits, target):
            nonlocal calls
            calls += 1
            value = self.inner(logits, target)
            return value * float("nan") if calls == 5 else value

    def poisoned(*args, **kwargs):
        loss_fn, counts = build(*args, **kwargs)
        return Poisoned(loss_fn), counts

    monkeypatch.setattr(training, "loss_from_config", poisoned)
    run_dir = tmp_path / "run"
    config = config_from_dict({}, tiny_overrides(run_dir, train__epochs=3, train__log_every=1))
    with pytest.raises(
        NonFiniteLossError, match=r"the loss is nan at epoch 2, step 1.*checkpoint of epoch 1 is kept"
    ):
        training.train(config)
    assert load_checkpoint(run_dir / "checkpoint.pt")["epoch"] == 1
    assert [r["epoch"] for r in read_metrics(run_dir)] == [1]


def test_train_cli_reports_nan_as_an_error(tmp_path):
    run = run_cli(["train", *tiny_overrides(tmp_path / "run", optim__lr=1e30, train__epochs=1)], tmp_path)
    assert run.returncode == 1
    assert "error: the loss is" in run.stderr and "Try a lower optim.lr" in run.stderr


def _folder_config(root, *overrides):
    return config_from_dict(
        {},
        [
            "data.name=folder",
            f"data.root={root}",
            "data.classes=[road, car, sign]",
            "data.ignore_value=9",
            *overrides,
        ],
    )


def test_zero_pixel_class_fails_at_start_naming_it(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGLOSS_CACHE", str(tmp_path / "cache"))
    masks = [np.zeros((8, 8), np.uint8), np.ones((8, 8), np.uint8)]  # no 'sign' pixel
    write_folder_dataset(tmp_path, "train", masks)
    write_folder_dataset(tmp_path, "val", masks)
    for loss in ("la", "hem", "hem+"):
        config = _folder_config(
            tmp_path, f"loss.name={loss}", "train.batch_size=2", f"train.out_dir={tmp_path / loss}"
        )
        with pytest.raises(ValueError, match=r"'sign' \(class 2\): 0"):
            training.train(config)
    main = train_main
    out_dir = tmp_path / "cli"
    assert main(["data.name=folder", f"data.root={tmp_path}", "data.classes=[road, car, sign]",
                 "loss.name=hem+", "train.batch_size=2", f"train.out_dir={out_dir}"]) == 1  # fmt: skip
    assert not (out_dir / "checkpoint.pt").exists()


def test_class_counts_only_for_losses_that_use_them(tmp_path, monkeypatch):
    write_folder_dataset(tmp_path, "train", [np.zeros((8, 8), np.uint8)])
    dataset = dataset_from_config(_folder_config(tmp_path).data, "train")

    def refuse(*args, **kwargs):
        raise AssertionError("class counts computed for a loss that does not use them")

    monkeypatch.setattr(recipe, "class_statistics", refuse)
    for loss in ("ce", "ln", "dice", "mm"):
        loss_fn, counts = recipe.loss_from_config(_folder_config(tmp_path, f"loss.name={loss}"), dataset)
        assert counts is None and isinstance(loss_fn, torch.nn.Module)


def test_count_units_divide_pixels_by_patch_or_image_size(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGLOSS_CACHE", str(tmp_path / "cache"))
    first = np.zeros((4, 4), np.uint8)  # 16 road
    second = np.full((4, 4), 1, np.uint8)
    second[0, :2] = 2  # 2 sign, 10 car, 4 void
    second[3] = 9
    write_folder_dataset(tmp_path, "train", [first, second])
    dataset = dataset_from_config(_folder_config(tmp_path).data, "train")
    pixels = np.array([16.0, 10.0, 2.0])
    per_image = 32 / 2  # labelled and void pixels per image
    units = (("pixels", pixels), ("images", pixels / per_image))
    for unit, counts in units:
        config = _folder_config(tmp_path, "loss.name=hem+", "loss.M=3", f"loss.count_unit={unit}")
        loss_fn, used = recipe.loss_from_config(config, dataset, progress=False)
        assert used == pytest.approx(counts)
        assert loss_fn.margin.tolist() == pytest.approx(np.sqrt(3 / (3 * counts)).tolist())
    default, _ = recipe.loss_from_config(_folder_config(tmp_path, "loss.name=hem+"), dataset)
    assert default.margin_on == "target"  # the margin study's choice
    options = ("loss.margin_on=competitor",)
    loss_fn, _ = recipe.loss_from_config(_folder_config(tmp_path, "loss.name=hem+", *options), dataset)
    assert loss_fn.margin_on == "competitor"
    hem, _ = recipe.loss_from_config(_folder_config(tmp_path, "loss.name=hem", "loss.M=7"), dataset)
    assert float(hem.margin) == pytest.approx(np.sqrt(7 / (28 / per_image)))  # default unit: images
    mm, _ = recipe.loss_from_config(_folder_config(tmp_path, "loss.name=mm", "loss.margin=0.3"), dataset)
    assert float(mm.margin) == pytest.approx(0.3)
    ln, _ = recipe.loss_from_config(_folder_config(tmp_path, "loss.name=ln", "loss.tau=0.5"), dataset)
    assert ln.tau == 0.5


def test_checkpoint_is_replaced_atomically(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint({"epoch": 1, "weights": torch.arange(3)}, path)

    def interrupted(obj, file):
        with open(file, "wb") as handle:
            handle.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", interrupted)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint({"epoch": 2, "weights": torch.arange(5)}, path)
    state = load_checkpoint(path)
    assert state["epoch"] == 1 and torch.equal(state["weights"], torch.arange(3))
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]
    path.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="cannot read checkpoint"):
        load_checkpoint(path)
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_rng_states_round_trip_through_a_checkpoint(tmp_path):
    save_checkpoint({"rng": rng_states()}, tmp_path / "c.pt")
    expected = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)])  # noqa: NPY002
    set_rng_states(load_checkpoint(tmp_path / "c.pt")["rng"])
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1])  # noqa: NPY002
    assert [random.random() for _ in range(3)] == expected[2]
