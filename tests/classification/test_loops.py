"""Short CPU training runs on the embedded digits, and the recipe configs."""

import pytest
import torch
from torch.utils.data import DataLoader

import segloss
from segloss.classification import build_classifier, build_image_data, predict_logits
from segloss.runner.config import ConfigError, OptimConfig, load_config
from segloss.runner.loop import train_one_epoch
from segloss.runner.optim import TrainingStep, build_optimizer, lr_factor

from ..helpers import CONFIGS


@pytest.fixture(scope="module")
def digits():
    return build_image_data("digits")


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("loss_name", ["ce", "hem"])
def test_digits_training_reaches_90_percent(digits, loss_name):
    torch.manual_seed(0)
    model = build_classifier("mlp", 10, 1, 8, mean=digits.mean, std=digits.std)
    loss = segloss.build_loss(loss_name, class_counts=digits.class_counts)
    step = TrainingStep(torch.optim.Adam(model.parameters(), lr=1e-3), lambda update: 1.0)
    loader = DataLoader(digits.train, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0))
    history = [
        train_one_epoch(model, loss, step, loader, torch.device("cpu"), desc=f"epoch {epoch}", progress=False)
        for epoch in range(8)
    ]
    assert history[-1]["loss"] < history[0]["loss"]
    logits, targets = predict_logits(model, digits.test, "cpu", progress=False)
    assert (logits.argmax(1) == targets).double().mean().item() > 0.9


def test_step_schedule_and_optimizers():
    model = torch.nn.Linear(2, 2)
    optim = OptimConfig(
        lr=0.1, momentum=0.9, weight_decay=2e-4, schedule="multistep", milestones=[2, 4], gamma=0.01
    )
    optimizer = build_optimizer(model.parameters(), optim)
    assert optimizer.defaults["momentum"] == 0.9 and optimizer.defaults["weight_decay"] == 2e-4
    step = TrainingStep(optimizer, lr_factor(optim, steps_per_epoch=1, epochs=5))
    rates = []
    for _ in range(5):
        rates.append(step.lr)
        step(model(torch.ones(1, 2)).sum())
    assert rates == pytest.approx([0.1, 0.1, 1e-3, 1e-3, 1e-5])
    assert isinstance(build_optimizer(model.parameters(), OptimConfig(name="adam")), torch.optim.Adam)
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'; valid names: sgd, adam, adamw"):
        build_optimizer(model.parameters(), OptimConfig(name="rmsprop"))
    with pytest.raises(ConfigError, match="milestones must be increasing"):
        load_config(CONFIGS / "cls_digits.yaml", ["optim.milestones=[5,3]"])


def test_recipe_configs_follow_spec():
    mnist = load_config(CONFIGS / "cls_mnist.yaml")
    assert (mnist.optim.name, mnist.optim.lr, mnist.train.batch_size, mnist.train.epochs) == (
        "adam",
        1e-3,
        128,
        20,
    )
    for name in ("cifar10", "cifar100"):
        cifar = load_config(CONFIGS / f"cls_{name}.yaml")
        optim = cifar.optim
        assert (optim.name, optim.momentum, optim.weight_decay, optim.lr) == ("sgd", 0.9, 5e-4, 0.1)
        assert (optim.milestones, optim.gamma, cifar.train.epochs, cifar.train.batch_size) == (
            [100, 105],
            0.1,
            110,
            128,
        )
        assert cifar.model.arch == "resnet18"
    lt = load_config(CONFIGS / "cls_cifar10_lt.yaml")
    assert (lt.optim.name, lt.optim.weight_decay, lt.optim.lr, lt.train.batch_size) == ("sgd", 2e-4, 0.1, 128)
    assert (lt.optim.milestones, lt.optim.gamma, lt.train.epochs) == ([160, 180], 0.01, 200)
    assert lt.data.imbalance_ratio == 100
    digits = load_config(CONFIGS / "cls_digits.yaml", ["loss.name=hem+"])
    assert digits.task == "classification" and digits.train.out_dir == "runs/cls/digits/mlp/hemplus/seed0"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.arch=resnet-18", "model.arch: unknown classifier 'resnet-18'; valid names: lenet, convnet"),
        ("data.name=imagenet", "data.name must be one of digits|mnist"),
        ("data.name=cifar10", "data.root is required for data.name=cifar10"),
        ("eval.unknown_sets=[blobs,lsun]", "eval.unknown_sets: unknown names \\['lsun'\\]"),
        ("eval.attack_norms=[L1]", "eval.attack_norms: unknown norms"),
        ("eval.attack_eps=[0.1]", "eval.attack_eps needs one budget per norm"),
        ("optim.milestones=[10,5]", "optim.milestones must be increasing"),
        ("data.imbalance_ratio=0.5", "data.imbalance_ratio must be >= 1"),
        ("train.crop_size=32", "unknown config key 'train.crop_size'"),
    ],
)
def test_config_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(CONFIGS / "cls_digits.yaml", [override])
