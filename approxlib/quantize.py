"""INT8 quantization.

`int8-dynamic` is the original's `quantize_dynamic` on Linear layers (for these CNNs: the
classifier alone). `int8-static` quantizes every convolution and linear layer after calibrating
activation ranges on training images: PyTorch's FX graph mode (`prepare_fx` / `convert_fx`,
x86 backend: per-channel int8 weights, uint8 activations, fused conv+BN+ReLU). FX mode lives in
`torch.ao.quantization`, which torch deprecates in favour of torchao's PT2E flow; on torch 2.14.1
torchao's `X86InductorQuantizer` failed on these models ("Input partition has more than one
output node", measured), while FX works and runs on fbgemm/oneDNN kernels, so we use FX and keep
the choice in this one module. Quantized models are saved as state dicts and rebuilt here, never
pickled.
"""
from __future__ import annotations

import copy
import warnings

import torch
from torch import nn

from .config import QuantConfig


def quantize(model: nn.Module, cfg: QuantConfig) -> nn.Module:
    """A dynamically quantized copy of a float CPU model (dynamic quantization runs on the CPU)."""
    if cfg.method == "none":
        return model
    if cfg.method != "int8-dynamic":
        raise ValueError(f"quantize() does int8-dynamic; use quantize_static for {cfg.method!r}")
    with warnings.catch_warnings():
        # torch.ao.quantization is deprecated in favour of torchao, but this *is* the API the
        # original study used.
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(model.cpu().eval(), {nn.Linear},
                                                      dtype=torch.qint8)


def _example(model: nn.Module) -> torch.Tensor:
    first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    return torch.rand(1, first.in_channels, 32, 32)


@torch.no_grad()
def quantize_static(model: nn.Module, calib: torch.Tensor | None, batch_size: int = 128
                    ) -> nn.Module:
    """Static INT8 (FX, x86) of a float model; `calib` = float images whose activation ranges
    set the scales (None: an uncalibrated skeleton for `rebuild`)."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx
    model = copy.deepcopy(model).cpu().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the deprecation note above; observers of a skeleton
        prepared = prepare_fx(model, get_default_qconfig_mapping("x86"), (_example(model),))
        if calib is not None:
            for i in range(0, len(calib), batch_size):
                prepared(calib[i:i + batch_size])
        return convert_fx(prepared)


def rebuild(float_model: nn.Module, method: str) -> nn.Module:
    """The empty structure a saved state dict of `method` loads into."""
    if method == "kmeans":  # weight sharing keeps float weights; only BatchNorm is folded away
        from .share import fold_batchnorm
        return fold_batchnorm(float_model)
    if method == "int8-static":
        return quantize_static(float_model, None)
    return quantize(float_model, QuantConfig(method))
