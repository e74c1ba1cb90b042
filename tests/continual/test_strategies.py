"""The mechanism of each continual-learning strategy on tiny models and streams."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from segloss.continual.benchmarks import Experience
from segloss.continual.strategies import (
    EWC,
    LessForgetful,
    LwF,
    Replay,
    SynapticIntelligence,
    diagonal_fisher,
    last_linear,
)


def tiny_stream(samples_per_class: int = 10, features: int = 6) -> list[Experience]:
    """Two experiences of two classes each; image i of class c is the vector full of c + i / 100."""
    experiences = []
    for index, classes in enumerate(([0, 1], [2, 3])):
        targets = torch.tensor(classes).repeat_interleave(samples_per_class)
        images = targets.float()[:, None] + torch.arange(len(targets)).float()[:, None] / 100
        data = TensorDataset(images.expand(-1, features).clone(), targets)
        experiences.append(Experience(index, classes, data, data))
    return experiences


def mlp(features: int = 6, classes: int = 4) -> nn.Module:
    return nn.Sequential(nn.Linear(features, 8), nn.ReLU(), nn.Linear(8, classes))


def test_replay_memory_is_balanced_over_past_experiences_and_classes():
    stream = tiny_stream()
    replay = Replay(12, stream, seed=0)
    replay.after_experience(mlp(), stream[0])
    assert np.bincount(replay.memory["target"]).tolist() == [6, 6]
    first = {(e, i) for e, i in zip(replay.memory["experience"], replay.memory["index"], strict=True)}
    replay.after_experience(mlp(), stream[1])
    assert np.bincount(replay.memory["target"]).tolist() == [3, 3, 3, 3]
    assert np.bincount(replay.memory["experience"]).tolist() == [6, 6]
    kept = {(e, i) for e, i in zip(replay.memory["experience"], replay.memory["index"], strict=True)}
    assert {pair for pair in kept if pair[0] == 0} <= first  # old groups shrink, nothing new enters them
    stored = [stream[e].train[i][1].item() for e, i in sorted(kept)]
    assert sorted(stored) == sorted(replay.memory["target"].tolist())  # indices point at their targets

    loader = DataLoader(
        stream[1].train, batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(0)
    )
    batches = list(replay.training_batches(loader, seed=1))
    assert len(batches) == len(loader)
    images, targets = batches[0]
    assert images.shape[0] == 8 and set(targets[4:].tolist()) <= {0, 1, 2, 3}
    replayed = torch.cat([t[4:] for _, t in batches])
    assert set(replayed.tolist()) <= {0, 1, 2, 3} and len(set(replayed.tolist())) > 1

    restored = Replay(12, stream, seed=0)
    restored.load_state_dict(replay.state_dict(), mlp())
    assert all(np.array_equal(restored.memory[k], replay.memory[k]) for k in replay.memory)


def test_ewc_penalty_is_zero_at_the_anchor_and_grows_quadratically():
    stream = tiny_stream()
    model = mlp()
    ewc = EWC(ewc_lambda=10.0, fisher_batch_size=7)
    assert ewc.penalty(model, None, None) is None
    ewc.after_experience(model, stream[0])
    assert ewc.penalty(model, None, None).item() == 0.0
    direction = [torch.randn_like(p) for p in model.parameters()]
    values = []
    for step in (1.0, 2.0):
        moved = copy.deepcopy(model)
        with torch.no_grad():
            for parameter, d in zip(moved.parameters(), direction, strict=True):
                parameter += step * d
        values.append(ewc.penalty(moved, None, None).item())
    assert values[0] > 0 and values[1] == pytest.approx(4 * values[0], rel=1e-5)


def test_ewc_fisher_is_the_mean_squared_per_sample_gradient():
    stream = tiny_stream(samples_per_class=3)
    model = mlp()
    fisher = diagonal_fisher(model, stream[0].train, batch_size=4)
    expected = {name: torch.zeros_like(p) for name, p in model.named_parameters()}
    for image, target in stream[0].train:
        model.zero_grad()
        F.cross_entropy(model(image[None]), target[None]).backward()
        for name, p in model.named_parameters():
            expected[name] += p.grad.square() / len(stream[0].train)
    for name in expected:
        torch.testing.assert_close(fisher[name], expected[name])


def test_si_importance_accumulates_only_where_parameters_moved_and_reduced_the_loss():
    stream = tiny_stream()
    images, targets = stream[0].train.tensors
    model = nn.Linear(6, 4)
    model.bias.requires_grad_(False)  # never moves
    si = SynapticIntelligence(si_lambda=1.0, xi=0.001)
    si.before_experience(model, stream[0])
    optimizer = torch.optim.SGD([model.weight], lr=0.05)
    losses = []
    for _ in range(5):
        loss = F.cross_entropy(model(images), targets)
        losses.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        si.after_step(model)
    si.after_experience(model, stream[0])
    assert losses[-1] < losses[0]
    assert si.quadratic.importance["weight"].sum() > 0
    assert "bias" not in si.quadratic.importance
    assert si.penalty(model, images, None).item() == 0.0  # at the new anchor

    ascent = nn.Linear(6, 4)
    si = SynapticIntelligence(si_lambda=1.0, xi=0.001)
    si.before_experience(ascent, stream[0])
    optimizer = torch.optim.SGD(ascent.parameters(), lr=0.05, maximize=True)  # every step raises the loss
    for _ in range(3):
        optimizer.zero_grad()
        F.cross_entropy(ascent(images), targets).backward()
        optimizer.step()
        si.after_step(ascent)
    si.after_experience(ascent, stream[0])
    assert all(value.abs().sum() == 0 for value in si.quadratic.importance.values())


def test_lwf_targets_come_from_the_frozen_previous_model():
    stream = tiny_stream()
    images, targets = stream[1].train.tensors
    model = mlp()
    lwf = LwF(alpha=1.0, temperature=2.0)
    assert lwf.penalty(model, images, model(images)) is None
    lwf.after_experience(model, stream[0])
    snapshot = copy.deepcopy(model)
    expected = F.softmax(snapshot(images)[:, [0, 1]] / 2.0, dim=1)
    assert lwf.penalty(model, images, model(images)).item() == pytest.approx(0.0, abs=1e-7)

    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(5):
        loss = F.cross_entropy(model(images), targets) + lwf.penalty(model, images, model(images))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    torch.testing.assert_close(lwf.distillation_targets(images), expected.detach())
    assert not any(p.requires_grad for p in lwf.previous.parameters())
    assert lwf.penalty(model, images, model(images)).item() > 0


def test_lfl_feature_penalty_is_zero_for_the_old_extractor_and_the_head_is_frozen():
    stream = tiny_stream()
    images = stream[1].train.tensors[0]
    model = mlp()
    lfl = LessForgetful(lambda_e=1.0)
    lfl.before_experience(model, stream[0])
    assert last_linear(model).weight.requires_grad
    lfl.after_experience(model, stream[0])
    lfl.before_experience(model, stream[1])
    assert not any(p.requires_grad for p in last_linear(model).parameters())
    assert any(p.requires_grad for p in model[0].parameters())
    logits = lfl.forward(model, images)
    torch.testing.assert_close(logits, model(images))
    assert lfl.penalty(model, images, logits).item() == 0.0
    with torch.no_grad():
        model[0].weight += 0.1
    penalty = lfl.penalty(model, images, lfl.forward(model, images))
    features = model[1](model[0](images))
    old = lfl.previous[1](lfl.previous[0](images))
    assert penalty.item() == pytest.approx(0.5 * (features - old).square().sum(1).mean().item(), rel=1e-5)
    assert penalty.item() > 0
