"""Mixed precision and memory layout on every device, and the environment every run records."""

import json
import logging

import pytest
import torch

from segloss.runner import distributed, environment
from segloss.runner.distributed import amp_dtype
from segloss.runner.schema import ConfigError

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def test_amp_on_cuda():
    assert amp_dtype("off", CUDA) is None
    assert amp_dtype("fp16", CUDA) is torch.float16
    assert amp_dtype("bf16", CUDA) is torch.bfloat16


def test_amp_on_the_cpu_is_fp32_unless_bf16_is_asked_for(monkeypatch):
    monkeypatch.setattr(distributed, "cpu_bf16_support", lambda: "avx512_bf16")
    assert amp_dtype("auto", CPU) is None and amp_dtype("off", CPU) is None
    assert amp_dtype("bf16", CPU) is torch.bfloat16
    with pytest.raises(ConfigError, match="amp=fp16 trains on CUDA only; on the CPU use train.amp=bf16"):
        amp_dtype("fp16", CPU)


@pytest.mark.parametrize(
    ("support", "message"),
    [("none", "without bf16 instructions"), (None, "does not say whether it has bf16 instructions")],
)
def test_bf16_on_a_cpu_without_bf16_units_warns(monkeypatch, caplog, support, message):
    monkeypatch.setattr(distributed, "cpu_bf16_support", lambda: support)
    with caplog.at_level(logging.WARNING, logger="segloss"):
        assert amp_dtype("bf16", CPU) is torch.bfloat16
    assert message in caplog.text


def test_bf16_on_a_cpu_with_bf16_units_is_silent(monkeypatch, caplog):
    monkeypatch.setattr(distributed, "cpu_bf16_support", lambda: "amx_bf16")
    with caplog.at_level(logging.WARNING, logger="segloss"):
        amp_dtype("bf16", CPU)
    assert caplog.text == ""


def test_cpu_bf16_support_reads_the_flags(monkeypatch):
    both = {"avx2", "amx_bf16", "avx512_bf16"}
    for flags, expected in [(both, "amx_bf16"), ({"avx512_bf16"}, "avx512_bf16")]:
        monkeypatch.setattr(environment, "cpu_flags", lambda flags=flags: frozenset(flags))
        assert environment.cpu_bf16_support() == expected
    monkeypatch.setattr(environment, "cpu_flags", lambda: frozenset({"avx2"}))
    assert environment.cpu_bf16_support() == "none"
    monkeypatch.setattr(environment, "cpu_flags", lambda: None)
    assert environment.cpu_bf16_support() is None


def test_run_environment_records_precision_layout_and_versions():
    record = environment.run_environment(CPU, torch.bfloat16, True)
    assert record["precision"] == "bf16" and record["memory_format"] == "channels_last"
    assert record["device"] == "cpu" and record["threads"] == torch.get_num_threads()
    assert record["torch"] == torch.__version__ and record["segloss"]
    assert record["cpu_bf16"] in ("amx_bf16", "avx512_bf16", "none", None)
    json.dumps(record)  # goes into results.json
    assert environment.run_environment(CPU, None, False)["precision"] == "fp32"
    assert environment.run_environment(CPU, None, False)["memory_format"] == "contiguous"


def test_report_says_when_runs_trained_in_different_environments(tmp_path, caplog):
    from segloss.runner.grouping import finished_runs

    machines = {"a": "AMD EPYC", "b": "Intel Xeon", "c": "AMD EPYC"}
    for name, cpu in machines.items():
        run = tmp_path / name
        run.mkdir()
        (run / "config.yaml").write_text(f"task: segmentation\ndata:\n  root: /data/{name}\n")
        record = {**environment.run_environment(CPU, None, True), "cpu": cpu}
        (run / "results.json").write_text(json.dumps({"miou": 0.5, "environment": [record]}))
    with caplog.at_level(logging.WARNING, logger="segloss"):
        runs = list(finished_runs([tmp_path], "segmentation"))
    assert len(runs) == 3
    assert "these runs trained in 2 different environments" in caplog.text
    assert "2 run(s): device cpu + cpu AMD EPYC + precision fp32" in caplog.text
    assert "1 run(s): device cpu + cpu Intel Xeon" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="segloss"):
        list(finished_runs([tmp_path / "a", tmp_path / "c"], "segmentation"))
    assert "different environments" not in caplog.text


def test_the_data_folder_is_not_a_setting_that_groups_runs():
    from segloss.runner.grouping import varying_keys

    settings = [{"data.root": "/a", "optim.lr": 0.1}, {"data.root": "/b", "optim.lr": 0.2}]
    assert varying_keys(settings) == ["optim.lr"]


def test_auto_device_warns_when_a_gpu_is_visible_but_unusable(monkeypatch, caplog):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(distributed, "nvidia_gpu_visible", lambda: True)
    with caplog.at_level(logging.WARNING, logger="segloss"):
        assert distributed.resolve_device("auto") == CPU
    assert "shows an NVIDIA GPU: this torch" in caplog.text and "nvidia-smi prints" in caplog.text
    caplog.clear()
    monkeypatch.setattr(distributed, "nvidia_gpu_visible", lambda: False)
    with caplog.at_level(logging.WARNING, logger="segloss"):
        assert distributed.resolve_device("auto") == CPU
    assert caplog.text == ""


def test_the_torch_floor_is_the_one_pyproject_declares():
    import re
    from pathlib import Path

    import segloss

    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    floor = re.search(r'dependencies = \["torch>=([\d.]+)"\]', pyproject)[1]
    assert tuple(int(part) for part in floor.split(".")) == segloss.MIN_TORCH == (2, 4)
    assert hasattr(torch.library, "custom_op")  # what the floor is for
