"""What the README tells a newcomer to run, as written: resume a run by its folder with overrides
anywhere, evaluate a run folder, and commands that write nothing into the current folder unasked."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from segloss.runner.cli import evaluate_main, train_main
from segloss.segmentation.data.stats import main as stats_main

from ..helpers import TINY_ENCODER, cli_env, tiny_overrides, write_folder_dataset

pytestmark = pytest.mark.usefixtures("one_thread")


def test_resume_a_run_by_its_folder_with_overrides_anywhere(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SEGLOSS_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "runs" / "tiny"
    assert (
        train_main([*tiny_overrides(run, train__epochs=1, model__encoder_weights="null"), "--config", "demo"])
        == 0
    )
    # the forms a newcomer tries: --resume RUN, --resume with the folder as an override, overrides after it
    assert train_main(["--resume", str(run), "train.epochs=2"]) == 0
    assert [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    assert train_main(["--resume", f"train.out_dir={run}", "train.epochs=3"]) == 0
    assert train_main([f"train.out_dir={run}", "--resume", "train.epochs=4", "train.progress=false"]) == 0
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 4
    with pytest.raises(SystemExit):
        train_main(["--resume", str(tmp_path / "nowhere")])
    assert "no config.yaml in" in capsys.readouterr().err

    # evaluate takes the run folder, as export and predict do; the checkpoint path still works
    capsys.readouterr()
    assert evaluate_main([str(run), "--no-progress", "--split", "val"]) == 0
    by_folder = capsys.readouterr().out
    assert evaluate_main(["--checkpoint", str(run / "checkpoint.pt"), "--no-progress"]) == 0
    assert "mIoU" in by_folder and by_folder.splitlines()[-1] == capsys.readouterr().out.splitlines()[-1]
    with pytest.raises(SystemExit):
        evaluate_main(["--no-progress"])
    assert "segloss evaluate RUN" in capsys.readouterr().err

    # stats and report print; they write files only with --out
    before = set(tmp_path.iterdir())
    assert stats_main(["--dataset", "synthetic", "--num-samples", "4", "--size", "32", "--no-progress"]) == 0
    from segloss.runner.report import main as report_main

    assert report_main([str(run)]) == 0
    assert set(tmp_path.iterdir()) == before


README = Path(__file__).resolve().parents[2] / "README.md"


def readme_blocks(section: str, language: str) -> list[str]:
    """The ``language`` code blocks of the README section titled ``section``."""
    text = README.read_text().split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)


def test_the_readme_drop_in_snippet_runs_as_written(tmp_path):
    (snippet,) = readme_blocks("Use the loss in your own pipeline", "python")
    script = tmp_path / "snippet.py"
    script.write_text(snippet + "\nprint('final loss', float(loss))\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "final loss" in done.stdout


def test_the_readme_folder_commands_run_as_written(tmp_path):
    """The own-folder and "does HEM+ help on my data?" commands on a tiny folder, shrunk only by overrides
    appended for the test's time (a tiny encoder, one epoch) and by fewer losses and seeds in the sweep."""
    rng = np.random.default_rng(0)
    for split, count in (("train", 8), ("val", 2), ("test", 2)):
        masks = [rng.integers(0, 3, (64, 96)) for _ in range(count)]
        masks[0][:4] = 255
        write_folder_dataset(tmp_path / "my_data", split, masks)
    tiny = (f" model.encoder={TINY_ENCODER} train.epochs=1 train.crop_size=[64,64] train.batch_size=4"
            " train.num_workers=0 train.progress=false")  # fmt: skip
    commands = [
        line + (tiny if line.startswith(("segloss train", "segloss sweep")) else "")
        for block in (
            readme_blocks("Train on your own folder", "bash")
            + readme_blocks("Does HEM+ help on my data?", "bash")
        )
        for line in block.replace("\\\n", "").splitlines()
    ]
    commands = [
        c.replace("loss.name=ce,hem+,ce+dice train.seed=0,1,2", "loss.name=ce,hem+ train.seed=0")
        for c in commands
    ]
    assert any("--config folder" in c for c in commands) and any("segloss report" in c for c in commands)
    env = {**cli_env(tmp_path / "cache"), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    done = subprocess.run(["bash", "-ec", "\n".join(commands)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (
        tmp_path / "runs" / "folder" / "resnet34" / "hemplus" / "seed0" / "results.json"
    ).is_file() is False
    assert sorted(p.name for p in (tmp_path / "runs" / "my_data").iterdir()) == ["name=ce", "name=hem+"]
    assert done.stdout.count("| hem+ |") == 4  # val and test: the mIoU table and the rarest classes


def test_training_from_python_logs_like_the_command(tmp_path, monkeypatch, caplog):
    import logging

    from segloss.runner import train

    monkeypatch.setenv("SEGLOSS_CACHE", str(tmp_path / "cache"))
    with caplog.at_level(logging.INFO, logger="segloss"):
        results = train("demo", tiny_overrides(tmp_path / "run", train__epochs=1))
    assert 0 <= results.miou <= 1 and (tmp_path / "run" / "results.json").is_file()
    assert "epoch 1/1: loss" in caplog.text
    assert train("demo", tiny_overrides(tmp_path / "run", train__epochs=1), resume=True) is None  # finished


def test_bad_settings_and_missing_data_stop_before_a_run_folder_exists(tmp_path, monkeypatch, capsys):
    from segloss.runner.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="unknown model.encoder 'resnet999'; did you mean resnet"):
        load_config("demo", ["model.encoder=resnet999"])
    with pytest.raises(
        ConfigError, match="timm has no model 'mobilenetv3_smal_100'; did you mean tu-mobilenetv3"
    ):
        load_config("demo", ["model.encoder=tu-mobilenetv3_smal_100"])
    monkeypatch.setenv("SEGLOSS_CACHE", str(tmp_path / "cache"))
    run = tmp_path / "runs" / "camvid"
    root = tmp_path / "data" / "CamVid_half"
    assert train_main(["--config", "camvid_cpu", f"data.root={root}", f"train.out_dir={run}"]) == 1
    error = capsys.readouterr().err
    assert f"folder not found: {root}" in error and "datasets/camvid.md" in error
    assert f"python datasets/downsample_camvid.py data/CamVid {root}" in error
    assert not run.exists()  # the failed start left nothing behind


def test_help_keys_of_one_task_with_a_line_each_and_suggestions_last(capsys):
    from segloss.runner.config import ConfigError, load_config

    assert train_main(["--help-keys"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("task: segmentation (others: --help-keys classification, continual)")
    assert (
        "train.amp" in text
        and "bf16 (also on CPUs with bf16 units)" in text
        and "task: classification" not in text
    )
    assert train_main(["--help-keys", "classification"]) == 0
    assert capsys.readouterr().out.startswith("task: classification")
    assert train_main(["--config", "cl_digits", "--help-keys"]) == 0
    assert capsys.readouterr().out.startswith("task: continual")
    for key, suggestion in (("lr", "optim.lr"), ("optim.lrr", "optim.lr"), ("epochs", "train.epochs")):
        with pytest.raises(ConfigError) as error:
            load_config("demo", [f"{key}=1"])
        assert (
            str(error.value).splitlines()[-1] == f"unknown config key {key!r}; did you mean {suggestion!r}?"
        )


def test_keep_best_keeps_the_checkpoint_of_the_best_evaluation(tmp_path, monkeypatch):
    from segloss.runner.checkpoint import load_checkpoint
    from segloss.runner.config import ConfigError, load_config

    monkeypatch.setenv("SEGLOSS_CACHE", str(tmp_path / "cache"))
    run = tmp_path / "run"
    overrides = tiny_overrides(run, train__epochs=3, train__eval_every=1, train__keep_best="miou")
    assert train_main(["--config", "demo", *overrides]) == 0
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    best = max(range(3), key=lambda i: (records[i]["miou"], -i))  # the first of equal bests is kept
    assert load_checkpoint(run / "best.pt")["epoch"] == best + 1
    assert load_checkpoint(run / "checkpoint.pt")["epoch"] == 3
    card = (run / "model" / "README.md").read_text()  # the exported model card names its scores
    metrics = card.split("## Model metrics", 1)[1].split("## Dataset", 1)[0]
    assert (
        "Per-class IoU on synthetic val" in metrics
        and "mIoU" in metrics
        and "More Information" not in metrics
    )
    with pytest.raises(ConfigError, match="train.keep_best must be one of miou|pixel_accuracy, got 'loss'"):
        load_config("demo", ["train.keep_best=loss"])
    with pytest.raises(ConfigError, match="none: this task does not support it"):
        load_config("cl_digits", ["train.keep_best=accuracy"])


def test_continual_runs_refuse_the_train_keys_they_do_not_use():
    from segloss.runner.config import ConfigError, load_config

    for key in ("train.eval_every=2", "train.compile=true", "train.channels_last=true"):
        with pytest.raises(ConfigError, match=f"{key.split('=')[0]}: continual runs do not use them"):
            load_config("cl_digits", [key])
