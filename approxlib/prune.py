"""Global L1 unstructured pruning through `torch.nn.utils.prune`, as the original study did."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import prune as tprune

from .config import PruneConfig
from .models import prunable, weight_of


def prune_(model: nn.Module, cfg: PruneConfig) -> nn.Module:
    """Attach global-magnitude masks to every Conv2d and Linear weight, in place.

    `global_unstructured` ranks all these weights together by |w| and zeroes the smallest
    round(ratio × total); the masks stay attached (weight = weight_orig × mask) so fine-tuning
    keeps pruned weights at zero. Call `make_permanent_` before saving.
    """
    if cfg.method != "l1-unstructured":
        raise ValueError(f"prune_ supports l1-unstructured, got {cfg.method!r}")
    params = [(m, "weight") for _, m in prunable(model)]
    tprune.global_unstructured(params, pruning_method=tprune.L1Unstructured, amount=cfg.ratio)
    return model


def make_permanent_(model: nn.Module) -> nn.Module:
    """Fold masks into the weights and drop the re-parametrization (the original: masks removed)."""
    for _, m in prunable(model):
        if tprune.is_pruned(m) and hasattr(m, "weight_mask"):
            tprune.remove(m, "weight")
    return model


def global_sparsity(model: nn.Module) -> tuple[int, int]:
    """(zero weights, total weights) over every Conv2d and Linear weight."""
    zeros = total = 0
    for _, m in prunable(model):
        w = weight_of(m)
        zeros += int((w == 0).sum())
        total += w.numel()
    return zeros, total


def sparsity_of(model: nn.Module) -> float:
    zeros, total = global_sparsity(model)
    return zeros / total if total else 0.0


def expected_zeros(model: nn.Module, ratio: float) -> int:
    """How many weights `global_unstructured` prunes: round(ratio × total), as torch computes it."""
    _, total = global_sparsity(model)
    return round(ratio * total)



def freeze_masks_(model: nn.Module) -> dict[str, torch.Tensor]:
    """Make the pruned zeros permanent now and return the masks, to re-apply after each step.

    Equivalent to fine-tuning through torch's re-parametrization (weight = weight_orig × mask):
    SGD updates each weight from its own gradient and momentum, and the forward pass sees zeros
    at pruned positions either way. It is much cheaper: the per-forward multiply through the
    pruning hooks cut MobileNetV2's training speed here from 844 to 373 img/s.
    """
    masks = {n: m.weight_mask.detach().clone() for n, m in prunable(model)
             if tprune.is_pruned(m) and hasattr(m, "weight_mask")}
    make_permanent_(model)
    return masks


@torch.no_grad()
def apply_masks_(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    modules = dict(model.named_modules())
    for name, mask in masks.items():
        w = modules[name].weight
        if mask.device != w.device:
            mask = masks[name] = mask.to(w.device)
        w.mul_(mask)


def prune_and_finetune(model: nn.Module, cfg: PruneConfig, splits, finetune, device="auto",
                       desc="fine-tune", progress=True) -> tuple[nn.Module, list[dict]]:
    """Global L1 pruning, then fine-tuning that keeps every pruned weight at exactly zero."""
    from . import train as T
    prune_(model, cfg)
    masks = freeze_masks_(model)
    model, hist = T.train(model, splits, finetune, device, desc=desc, progress=progress,
                          after_step=lambda m: apply_masks_(m, masks))
    apply_masks_(model, masks)  # the selected state already holds them; cheap insurance
    return model, hist
