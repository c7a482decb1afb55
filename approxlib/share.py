"""Deep Compression's trained quantization: BatchNorm folding, per-layer k-means weight sharing
and codebook fine-tuning (Han, Mao & Dally, ICLR 2016, section 3).

After `share_weights_`, every Conv2d/Linear weight holds at most 2^bits distinct non-zero values
(its codebook) and its pruned zeros stay exactly zero; `share_and_finetune` then trains the
centroids themselves, each one moved by the mean of the gradients of the weights that share it
(the paper's sum, divided by the group's size: `SharedWeight` says why).
"""
from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.fx
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.fusion import fuse_conv_bn_eval

from . import models
from . import train
from .config import ShareConfig
from .models import prunable, replace_module

# Above this many distinct values a tensor is not shared: the codec stores its values raw.
MAX_CODEBOOK = 1 << 16


# ------------------------------------------------------------------------------ BatchNorm folding

def conv_bn_pairs(model: nn.Module) -> list[tuple[str, str]]:
    """(conv, bn) module names where a BatchNorm2d reads only a Conv2d's output, found on the
    traced graph so that it works for any torchvision architecture, not a hand-kept list."""
    graph = torch.fx.symbolic_trace(model).graph
    modules = dict(model.named_modules())
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(modules.get(node.target), nn.BatchNorm2d):
            continue
        src = node.args[0]
        if (isinstance(src, torch.fx.Node) and src.op == "call_module"
                and isinstance(modules.get(src.target), nn.Conv2d) and len(src.users) == 1):
            pairs.append((src.target, node.target))
    return pairs


@torch.no_grad()
def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every BatchNorm into the convolution before it (eval-mode statistics), in place.

    The model keeps torchvision's module tree: each folded BatchNorm becomes an `nn.Identity`
    and its convolution gains a bias. Zeros stay zeros (folding scales whole output channels), so
    the pruning pattern survives; 4 BatchNorm vectors per channel become 1 bias.
    """
    model.eval()
    for conv_name, bn_name in conv_bn_pairs(model):
        modules = dict(model.named_modules())
        replace_module(model, conv_name, fuse_conv_bn_eval(modules[conv_name], modules[bn_name]))
        replace_module(model, bn_name, nn.Identity())
    return model


def has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


# ------------------------------------------------------------------------------ weight sharing

def layer_bits(name: str, module: nn.Module, cfg: ShareConfig) -> int:
    return cfg.bits_fc if isinstance(module, nn.Linear) else cfg.bits_conv


def kmeans_1d(values: np.ndarray, bits: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(centroids float32, label per value): scikit-learn's k-means with the paper's linear
    initialization (centroids spaced evenly between min and max, which keeps the rare large
    weights represented; the paper found it best)."""
    k = min(1 << bits, len(np.unique(values)))
    if k <= 1:
        c = np.unique(values).astype(np.float32)
        return c, np.zeros(len(values), dtype=np.int64)
    # imported here, as only weight sharing needs it: `import approxlib.pipeline` (every command,
    # worker and helper) 3.1-3.4 s -> 2.9 s (2026-12-06)
    from sklearn.cluster import KMeans
    init = np.linspace(values.min(), values.max(), k, dtype=np.float64).reshape(-1, 1)
    km = KMeans(n_clusters=k, init=init, n_init=1, max_iter=100, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fewer distinct points than clusters: k-means copes
        km.fit(values.astype(np.float64).reshape(-1, 1))
    centroids = km.cluster_centers_.ravel().astype(np.float32)
    return centroids, km.labels_.astype(np.int64)


class SharedWeight(nn.Module):
    """Parametrization weight = codebook[code] at the kept positions, exactly 0 elsewhere.

    Autograd's gather backward sums the gradients of the weights that share a centroid (the
    paper's eq. 3); `share_weights_` then divides by the group's size. With plain SGD the sum
    makes a centroid's step grow with its group (up to ~10^5 weights here): at lr 1e-3 it drove
    ResNet-18 to chance within one epoch (measured), whereas the mean moves a centroid as far as
    an average member weight would move. Pruned positions get no gradient.
    """

    def __init__(self, shape: torch.Size, positions: torch.Tensor, codes: torch.Tensor,
                 codebook: torch.Tensor):
        super().__init__()
        self.shape = tuple(shape)
        self.register_buffer("positions", positions)
        self.register_buffer("codes", codes)
        self._init = codebook

    def forward(self, codebook: torch.Tensor) -> torch.Tensor:
        flat = codebook.new_zeros(int(np.prod(self.shape)))
        return flat.index_put((self.positions,), codebook[self.codes]).view(self.shape)

    def right_inverse(self, weight: torch.Tensor) -> torch.Tensor:
        return self._init.to(weight.device)


@torch.no_grad()
def share_weights_(model: nn.Module, cfg: ShareConfig, trainable: bool = False
                   ) -> list[dict]:
    """Replace each Conv2d/Linear weight by its k-means codebook values, in place.

    With `trainable=True` the weights stay parametrized (`SharedWeight`) so that training moves
    the centroids; call `unshare_` afterwards. Returns one row per layer (bits, k, non-zeros).
    """
    models.require_dense_float(model, "weight sharing")
    rows = []
    for name, m in prunable(model):
        w = m.weight.detach()
        flat = w.reshape(-1).cpu()
        positions = torch.nonzero(flat != 0).ravel()  # ±0.0 are pruned; written back as +0.0
        bits = layer_bits(name, m, cfg)
        centroids, labels = kmeans_1d(flat[positions].numpy(), bits)
        codebook = torch.from_numpy(centroids)
        codes = torch.from_numpy(labels)
        rows.append({"layer": name, "bits": bits, "k": len(centroids),
                     "nonzero": len(positions), "total": flat.numel()})
        if trainable:
            p = SharedWeight(w.shape, positions.to(w.device), codes.to(w.device), codebook)
            parametrize.register_parametrization(m, "weight", p)
            size = torch.bincount(codes, minlength=len(codebook)).clamp_(min=1).float()
            # the model may move to a GPU after sharing: divide on the gradient's device
            m.parametrizations.weight.original.register_hook(
                lambda g, size=size: g / size.to(g.device))
        else:
            new = torch.zeros_like(flat)
            new[positions] = codebook[codes]
            m.weight.copy_(new.view_as(w))
    return rows


def unshare_(model: nn.Module) -> nn.Module:
    """Drop the parametrizations, leaving plain weights equal to codebook[code] (bit for bit)."""
    for _, m in list(model.named_modules()):
        if parametrize.is_parametrized(m, "weight"):
            parametrize.remove_parametrizations(m, "weight", leave_parametrized=True)
    return model


@torch.no_grad()
def round_biases_(model: nn.Module, dtype: torch.dtype = torch.float16) -> nn.Module:
    """Round every parameter that is not a shared weight to `dtype` precision (kept as float32),
    so that the codec can store them in 2 bytes without changing a single bit of the model."""
    shared = {id(m.weight) for _, m in prunable(model)}
    for p in model.parameters():
        if id(p) not in shared and p.dtype == torch.float32:
            p.copy_(p.to(dtype).float())
    return model


def share_and_finetune(model: nn.Module, cfg: ShareConfig, splits, finetune, device="auto",
                       desc="codebook fine-tune", progress=True, teacher=None
                       ) -> tuple[nn.Module, list[dict], list[dict]]:
    """Fold BatchNorm, share weights by k-means, fine-tune the codebooks, round the biases.

    Returns (model, per-layer rows, training history). With `finetune.epochs == 0` the
    codebooks are the k-means centroids as they are.
    """
    model = fold_batchnorm(model.cpu())
    rows = share_weights_(model, cfg, trainable=finetune.epochs > 0)
    hist: list[dict] = []
    if finetune.epochs > 0:
        model, hist = train.train(model, splits, finetune, device, desc=desc, progress=progress,
                                  teacher=teacher)
        unshare_(model)
    round_biases_(model)
    return model.eval(), rows, hist


def distinct_nonzero(weight: torch.Tensor) -> int:
    bits = weight.detach().reshape(-1).cpu().view(torch.int32)
    return int(torch.unique(bits[bits != 0]).numel())
