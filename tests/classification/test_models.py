"""Classifiers: shapes, architecture details, normalisation, names."""

import pytest
import torch
from torch import nn

from segloss.classification.models import CLASSIFIERS, ConvNet, InputNormalization, build_classifier


@pytest.mark.parametrize("name", ["lenet", "convnet", "mlp"])
@pytest.mark.parametrize("shape", [(1, 28, 28), (1, 8, 8), (3, 32, 32)])
def test_small_models_on_any_image_shape(name, shape):
    model = build_classifier(name, 10, shape[0], shape[1:])
    assert model(torch.rand(2, *shape)).shape == (2, 10)


@pytest.mark.parametrize("name", ["resnet18", "resnet32"])
def test_cifar_resnets(name):
    model = build_classifier(name, 100, 3, 32)
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 100)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert convs[0].kernel_size == (3, 3) and convs[0].stride == (1, 1)  # the CIFAR stem
    # ResNet32: 1 + 3 stages × 5 blocks × 2 convolutions; ResNet18: 1 + 8 × 2 + 3 shortcut convolutions
    assert len(convs) == {"resnet32": 31, "resnet18": 20}[name]


def test_architecture_sizes():
    lenet = build_classifier("lenet", 10, 1, 28)
    widths = [m.out_channels for m in lenet.modules() if isinstance(m, nn.Conv2d)]
    hidden = [m.out_features for m in lenet.modules() if isinstance(m, nn.Linear)]
    assert widths == [16, 16] and hidden == [50, 10]
    mlp = build_classifier("mlp", 10, 1, 28)
    assert [m.out_features for m in mlp.modules() if isinstance(m, nn.Linear)] == [200, 200, 200, 10]
    convnet = ConvNet(10, 1)
    convs = [m for m in convnet.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 5 and {(c.out_channels, c.kernel_size) for c in convs} == {(32, (3, 3))}
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.GroupNorm, nn.MaxPool2d)) for m in convnet.modules())
    assert sum(isinstance(m, nn.AvgPool2d) for m in convnet.modules()) == 2


def test_input_normalization_is_the_first_layer():
    model = build_classifier("mlp", 3, 2, 4, mean=(0.5, 0.25), std=(0.5, 0.25))
    assert isinstance(model.normalize, InputNormalization)
    images = torch.rand(3, 2, 4, 4)
    expected = (images - torch.tensor([0.5, 0.25]).view(1, 2, 1, 1)) / torch.tensor([0.5, 0.25]).view(
        1, 2, 1, 1
    )
    torch.testing.assert_close(model(images), model.net(expected))
    with pytest.raises(ValueError, match="mean and std need 2 values each"):
        build_classifier("mlp", 3, 2, 4, mean=(0.5,), std=(0.5,))


def test_external_models_by_name():
    timm_model = build_classifier("timm:resnet18", 7, 1, 32).eval()
    assert timm_model(torch.rand(1, 1, 32, 32)).shape == (1, 7)
    torchvision_model = build_classifier("torchvision:resnet18", 5, 3, 32).eval()
    assert torchvision_model(torch.rand(1, 3, 32, 32)).shape == (1, 5)


def test_bad_model_names_list_the_valid_ones():
    with pytest.raises(ValueError) as error:
        build_classifier("resnet-18", 10, 3, 32)
    message = str(error.value)
    assert "unknown classifier 'resnet-18'" in message
    assert all(name in message for name in CLASSIFIERS) and "timm:MODEL" in message
    with pytest.raises(ValueError, match="unknown timm model 'resnet-18'"):
        build_classifier("timm:resnet-18", 10, 3, 32)
    with pytest.raises(ValueError, match="unknown torchvision model 'resnet-18'"):
        build_classifier("torchvision:resnet-18", 10, 3, 32)
    with pytest.raises(ValueError, match="torchvision models take 3-channel images"):
        build_classifier("torchvision:resnet18", 10, 1, 32)
    with pytest.raises(ValueError, match="image_size must be"):
        build_classifier("mlp", 10, 1, (8, 0))
