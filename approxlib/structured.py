"""Structured channel pruning with Torch-Pruning (DepGraph): whole channels removed, so the result
is a smaller dense model that any runtime runs faster.

Torch-Pruning follows the dependency graph (a residual add ties the channels of every layer that
feeds it; a depthwise convolution's groups follow its input), ranks channel groups by a criterion
(`CRITERIA`: L1 norm of their weights unless the profile's `channel_method` names another) and
removes the lowest. The stem and the classifier are left alone. A pruned
model's layer sizes no longer match `models.build`, so checkpoints carry them (`shapes`) and
`reshape_` rebuilds the skeleton before the weights load — never a pickled module.
"""
from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable

import torch
from torch import nn

from . import models
from .config import ChannelConfig, ConfigError, ModelConfig
from .models import replace_module


# Torch-Pruning's importance criteria by the `criterion` of a `methods.channel()` entry, each built
# from the module (passed in: importing it is slow). A new criterion is an entry here and one in
# `methods.METHODS`. The random one draws from torch's generator, seeded by `channel_prune_`.
# Each group is ranked alone (the same share of every group goes), so a score that only rescales
# a group, as LAMP's does, keeps magnitude's channels; one that needs gradients (Taylor) needs
# data passed in, which `channel_prune_` does not take.
CRITERIA: dict[str, Callable] = {
    "l1": lambda tp: tp.importance.MagnitudeImportance(p=1),
    "random": lambda tp: tp.importance.RandomImportance(),
    "bn-scale": lambda tp: tp.importance.BNScaleImportance(),
    "fpgm": lambda tp: tp.importance.FPGMImportance(),
}


def stem_and_classifier(model: nn.Module) -> list[nn.Module]:
    stem = next(m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    return [stem, models.classifier(model)[1]]


def channel_prune_(model: nn.Module, cfg: ChannelConfig, in_channels: int,
                   name: str = "the model", seed: int = 0) -> nn.Module:
    """Remove `cfg.ratio` of the channels of every prunable group, in place, ranked by
    `cfg.criterion` (a random one drawn with `seed`, torch's own generator left as it was). An
    architecture whose channels Torch-Pruning's dependency graph cannot follow (ShuffleNetV2's
    channel shuffle: a ZeroDivisionError deep inside it) is one line naming the model, not a
    traceback; so is a pruned model that no longer runs."""
    # Imported here, not at the top: importing it loads torch.utils.cpp_extension, which logs a
    # CUDA warning on CPU-only machines; every checkpoint read imports this module.
    import torch_pruning as tp
    example = torch.rand(1, in_channels, 32, 32)
    ignored = stem_and_classifier(model.eval())
    importance = CRITERIA[cfg.criterion](tp)
    before = sum(p.numel() for p in model.parameters())
    default = cfg.criterion == ChannelConfig.criterion
    reference = None if default else copy.deepcopy(model)
    try:  # Torch-Pruning's work alone: an error of ours keeps its traceback
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            tp.pruner.MetaPruner(model, example, importance=importance, pruning_ratio=cfg.ratio,
                                 ignored_layers=ignored, round_to=cfg.round_to).step()
        with torch.no_grad():
            model(example)  # what it left must still run
    except (ZeroDivisionError, RuntimeError, ValueError, IndexError, KeyError,
            AssertionError, TypeError) as e:
        first = (str(e).strip().splitlines() or [""])[0][:120]
        raise ConfigError(f"Torch-Pruning cannot remove {name}'s channels ({type(e).__name__}"
                          f"{': ' + first if first else ''}); leave out what channel-prunes "
                          f"it (section G){_or_criterion(cfg)} or choose another model") from e
    if sum(p.numel() for p in model.parameters()) == before:  # BatchNorm scale on SqueezeNet
        raise ConfigError(f"the {cfg.criterion} criterion removed no channel of {name}: "
                          f"Torch-Pruning found nothing it scores in its layers (BatchNorm "
                          f"scale, for one, needs BatchNorm layers); choose another "
                          f"channel_method")
    if reference is not None:
        _same_shapes_as_l1(model, reference, cfg, in_channels, name)
    return model


def _same_shapes_as_l1(model: nn.Module, reference: nn.Module, cfg: ChannelConfig,
                       in_channels: int, name: str) -> None:
    """Another criterion must remove what L1 magnitude removes from each layer, only other
    channels: BatchNorm scale left VGG-11-BN's groups without BatchNorm whole (70.5 M
    parameters against L1's 32.2 M), so its FLOPs and its scratch controls would compare with
    nothing (a review, 2026-12-07)."""
    l1 = channel_prune_(reference, dataclasses.replace(cfg, criterion=ChannelConfig.criterion),
                        in_channels, name)
    if shapes(l1) != shapes(model):
        ours, theirs = (sum(p.numel() for p in m.parameters()) for m in (model, l1))
        raise ConfigError(f"the {cfg.criterion} criterion pruned {name} to other layer sizes "
                          f"than L1 magnitude does ({ours:,} parameters left against "
                          f"{theirs:,}: it left whole the groups it cannot score); choose "
                          f"another channel_method")


def _or_criterion(cfg: ChannelConfig) -> str:
    return ("" if cfg.criterion == ChannelConfig.criterion else
            f", choose another channel_method (this one ranks by {cfg.criterion}),")


def shapes(model: nn.Module) -> dict[str, list[int]]:
    """The size of every Conv2d / BatchNorm2d / Linear, as plain JSON-able lists."""
    return {name: size for name, m in model.named_modules()
            if (size := _size_of(m)) is not None}


def reshape_(model: nn.Module, sizes: dict[str, list[int]]) -> nn.Module:
    """Resize a freshly built model's layers to `sizes` (from `shapes`), in place.

    The sizes come from a checkpoint, so each is checked before a layer is built (issue 14: one
    entry of 1280×200,000 allocated 1 GiB): whole numbers ≥ 1, never larger than the layer the
    architecture has (channel pruning only removes), groups dividing the channels.
    """
    if not isinstance(sizes, dict):
        raise ValueError(f"layer sizes are a {type(sizes).__name__}, not a dict")
    modules = dict(model.named_modules())
    for name, size in sizes.items():
        m = modules.get(name) if isinstance(name, str) else None
        current = _size_of(m)
        size = list(size) if isinstance(size, (list, tuple)) else size
        if current is None or not _fits(size, current):
            limit = f" (at most {current})" if current else ""
            raise ValueError(f"layer {_short(name)} with size {_short(size)} does not fit this "
                             f"architecture{limit}")
        if size != current:
            replace_module(model, name, _resized(m, size))
    return model


def _short(x) -> str:
    s = repr(x)
    return s if len(s) <= 60 else s[:57] + "..."


def _size_of(m: nn.Module | None) -> list[int] | None:
    """A layer's size as `shapes` records it; None for a module `shapes` never records."""
    if isinstance(m, nn.Conv2d):
        return [m.in_channels, m.out_channels, m.groups]
    if isinstance(m, nn.BatchNorm2d):
        return [m.num_features]
    if isinstance(m, nn.Linear):
        return [m.in_features, m.out_features]
    return None


def _fits(size, current: list[int]) -> bool:
    if not (isinstance(size, list) and len(size) == len(current)
            and all(type(v) is int and 1 <= v <= c for v, c in zip(size, current))):
        return False
    return len(size) != 3 or (size[0] % size[2] == 0 and size[1] % size[2] == 0)


def _resized(m: nn.Module, size: list[int]) -> nn.Module:
    if isinstance(m, nn.Conv2d):
        return nn.Conv2d(size[0], size[1], m.kernel_size, m.stride, m.padding, m.dilation,
                         size[2], m.bias is not None)
    if isinstance(m, nn.BatchNorm2d):
        return nn.BatchNorm2d(size[0], m.eps, m.momentum)
    return nn.Linear(size[0], size[1], m.bias is not None)


def fresh_like(cfg: ModelConfig, sizes: dict, seed: int) -> nn.Module:
    """The pruned architecture `sizes`, freshly initialized from `seed` as the architecture
    initializes itself (the train-from-scratch control). Layers that keep their size keep the
    fresh model's torchvision initialization; a resized convolution is drawn at its new shape by
    He-normal fan-out, torchvision's rule for ResNet, MobileNetV2/V3, VGG, MNASNet and
    EfficientNet (PyTorch's default would start it 2-5× narrower); a resized BatchNorm starts at
    1 / 0, as torchvision's do; a resized classifier keeps a slice of the fresh one."""
    model = models.build(cfg, seed)
    before = {name: m for name, m in model.named_modules()
              if name in sizes and _size_of(m) != list(sizes[name])}
    reshape_(model, sizes)
    with torch.no_grad():
        for name, old in before.items():
            m = model.get_submodule(name)
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                m.weight.copy_(old.weight[:m.out_features, :m.in_features])
                if m.bias is not None:
                    m.bias.copy_(old.bias[:m.out_features])
    return model
