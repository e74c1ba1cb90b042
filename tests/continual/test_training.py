"""Continual runs on the embedded digits through ``segloss train`` / ``segloss evaluate``: results, heat
map, resume after a kill, and every loss of the registry (with its options) under the strategies."""

import json
from itertools import cycle

import numpy as np
import pytest

from segloss.continual import training
from segloss.continual.strategies import STRATEGY_NAMES
from segloss.registry import LOSS_NAMES
from segloss.runner.checkpoint import load_checkpoint
from segloss.runner.cli import evaluate_main, train_main
from segloss.runner.config import load_config
from segloss.runner.run_folder import RunExistsError

from ..helpers import read_metrics

pytestmark = pytest.mark.usefixtures("one_thread")

CONFIG = "cl_digits"


def overrides(out_dir, *more):
    return [f"train.out_dir={out_dir}", "train.epochs=1", "train.batch_size=64", *more]


def test_run_writes_results_and_resumes_to_the_same_matrix(tmp_path, monkeypatch, capsys):
    arguments = ["--config", CONFIG, *overrides(tmp_path / "full", "strategy.name=replay", "loss.name=hem")]
    assert train_main(arguments) == 0
    results = json.loads((tmp_path / "full" / "results.json").read_text())
    matrix = np.asarray(results["accuracy_matrix"])
    assert matrix.shape == (5, 5) and results["experiences_trained"] == 5
    assert results["average_accuracy"] == pytest.approx(matrix[-1].mean())
    assert results["average_forgetting"] == pytest.approx(np.mean(matrix[:4, :4].max(0) - matrix[4, :4]))
    assert sorted(sum(results["experience_classes"], [])) == list(range(10))
    assert (tmp_path / "full" / "accuracy_matrix.png").stat().st_size > 0
    assert (tmp_path / "full" / "config.yaml").is_file() and (tmp_path / "full" / "train.log").is_file()
    assert [record["experience"] for record in read_metrics(tmp_path / "full")] == [1, 2, 3, 4, 5]
    assert load_checkpoint(tmp_path / "full" / "checkpoint.pt")["epoch"] == 5  # experiences trained
    with pytest.raises(RunExistsError):
        training.train(load_config(CONFIG, arguments[2:]))

    original = training.train_experience

    def killed_at_third(run, model, strategy, experience, *args):
        if experience.index == 2:
            raise KeyboardInterrupt
        return original(run, model, strategy, experience, *args)

    monkeypatch.setattr(training, "train_experience", killed_at_third)
    killed = ["--config", CONFIG, *overrides(tmp_path / "killed", "strategy.name=replay", "loss.name=hem")]
    with pytest.raises(KeyboardInterrupt):
        train_main(killed)
    monkeypatch.setattr(training, "train_experience", original)
    assert train_main([*killed, "--resume"]) == 0
    resumed = json.loads((tmp_path / "killed" / "results.json").read_text())
    assert resumed["accuracy_matrix"] == results["accuracy_matrix"]

    def without_time(records):
        timings = ("seconds", "images_per_s")
        return [{key: value for key, value in record.items() if key not in timings} for record in records]

    assert without_time(read_metrics(tmp_path / "killed")) == without_time(read_metrics(tmp_path / "full"))
    assert training.train(load_config(CONFIG, killed[2:]), resume=True) is None  # finished: nothing to do

    capsys.readouterr()
    out = tmp_path / "evaluated.json"
    checkpoint = str(tmp_path / "full" / "checkpoint.pt")
    assert evaluate_main(["--checkpoint", checkpoint, "--out", str(out), "--no-progress"]) == 0
    assert json.loads(out.read_text())["accuracy_matrix"] == results["accuracy_matrix"]
    assert "average accuracy" in capsys.readouterr().out
    assert evaluate_main(["--checkpoint", checkpoint, "--split", "val"]) == 1  # a segmentation option
    assert "--split: options for segmentation runs only" in capsys.readouterr().err


CASES = [
    *zip(LOSS_NAMES, cycle(STRATEGY_NAMES[1:]), [()] * len(LOSS_NAMES), strict=False),
    ("hem+", "si", ("loss.margin_on=target",)),
]


@pytest.mark.parametrize(
    ("loss", "strategy", "options"),
    CASES,
    ids=lambda case: "-".join(case) if isinstance(case, tuple) else case,
)
def test_every_loss_trains_with_the_strategies(tmp_path, loss, strategy, options):
    config = load_config(
        CONFIG,
        overrides(tmp_path, "data.experiences=2", f"loss.name={loss}", f"strategy.name={strategy}", *options),
    )
    results = training.train(config)
    assert np.isfinite(results["accuracy_matrix"]).all()
    # Lovász-softmax, a batch surrogate of the per-class Jaccard index made for segmentation, learns these
    # few image batches barely above chance: it is held to training without failing, not to the bar
    assert results["average_accuracy"] > 0.2 or loss == "lovasz"
    history = read_metrics(tmp_path)
    assert history[0]["penalty"] == 0
    assert history[1]["penalty"] > 0 or strategy == "replay"


def test_tensorboard_steps_count_every_update_across_experiences(tmp_path):
    """With ``train.tensorboard=true`` the loss of every update is one point, numbered by the updates so
    far: Replay's joined batches (no length) and several epochs per experience included."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    options = overrides(tmp_path, "strategy.name=replay", "train.epochs=2", "train.tensorboard=true")
    training.train(load_config(CONFIG, [*options, "train.log_every=1", "train.progress=false"]))
    events = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    steps = [event.step for event in events.Scalars("train/loss")]
    updates = sum(record["steps"] for record in read_metrics(tmp_path))
    assert steps == list(range(updates)) and updates > 0
