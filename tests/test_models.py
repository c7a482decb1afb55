import pytest
import torch
from torch import nn

from approxlib import models as M
from approxlib.config import ConfigError, ModelConfig


@pytest.mark.parametrize("name", ["resnet18", "mobilenetv2"])
@pytest.mark.parametrize("stem", ["imagenet", "cifar"])
@pytest.mark.parametrize("channels, classes, size", [(1, 10, 28), (3, 100, 32)])
def test_builds_and_runs(name, stem, channels, classes, size):
    m = M.build(ModelConfig(name, classes, channels, stem)).eval()
    with torch.no_grad():
        assert m(torch.rand(2, channels, size, size)).shape == (2, classes)


def test_stems():
    imagenet = M.build(ModelConfig("resnet18", 10, 3, "imagenet"))
    assert imagenet.conv1.kernel_size == (7, 7) and imagenet.conv1.stride == (2, 2)
    assert isinstance(imagenet.maxpool, nn.MaxPool2d)
    cifar = M.build(ModelConfig("resnet18", 10, 3, "cifar"))
    assert cifar.conv1.kernel_size == (3, 3) and cifar.conv1.stride == (1, 1)
    assert isinstance(cifar.maxpool, nn.Identity)
    assert M.build(ModelConfig("mobilenetv2", 10, 1, "cifar")).features[0][0].stride == (1, 1)
    # ResNet-18 with 10 classes: torchvision's 11.69M minus the 1000-way head, plus a 10-way one.
    n = sum(p.numel() for p in imagenet.parameters())
    assert n == 11_689_512 - 513_000 + 5_130


def test_bad_model_names():
    with pytest.raises(ConfigError, match="unknown model 'vgg'; valid: resnet18, mobilenetv2"):
        ModelConfig("vgg", 10, 3)
