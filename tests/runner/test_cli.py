"""The ``segloss`` command: subcommands, recipes by name or path, a loss registered from outside trained
through the command, checkpoints written before the package layout changed, the train.py/evaluate.py shims."""

import json
import subprocess
import sys
import zipfile

import pytest
import torch
from torch import nn

import segloss
from segloss import functional as F
from segloss.registry import LOSSES, LossEntry, register_loss
from segloss.runner import cli
from segloss.runner.config import ConfigError, find_config, packaged_configs
from segloss.segmentation.data import SyntheticScenes
from segloss.segmentation.models import build_model

from ..helpers import CONFIGS, REPO, TINY_ENCODER, cli_env, run_cli, tiny_overrides


def test_help_lists_the_subcommands(tmp_path):
    result = run_cli(["--help"], tmp_path)
    assert result.returncode == 0, result.stderr
    for command in ("train", "evaluate", "report", "stats", "demo"):
        assert f"\n    {command} " in result.stdout
    unknown = run_cli(["fly"], tmp_path)
    assert unknown.returncode == 2 and "invalid choice: 'fly'" in unknown.stderr


def test_recipes_are_found_by_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no configs/ folder here: the packaged recipes answer
    assert {"camvid", "cityscapes", "sbd", "demo", "cls_digits"} <= set(packaged_configs())
    by_name = find_config("camvid")
    assert by_name == find_config("camvid.yaml")
    assert by_name.read_text() == (CONFIGS / "camvid.yaml").read_text()
    own = tmp_path / "camvid.yaml"  # a file that exists wins
    own.write_text("task: segmentation\n")
    assert find_config("camvid.yaml").resolve() == own
    with pytest.raises(ConfigError, match="config file not found: configs/camvid.yaml; packaged recipes: "):
        find_config("configs/camvid.yaml")


def test_the_wheel_carries_the_top_level_recipes(tmp_path):
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            str(REPO),
            "-w",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    recipes = sorted(path.name for path in CONFIGS.glob("*.yaml"))
    assert sorted(name.split("/")[-1] for name in names if name.startswith("segloss/configs/")) == recipes


class ToyLoss(nn.Module):
    """Cross-entropy scaled by ``1 + margin``: a throw-away loss with one hyper-parameter."""

    def __init__(
        self, margin: float = 1.0, ignore_index: int = 255, reduction: str = "mean", sync: bool = False
    ):
        super().__init__()
        self.margin, self.ignore_index, self.reduction, self.sync = margin, ignore_index, reduction, sync

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = F.cross_entropy(logits, target, ignore_index=self.ignore_index, reduction=self.reduction)
        return (1 + self.margin) * loss


@pytest.fixture
def toy_loss():
    """``toy`` in the loss registry for the duration of a test."""
    entry = register_loss(LossEntry("toy", ToyLoss, ("margin",), summary="throw-away"))
    yield entry
    del LOSSES[entry.name]


@pytest.mark.usefixtures("one_thread")
def test_a_registered_loss_trains_through_the_command(toy_loss, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SEGLOSS_CACHE", str(tmp_path / "cache"))
    assert isinstance(segloss.build_loss("toy", margin=0.5), ToyLoss)
    run_dir = tmp_path / "run"
    overrides = tiny_overrides(
        run_dir, loss__name="toy", loss__margin=0.5, train__epochs=1, data__num_train=4
    )
    assert cli.main(["train", "--config", "demo", *overrides]) == 0  # 4 images, batch 4: one step
    record = json.loads((run_dir / "metrics.jsonl").read_text())
    assert record["epoch"] == 1 and record["loss"] > 0
    assert "loss.name              ce|ln|la|dice|mm|hem|hem+|wce|focal|lovasz|ohem|toy" in _help_keys(capsys)
    assert (run_dir / "results.json").is_file()


def _help_keys(capsys) -> str:
    capsys.readouterr()
    assert cli.main(["train", "--help-keys"]) == 0
    return capsys.readouterr().out


def _legacy_checkpoint(path, run_dir):
    """A checkpoint dict exactly as the code before the package layout changed wrote it (``format`` 1;
    the config a plain nested dict; a one-epoch run of configs/demo.yaml at 64×64)."""
    model = build_model("FPN", TINY_ENCODER, len(SyntheticScenes.classes), None)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    config = {
        "task": "segmentation",
        "data": {"name": "synthetic", "root": None, "train_split": "train", "classes": None,
                 "ignore_value": 255, "num_train": 8, "num_eval": 4, "size": 64, "seed": 0,
                 "holdout_classes": []},
        "model": {"arch": "FPN", "encoder": TINY_ENCODER, "encoder_weights": None},
        "loss": {"name": "ce", "M": 2000.0, "margin": 1.0, "tau": 0.04, "count_unit": "pixels"},
        "optim": {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.0, "schedule": "constant"},
        "train": {"batch_size": 8, "epochs": 1, "seed": 0, "crop_size": 64, "scale": [0.75, 1.5],
                  "num_workers": 0, "out_dir": str(run_dir), "eval_every": 4, "device": "auto", "amp": "auto",
                  "channels_last": True, "progress": True},
        "eval": {"split": "val", "num_overlays": 4},
    }  # fmt: skip
    torch.save(
        {
            "format": 1,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": None,
            "epoch": 1,
            "history": [{"epoch": 1, "loss": 2.0, "images_per_s": 3.0, "seconds": 2.8, "lr": 0.05}],
            "rng": {"torch": torch.get_rng_state(), "cuda": [], "numpy": ["MT19937", torch.zeros(624,
                    dtype=torch.int64), 624, 0, 0.0], "python": [3, [0] * 625, None]},
            "config": config,
            "device": "cpu",
            "finished": True,
            "classes": list(SyntheticScenes.classes),
            "class_counts": None,
        },
        path,
    )  # fmt: skip


@pytest.mark.usefixtures("one_thread")
def test_a_checkpoint_from_before_the_move_evaluates(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SEGLOSS_CACHE", str(tmp_path / "cache"))
    checkpoint, out = tmp_path / "run" / "checkpoint.pt", tmp_path / "results.json"
    checkpoint.parent.mkdir()
    _legacy_checkpoint(checkpoint, checkpoint.parent)
    assert cli.main(["evaluate", "--checkpoint", str(checkpoint), "--out", str(out), "--no-progress"]) == 0
    results = json.loads(out.read_text())
    assert [row["class"] for row in results["per_class"]] == list(SyntheticScenes.classes)
    assert "mIoU" in capsys.readouterr().out


@pytest.mark.parametrize(("script", "option"), [("train.py", "--help-keys"), ("evaluate.py", "--checkpoint")])
def test_the_top_level_scripts_keep_their_flags(script, option, tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO / script), "--help"],
        env=cli_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: {script}") and option in result.stdout


def test_train_py_logs_like_the_command(tmp_path):
    """``python train.py`` sets up logging as ``segloss train`` does: the epoch lines reach the terminal and
    the run's train.log."""
    run_dir = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, str(REPO / "train.py"), *tiny_overrides(run_dir, train__epochs=1)],
        env=cli_env(tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "epoch 1/1: loss" in result.stderr
    assert "epoch 1/1: loss" in (run_dir / "train.log").read_text()
