import pytest
import torch
from torch.nn.utils import prune as tprune

from approxlib import models as M
from approxlib import prune as P
from approxlib.config import ConfigError, ModelConfig, PruneConfig


@pytest.fixture
def model():
    torch.manual_seed(0)
    return M.build(ModelConfig("resnet18", 10, 1, "imagenet"))


@pytest.mark.parametrize("ratio", [0.0, 0.3, 0.5, 0.7, 0.95])
def test_global_sparsity_is_exactly_the_ratio(model, ratio):
    P.prune_(model, PruneConfig(ratio))
    zeros, total = P.global_sparsity(model)
    assert zeros == round(ratio * total)  # global_unstructured prunes exactly round(ratio × n)
    P.make_permanent_(model)
    assert P.global_sparsity(model) == (zeros, total)
    assert not any(tprune.is_pruned(m) for _, m in M.prunable(model))
    assert not any("weight_orig" in k or "weight_mask" in k for k in model.state_dict())


def test_global_ranking_is_uneven_across_layers(model):
    P.prune_(model, PruneConfig(0.5))
    per_layer = [float((m.weight == 0).float().mean()) for _, m in M.prunable(model)]
    assert max(per_layer) - min(per_layer) > 0.1  # global, not layer-wise


def test_masks_hold_during_training(model):
    P.prune_(model, PruneConfig(0.6))
    masks = [m.weight_mask.clone() for _, m in M.prunable(model)]
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(2):
        loss = model(torch.rand(4, 1, 28, 28)).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    P.make_permanent_(model)
    for mask, (_, m) in zip(masks, M.prunable(model)):
        assert torch.all(m.weight[mask == 0] == 0)


def test_ratio_outside_range():
    with pytest.raises(ConfigError, match=r"ratio must be in \[0.0, 1.0\), got 1.5"):
        PruneConfig(1.5)
    with pytest.raises(ConfigError):
        PruneConfig(-0.1)
