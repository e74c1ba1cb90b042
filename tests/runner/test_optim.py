"""The shared update: schedules per update (with warm-up), gradient clipping, state, and one set of keys
for every task."""

import math

import pytest
import torch

from segloss.runner.config import OptimConfig, task_schema
from segloss.runner.optim import TrainingStep, lr_factor
from segloss.runner.schema import schema_keys


def factors(optim, steps_per_epoch=2, epochs=3):
    factor = lr_factor(optim, steps_per_epoch, epochs)
    return [factor(update) for update in range(steps_per_epoch * epochs)]


def test_schedules_by_hand():
    assert factors(OptimConfig()) == [1.0] * 6
    assert factors(OptimConfig(schedule="poly", power=1.0)) == pytest.approx(
        [1, 5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6]
    )
    cosine = [0.5 * (1 + math.cos(math.pi * t / 6)) for t in range(6)]
    assert factors(OptimConfig(schedule="cosine")) == pytest.approx(cosine)
    multistep = OptimConfig(schedule="multistep", milestones=[1, 2], gamma=0.5)
    assert factors(multistep) == pytest.approx([1, 1, 0.5, 0.5, 0.25, 0.25])
    # one epoch of linear warm-up (2 updates), then poly over the 4 remaining updates
    warm = OptimConfig(schedule="poly", power=1.0, warmup_epochs=1)
    assert factors(warm) == pytest.approx([0.5, 1.0, 1.0, 0.75, 0.5, 0.25])


def test_the_step_clips_updates_and_keeps_its_state():
    torch.manual_seed(0)
    weight = torch.nn.Parameter(torch.zeros(3))
    step = TrainingStep(torch.optim.SGD([weight], lr=1.0), lambda update: 0.5**update, clip_grad_norm=1.0)
    step((weight * torch.tensor([30.0, 40.0, 0.0])).sum())  # gradient norm 50, clipped to 1
    torch.testing.assert_close(weight.detach(), torch.tensor([-0.6, -0.8, 0.0]))
    assert step.lr == 0.5
    restored = TrainingStep(torch.optim.SGD([weight], lr=1.0), lambda update: 0.5**update)
    restored.load_state_dict(step.state_dict())
    assert restored.lr == 0.5 and restored.scheduler.last_epoch == 1
    seen = []
    step(weight.sum(), after_update=lambda: seen.append(weight.grad.clone()))
    torch.testing.assert_close(seen, [torch.ones(3) / math.sqrt(3)])  # clipped again: norm 1


@pytest.mark.parametrize("task", ["segmentation", "classification", "continual"])
def test_every_task_has_the_same_update_keys(task):
    keys = {key for key, _, _ in schema_keys(task_schema(task))}
    shared = {
        "optim.name",
        "optim.schedule",
        "optim.warmup_epochs",
        "optim.milestones",
        "train.clip_grad_norm",
    }
    assert shared <= keys | {"train.log_every"} and "train.log_every" in keys
