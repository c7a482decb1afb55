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


def test_architectures_with_versioned_modules_or_a_convolution_classifier_load(tmp_path):
    """A new user's walkthrough (2026-12-07): no MNASNet loaded, not even the tool's own
    checkpoints (its loader needs the module versions a state dict carries, which the load
    dropped), and SqueezeNet's checkpoints ended in an IndexError (it classifies with a 1×1
    convolution, where the checks looked for the last Linear)."""
    from approxlib import store
    for name in ("mnasnet0_5", "squeezenet1_1"):
        cfg = ModelConfig(name, 10, 1)
        model = models.build(cfg, seed=0).eval()
        torch.save(model.state_dict(), tmp_path / "mine.pt")
        torch.save(dict(model.state_dict()), tmp_path / "versionless.pt")  # as this torchvision
        store.save_checkpoint(model, tmp_path / "c.pt", cfg)
        for loaded in (store.load_weights(tmp_path / "mine.pt", cfg),
                       store.load_weights(tmp_path / "versionless.pt", cfg),
                       store.load_checkpoint(tmp_path / "c.pt", expect=cfg)[0]):
            assert all(torch.equal(a, b) for a, b in
                       zip(model.state_dict().values(), loaded.state_dict().values()))
    assert models.classifier(models.build(cfg))[0] == "classifier.1"  # SqueezeNet's 1×1 conv
    other = ModelConfig("squeezenet1_1", 7, 1)
    with pytest.raises(store.CheckpointError, match=r"claims 7 classes; its classifier "
                       r"classifier.1 holds 10"):
        store.save_checkpoint(model, tmp_path / "seven.pt", other)
        store.load_checkpoint(tmp_path / "seven.pt")


def test_weights_with_modules_the_architecture_lacks_say_how_to_leave_them_out(tmp_path):
    """GoogLeNet built torchvision's default way keeps auxiliary classifiers, which the
    architecture here (for evaluation) has not: a bare "unexpected tensor" left the user to
    work out the fix (a new user's walkthrough, 2026-12-07)."""
    import torchvision
    from approxlib import store
    cfg = ModelConfig("googlenet", 10, 1)
    mine = torchvision.models.googlenet(num_classes=10, aux_logits=True, init_weights=False)
    mine.conv1.conv = nn.Conv2d(1, 64, 7, 2, 3, bias=False)
    torch.save(mine.state_dict(), tmp_path / "g.pt")
    with pytest.raises(store.CheckpointError, match=r"unexpected tensor aux1.conv.conv.weight and "
                       r"19 more, of modules aux1, aux2 that it does not have; leave them out: "
                       r"\{k: v for k, v in state.items\(\) if k.split\('.'\)\[0\] not in "
                       r"\('aux1', 'aux2'\)\}$"):
        store.load_weights(tmp_path / "g.pt", cfg)
    state = {k: v for k, v in torch.load(tmp_path / "g.pt").items()
             if k.split('.')[0] not in ('aux1', 'aux2')}  # the fix, as printed
    torch.save(state, tmp_path / "g.pt")
    assert torch.equal(store.load_weights(tmp_path / "g.pt", cfg).fc.weight, mine.fc.weight)
