import warnings

import pytest
import torch
from torch import nn

from approxlib import models
from approxlib.config import ConfigError, ModelConfig


@pytest.mark.parametrize("name", ["resnet18", "mobilenetv2"])
@pytest.mark.parametrize("stem", ["imagenet", "cifar"])
@pytest.mark.parametrize("channels, classes, size", [(1, 10, 28), (3, 100, 32)])
def test_builds_and_runs(name, stem, channels, classes, size):
    m = models.build(ModelConfig(name, classes, channels, stem)).eval()
    with torch.no_grad():
        assert m(torch.rand(2, channels, size, size)).shape == (2, classes)


def test_stems():
    imagenet = models.build(ModelConfig("resnet18", 10, 3, "imagenet"))
    assert imagenet.conv1.kernel_size == (7, 7) and imagenet.conv1.stride == (2, 2)
    assert isinstance(imagenet.maxpool, nn.MaxPool2d)
    cifar = models.build(ModelConfig("resnet18", 10, 3, "cifar"))
    assert cifar.conv1.kernel_size == (3, 3) and cifar.conv1.stride == (1, 1)
    assert isinstance(cifar.maxpool, nn.Identity)
    assert models.build(ModelConfig("mobilenetv2", 10, 1, "cifar")).features[0][0].stride == (1, 1)
    # ResNet-18 with 10 classes: torchvision's 11.69M minus the 1000-way head, plus a 10-way one.
    n = sum(p.numel() for p in imagenet.parameters())
    assert n == 11_689_512 - 513_000 + 5_130


def test_torchvision_s_note_on_its_future_initialization_is_not_shown():
    """GoogLeNet's builder warns that its default initialization will change; a user who names
    it should not read that on every run (warnings would fail here)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        models.build(ModelConfig("googlenet", 10, 1), seed=0)


def test_bad_model_names():
    with pytest.raises(ConfigError, match="unknown model 'vgg': not a torchvision classification"):
        ModelConfig("vgg", 10, 3)


@pytest.mark.parametrize("name", ["mobilenet_v3_small", "shufflenet_v2_x0_5", "efficientnet_b0",
                                  "googlenet", "regnet_x_400mf", "densenet121"])
def test_any_torchvision_classifier_builds_for_the_data(name):
    """Channels, classes and the cifar stem on architectures the study never named."""
    for stem, size in (("imagenet", 32), ("cifar", 28)):
        cfg = ModelConfig(name, 7, 1, stem)
        models.check_input(cfg, size)
        m = models.build(cfg, seed=0).eval()
        first = next(c for c in m.modules() if isinstance(c, nn.Conv2d))
        assert first.in_channels == 1
        assert stem == "imagenet" or first.stride == (1, 1)
        with torch.no_grad():
            assert m(torch.rand(2, 1, size, size)).shape == (2, 7)
            out = m.train()(torch.rand(2, 1, size, size))  # trained: one tensor, no aux heads
            assert isinstance(out, torch.Tensor) and out.shape == (2, 7)
        m.eval()
    cfg = ModelConfig(name, 7, 1, "cifar")  # the seed fixes the init
    one, two = models.build(cfg, seed=0), models.build(cfg, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(one.state_dict().values(),
                                                 two.state_dict().values()))


def test_what_cannot_work_is_one_line():
    with pytest.raises(ConfigError, match="stem 'cifar' does not apply to vit_b_16"):
        models.build(ModelConfig("vit_b_16", 10, 3, "cifar"))
    with pytest.raises(ConfigError, match="inception_v3 cannot take 28×28 images"):
        models.check_input(ModelConfig("inception_v3", 10, 1), 28)


def test_a_model_whose_initializer_reads_values_loads_and_saves(tmp_path):
    """RegNet's initializer reads values, which the meta device has none of: every check of
    its weights (init, evaluate, a report's own checkpoints) built it there and failed with a
    traceback. Built for real and moved there now, the caller's random state untouched."""
    from approxlib import compress, store
    cfg = ModelConfig("regnet_x_400mf", 10, 1)
    model = models.build(cfg, seed=0).eval()
    torch.save(model.state_dict(), tmp_path / "mine.pt")
    rng = torch.random.get_rng_state()
    loaded = store.load_weights(tmp_path / "mine.pt", cfg)
    assert torch.equal(torch.random.get_rng_state(), rng)
    assert all(torch.equal(a, b) for a, b in
               zip(model.state_dict().values(), loaded.state_dict().values()))
    store.save_checkpoint(loaded, tmp_path / "c.pt", cfg)
    again, _ = store.load_checkpoint(tmp_path / "c.pt", expect=cfg)
    assert torch.equal(again.stem[0].weight, model.stem[0].weight)
    assert compress.checkpoint_limit(cfg) > 0 and models.build_meta(cfg).stem[0].weight.is_meta
    models.check_input(cfg, 28)
    # a file naming a huge one allocates nothing on its word: 1.4 billion weights, all meta
    big = models.build_meta(ModelConfig("regnet_y_128gf", 100_000, 3))
    assert all(t.is_meta for t in (*big.parameters(), *big.buffers()))
    assert torch.equal(torch.random.get_rng_state(), rng)
