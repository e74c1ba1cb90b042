"""The shape of a segmentation run: from ``segloss train`` to ``optimizer.step()`` is four calls through three
files of segloss (``train`` → ``train_one_epoch`` → ``TrainingStep`` → the optimizer), so the run's story
reads in ``train()`` itself."""

import inspect
from pathlib import Path

import torch

from segloss.runner.cli import main

from ..helpers import tiny_overrides

PACKAGE = Path(__file__).resolve().parents[2] / "segloss"


def test_from_the_command_to_the_optimizer_step(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGLOSS_CACHE", str(tmp_path / "cache"))
    stacks = []
    step = torch.optim.SGD.step

    def recording_step(self, *args, **kwargs):
        stacks.append([(Path(frame.filename), frame.function) for frame in inspect.stack()[1:]])
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.SGD, "step", recording_step)
    assert main(["train", *tiny_overrides(tmp_path / "run", train__epochs=1)]) == 0
    assert stacks, "the optimizer never stepped"
    frames = stacks[0]
    command = next(i for i, (path, function) in enumerate(frames) if function == "train_main")
    ours = [(path.relative_to(PACKAGE).as_posix(), function) for path, function in frames[:command]
            if path.is_relative_to(PACKAGE)]  # fmt: skip
    # innermost first; torch's GradScaler.step (not segloss) calls the optimizer
    assert ours == [
        ("runner/optim.py", "__call__"),
        ("runner/loop.py", "train_one_epoch"),
        ("segmentation/training.py", "train"),
    ]
