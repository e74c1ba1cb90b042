"""Image classifiers of the paper's image-level experiments, and any timm/torchvision model by name.

Every model built by ``build_classifier`` takes images in [0, 1] and normalises them itself (its first
layer), so that attack budgets and synthetic unknown images live in pixel space.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "CLASSIFIERS",
    "ConvNet",
    "InputNormalization",
    "LeNet",
    "MLP",
    "ResNet32",
    "build_classifier",
    "check_classifier_name",
    "cifar_resnet18",
]

ImageSize = int | Sequence[int]


class InputNormalization(nn.Module):
    """``(x - mean) / std`` per channel, for images in [0, 1]."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        if len(mean) != len(std) or min(std) <= 0:
            raise ValueError(f"mean and std need one value per channel (std > 0), got {mean!r} and {std!r}")
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def _flat_features(features: nn.Module, in_channels: int, height: int, width: int) -> int:
    with torch.no_grad():
        return features(torch.zeros(1, in_channels, height, width)).numel()


class LeNet(nn.Module):
    """LeNet with two 5×5 16-channel convolutions (padded, max-pooled) and a 50-unit hidden layer."""

    def __init__(self, num_classes: int, in_channels: int, height: int, width: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 16, 5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 16, 5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Flatten(),
        )
        self.classifier = nn.Sequential(
            nn.Linear(_flat_features(self.features, in_channels, height, width), 50),
            nn.ReLU(inplace=True),
            nn.Linear(50, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class ConvNet(nn.Module):
    """Five 3×3 32-channel convolutions with ReLU and no normalisation; 2×2 average pooling after the 2nd
    and 4th, global average pooling and a linear classifier."""

    def __init__(self, num_classes: int, in_channels: int, width: int = 32):
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for index in range(5):
            layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(inplace=True)]
            if index in (1, 3):
                layers.append(nn.AvgPool2d(2))
            channels = width
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class MLP(nn.Module):
    """Fully connected network on the flattened image: three 200-unit ReLU hidden layers."""

    def __init__(self, num_classes: int, in_features: int, hidden: Sequence[int] = (200, 200, 200)):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        for width in hidden:
            layers += [nn.Linear(in_features, width), nn.ReLU(inplace=True)]
            in_features = width
        layers.append(nn.Linear(in_features, num_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def cifar_resnet18(num_classes: int, in_channels: int = 3) -> nn.Module:
    """torchvision's ResNet18 with the CIFAR stem: a 3×3 stride-1 first convolution and no max pooling."""
    from torchvision.models import resnet18

    model = resnet18(weights=None, num_classes=num_classes)
    model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


class _BasicBlock(nn.Module):
    """The CIFAR ResNet block of He et al. (2016) with the parameter-free shortcut ("option A")."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.stride = stride
        self.extra_channels = out_channels - in_channels

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride != 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.extra_channels:
            half = self.extra_channels // 2
            x = F.pad(x, (0, 0, 0, 0, half, self.extra_channels - half))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet32(nn.Module):
    """The CIFAR ResNet-32 of He et al. (2016): three stages of five blocks with 16, 32 and 64 channels."""

    def __init__(self, num_classes: int, in_channels: int = 3, blocks_per_stage: int = 5):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(inplace=True)
        )
        blocks: list[nn.Module] = []
        channels = 16
        for stage, width in enumerate((16, 32, 64)):
            for index in range(blocks_per_stage):
                stride = 2 if stage > 0 and index == 0 else 1
                blocks.append(_BasicBlock(channels, width, stride))
                channels = width
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.blocks(self.stem(x))).flatten(1))


def _image_hw(image_size: ImageSize) -> tuple[int, int]:
    height, width = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if not (isinstance(height, int) and isinstance(width, int) and height > 0 and width > 0):
        raise ValueError(f"image_size must be a positive int or (height, width), got {image_size!r}")
    return height, width


# name -> builder(num_classes, in_channels, height, width)
CLASSIFIERS: dict[str, Callable[[int, int, int, int], nn.Module]] = {
    "lenet": lambda n, c, h, w: LeNet(n, c, h, w),
    "convnet": lambda n, c, h, w: ConvNet(n, c),
    "mlp": lambda n, c, h, w: MLP(n, c * h * w),
    "resnet18": lambda n, c, h, w: cifar_resnet18(n, c),
    "resnet32": lambda n, c, h, w: ResNet32(n, c),
}
EXTERNAL_PREFIXES = ("timm:", "torchvision:")


def check_classifier_name(name: str) -> None:
    """``ValueError`` listing the valid names unless ``name`` is in ``CLASSIFIERS`` or has a library
    prefix."""
    if name not in CLASSIFIERS and not name.startswith(EXTERNAL_PREFIXES):
        valid = ", ".join([*CLASSIFIERS, "timm:MODEL", "torchvision:MODEL"])
        raise ValueError(f"unknown classifier {name!r}; valid names: {valid}")


def _external_classifier(name: str, num_classes: int, in_channels: int) -> nn.Module:
    library, _, model_name = name.partition(":")
    if library == "timm":
        import timm

        if model_name not in timm.list_models():
            raise ValueError(f"unknown timm model {model_name!r} (see timm.list_models())")
        return timm.create_model(model_name, pretrained=False, num_classes=num_classes, in_chans=in_channels)
    from torchvision.models import get_model, list_models

    if model_name not in list_models():
        raise ValueError(f"unknown torchvision model {model_name!r} (see torchvision.models.list_models())")
    if in_channels != 3:
        raise ValueError(
            f"torchvision models take 3-channel images, got in_channels={in_channels}; use 'timm:NAME', "
            f"whose models accept any number of channels"
        )
    return get_model(model_name, weights=None, num_classes=num_classes)


def build_classifier(
    name: str,
    num_classes: int,
    in_channels: int,
    image_size: ImageSize,
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> nn.Module:
    """The classifier ``name`` for ``in_channels``×``image_size`` images in [0, 1].

    ``name`` is a key of ``CLASSIFIERS`` or ``timm:MODEL`` / ``torchvision:MODEL`` (randomly initialised).
    With ``mean`` and ``std`` the model starts with an ``InputNormalization`` layer.
    """
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    check_classifier_name(name)
    height, width = _image_hw(image_size)
    if name in CLASSIFIERS:
        net = CLASSIFIERS[name](num_classes, in_channels, height, width)
    else:
        net = _external_classifier(name, num_classes, in_channels)
    if mean is None and std is None:
        return net
    if mean is None or std is None or len(mean) != in_channels:
        raise ValueError(
            f"mean and std need {in_channels} values each for {in_channels}-channel images, "
            f"got mean={mean!r}, std={std!r}"
        )
    return nn.Sequential(OrderedDict(normalize=InputNormalization(mean, std), net=net))
