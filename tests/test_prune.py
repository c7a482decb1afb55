import copy

import pytest
import torch
from torch.nn.utils import prune as tprune

from approxlib import models
from approxlib import prune
from approxlib.config import ConfigError, ModelConfig, PruneConfig


@pytest.fixture
def model():
    torch.manual_seed(0)
    return models.build(ModelConfig("resnet18", 10, 1, "imagenet"))


@pytest.mark.parametrize("ratio", [0.0, 0.3, 0.5, 0.7, 0.95])
def test_global_sparsity_is_exactly_the_ratio(model, ratio):
    prune.prune_(model, PruneConfig(ratio))
    zeros, total = prune.global_sparsity(model)
    assert zeros == round(ratio * total)  # global_unstructured prunes exactly round(ratio × n)
    prune.make_permanent_(model)
    assert prune.global_sparsity(model) == (zeros, total)
    assert not any(tprune.is_pruned(m) for _, m in models.prunable(model))
    assert not any("weight_orig" in k or "weight_mask" in k for k in model.state_dict())


def test_global_ranking_is_uneven_across_layers(model):
    prune.prune_(model, PruneConfig(0.5))
    per_layer = [float((m.weight == 0).float().mean()) for _, m in models.prunable(model)]
    assert max(per_layer) - min(per_layer) > 0.1  # global, not layer-wise


def test_masks_hold_during_training(model):
    prune.prune_(model, PruneConfig(0.6))
    masks = prune.freeze_masks_(model)
    assert not any(tprune.is_pruned(m) for _, m in models.prunable(model))
    zeros = prune.global_sparsity(model)[0]
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    before = {n: m.weight.detach().clone() for n, m in models.prunable(model)}
    for _ in range(2):
        loss = model(torch.rand(4, 1, 28, 28)).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        prune.apply_masks_(model, masks)
    for n, m in models.prunable(model):
        assert torch.all(m.weight[masks[n] == 0] == 0)
    assert prune.global_sparsity(model)[0] == zeros
    assert any(not torch.equal(before[n], m.weight) for n, m in models.prunable(model))  # it trained


def test_mask_after_step_equals_torch_reparametrization():
    """Re-masking after each SGD step gives the same weights as torch's weight_orig × mask."""
    torch.manual_seed(1)
    ref = models.build(ModelConfig("resnet18", 10, 1)).eval()  # eval: BN stats don't drift
    ours = models.build(ModelConfig("resnet18", 10, 1)).eval()
    ours.load_state_dict(ref.state_dict())
    prune.prune_(ref, PruneConfig(0.5))
    prune.prune_(ours, PruneConfig(0.5))
    masks = prune.freeze_masks_(ours)
    opts = [torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9) for m in (ref, ours)]
    x = torch.rand(4, 1, 28, 28)
    for _ in range(3):
        for m, opt in zip((ref, ours), opts):
            opt.zero_grad()
            m(x).square().mean().backward()
            opt.step()
        prune.apply_masks_(ours, masks)
    prune.make_permanent_(ref)
    for (n, a), b in zip(models.prunable(ref), (m for _, m in models.prunable(ours))):
        torch.testing.assert_close(a.weight, b.weight, rtol=1e-5, atol=1e-6, msg=n)


def test_ratio_outside_range():
    with pytest.raises(ConfigError, match=r"ratio must be in \[0.0, 1.0\), got 1.5"):
        PruneConfig(1.5)
    with pytest.raises(ConfigError):
        PruneConfig(-0.1)


# ------------------------------------------------------------------------------ gradual pruning

def test_cubic_schedule_rises_fast_then_flattens():
    s = [prune.cubic_sparsity(t, 100, 0.9) for t in range(0, 101, 10)]
    assert s[0] == 0 and s[-1] == pytest.approx(0.9) and prune.cubic_sparsity(500, 100, 0.9) == 0.9
    steps = [b - a for a, b in zip(s, s[1:])]
    assert all(x > 0 for x in steps) and steps == sorted(steps, reverse=True)


def test_smallest_selects_what_topk_selects_and_breaks_ties_by_position():
    g = torch.Generator().manual_seed(0)
    scores = torch.rand(10_000, generator=g)
    for k in (0, 1, 2_500, 9_999, 10_000):
        expected = torch.zeros(10_000, dtype=torch.bool)
        if k:
            expected[torch.topk(scores, k, largest=False).indices] = True
        assert torch.equal(prune.smallest(scores, k), expected)
    # ties at the k-th value: the first ones in position order, exactly k in all
    tied = torch.tensor([3.0, 1.0, 2.0, 1.0, 0.0, 1.0, 2.0])
    assert prune.smallest(tied, 3).tolist() == [False, True, False, True, True, False, False]
    assert prune.smallest(torch.zeros(5), 2).tolist() == [True, True, False, False, False]
    # NaN ranks last, as in topk (a diverged model is pruned, not stopped)
    nan = torch.tensor([1.0, float("nan"), 0.5, float("nan")])
    assert prune.smallest(nan, 2).tolist() == [True, False, True, False]
    assert prune.smallest(nan, 3).tolist() == [True, True, True, False]


@pytest.mark.parametrize("amount", [0.3, 0.7, 5])
def test_l1_method_masks_as_torchs_own_does(model, amount):
    ours, theirs = copy.deepcopy(model), copy.deepcopy(model)
    for m, method in ((ours, prune.L1Unstructured), (theirs, tprune.L1Unstructured)):
        tprune.global_unstructured([(x, "weight") for _, x in models.prunable(m)],
                                   pruning_method=method, amount=amount)
    mine = torch.cat([x.weight_mask.reshape(-1) for _, x in models.prunable(ours)])
    torchs = torch.cat([x.weight_mask.reshape(-1) for _, x in models.prunable(theirs)])
    assert mine.sum() == torchs.sum()
    # they differ only in which of the weights tied at the threshold go (ResNet-18 at 0.3 has
    # two equal |w| there; torch's topk leaves the order of ties unspecified)
    w = torch.cat([x.weight_orig.detach().abs().reshape(-1) for _, x in models.prunable(ours)])
    assert len(set(w[mine != torchs].tolist())) <= 1 and int((mine != torchs).sum()) <= 4
    with pytest.raises(ValueError, match="amount"):
        prune.L1Unstructured.apply(models.prunable(ours)[0][1], "weight", amount=1.5)


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_magnitude_masks_are_exact_and_handle_channels_last(model, scope):
    model = model.to(memory_format=torch.channels_last)  # what training uses
    masks = prune.magnitude_prune_(model, 0.8, scope)
    zeros, total = prune.global_sparsity(model)
    if scope == "global":
        assert zeros == round(0.8 * total)
    else:
        for _, m in models.prunable(model):
            assert int((m.weight == 0).sum()) == round(0.8 * m.weight.numel())
    # zeros are +0.0 (a negative weight times 0 would be −0.0)
    for _, m in models.prunable(model):
        w = m.weight.detach().reshape(-1)
        assert not torch.any((w == 0) & torch.signbit(w))
    # a rising ratio keeps every weight already pruned
    before = {n: (m.weight == 0).clone() for n, m in models.prunable(model)}
    prune.magnitude_prune_(model, 0.9, scope)
    assert all(torch.all((m.weight == 0)[before[n]]) for n, m in models.prunable(model))
    assert set(masks) == {n for n, _ in models.prunable(model)}


def test_gradual_pruning_reaches_the_target_and_selects_a_final_epoch(data_root):
    import dataclasses
    from approxlib import data
    from approxlib.config import DataConfig, GradualConfig, TrainConfig
    splits = data.load(DataConfig("fashion-mnist", 256, 64), data_root)
    model = models.build(ModelConfig("mobilenetv2", 10, 1), seed=0)
    ft = TrainConfig(epochs=3, batch_size=64, lr=0.01, crop_padding=0)
    pruned, hist = prune.gradual_prune(model, GradualConfig(0.7, ramp=0.5, every=1), splits, ft,
                                       progress=False)
    zeros, total = prune.global_sparsity(pruned)
    assert zeros == round(0.7 * total)
    assert len(hist) == 3
    # 4 steps per epoch, sparsity ramps over steps 1–6: epoch 1 ends below the final sparsity,
    # so the checkpoint is the best validation epoch among epochs 2 and 3
    from approxlib import train
    assert train.accuracy(pruned, splits.val_x, splits.val_y) == pytest.approx(
        max(h["val_acc"] for h in hist[1:]))
    with pytest.raises(ValueError, match="past the last epoch"):
        train.train(model, splits, dataclasses.replace(ft, epochs=1), select_from=2, progress=False)


# ------------------------------------------------------------------ section H's methods

@pytest.mark.parametrize("ratio", [0.5, 0.9])
def test_random_pruning_hits_the_ratio_reproducibly_and_ignores_magnitude(model, ratio):
    prune.prune_(model, PruneConfig(ratio, "random-unstructured"), seed=3)
    prune.make_permanent_(model)
    zeros, total = prune.global_sparsity(model)
    assert zeros == round(ratio * total)
    again = models.build(ModelConfig("resnet18", 10, 1, "imagenet"))
    again.load_state_dict(_fresh_state(), strict=True)
    prune.prune_(again, PruneConfig(ratio, "random-unstructured"), seed=3)
    prune.make_permanent_(again)
    assert all(torch.equal(a.weight, b.weight)
               for (_, a), (_, b) in zip(models.prunable(model), models.prunable(again)))
    # magnitude plays no part: the pruned weights are about as large as the kept ones
    w = _fresh_state()["fc.weight"].abs()
    pruned = dict(models.prunable(model))["fc"].weight == 0
    assert float(w[pruned].mean()) == pytest.approx(float(w[~pruned].mean()), rel=0.2)


def _fresh_state():
    torch.manual_seed(0)
    return models.build(ModelConfig("resnet18", 10, 1, "imagenet")).state_dict()


def test_layerwise_pruning_prunes_every_layer_at_the_ratio(model):
    prune.prune_(model, PruneConfig(0.7, "l1-layerwise"))
    for _, m in models.prunable(model):
        assert int((m.weight == 0).sum()) == round(0.7 * m.weight.numel())


def test_sensitivity_touches_only_the_named_layer(model):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    prune.prune_layer_(model, "layer2.0.conv1", 0.8)
    after = model.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed == ["layer2.0.conv1.weight"]
    w = after["layer2.0.conv1.weight"]
    assert int((w == 0).sum()) == round(0.8 * w.numel()) and not torch.signbit(w[w == 0]).any()
    # the analysis restores every layer after scoring it
    x = torch.randint(0, 256, (16, 1, 32, 32), dtype=torch.uint8)  # images as the data holds them
    y = torch.randint(0, 10, (16,))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    rows = prune.layer_sensitivity(model, [0.5, 0.9], x, y)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert len(rows) == 1 + 2 * len(models.prunable(model)) and rows[0]["layer"] is None


def test_sensitivity_ratios_hit_the_target_and_spare_sensitive_layers():
    rows = [{"layer": None, "weights": 0, "ratio": 0.0, "accuracy": 0.9}]
    sizes = {"sensitive": 1000, "robust": 10000, "flat": 500}
    for name, n in sizes.items():
        for r in (0.5, 0.75, 0.9, 0.95, 0.99):
            drop = {"sensitive": 0.3 * r ** 2, "robust": max(0.0, r - 0.9), "flat": 0.0}[name]
            rows.append({"layer": name, "weights": n, "ratio": r, "accuracy": 0.9 - drop})
    for target in (0.3, 0.5, 0.875, 0.96875):
        ratios = prune.sensitivity_ratios(rows, target)
        overall = sum(sizes[k] * v for k, v in ratios.items()) / sum(sizes.values())
        assert overall == pytest.approx(target, abs=1e-6)
        assert ratios["sensitive"] <= ratios["robust"] <= ratios["flat"] <= 0.99
    with pytest.raises(ValueError, match="above what the measured ratios reach"):
        prune.sensitivity_ratios(rows, 0.995)


# ------------------------------------------------- scoring rules and spreads, kept apart

class Largest(tprune.BasePruningMethod):
    """A deliberately bad rule, easy to check: mask the largest |w| instead of the smallest."""
    PRUNING_TYPE = "unstructured"

    def __init__(self, amount):
        self.amount = amount

    def compute_mask(self, t, default_mask):
        k = round(self.amount * t.nelement())
        mask = default_mask.clone()
        if k:
            mask.view(-1)[torch.topk(t.abs().view(-1), k).indices] = 0
        return mask


@pytest.fixture
def largest():
    prune.score("largest")(Largest)
    yield
    del prune.SCORES["largest"]


def test_a_new_scoring_rule_is_one_class_usable_with_every_spread(model, largest):
    fc = dict(models.prunable(model))["fc"].weight.detach().abs().clone()
    prune.prune_(model, PruneConfig(0.5, "largest-layerwise"))
    prune.make_permanent_(model)
    w = dict(models.prunable(model))["fc"].weight
    assert int((w == 0).sum()) == round(0.5 * w.numel())
    assert fc[w == 0].min() >= fc[w != 0].max()  # the largest half went
    assert prune.score_and_spread("largest-global") == ("largest", "global")
    with pytest.raises(ConfigError, match="unknown pruning method 'largest-random'"):
        PruneConfig(0.5, "largest-random")


class LayerShare(torch.nn.utils.prune.BasePruningMethod):
    """A score that depends on the weight's layer: |w| over its layer's largest |w|."""
    PRUNING_TYPE = "unstructured"
    version = 2

    def __init__(self, amount):
        self.amount = amount

    @staticmethod
    def importance(w):
        return w.abs() / w.abs().max()

    def compute_mask(self, t, default_mask):  # what torch's global ranking alone would call
        k = round(self.amount * t.nelement())
        mask = default_mask.clone()
        mask.view(-1)[prune.smallest(self.importance(t).reshape(-1), k)] = 0
        return mask


def test_a_score_of_its_layer_is_computed_on_each_layer_alone(model):
    """Torch's global ranking scores all the layers joined into one tensor: a contributor's
    LAMP, registered as the README said, came out as global magnitude (2026-12-07)."""
    prune.score("layershare")(LayerShare)
    try:
        layers = dict(models.prunable(model))
        share = torch.cat([LayerShare.importance(m.weight.detach()).reshape(-1)
                           for m in layers.values()])
        keep = share > share.kthvalue(round(0.5 * share.numel())).values
        prune.prune_(model, PruneConfig(0.5, "layershare-global"))
        prune.make_permanent_(model)
        got = torch.cat([(m.weight != 0).reshape(-1) for m in layers.values()])
        assert torch.equal(got, keep)  # ranked globally, each score of its own layer
        assert prune.score_version("layershare-layerwise") == 2
        from approxlib import steps
        from approxlib.config import DataConfig, TrainConfig
        cfg = dict(data=DataConfig("fashion-mnist", None, 100), model=ModelConfig("resnet18", 10, 1, "imagenet"),
                   finetune=TrainConfig(epochs=0))
        ours = steps.Prune(prune=PruneConfig(0.5, "layershare-global"), **cfg)
        l1 = steps.Prune(prune=PruneConfig(0.5), **cfg)
        assert ours.hashed()[-1] == 2 and len(l1.hashed()) == 3  # shipped scores: keys as ever
    finally:
        del prune.SCORES["layershare"]


def test_the_first_method_names_are_a_score_and_a_spread():
    assert prune.score_and_spread("l1-unstructured") == ("l1", "global")
    assert prune.score_and_spread("random-unstructured") == ("random", "global")
    assert prune.score_and_spread("l1-sensitivity") == ("l1", "sensitivity")
    assert prune.score_and_spread("random-layerwise") == ("random", "layerwise")
    with pytest.raises(ValueError, match="l1-global is l1-unstructured: use that name"):
        prune.score_and_spread("l1-global")
    with pytest.raises(ValueError, match="taken"):
        prune.score("l1")(Largest)
    # what the planner and the report ask of a method, read from its score and spread
    assert prune.guided("l1-sensitivity") and not prune.guided("l1-unstructured")
    assert not prune.informed("random-layerwise") and prune.informed("l1-layerwise")


def test_a_new_spread_is_one_registered_class(model, monkeypatch):
    class FirstOnly(prune.Spread):
        def ratios(self, layers, ratio, layer_ratios):
            return {n: (ratio if i == 0 else 0.0) for i, (n, _) in enumerate(layers)}
    monkeypatch.setitem(prune.SPREADS, "first", FirstOnly())
    monkeypatch.setattr(prune, "UNINFORMED", set(prune.UNINFORMED))
    prune.score("mine", informed=False)(prune.SCORES["random"])
    try:
        prune.prune_(model, PruneConfig(0.5, "mine-first"))
        prune.make_permanent_(model)
        (first, m), *rest = models.prunable(model)
        assert int((m.weight == 0).sum()) == round(0.5 * m.weight.numel())
        assert all(int((m.weight == 0).sum()) == 0 for _, m in rest)
        assert not prune.informed("mine-first") and not prune.guided("mine-first")
    finally:
        del prune.SCORES["mine"]


@pytest.mark.parametrize("name", ["resnet18", "mobilenetv2"])
def test_a_fresh_pruned_shape_starts_as_wide_as_torchvision_starts_it(name):
    """The scratch control's initialization: a resized convolution drawn by torchvision's rule at
    its new shape (He normal, fan-out), not PyTorch's narrower default."""
    from approxlib import structured
    from approxlib.config import ChannelConfig, ModelConfig
    mc = ModelConfig(name, 10, 1)
    pruned = structured.channel_prune_(models.build(mc, 0), ChannelConfig(0.5), 1)
    sizes = structured.shapes(pruned)
    fresh = structured.fresh_like(mc, sizes, 3)
    assert structured.shapes(fresh) == sizes
    again = structured.fresh_like(mc, sizes, 3)
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(),
                                                 again.state_dict().values()))
    dense = dict(models.build(mc, 0).named_modules())
    for layer_name, m in fresh.named_modules():
        if isinstance(m, torch.nn.Conv2d) and m.out_channels != dense[layer_name].out_channels \
                and m.weight.numel() > 10_000:
            fan_out = m.out_channels * m.kernel_size[0] * m.kernel_size[1]
            assert m.weight.std().item() == pytest.approx((2 / fan_out) ** 0.5, rel=0.15)
            break
    else:
        pytest.fail("no large resized convolution")


def test_an_architecture_torch_pruning_cannot_follow_is_one_line():
    """ShuffleNetV2's channel shuffle: Torch-Pruning failed deep inside with a ZeroDivisionError
    traceback after the report had computed its other stages."""
    from approxlib import structured
    from approxlib.config import ChannelConfig
    model = models.build(ModelConfig("shufflenet_v2_x0_5", 10, 1), 0)
    with pytest.raises(ConfigError, match=r"^Torch-Pruning cannot remove shufflenet_v2_x0_5's "
                       r"channels \(ZeroDivisionError: .*\); leave out what channel-prunes "
                       r"it \(section G\)"):
        structured.channel_prune_(model, ChannelConfig(0.5), 1, "shufflenet_v2_x0_5")


def test_a_layer_pruned_to_nothing_is_warned_of(caplog):
    """Global magnitude pruning zeroed SqueezeNet's whole classifier and the model scored 10%
    without a word (a new user's walkthrough, 2026-12-07). Here a classifier of small weights
    goes entirely at 50%."""
    import logging
    from approxlib.config import TrainConfig
    nn = torch.nn
    model = nn.Sequential(nn.Conv2d(1, 64, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(64, 10))  # 576 conv weights at 1, 640 small ones
    with torch.no_grad():
        model[0].weight.fill_(1.0)
        model[3].weight.uniform_(-1e-3, 1e-3)
    with caplog.at_level(logging.WARNING, "approxlib"):
        prune.prune_and_finetune(model, PruneConfig(0.5), None, TrainConfig(epochs=0))
        assert caplog.text == ""  # 608 of 1,216: 32 classifier weights left
        prune.prune_and_finetune(model, PruneConfig(0.6), None, TrainConfig(epochs=0))
    assert prune.emptied(model) == ["3"]
    assert "pruning removed every weight of 1 layer (3): a layer with none" in caplog.text


def test_weights_outside_the_layers_pruning_covers_are_warned_of(caplog):
    """ViT keeps a quarter of its weights in MultiheadAttention's in_proj_weight, which
    "sparsity 0.5" left whole and uncounted (a new user's walkthrough, 2026-12-07)."""
    import logging
    share, names = models.uncovered(models.build_meta(ModelConfig("vit_b_16", 10, 1)))
    assert share == pytest.approx(0.2507, abs=1e-3) and len(names) == 14
    assert models.uncovered(models.build_meta(ModelConfig("resnet18", 10, 1))) == (0.0, [])
    with caplog.at_level(logging.WARNING, "approxlib"):
        models.warn_uncovered(models.build_meta(ModelConfig("vit_b_16", 10, 1)))
    assert ("25.1% of VisionTransformer's weights (in_proj_weight ×12, pos_embedding, "
            "class_token) lie outside") in caplog.text
    caplog.clear()  # and pruning says it: a small attention model, not ViT's 86 M weights
    small = torch.nn.ModuleDict({"conv": torch.nn.Conv2d(1, 4, 3),
                                 "attn": torch.nn.MultiheadAttention(8, 2)})
    with caplog.at_level(logging.WARNING, "approxlib"):
        prune.prune_(small, PruneConfig(0.5))
    # in_proj_weight 24×8 = 192 of 36 (conv) + 192 + 64 (out_proj, a Linear) = 65.8%
    assert "65.8% of ModuleDict's weights (in_proj_weight) lie outside" in caplog.text


def _channel(name: str, criterion: str, seed: int = 0):
    from approxlib import structured
    from approxlib.config import ChannelConfig
    return structured.channel_prune_(models.build(ModelConfig(name, 10, 1), 0),
                                     ChannelConfig(0.5, criterion=criterion), 1, name, seed)


def test_every_channel_method_has_a_criterion_that_prunes_to_the_same_shapes():
    """A channel criterion is one entry in `methods` and one in `structured.CRITERIA`; each
    removes the same share of every group (so the scratch controls' shapes agree), only
    other channels."""
    from approxlib import methods, structured
    assert {m.criterion for m in methods.channel()} == set(structured.CRITERIA)
    assert methods.channel()[0] is methods.CHANNEL
    for name in ("resnet18", "mobilenetv2"):
        pruned = {c: _channel(name, c) for c in structured.CRITERIA}
        shapes = {c: structured.shapes(m) for c, m in pruned.items()}
        assert all(s == shapes["l1"] for s in shapes.values())
        kept = {c: m.state_dict()["features.2.conv.0.0.weight" if name == "mobilenetv2"
                                  else "layer1.0.conv1.weight"] for c, m in pruned.items()}
        # each keeps other channels than L1 (a criterion that ranks each group in L1's or
        # another's order, as LAMP does within a group, adds nothing: a contributor's LAMP)
        assert not any(torch.equal(kept[c], kept["l1"]) for c in kept if c != "l1")
        for m in pruned.values():
            assert m(torch.rand(2, 1, 32, 32)).shape == (2, 10)


def test_random_channels_follow_their_seed_and_leave_torchs_generator_alone():
    from approxlib import structured
    torch.manual_seed(5)
    state = torch.get_rng_state()
    first, again, other = (_channel("resnet18", "random", s) for s in (1, 1, 2))
    w = "layer1.0.conv1.weight"
    assert torch.equal(first.state_dict()[w], again.state_dict()[w])
    assert not torch.equal(first.state_dict()[w], other.state_dict()[w])
    assert structured.shapes(first) == structured.shapes(other)
    torch.manual_seed(5)
    assert torch.equal(state, torch.get_rng_state())


def test_bn_scale_keeps_the_channels_of_largest_batchnorm_scale():
    """Network slimming's criterion on a group whose only BatchNorm is known: ResNet-18's
    first block's inner channels (conv1 → bn1 → conv2) keep the 32 largest |γ| of 64."""
    from approxlib import structured
    from approxlib.config import ChannelConfig
    model = models.build(ModelConfig("resnet18", 10, 1), 0)
    gamma = torch.randn(64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        model.layer1[0].bn1.weight.copy_(gamma)
    structured.channel_prune_(model, ChannelConfig(0.5, criterion="bn-scale"), 1)
    top = gamma.abs().topk(32).indices.sort().values
    assert torch.equal(model.layer1[0].bn1.weight.detach(), gamma[top])


def test_an_unknown_channel_criterion_is_refused_naming_the_valid_ones():
    from approxlib import config
    with pytest.raises(ConfigError, match=r"^unknown channel criterion 'l7'; valid: l1, random"):
        config.ChannelConfig(0.5, criterion="l7")
    assert config.config_fields(config.ChannelConfig(0.5)) == {"ratio": 0.5, "round_to": 8}
    assert config.config_fields(config.ChannelConfig(0.5, criterion="fpgm"))["criterion"] == "fpgm"


def test_a_criterion_that_ranks_nothing_is_one_line_not_an_unpruned_model():
    """Network slimming's BatchNorm scale on SqueezeNet (no BatchNorm) removed no channel, and
    the "pruned" model was the dense one under a pruned name."""
    from approxlib import structured
    from approxlib.config import ChannelConfig
    model = models.build(ModelConfig("squeezenet1_0", 10, 1), 0)
    with pytest.raises(ConfigError, match=r"^the bn-scale criterion removed no channel of "
                       r"squeezenet1_0: .*; choose another channel_method$"):
        structured.channel_prune_(model, ChannelConfig(0.5, criterion="bn-scale"), 1,
                                  "squeezenet1_0")


def test_a_criterion_that_leaves_groups_whole_is_refused(monkeypatch):
    """BatchNorm scale left VGG-11-BN's groups without BatchNorm whole (70.5 M parameters left
    against L1's 32.2 M): its FLOPs and scratch controls compared with nothing. Here a
    criterion that scores no 64-channel group (ResNet-18's first stage) stands in for it."""
    import torch_pruning as tp

    from approxlib import methods, structured
    from approxlib.config import ChannelConfig

    class SomeGroups(tp.importance.MagnitudeImportance):
        def __call__(self, group, **kwargs):
            return None if len(group[0][1]) == 64 else super().__call__(group, **kwargs)
    monkeypatch.setitem(structured.CRITERIA, "some", lambda tp: SomeGroups(p=1))
    monkeypatch.setitem(methods.METHODS, "channel-some",
                        methods._channels("some", "some", "by some"))
    model = models.build(ModelConfig("resnet18", 10, 1), 0)
    with pytest.raises(ConfigError, match=r"^the some criterion pruned resnet18 to other layer "
                       r"sizes than L1 magnitude does \(\d[\d,]* parameters left against "
                       r"2,857,418: .*; choose another channel_method$"):
        structured.channel_prune_(model, ChannelConfig(0.5, criterion="some"), 1, "resnet18")
