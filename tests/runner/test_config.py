"""Run configs: YAML + dotted overrides, type checks, errors listing the valid keys, recipes, resume rules,
device settings."""

from pathlib import Path

import pytest
import torch

from segloss.runner.cli import train_main
from segloss.runner.config import (
    ConfigError,
    config_from_dict,
    config_to_dict,
    load_config,
    resume_config,
    saved_config,
)
from segloss.runner.distributed import resolve_device
from segloss.runner.schema import schema_keys
from segloss.segmentation.config import SegmentationConfig

from ..helpers import CONFIGS


def test_defaults_and_overrides_are_typed():
    config = config_from_dict(
        {},
        [
            "loss.name=hem+",
            "loss.M=500",
            "optim.lr=5e-2",
            "train.crop_size=[352,480]",
            "model.encoder_weights=null",
            "train.epochs=3",
            "train.channels_last=false",
        ],
    )
    assert isinstance(config, SegmentationConfig)
    assert config.task == "segmentation"
    assert config.loss.name == "hem+"
    assert config.loss.M == 500.0 and isinstance(config.loss.M, float)  # int accepted for a float key
    assert config.optim.lr == 0.05
    assert config.train.crop_size == [352, 480]
    assert config.model.encoder_weights is None
    assert config.train.epochs == 3
    assert config.train.channels_last is False
    assert config.model.arch == "FPN"
    # train.out_dir defaults to a folder per condition and seed
    assert config.train.out_dir == str(Path("runs/synthetic/resnet34/hemplus/seed0"))


def test_string_keys_keep_the_override_text():
    config = config_from_dict({}, ["data.name=camvid", "data.root=2024", "train.out_dir=007"])
    assert config.data.root == "2024"
    assert config.train.out_dir == "007"
    assert config_from_dict({}, ["data.root=null"]).data.root is None


def test_unknown_key_lists_valid_keys_and_suggests():
    with pytest.raises(ConfigError) as error:
        config_from_dict({}, ["train.epoch=3"])
    message = str(error.value)
    assert "unknown config key 'train.epoch'" in message
    assert "did you mean 'train.epochs'" in message
    for key, _, _ in schema_keys(SegmentationConfig):
        assert key in message
    with pytest.raises(ConfigError, match="unknown config key 'modell'"):
        config_from_dict({"modell": {"arch": "FPN"}})


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("train.epochs=three", r"train.epochs must be int, got 'three' \(str\)"),
        ("train.epochs=2.5", r"train.epochs must be int, got 2.5 \(float\)"),
        ("train.epochs=1e3", r"train.epochs must be int, got '1e3' \(str\)"),
        ("optim.lr=fast", r"optim.lr must be float, got 'fast'"),
        ("train.crop_size=[352, big]", r"train.crop_size must be int \| list\[int\]"),
        ("train.progress=maybe", r"train.progress must be bool"),
        ("loss.name=nope", r"loss.name must be one of ce\|ln\|la\|dice\|mm\|hem\|hem\+\|wce.*, got 'nope'"),
        ("loss.count_unit=voxels", r"loss.count_unit must be one of pixels\|images"),
        ("loss.margin_on=both", r"loss.margin_on must be one of competitor\|target"),
        ("data.name=coco", r"data.name must be one of camvid\|cityscapes\|folder\|idd_lite\|sbd\|synthetic"),
        ("train.epochs=0", r"train.epochs must be positive, got 0"),
        ("optim.lr=-0.1", r"optim.lr must be positive"),
        ("train.scale=[2.0, 0.5]", r"train.scale must be \[low, high\]"),
        ("train.crop_size=[1, 2, 3]", r"train.crop_size must be a positive int or \[height, width\]"),
        ("data.name=camvid", r"data.root is required for data.name=camvid"),
        ("task=detection", r"unknown task 'detection'; valid tasks: segmentation"),
        ("epochs", r"not of the form key=value"),
    ],
)
def test_bad_values_are_named(override, expected):
    with pytest.raises(ConfigError, match=expected):
        config_from_dict({}, [override])


def test_wrong_type_lists_valid_keys():
    with pytest.raises(ConfigError, match=r"valid keys:\n  task .*\n  data.name"):
        config_from_dict({}, ["train.batch_size=many"])


def test_folder_dataset_needs_classes():
    with pytest.raises(ConfigError, match="data.classes"):
        config_from_dict({}, ["data.name=folder", "data.root=/data"])
    config = config_from_dict({}, ["data.name=folder", "data.root=/data", "data.classes=[bg, road]"])
    assert config.data.classes == ["bg", "road"]


def test_yaml_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="cannot parse"):
        load_config(bad)
    listed = tmp_path / "list.yaml"
    listed.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(listed)
    section = tmp_path / "section.yaml"
    section.write_text("train: 5\n")
    with pytest.raises(ConfigError, match="train must be a mapping"):
        load_config(section)


@pytest.mark.parametrize(
    ("name", "dataset", "lr", "batch", "epochs", "split"),
    [
        ("camvid", "camvid", 0.1, 12, 100, "test"),
        ("cityscapes", "cityscapes", 0.1, 4, 50, "val"),
        ("sbd", "sbd", 0.05, 4, 50, "val"),
    ],
)
def test_recipes_follow_spec(name, dataset, lr, batch, epochs, split):
    config = load_config(CONFIGS / f"{name}.yaml")
    assert config.data.name == dataset
    assert (config.optim.lr, config.optim.momentum, config.optim.schedule) == (lr, 0.9, "constant")
    assert (config.train.batch_size, config.train.epochs) == (batch, epochs)
    assert (config.model.arch, config.model.encoder, config.model.encoder_weights) == (
        "FPN",
        "resnet34",
        "imagenet",
    )
    assert (config.loss.M, config.loss.margin, config.loss.tau) == (2000.0, 1.0, 0.04)
    assert config.eval.split == split
    crop = config.train.crop_size
    assert all(side % 32 == 0 for side in ([crop] if isinstance(crop, int) else crop))
    # the grid is a loop over overrides
    override = load_config(
        CONFIGS / f"{name}.yaml", ["model.encoder=densenet201", "loss.name=hem+", "train.seed=4"]
    )
    assert override.train.out_dir == str(Path(f"runs/{dataset}/densenet201/hemplus/seed4"))


def test_demo_config_is_offline_and_small():
    config = load_config(CONFIGS / "demo.yaml")
    assert config.data.name == "synthetic"
    assert config.model.encoder_weights is None
    assert config.data.size <= 128 and config.data.num_train <= 512


def test_resume_accepts_only_resumable_changes():
    saved = config_to_dict(config_from_dict({}, ["train.epochs=5", "train.out_dir=run"]))
    longer = resume_config(
        saved, config_from_dict({}, ["train.epochs=8", "train.eval_every=2", "train.out_dir=run"])
    )
    assert longer.train.epochs == 8 and longer.train.eval_every == 2
    with pytest.raises(
        ConfigError, match=r"optim.lr: 0.01 -> 0.1.*only train.compile, train.device, train.epochs"
    ):
        resume_config(saved, config_from_dict({}, ["optim.lr=0.1", "train.out_dir=run"]))
    # Each DataLoader worker seeds its own augmentation stream: the worker count is part of the run.
    with pytest.raises(ConfigError, match=r"train.num_workers: 2 -> 0"):
        resume_config(saved, config_from_dict({}, ["train.num_workers=0", "train.out_dir=run"]))


@pytest.mark.parametrize("task", ["segmentation", "classification", "continual"])
def test_train_device_is_validated(task):
    for setting in ("auto", "cpu", "cuda", "cuda:1", "mps"):
        assert config_from_dict({"task": task}, [f"train.device={setting}"]).train.device == setting
    for setting in ("gpu", "CPU", "cuda:", "cuda:one", "cuda:0,1"):
        with pytest.raises(
            ConfigError, match=rf"train.device must be auto, cpu, cuda, cuda:N or mps, got '{setting}'"
        ):
            config_from_dict({"task": task}, [f"train.device={setting}"])


def test_a_device_this_machine_lacks_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    # train.py tells it in one line
    assert train_main(["train.device=cuda:0", f"train.out_dir={tmp_path / 'run'}"]) == 1
    assert "error: train.device=cuda:0, but CUDA is not available" in capsys.readouterr().err
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(
        ConfigError, match=r"train.device=cuda, but CUDA is not available.*use train.device=cpu"
    ):
        resolve_device("cuda")
    with pytest.raises(ConfigError, match=r"train.device must be auto, cpu, cuda, cuda:N or mps, got 'gpu'"):
        resolve_device("gpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda", local_rank=1) == torch.device("cuda", 1)
    with pytest.raises(ConfigError, match=r"train.device=cuda:2 asks for GPU 2, but this machine has 2"):
        resolve_device("cuda:2")
    # last: torch._dynamo, which smp imports, reads torch.backends.mps.is_available.__wrapped__
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(ConfigError, match=r"train.device=mps, but MPS is not available"):
        resolve_device("mps")


def test_a_saved_config_without_newer_keys_resumes_with_their_defaults():
    saved = config_to_dict(config_from_dict({}, ["loss.name=hem+", "train.out_dir=run"]))
    del saved["optim"]["warmup_epochs"], saved["train"]["clip_grad_norm"]  # written before these keys
    resumed = resume_config(saved, config_from_dict({}, ["loss.name=hem+", "train.out_dir=run"]))
    assert (resumed.optim.warmup_epochs, resumed.train.clip_grad_norm) == (0.0, 0.0)
    with pytest.raises(ConfigError, match=r"train.clip_grad_norm: 0.0 -> 1.0"):
        resume_config(
            saved, config_from_dict({}, ["loss.name=hem+", "train.out_dir=run", "train.clip_grad_norm=1"])
        )


def test_a_saved_config_holds_only_its_losss_hyper_parameters(tmp_path):
    import yaml

    from segloss.runner.config import save_config

    for overrides, kept in (
        (["loss.name=ce"], set()),
        (["loss.name=hem+ + 0.5*focal", "loss.gamma=1"], {"M", "margin_on", "gamma"}),
    ):
        config = config_from_dict({}, [*overrides, "train.out_dir=run"])
        save_config(config, tmp_path / "config.yaml")
        loss = yaml.safe_load((tmp_path / "config.yaml").read_text())["loss"]
        assert set(loss) == {"name", "class_weighting", "count_unit"} | kept
        assert load_config(tmp_path / "config.yaml") == config  # the others read back as their defaults


def test_a_run_saved_with_every_loss_option_or_a_removed_one_still_reads():
    """Older runs saved every loss hyper-parameter, and ``mean_over`` (removed after the margin study) with
    the paper's ``nonzero``: they resume and evaluate; one trained with the removed ``valid`` says which
    segloss reads it."""
    config = config_from_dict({}, ["loss.name=hem+", "train.out_dir=run"])
    saved = config_to_dict(config)
    saved["loss"].update(mean_over="nonzero", gamma=2.0, tau=0.04)  # as runs before the removal wrote them
    assert resume_config(saved, config) == config
    assert config_from_dict(saved_config(saved)) == config
    saved["loss"]["mean_over"] = "valid"
    with pytest.raises(ConfigError, match=r"loss.mean_over='valid' was removed .* commit 819189f"):
        resume_config(saved, config)
