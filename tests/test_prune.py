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
    masks = P.freeze_masks_(model)
    assert not any(tprune.is_pruned(m) for _, m in M.prunable(model))
    zeros = P.global_sparsity(model)[0]
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    before = {n: m.weight.detach().clone() for n, m in M.prunable(model)}
    for _ in range(2):
        loss = model(torch.rand(4, 1, 28, 28)).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        P.apply_masks_(model, masks)
    for n, m in M.prunable(model):
        assert torch.all(m.weight[masks[n] == 0] == 0)
    assert P.global_sparsity(model)[0] == zeros
    assert any(not torch.equal(before[n], m.weight) for n, m in M.prunable(model))  # it trained


def test_mask_after_step_equals_torch_reparametrization():
    """Re-masking after each SGD step gives the same weights as torch's weight_orig × mask."""
    torch.manual_seed(1)
    ref = M.build(ModelConfig("resnet18", 10, 1)).eval()  # eval: BN stats don't drift
    ours = M.build(ModelConfig("resnet18", 10, 1)).eval()
    ours.load_state_dict(ref.state_dict())
    P.prune_(ref, PruneConfig(0.5))
    P.prune_(ours, PruneConfig(0.5))
    masks = P.freeze_masks_(ours)
    opts = [torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9) for m in (ref, ours)]
    x = torch.rand(4, 1, 28, 28)
    for _ in range(3):
        for m, opt in zip((ref, ours), opts):
            opt.zero_grad()
            m(x).square().mean().backward()
            opt.step()
        P.apply_masks_(ours, masks)
    P.make_permanent_(ref)
    for (n, a), b in zip(M.prunable(ref), (m for _, m in M.prunable(ours))):
        torch.testing.assert_close(a.weight, b.weight, rtol=1e-5, atol=1e-6, msg=n)


def test_ratio_outside_range():
    with pytest.raises(ConfigError, match=r"ratio must be in \[0.0, 1.0\), got 1.5"):
        PruneConfig(1.5)
    with pytest.raises(ConfigError):
        PruneConfig(-0.1)
