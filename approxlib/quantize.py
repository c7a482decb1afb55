"""INT8 quantization.

`int8-dynamic` is the original's `quantize_dynamic` on Linear layers (for these CNNs: the
classifier alone). `int8-static` quantizes every convolution and linear layer after calibrating
activation ranges on training images: PyTorch's FX graph mode (`prepare_fx` / `convert_fx`,
x86 backend: per-channel int8 weights, uint8 activations, fused conv+BN+ReLU). FX mode lives in
`torch.ao.quantization`, which torch deprecates in favour of torchao's PT2E flow; on torch 2.14.1
torchao's `X86InductorQuantizer` failed on these models ("Input partition has more than one
output node", measured), while FX works and runs on fbgemm/oneDNN kernels, so we use FX and keep
the choice in this one module. Quantized models are saved as state dicts and rebuilt here, never
pickled. Quantization-aware training (`prepare_qat`, then ordinary fine-tuning through fake
quantization, then `convert_qat`) gives the same INT8 modules as `int8-static`, so a QAT model is
saved, rebuilt and loaded exactly as a static one.
"""
from __future__ import annotations

import copy
import json
import logging
import warnings
import zlib
from collections import OrderedDict
from collections.abc import Callable

import torch
from torch import nn
from torch.ao.quantization import (disable_observer, enable_observer,
                                   get_default_qat_qconfig_mapping, get_default_qconfig_mapping)
from torch.ao.nn.intrinsic.qat import freeze_bn_stats
from torch.ao.quantization.observer import ObserverBase
from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx, prepare_qat_fx

from . import models
from . import quants
from .config import ConfigError, QuantConfig
from . import share  # a module, not a name: share -> train -> data -> store -> quantize is a cycle

LOG = logging.getLogger("approxlib")


def quantize(model: nn.Module, cfg: QuantConfig) -> nn.Module:
    """A dynamically quantized copy of a float CPU model (dynamic quantization runs on the CPU)."""
    if cfg.method == quants.NONE.key:
        return model
    if cfg.method != quants.DYNAMIC.key:
        raise ValueError(f"quantize() does int8-dynamic; use quantize_static for {cfg.method!r}")
    models.warn_uncovered(model)
    if not any(isinstance(m, nn.Linear) for m in model.modules()):
        LOG.warning("%s has no Linear layer: dynamic INT8 (of Linear layers, as the original "
                    "study's) leaves it as it is", type(model).__name__)
    qm = _dynamic(model)
    _check_runs(model, qm)
    return qm


def _dynamic(model: nn.Module) -> nn.Module:
    """torch's dynamic INT8 of the Linear layers, nothing else: a structure to load a saved
    state dict into is built by this alone (`Dynamic.rebuild`), not warned of or run again."""
    with warnings.catch_warnings():
        # torch.ao.quantization is deprecated in favour of torchao, but this *is* the API the
        # original study used.
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(model.cpu().eval(), {nn.Linear},
                                                      dtype=torch.qint8)


@torch.no_grad()
def _check_runs(float_model: nn.Module, qm: nn.Module) -> None:
    """ConfigError unless the int8 model runs where the float one does. Swin's attention reads
    its Linear's weight as a tensor, which a quantized Linear holds as a method: `quantize`
    wrote a file that no command could evaluate (a new user's walkthrough, 2026-12-07). The
    first of a few image sizes the float model takes (ViT's is 224) is tried."""
    channels = next((m.in_channels for m in float_model.modules()
                     if isinstance(m, nn.Conv2d)), 3)
    for size in (32, 64, 224):
        x = torch.full((1, channels, size, size), 0.5)  # no draw: the caller's random state stays
        try:
            float_model(x)
        except (RuntimeError, ValueError, AssertionError, TypeError):
            continue  # a size this architecture does not take
        try:
            qm(x)
        except (RuntimeError, ValueError, AssertionError, TypeError, AttributeError) as e:
            first = (str(e).strip().splitlines() or [""])[0][:120]
            raise ConfigError(f"dynamic INT8 of {type(float_model).__name__} does not run "
                              f"({type(e).__name__}: {first}): a layer reads its Linear's "
                              f"weight directly, which torch's dynamic quantization "
                              f"replaces") from None
        return


def _example(model: nn.Module) -> torch.Tensor:
    first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    return torch.rand(1, first.in_channels, 32, 32)


@torch.no_grad()
def quantize_static(model: nn.Module, calib: torch.Tensor | None, batch_size: int = 128
                    ) -> nn.Module:
    """Static INT8 (FX, x86) of a float model; `calib` = float images whose activation ranges
    set the scales (None: an uncalibrated skeleton for `rebuild`)."""
    model = copy.deepcopy(model).cpu().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the deprecation note above; observers of a skeleton
        prepared = prepare_fx(model, get_default_qconfig_mapping("x86"), (_example(model),))
        if calib is not None:
            for i in range(0, len(calib), batch_size):
                prepared(calib[i:i + batch_size])
        return convert_fx(prepared)


# QAT's default x86 qconfig mapping is the static one with fake quantization in place of the
# observers, and the same numerics: uint8 activations with reduce_range (0..127, as fbgemm wants),
# per-channel symmetric int8 weights, and the same x86 backend config, so the same fusions
# (conv+BN(+ReLU) train as ConvBn(ReLU)2d, with BN folded at conversion) and the same quantized
# modules. A converted QAT model thus has the static skeleton's graph, module types and state-dict
# keys; its scales and zero points differ, but they are state-dict entries (loading replaces the
# skeleton's), so only the structure has to match. The store saves it as "int8-static" and
# `rebuild` loads it (tests/test_quantize.py: both study models, strict load, same predictions).
def prepare_qat(model: nn.Module) -> torch.fx.GraphModule:
    """A copy of a float CPU model with fake quantization (FX, x86) on the weights and activations
    `quantize_static` quantizes, in train mode: fine-tuned by an ordinary loop, it learns weights
    that survive INT8 rounding; `convert_qat` then makes it an INT8 model.

    Its ranges move in train mode only: torch's observers ignore `.eval()`, so a validation
    pass would fit them to the validation images; here `.eval()` freezes them (`_observe_in_train`)."""
    model = copy.deepcopy(model).cpu().train()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the deprecation note above; reduce_range's own note
        prepared = prepare_qat_fx(model, get_default_qat_qconfig_mapping("x86"),
                                  (_example(model),))
    return _observe_in_train(prepared)


def _observe_in_train(prepared: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """Make `.train(mode)` switch the observers on or off with the mode. FX gives every
    GraphModule its own class, so patching that class's `train` touches this model only."""
    cls, base = type(prepared), type(prepared).train

    def train(self, mode: bool = True):
        base(self, mode)
        observe = mode and not getattr(self, "ranges_frozen", False)
        return self.apply(enable_observer if observe else disable_observer)
    cls.train = train
    return prepared


def freeze_schedule(steps: int, bn: float | None, ranges: float | None
                    ) -> Callable[[nn.Module], None]:
    """An `after_step` hook for `train` that, after the fractions `bn` and `ranges` of a QAT
    run's `steps`, freezes BatchNorm's running statistics (the fused conv+BN then trains on the
    statistics inference folds in) and the quantization ranges (weights and activations), so
    the last steps fine-tune against the INT8 model's own numerics. This is the recipe of
    PyTorch's QAT tutorial (of 8 epochs: BN frozen after 4, observers after 5); None: never."""
    at = {name: max(1, round(f * steps)) for name, f in (("bn", bn), ("ranges", ranges))
          if f is not None}
    done = 0

    def hook(model: nn.Module) -> None:
        nonlocal done
        done += 1
        if done == at.get("bn"):
            model.apply(freeze_bn_stats)
        if done == at.get("ranges"):
            model.ranges_frozen = True  # `.train()` no longer switches them back on
            model.apply(disable_observer)
    return hook


def convert_qat(prepared: nn.Module) -> nn.Module:
    """The INT8 model of a `prepare_qat` model (a copy: `convert_fx` rewrites its input's graph),
    in eval mode; its state dict loads into `rebuild(float_model, "int8-static")`.

    A prepared model that never ran has no ranges: torch converts it all the same, with scale 1
    on every activation (all-zero logits, measured), so it is refused here instead."""
    if not _observed(prepared):
        raise ValueError("convert_qat: the prepared model has not run (no activation ranges); "
                         "fine-tune it first")
    prepared = copy.deepcopy(prepared).cpu().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the deprecation notes (torch.ao, quantized tensors)
        return convert_fx(prepared).eval()


def _observed(prepared: nn.Module) -> bool:
    """Whether every min/max observer (fixed-range ones have none) has seen data."""
    mins = [m.min_val for m in prepared.modules() if isinstance(m, ObserverBase)
            and isinstance(getattr(m, "min_val", None), torch.Tensor)]
    return all(v.numel() and bool(torch.isfinite(v).all()) for v in mins)


class Method:
    """One `quant` of results.csv and the store: how its weights are stored and rebuilt. This
    base is float32 as trained; each other kind is a subclass registered in METHODS."""
    name = quants.NONE.key
    bits: str | None = "32/32"  # bits per stored conv/fc weight (None: the codebook's)
    meta = True  # its structure is built on the meta device (float weights, no memory)
    packed = False  # its state dict is saved through `pack_state`
    skeleton = False  # its structure is slow to build (FX): one is cached and copied

    def rebuild(self, float_model: nn.Module) -> nn.Module:
        """The empty structure a saved state dict of this kind loads into."""
        return float_model


class KMeans(Method):
    """Weight sharing: float weights drawn from a codebook, BatchNorm folded away."""
    name, bits = quants.KMEANS.key, None

    def rebuild(self, float_model):
        return share.fold_batchnorm(float_model)


class Dynamic(Method):
    """The original's dynamic INT8: the classifier's weights only."""
    name, bits, meta = quants.DYNAMIC.key, "32/8", False

    def rebuild(self, float_model):
        return _dynamic(float_model)


class Static(Method):
    """Static INT8 (FX): every conv and linear weight, packed compactly."""
    name, bits, meta, packed, skeleton = quants.STATIC.key, "8/8", False, True, True

    def rebuild(self, float_model):
        return quantize_static(float_model, None)


class Qat(Static):
    """Quantization-aware training converts to static INT8's modules and is stored as it."""
    name = quants.QAT.key


METHODS: dict[str, Method] = {m.name: m for m in (Method(), KMeans(), Dynamic(), Static(),
                                                   Qat())}


def rebuild(float_model: nn.Module, method: str) -> nn.Module:
    """The empty structure a saved state dict of `method` loads into."""
    return METHODS[method].rebuild(float_model)


# ------------------------------------------------------------------ compact INT8 checkpoints
# torch.save writes every tensor as its own zip entry (~150 bytes of headers each) and a per-channel
# quantized weight's scales as float64 with int64 zero points: 16 bytes per output channel beside
# one byte per weight. MobileNetV2 has 17,066 channels over 2.2M weights, so that bookkeeping
# alone kept its INT8 file at 3.46x smaller than float32 (measured). No library writes a compact
# layout for torch's quantized state dicts, so this one is hand-written: every tensor goes into one
# flat tensor per dtype, described by a zlib-compressed JSON layout (loading runs no code). It is
# lossless: scales are kept as float32 when that is exact (the observers compute them in float32)
# and all-zero zero points (symmetric weights) are not stored. Rounding the scales to float16
# would save 2 bytes more per channel, but flipped 1.8% of MobileNetV2's test predictions
# (measured), so we do not.
# Bytes of JSON a layout may inflate to, checked before parsing. MobileNetV2's is 26 kB and
# ResNet-18's 10 kB (measured, 100 classes); hostile JSON costs up to ~25 bytes of memory a byte
# of text (issue 14: a layout under the old 64 MiB cap took GiBs), so 1 MiB keeps one < 30 MiB.
_LAYOUT_MAX = 1 << 20


class PackError(ValueError):
    """A packed state dict whose layout does not match its data."""


def pack_state(sd: dict) -> dict:
    """A state dict (possibly with quantized tensors and tuples) as {layout, blobs}."""
    blobs: dict[str, list[torch.Tensor]] = {}
    sizes: dict[str, int] = {}

    def put(t: torch.Tensor) -> list:
        t = t.detach().contiguous().reshape(-1)
        name = str(t.dtype).removeprefix("torch.")
        offset = sizes.get(name, 0)
        blobs.setdefault(name, []).append(t)
        sizes[name] = offset + t.numel()
        return [name, offset, t.numel()]

    def scales(s: torch.Tensor) -> list:
        s32 = s.to(torch.float32)
        return put(s32 if torch.equal(s32.to(s.dtype), s) else s)

    def zero_points(zp: torch.Tensor) -> list | None:
        if not zp.any():
            return None
        return put(zp.to(torch.int8) if bool(((zp >= -128) & (zp <= 127)).all()) else zp)

    def item(v):
        if isinstance(v, tuple):
            return {"tuple": [item(x) for x in v]}
        if isinstance(v, torch.dtype):
            return {"dtype": str(v).removeprefix("torch.")}
        if not isinstance(v, torch.Tensor):
            raise TypeError(f"cannot pack a {type(v).__name__}")
        shape = list(v.shape)
        if not v.is_quantized:
            return {"tensor": put(v), "shape": shape}
        qtype = str(v.dtype).removeprefix("torch.")
        if v.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
            return {"qpc": put(v.int_repr()), "qtype": qtype, "shape": shape,
                    "axis": v.q_per_channel_axis(), "scales": scales(v.q_per_channel_scales()),
                    "zero_points": zero_points(v.q_per_channel_zero_points())}
        return {"qpt": put(v.int_repr()), "qtype": qtype, "shape": shape,
                "scale": float(v.q_scale()), "zero_point": int(v.q_zero_point())}

    layout = {k: item(v) for k, v in sd.items()}
    # the per-module versions load_state_dict reads (quantized Linear changed its layout at 3)
    versions = {k: dict(v) for k, v in getattr(sd, "_metadata", {}).items()}
    text = json.dumps({"tensors": layout, "versions": versions}, separators=(",", ":"))
    return {"layout": torch.frombuffer(bytearray(zlib.compress(text.encode(), 9)),
                                       dtype=torch.uint8),
            "blobs": {name: torch.cat(ts) for name, ts in blobs.items()}}


# torch's note (once per process) that its quantized-tensor creation functions are deprecated:
# a note for code that calls them, not for a user loading a checkpoint, which rebuilds its
# tensors with them (benchmarks/latency.py printed it on its first static INT8 model)
QUANTIZED_DEPRECATION = r"torch\.quantize_per_tensor"


def unpack_state(packed: dict) -> dict:
    """The state dict `pack_state` packed; PackError (one line) if layout and data disagree.
    Every tensor is a slice of a blob, so nothing larger than the file is allocated."""
    try:
        blobs = _parts(packed)
        inflate = zlib.decompressobj()
        text = inflate.decompress(packed["layout"].numpy().tobytes(), _LAYOUT_MAX)
        if inflate.unconsumed_tail or not inflate.eof:
            raise ValueError(f"layout is truncated or over {_LAYOUT_MAX >> 20} MiB")
        layout = json.loads(text)
        taken = dict.fromkeys(blobs, 0)  # elements sliced from each blob (`_take`)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=QUANTIZED_DEPRECATION)
            sd = OrderedDict((k, _unpack(v, blobs, taken))
                             for k, v in layout["tensors"].items())
        sd._metadata = OrderedDict((k, dict(v)) for k, v in layout["versions"].items())
        return sd
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError, IndexError,
            OverflowError, RecursionError, zlib.error) as e:
        raise PackError(f"invalid packed state dict: {type(e).__name__}: {str(e)[:120]}"
                        ) from None


def _parts(packed) -> dict:
    """The blobs of a {layout: uint8 tensor, blobs: {dtype name: flat tensor}} dict."""
    if not (isinstance(packed, dict) and isinstance(packed.get("layout"), torch.Tensor)
            and packed["layout"].dtype == torch.uint8 and packed["layout"].dim() == 1
            and isinstance(packed.get("blobs"), dict)
            and all(isinstance(b, torch.Tensor) and b.dim() == 1
                    for b in packed["blobs"].values())):
        raise ValueError("not a {layout, blobs} dict of flat tensors")
    for name, b in packed["blobs"].items():  # a 1-byte storage expanded to 3 GB: 2.7 KB file
        if b.stride(0) != 1 or ((b.storage_offset() + b.numel()) * b.element_size()
                                > b.untyped_storage().nbytes()):
            raise ValueError(f"blob {str(name)[:20]} claims {b.numel()} elements over "
                             f"{b.untyped_storage().nbytes()} bytes of data")
    return packed["blobs"]


def _take(ref: list, blobs: dict, taken: dict) -> torch.Tensor:
    """A slice of a blob. `pack_state` lays slices end to end, so together they take at most
    the blob: overlapping slices, each copied by `_unpack`, let a 419 KB file unpack to far
    more than it holds (a review, 2026-12-07)."""
    name, offset, n = ref
    blob = blobs[name]
    if not (isinstance(offset, int) and isinstance(n, int) and 0 <= offset and 0 <= n
            and offset + n <= blob.numel()):
        raise ValueError(f"{name} slice {offset}+{n} outside a blob of {blob.numel()}")
    taken[name] += n
    if taken[name] > blob.numel():
        raise ValueError(f"{name} slices overlap: {taken[name]} elements from a blob of "
                         f"{blob.numel()}")
    return blob[offset:offset + n]


def _unpack(v: dict, blobs: dict, taken: dict):
    if "tuple" in v:
        return tuple(_unpack(x, blobs, taken) for x in v["tuple"])
    if "dtype" in v:
        return _dtype(v["dtype"])
    if "tensor" in v:
        return _take(v["tensor"], blobs, taken).reshape(v["shape"]).clone()
    qtype = _dtype(v["qtype"])
    if qtype not in (torch.qint8, torch.quint8, torch.qint32):
        raise ValueError(f"not a quantized dtype: {v['qtype']}")
    if "qpc" in v:
        q = _take(v["qpc"], blobs, taken).reshape(v["shape"])
        scales = _take(v["scales"], blobs, taken).to(torch.float64)
        if q.dim() == 0 or len(scales) != q.shape[int(v["axis"])]:
            raise ValueError(f"{len(scales)} scales for a {list(q.shape)} weight")
        zps = (torch.zeros_like(scales, dtype=torch.int64)  # as many as the blob held scales
               if v["zero_points"] is None else _take(v["zero_points"], blobs, taken
                                                       ).to(torch.int64))
        return torch._make_per_channel_quantized_tensor(q.clone(), scales, zps, int(v["axis"]))
    q = _take(v["qpt"], blobs, taken).reshape(v["shape"])
    return torch._make_per_tensor_quantized_tensor(q.clone(), float(v["scale"]),
                                                   int(v["zero_point"]))


def _dtype(name: str) -> torch.dtype:
    dtype = getattr(torch, str(name), None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"unknown dtype {name!r}")
    return dtype
