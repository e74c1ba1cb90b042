"""``benchmarks/compare_cls.py``: loss names checked before anything trains, config overrides after
``--losses`` (or after ``--``) applied to every run; ``benchmarks/bench_attack.py`` times AutoAttack."""

import importlib.util
import json
import re

import pytest

from segloss.runner.checkpoint import load_checkpoint

from ..helpers import REPO

DIGITS = "cls_digits"


@pytest.fixture(scope="module")
def compare_cls():
    spec = importlib.util.spec_from_file_location("_compare_cls", REPO / "benchmarks" / "compare_cls.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_overrides_after_losses_are_overrides(compare_cls):
    args = compare_cls.parse_arguments(
        ["--config", "c.yaml", "--losses", "ce", "hem", "ln", "data.root=data/cifar", "eval.attack_samples=5"]
    )
    assert args.losses == ["ce", "hem", "ln"]
    assert args.overrides == ["data.root=data/cifar", "eval.attack_samples=5"]
    args = compare_cls.parse_arguments(["train.seed=1", "--losses", "hem+", "--", "data.root=x"])
    assert args.losses == ["hem+"] and args.overrides == ["train.seed=1", "data.root=x"]


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (["ce", "nope"], r"--losses: unknown loss 'nope'; valid losses: ce, ln, la, dice, mm, hem, "
                          r"hem\+, wce, focal, lovasz, ohem\. Config overrides are key=value words "
                          r"\(before --losses or after --\)"),
        (["ce", "data.root", "data/cifar"], r"unknown loss 'data.root'"),
        (["ce", "ce"], r"--losses needs distinct loss names, got \['ce', 'ce'\]"),
    ],
)  # fmt: skip
def test_bad_loss_names_fail_before_training(compare_cls, tmp_path, capsys, words, message):
    with pytest.raises(SystemExit):
        compare_cls.main(["--config", DIGITS, "--out", str(tmp_path / "out"), "--losses", *words])
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "out").exists()


@pytest.mark.usefixtures("one_thread")
def test_documented_command_line_trains_every_loss_with_the_overrides(compare_cls, tmp_path):
    out = tmp_path / "out"
    overrides = [
        "train.epochs=1",
        "train.progress=false",
        "eval.unknown_sets=[blobs]",
        "eval.unknown_samples=20",
    ]
    compare_cls.main(
        ["--config", DIGITS, "--out", str(out), "--losses", "ce", "hem", *overrides, "eval.attack_samples=0"]
    )
    results = json.loads((out / "results.json").read_text())
    assert list(results) == ["ce", "hem"]
    for loss in ("ce", "hem"):
        state = load_checkpoint(out / loss / "checkpoint.pt")
        assert state["epoch"] == 1 and state["config"]["loss"]["name"] == loss
        assert list(results[loss]["unknown"]["per_set"]) == ["blobs"] and results[loss]["attacks"] == []


def test_bench_attack_times_autoattack_per_norm_on_a_trained_run(tmp_path, capsys):
    from segloss.classification.training import train
    from segloss.runner.config import load_config

    train(load_config(DIGITS, [f"train.out_dir={tmp_path}", "train.epochs=1", "train.progress=false",
                               "eval.unknown_sets=[]", "eval.attack_samples=0"]))  # fmt: skip
    spec = importlib.util.spec_from_file_location("_bench_attack", REPO / "benchmarks" / "bench_attack.py")
    bench_attack = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_attack)
    rows = bench_attack.main(["--checkpoint", str(tmp_path / "checkpoint.pt"), "--samples", "3"])
    budgets = [(row["norm"], row["eps"]) for row in rows]
    assert budgets == [("Linf", 0.3), ("L2", 2.0)]  # the digits get MNIST's budgets
    assert all(row["seconds_per_image"] > 0 and 0 <= row["robust"] <= 1 for row in rows)
    assert "AutoAttack on 3 test images" in capsys.readouterr().out
