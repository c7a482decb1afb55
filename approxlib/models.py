"""torchvision's ResNet-18 and MobileNetV2 for any input channels, class count and stem."""
from __future__ import annotations

import torch
from torch import nn
from torchvision import models as tvm

from .config import ModelConfig


def build(cfg: ModelConfig, seed: int | None = None) -> nn.Module:
    """A freshly initialized model (trained from scratch, as the original; no hub weights).

    `seed` fixes the initialization (the training run's seed), so a run repeats exactly.

    stem='imagenet' keeps torchvision's stem (ResNet: 7×7 stride 2 + max-pool; MobileNetV2: 3×3
    stride 2), which shrinks a 32×32 input 4× (ResNet) / 2× (MobileNetV2) at once, as the original
    study did. stem='cifar' is the usual small-image adaptation: 3×3 stride 1, no max-pool.
    Only the first convolution's input channels change for 1-channel data, so the ImageNet stem
    stays what the original measured.
    """
    if seed is not None:
        torch.manual_seed(seed)
    if cfg.name == "resnet18":
        m = tvm.resnet18(num_classes=cfg.num_classes)
        if cfg.stem == "cifar":
            m.conv1 = nn.Conv2d(cfg.in_channels, 64, 3, 1, 1, bias=False)
            m.maxpool = nn.Identity()
        elif cfg.in_channels != 3:
            m.conv1 = nn.Conv2d(cfg.in_channels, 64, 7, 2, 3, bias=False)
    elif cfg.name == "mobilenetv2":
        m = tvm.mobilenet_v2(num_classes=cfg.num_classes)
        first = m.features[0][0]
        stride = 1 if cfg.stem == "cifar" else 2
        if stride != 1 or cfg.in_channels != 3:
            m.features[0][0] = nn.Conv2d(cfg.in_channels, first.out_channels, 3, stride, 1, bias=False)
    else:  # ModelConfig validates names; this guards direct misuse
        raise ValueError(f"unknown model {cfg.name!r}")
    if cfg.name == "resnet18" and (cfg.stem == "cifar" or cfg.in_channels != 3):
        nn.init.kaiming_normal_(m.conv1.weight, mode="fan_out", nonlinearity="relu")
    if cfg.name == "mobilenetv2" and (cfg.stem == "cifar" or cfg.in_channels != 3):
        nn.init.kaiming_normal_(m.features[0][0].weight, mode="fan_out")
    return m


def replace_module(model: nn.Module, name: str, module: nn.Module) -> None:
    """Put `module` at dotted path `name`, in the model's train/eval mode (a fresh module would
    otherwise be in training mode)."""
    parent, _, leaf = name.rpartition(".")
    module.train(model.training)
    setattr(model.get_submodule(parent) if parent else model, leaf, module)


def prunable(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every Conv2d and Linear (the layers the original prunes and counts for sparsity)."""
    return [(n, m) for n, m in model.named_modules()
            if isinstance(m, (nn.Conv2d, nn.Linear)) or _is_dynamic_quantized_linear(m)]


def _is_dynamic_quantized_linear(m: nn.Module) -> bool:
    return type(m).__name__ == "Linear" and type(m).__module__.startswith("torch.ao.nn.quantized")


def weight_of(m: nn.Module) -> torch.Tensor:
    """The float weight of a Conv2d / Linear, or the dequantized weight of a quantized Linear."""
    w = m.weight() if callable(getattr(m, "weight", None)) else m.weight
    return w.dequantize() if w.is_quantized else w.detach()
