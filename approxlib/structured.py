"""Structured channel pruning with Torch-Pruning (DepGraph): whole channels removed, so the result
is a smaller dense model that any runtime runs faster.

Torch-Pruning follows the dependency graph (a residual add ties the channels of every layer that
feeds it; a depthwise convolution's groups follow its input), ranks channel groups by the L1 norm
of their weights and removes the lowest. The stem and the classifier are left alone. A pruned
model's layer sizes no longer match `models.build`, so checkpoints carry them (`shapes`) and
`reshape_` rebuilds the skeleton before the weights load — never a pickled module.
"""
from __future__ import annotations

import torch
from torch import nn

from .config import ChannelConfig, ModelConfig
from .models import replace_module


def stem_and_classifier(model: nn.Module) -> list[nn.Module]:
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    return [layers[0], layers[-1]]


def channel_prune_(model: nn.Module, cfg: ChannelConfig, in_channels: int) -> nn.Module:
    """Remove `cfg.ratio` of the channels of every prunable group, in place."""
    import torch_pruning as tp
    example = torch.rand(1, in_channels, 32, 32)
    pruner = tp.pruner.MetaPruner(
        model.eval(), example, importance=tp.importance.MagnitudeImportance(p=1),
        pruning_ratio=cfg.ratio, ignored_layers=stem_and_classifier(model),
        round_to=cfg.round_to)
    pruner.step()
    return model


def shapes(model: nn.Module) -> dict[str, list[int]]:
    """The size of every Conv2d / BatchNorm2d / Linear, as plain JSON-able lists."""
    out = {}
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            out[name] = [m.in_channels, m.out_channels, m.groups]
        elif isinstance(m, nn.BatchNorm2d):
            out[name] = [m.num_features]
        elif isinstance(m, nn.Linear):
            out[name] = [m.in_features, m.out_features]
    return out


def reshape_(model: nn.Module, sizes: dict[str, list[int]]) -> nn.Module:
    """Resize a freshly built model's layers to `sizes` (from `shapes`), in place."""
    modules = dict(model.named_modules())
    for name, size in sizes.items():
        m = modules.get(name)
        if isinstance(m, nn.Conv2d) and len(size) == 3:
            if [m.in_channels, m.out_channels, m.groups] != size:
                replace_module(model, name, nn.Conv2d(size[0], size[1], m.kernel_size, m.stride, m.padding,
                                            m.dilation, size[2], m.bias is not None))
        elif isinstance(m, nn.BatchNorm2d) and len(size) == 1:
            if m.num_features != size[0]:
                replace_module(model, name, nn.BatchNorm2d(size[0], m.eps, m.momentum))
        elif isinstance(m, nn.Linear) and len(size) == 2:
            if [m.in_features, m.out_features] != size:
                replace_module(model, name, nn.Linear(size[0], size[1], m.bias is not None))
        else:
            raise ValueError(f"layer {name!r} with size {size} does not fit this architecture")
    return model


def dense_like(cfg: ModelConfig, sizes: dict | None) -> nn.Module:
    from . import models as M
    model = M.build(cfg)
    return reshape_(model, sizes) if sizes else model
