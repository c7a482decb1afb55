"""Dynamic INT8 as in the original: `quantize_dynamic` on Linear layers (for these CNNs: the
classifier alone). Saved as a state dict and rebuilt on load, never as a pickled module."""
from __future__ import annotations

import warnings

import torch
from torch import nn

from .config import QuantConfig


def quantize(model: nn.Module, cfg: QuantConfig) -> nn.Module:
    """A quantized copy of a float CPU model (dynamic quantization runs on the CPU only)."""
    if cfg.method == "none":
        return model
    if cfg.method != "int8-dynamic":
        raise ValueError(f"unsupported quant method {cfg.method!r}")
    with warnings.catch_warnings():
        # torch.ao.quantization is deprecated in favour of torchao, but this *is* the API the
        # original study used; the issue on real INT8 speed moves to a maintained path.
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(model.cpu().eval(), {nn.Linear},
                                                      dtype=torch.qint8)


def rebuild(float_model: nn.Module, method: str) -> nn.Module:
    """The empty structure a saved state dict of `method` loads into."""
    if method == "kmeans":  # weight sharing keeps float weights; only BatchNorm is folded away
        from .share import fold_batchnorm
        return fold_batchnorm(float_model)
    return quantize(float_model, QuantConfig(method))
