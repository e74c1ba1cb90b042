"""``train.py``/``evaluate.py`` with ``task: classification``: SIGKILL + resume reproduces an uninterrupted
run (per-epoch LR milestones included), the run directory, evaluation of the checkpoint, errors; a failed
final evaluation is redone by ``--resume`` without training; the evaluation's inputs are checked before
training; evaluating during training does not change it."""

import json
import logging
import sys

import numpy as np
import pytest
import torch

from segloss.classification import recipe, training
from segloss.runner.checkpoint import load_checkpoint, save_checkpoint
from segloss.runner.cli import evaluate_main
from segloss.runner.config import ConfigError, load_config
from segloss.runner.loop import NonFiniteLossError
from segloss.segmentation.evaluation import evaluate_checkpoint as evaluate_segmentation_checkpoint

from ..helpers import read_metrics, train_and_kill
from .fixtures import skip_cifar_checksums, write_cifar10, write_mnist

pytestmark = pytest.mark.usefixtures("one_thread")

DIGITS = "cls_digits"
EPOCHS, MILESTONE = 8, 5


def digits_overrides(out_dir, *extra):
    """A digits MLP run of about a second: Adam (lr 1e-3, ÷10 after epoch 5), a short evaluation."""
    return [
        "loss.name=hem+",
        f"train.epochs={EPOCHS}",
        "train.batch_size=32",
        "train.eval_every=3",
        "train.progress=false",
        f"optim.milestones=[{MILESTONE}]",
        "eval.unknown_sets=[blobs,phase]",
        "eval.unknown_samples=100",
        "eval.attack_samples=6",
        f"train.out_dir={out_dir}",
        *extra,
    ]


def test_sigkill_resume_matches_uninterrupted_run(tmp_path, caplog):
    reference_dir, killed_dir = tmp_path / "reference", tmp_path / "killed"
    reference = training.train(load_config(DIGITS, digits_overrides(reference_dir)))

    killed_at = train_and_kill(["--config", DIGITS, *digits_overrides(killed_dir)], killed_dir, tmp_path)
    assert 1 <= killed_at < MILESTONE  # the LR drop happens after the resume
    with caplog.at_level(logging.INFO, logger="segloss"):
        resumed = training.train(load_config(DIGITS, digits_overrides(killed_dir)), resume=True)
    assert f"resumed from {killed_dir / 'checkpoint.pt'} after epoch {killed_at}" in caplog.text

    # Same losses, learning rates and evaluations every epoch, same weights, same final results.
    ours, theirs = read_metrics(reference_dir), read_metrics(killed_dir)
    assert [r["epoch"] for r in theirs] == list(range(1, EPOCHS + 1))
    assert [r["lr"] for r in theirs] == pytest.approx([1e-3] * MILESTONE + [1e-4] * (EPOCHS - MILESTONE))
    for key in ("loss", "lr", "accuracy", "unknown_auroc_msp", "unknown_auroc_mls"):
        assert [r.get(key) for r in theirs] == [r.get(key) for r in ours], key
    assert ["accuracy" in r for r in ours] == [
        epoch % 3 == 0 or epoch == EPOCHS for epoch in range(1, EPOCHS + 1)
    ]
    final_a, final_b = (
        load_checkpoint(reference_dir / "checkpoint.pt"),
        load_checkpoint(killed_dir / "checkpoint.pt"),
    )
    for name, tensor in final_a["model"].items():
        assert torch.equal(tensor, final_b["model"][name]), name
    updates = final_b["step"]["scheduler"]["last_epoch"]  # the schedule steps once an update
    assert updates == final_a["step"]["scheduler"]["last_epoch"] and updates % EPOCHS == 0
    assert final_b["classes"] == [str(d) for d in range(10)]
    results = json.loads((killed_dir / "results.json").read_text())
    reference_results = json.loads((reference_dir / "results.json").read_text())
    # both record where they trained (the killed run once per environment it resumed in)
    assert results["environment"][-1]["cpu"] == reference_results.pop("environment")[0]["cpu"]
    trained_in = results.pop("environment")
    assert [e["precision"] for e in trained_in] == ["fp32"] * len(trained_in)
    assert results == reference_results
    assert results["accuracy"] == reference.accuracy == resumed.accuracy > 0.8
    assert results["num_test"] == 450 and list(results["unknown"]["per_set"]) == ["blobs", "phase"]
    assert results["unknown"]["mean"]["mls"] == ours[-1]["unknown_auroc_mls"]
    assert [(a["norm"], a["eps"], a["num_samples"]) for a in results["attacks"]] == [
        ("Linf", 0.3, 6),
        ("L2", 2.0, 6),
    ]

    # The run directory.
    for name in ("config.yaml", "train.log", "confidence_msp.png", "confidence_mls.png"):
        assert (killed_dir / name).stat().st_size > 0, name
    assert "task: classification" in (killed_dir / "config.yaml").read_text()
    assert "HEMPlusLoss" in (killed_dir / "train.log").read_text()

    # evaluate.py on the resumed checkpoint reproduces the run's final evaluation.
    out = tmp_path / "eval.json"
    evaluate = evaluate_main
    assert (
        evaluate(["--checkpoint", str(killed_dir / "checkpoint.pt"), "--out", str(out), "--no-progress"]) == 0
    )
    assert json.loads(out.read_text()) == results  # training records where it ran; evaluate --out does not

    # A finished run: --resume does nothing.
    assert training.train(load_config(DIGITS, digits_overrides(killed_dir)), resume=True) is None
    assert len(read_metrics(killed_dir)) == EPOCHS


def test_nan_loss_stops_a_classification_run(tmp_path):
    config = load_config(DIGITS, digits_overrides(tmp_path / "run", "loss.name=ce", "optim.lr=1e30"))
    with pytest.raises(NonFiniteLossError, match=r"the loss is nan at epoch 1.*Try a lower optim.lr"):
        training.train(config)


def test_segmentation_options_on_a_classification_run_are_refused(tmp_path, capsys):
    config = load_config(
        DIGITS, digits_overrides(tmp_path / "run", "train.epochs=1", "eval.attack_samples=0")
    )
    training.train(config)
    evaluate = evaluate_main
    checkpoint = str(tmp_path / "run" / "checkpoint.pt")
    assert evaluate(["--checkpoint", checkpoint, "--format", "cityscapes", "--no-progress"]) == 1
    assert (
        f"error: --format: options for segmentation runs only; {checkpoint} is a classification run"
        in capsys.readouterr().err
    )
    assert evaluate(["--checkpoint", checkpoint, "--unknown-classes", "3", "--split", "val"]) == 1
    assert "error: --split, --unknown-classes: options for segmentation runs only" in capsys.readouterr().err
    with pytest.raises(ValueError, match="is a classification checkpoint, not a segmentation one"):
        evaluate_segmentation_checkpoint(checkpoint)

    # eval.* overrides change what is measured; the trained sections cannot change.
    out = tmp_path / "more.json"
    overrides = ["eval.attack_samples=3", "eval.attack_norms=[L2]", "eval.unknown_sets=[phase]"]
    assert evaluate(["--checkpoint", checkpoint, "--out", str(out), "--no-progress", *overrides]) == 0
    results = json.loads(out.read_text())
    assert [(a["norm"], a["num_samples"]) for a in results["attacks"]] == [("L2", 3)]
    assert list(results["unknown"]["per_set"]) == ["phase"]
    assert evaluate(["--checkpoint", checkpoint, "--no-progress", "loss.name=ce"]) == 1
    assert "an evaluation may change only data.root, data.download, eval.*" in capsys.readouterr().err
    assert evaluate(["--checkpoint", checkpoint, "--no-progress", "data.name=mnist"]) == 1
    assert "override 'data.name=mnist'" in capsys.readouterr().err


def test_evaluate_follows_the_data_to_a_new_root(tmp_path):
    """Unknown sets read from the run's data.root (the default eval.unknown_root) move with it."""
    root = tmp_path / "data"
    write_mnist(root)
    write_mnist(root, folder="FashionMNIST", test=4)
    overrides = [
        f"data.root={root}",
        f"train.out_dir={tmp_path / 'run'}",
        "train.epochs=1",
        "train.num_workers=0",
    ]
    overrides += ["train.progress=false", "model.arch=mlp", "eval.unknown_sets=[fashionmnist]"]
    training.train(load_config("cls_mnist", [*overrides, "eval.attack_samples=0"]))
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    results.pop("environment")  # written by training only
    moved = root.rename(tmp_path / "moved")
    checkpoint = str(tmp_path / "run" / "checkpoint.pt")
    out = tmp_path / "moved.json"
    assert (
        evaluate_main(["--checkpoint", checkpoint, "--no-progress", "--out", str(out), f"data.root={moved}"])
        == 0
    )
    assert json.loads(out.read_text()) == results


def quick_overrides(out_dir, *extra):
    """A two-epoch digits run of well under a second on the CPU, evaluated on one small unknown set, no
    AutoAttack."""
    return digits_overrides(
        out_dir,
        "train.device=cpu",
        "train.epochs=2",
        "optim.milestones=[]",
        "eval.unknown_sets=[blobs]",
        "eval.attack_samples=0",
        *extra,
    )


def test_failed_final_evaluation_is_redone_by_resume_without_training(tmp_path, monkeypatch, caplog):
    reference_dir, run_dir = tmp_path / "reference", tmp_path / "run"
    training.train(load_config(DIGITS, quick_overrides(reference_dir)))
    expected = json.loads((reference_dir / "results.json").read_text())

    # Training completes, the final evaluation fails: the last epoch's checkpoint is already written.
    evaluate = recipe.report_from_config

    def broken(*args, **kwargs):
        raise RuntimeError("the evaluation broke")

    monkeypatch.setattr(recipe, "report_from_config", broken)
    with pytest.raises(RuntimeError, match="the evaluation broke"):
        training.train(load_config(DIGITS, quick_overrides(run_dir)))
    state = load_checkpoint(run_dir / "checkpoint.pt")
    assert state["epoch"] == 2 and state["finished"] is False and state["device"] == "cpu"
    assert not (run_dir / "results.json").exists()

    # --resume runs only the final evaluation, with the results of an uninterrupted run.
    monkeypatch.setattr(recipe, "report_from_config", evaluate)

    def no_training(*args, **kwargs):
        raise AssertionError("a finished training was resumed")

    monkeypatch.setattr(training, "train_one_epoch", no_training)
    with caplog.at_level(logging.INFO, logger="segloss"):
        report = training.train(load_config(DIGITS, quick_overrides(run_dir)), resume=True)
    assert "trained 2 epochs but its final evaluation (results.json) is missing" in caplog.text
    assert report.accuracy == expected["accuracy"]
    assert json.loads((run_dir / "results.json").read_text()) == expected
    timings = ("seconds", "images_per_s")
    ours, theirs = read_metrics(run_dir), read_metrics(reference_dir)
    assert [{k: v for k, v in r.items() if k not in timings} for r in ours] == [
        {k: v for k, v in r.items() if k not in timings} for r in theirs
    ]
    assert ours[-1]["unknown_auroc_msp"] == expected["unknown"]["mean"]["msp"]
    state = load_checkpoint(run_dir / "checkpoint.pt")
    assert state["epoch"] == 2 and state["finished"] is True

    # Finished: --resume does nothing; without results.json it evaluates again.
    assert training.train(load_config(DIGITS, quick_overrides(run_dir)), resume=True) is None
    (run_dir / "results.json").unlink()
    assert (
        training.train(load_config(DIGITS, quick_overrides(run_dir)), resume=True).accuracy == report.accuracy
    )
    assert json.loads((run_dir / "results.json").read_text()) == expected


def test_resume_on_another_device_type_warns(tmp_path, caplog):
    run_dir = tmp_path / "run"
    training.train(load_config(DIGITS, quick_overrides(run_dir, "train.epochs=1")))
    state = load_checkpoint(run_dir / "checkpoint.pt")
    save_checkpoint({**state, "device": "cuda"}, run_dir / "checkpoint.pt")
    with caplog.at_level(logging.WARNING, logger="segloss"):
        training.train(load_config(DIGITS, quick_overrides(run_dir, "train.epochs=2")), resume=True)
    assert "written on cuda and the run continues on cpu" in caplog.text
    assert "not be bit-identical" in caplog.text


def test_evaluation_inputs_are_checked_before_training(tmp_path, monkeypatch):
    write_mnist(tmp_path / "mnist")
    cases = [
        (
            ["data.name=mnist", f"data.root={tmp_path / 'mnist'}", "eval.unknown_sets=[fashionmnist]"],
            FileNotFoundError,
            r"eval.unknown_sets: dataset 'fashionmnist' not found under .*t10k-images-idx3-ubyte(.|\n)*"
            r"Debian's package dataset-fashion-mnist",
        ),
        (
            ["eval.unknown_sets=[mnist]"],  # 28×28 images against the 8×8 digits
            ConfigError,
            r"eval.unknown_sets: unknown set 'mnist' has images of shape \(1, 28, 28\)",
        ),
        (
            [f"eval.corruptions_root={tmp_path / 'digits-c'}"],
            FileNotFoundError,
            r"eval.corruptions_root: .*labels.npy not found; expected a CIFAR-10-C-style folder",
        ),
        (
            ["eval.attack_samples=6"],
            ConfigError,
            r"eval.attack_samples=6: AutoAttack needs the torchattacks package.*pip install torchattacks.*"
            r"eval.attack_samples=0",
        ),
    ]
    monkeypatch.setitem(sys.modules, "torchattacks", None)  # as if it were not installed
    for index, (extra, error, message) in enumerate(cases):
        run_dir = tmp_path / f"run{index}"
        with pytest.raises(error, match=message):
            training.train(load_config(DIGITS, quick_overrides(run_dir, *extra)))
        assert not (run_dir / "checkpoint.pt").exists(), extra


def test_evaluating_during_classification_training_does_not_change_it(tmp_path, monkeypatch):
    # CIFAR-10's random crops and flips draw from the global torch RNG (no workers), like dropout would.
    skip_cifar_checksums(monkeypatch)
    write_cifar10(tmp_path, np.arange(40) % 10)
    losses = {}
    for every in (0, 1):
        run_dir = tmp_path / f"every{every}"
        config = load_config(
            DIGITS,
            quick_overrides(
                run_dir,
                "data.name=cifar10",
                f"data.root={tmp_path}",
                "train.batch_size=8",
                f"train.eval_every={every}",
                "eval.unknown_sets=[]",
            ),
        )
        training.train(config)
        history = read_metrics(run_dir)
        assert ["accuracy" in record for record in history] == [bool(every), True]
        losses[every] = [record["loss"] for record in history]
    assert losses[0] == losses[1]


def test_train_compile_trains_the_compiled_model_to_the_eager_result(tmp_path, caplog):
    """``train.compile`` trains through ``torch.compile`` (the inductor C++ backend on a CPU): the same
    losses as eager to float tolerance, and a checkpoint of the plain model."""
    caplog.set_level(logging.INFO, logger="segloss.runner")
    eager = training.train(load_config(DIGITS, digits_overrides(tmp_path / "eager", "train.epochs=2")))
    compiled_dir = tmp_path / "compiled"
    compiled = training.train(
        load_config(DIGITS, digits_overrides(compiled_dir, "train.epochs=2", "train.compile=true"))
    )
    assert "training through torch.compile" in caplog.text
    assert compiled.accuracy == pytest.approx(eager.accuracy, abs=0.02)
    losses = [[r["loss"] for r in read_metrics(folder)] for folder in (tmp_path / "eager", compiled_dir)]
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-3)
    assert not any(
        key.startswith("_orig_mod") for key in load_checkpoint(compiled_dir / "checkpoint.pt")["model"]
    )
