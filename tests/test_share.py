"""Weight sharing: BatchNorm folding, k-means codebooks and their fine-tuning."""
import copy

import pytest
import torch
from torch import nn

from approxlib import models
from approxlib import prune
from approxlib import share
from approxlib.config import DataConfig, ModelConfig, ShareConfig, TrainConfig


@pytest.mark.parametrize("name", ["resnet18", "mobilenetv2"])
def test_folding_batchnorm_keeps_outputs_and_module_names(name):
    model = models.build(ModelConfig(name, 10, 1), seed=0)
    with torch.no_grad():  # non-trivial statistics, as a trained model has
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
    model.eval()
    x = torch.rand(4, 1, 32, 32)
    ref = model(x)
    pairs = share.conv_bn_pairs(model)
    folded = share.fold_batchnorm(copy.deepcopy(model))
    assert not share.has_batchnorm(folded)
    assert len(pairs) == sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert torch.allclose(folded(x), ref, atol=1e-4, rtol=1e-4)
    assert {n for n, _ in models.prunable(folded)} == {n for n, _ in models.prunable(model)}


def test_kmeans_sharing_keeps_zeros_and_limits_distinct_values():
    model = share.fold_batchnorm(models.build(ModelConfig("mobilenetv2", 10, 1), seed=0))
    prune.magnitude_prune_(model, 0.7)
    zero = {n: (m.weight == 0).clone() for n, m in models.prunable(model)}
    rows = share.share_weights_(model, ShareConfig(bits_conv=3, bits_fc=5))
    for (n, m), r in zip(models.prunable(model), rows):
        bits = 5 if isinstance(m, nn.Linear) else 3
        assert share.distinct_nonzero(m.weight) <= 2 ** bits and r["k"] <= 2 ** bits
        assert torch.equal(m.weight == 0, zero[n])  # pruned stay pruned, kept stay non-zero


def test_linear_initialization_spans_the_range():
    values = torch.cat([torch.randn(5000) * 0.01, torch.tensor([1.0, -1.0])]).numpy()
    centroids, labels = share.kmeans_1d(values, 3)
    assert len(centroids) == 8 and centroids.max() > 0.5 and centroids.min() < -0.5  # outliers kept
    assert labels.max() < 8


def test_codebook_gradient_is_the_mean_over_the_group():
    conv = nn.Conv2d(2, 3, 3, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([-1.0, 0.0, 1.0])[torch.randint(0, 3, conv.weight.shape)])
    model = nn.Sequential(conv)
    w0 = conv.weight.detach().clone()
    share.share_weights_(model, ShareConfig(2, 2), trainable=True)
    x = torch.randn(2, 2, 5, 5)
    model(x).square().sum().backward()
    cb_grad = conv.parametrizations.weight.original.grad
    # the same loss on a plain weight gives per-weight gradients; average them per centroid
    plain = nn.Conv2d(2, 3, 3, bias=False)
    with torch.no_grad():
        plain.weight.copy_(w0)
    plain(x).square().sum().backward()
    book = conv.parametrizations.weight.original.detach()
    for j, c in enumerate(book):
        members = (w0 == c) & (w0 != 0)
        assert torch.allclose(cb_grad[j], plain.weight.grad[members].mean(), rtol=1e-4, atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_codebook_gradient_follows_the_model_to_a_gpu():
    """The pipeline shares on the CPU and trains wherever `device` says: on an H200 the
    mean-gradient hook once divided a CUDA gradient by a CPU tensor and stopped section F."""
    grads = []
    for device in ("cpu", "cuda"):
        torch.manual_seed(0)
        conv = nn.Conv2d(2, 3, 3, bias=False)
        model = nn.Sequential(conv)
        share.share_weights_(model, ShareConfig(2, 2), trainable=True)
        x = torch.randn(2, 2, 5, 5)
        model.to(device)(x.to(device)).square().sum().backward()
        grads.append(conv.parametrizations.weight.original.grad)
    assert grads[1].device.type == "cuda"
    assert torch.allclose(grads[1].cpu(), grads[0], rtol=1e-4, atol=1e-6)  # the same mean


def test_share_and_finetune_trains_centroids_only(data_root):
    from approxlib import data
    splits = data.load(DataConfig("fashion-mnist", 256, 64), data_root)
    model = models.build(ModelConfig("resnet18", 10, 1), seed=0)
    prune.magnitude_prune_(model, 0.9)
    zero_before = {n: (m.weight == 0).clone() for n, m in models.prunable(model)}
    shared, rows, hist = share.share_and_finetune(
        model, ShareConfig(4, 4), splits, TrainConfig(epochs=1, batch_size=64, lr=0.01),
        progress=False)
    assert len(hist) == 1 and not share.has_batchnorm(shared)
    for n, m in models.prunable(shared):
        assert share.distinct_nonzero(m.weight) <= 16
        assert torch.equal(m.weight == 0, zero_before[n])
        assert not torch.nn.utils.parametrize.is_parametrized(m)
        assert torch.equal(m.bias, m.bias.half().float())  # biases stored exactly in float16
