"""Any torchvision classification model, for any input channels, class count and stem.

ResNet-18 and MobileNetV2 are the original study's; every name `torchvision.models` lists
(`available()`) builds the same way, through `get_model`: the classifier sized by
`num_classes` (torchvision's own argument, wherever the classifier sits), the first convolution
rebuilt for the input channels, and the `cifar` stem where it applies.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import threading
import warnings
from collections import Counter

import torch
from torch import nn
from torch.nn.utils import prune as tprune
from torchvision import models as tvm

from .config import CIFAR_STEM, ConfigError, ModelConfig

LOG = logging.getLogger("approxlib")

# The study's names for torchvision's (cache keys and results hold them).
ALIASES = {"mobilenetv2": "mobilenet_v2"}


@functools.cache
def available() -> tuple[str, ...]:
    """Every model name `build` takes: torchvision's classification models and our aliases."""
    return (*ALIASES, *tvm.list_models(module=tvm))


def build(cfg: ModelConfig, seed: int | None = None) -> nn.Module:
    """A freshly initialized model (trained from scratch, as the original; no hub weights).

    `seed` fixes the initialization (the training run's seed), so a run repeats exactly.

    stem='imagenet' keeps torchvision's stem (ResNet: 7×7 stride 2 + max-pool; MobileNetV2: 3×3
    stride 2), which shrinks a 32×32 input 4× (ResNet) / 2× (MobileNetV2) at once, as the original
    study did. stem='cifar' is the usual small-image adaptation: the first convolution 3×3 stride
    1, and a max-pool right after it removed. It does not apply to patch embeddings (a first
    convolution whose stride equals its kernel: ViT, Swin, ConvNeXt). Only the first
    convolution's input channels change for 1-channel data, so the ImageNet stem stays what the
    original measured.
    """
    if seed is not None:
        torch.manual_seed(seed)
    if cfg.name in LEGACY:
        return LEGACY[cfg.name](cfg)
    m = _get_model(ALIASES.get(cfg.name, cfg.name), cfg.num_classes)
    _adapt_stem(m, cfg)
    return m


def build_meta(cfg: ModelConfig) -> nn.Module:
    """The architecture on the meta device, in eval mode: shapes and types, no memory. A
    constructor that computes with tensors (RegNet's layer widths: `.tolist()` of a meta tensor
    fails) is built on the CPU instead, each parameter and buffer moved to the meta device as
    it is registered, so a file naming a huge model allocates one layer at most, and no
    initializer draws from the caller's random state (a RegNet was unloadable: every check of
    its weights built it on the meta device)."""
    try:
        with torch.device("meta"):
            return build(cfg).eval()
    except NotImplementedError:
        with _registered_on_meta(), torch.random.fork_rng(devices=[]):
            return build(cfg).eval()


_HOOKS = threading.Lock()  # the registration hooks are global: one build at a time


@contextlib.contextmanager
def _registered_on_meta():
    """Every parameter and buffer a module registers meanwhile goes to the meta device (torch's
    module registration hooks; accelerate's `init_empty_weights` does the same by patching)."""
    from torch.nn.modules import module as torch_module

    def parameter(_module, _name, p):
        return None if p is None else nn.Parameter(p.to("meta"), p.requires_grad)

    def buffer(_module, _name, b):
        return None if b is None else b.to("meta")
    with _HOOKS:
        hooks = (torch_module.register_module_parameter_registration_hook(parameter),
                 torch_module.register_module_buffer_registration_hook(buffer))
        try:
            yield
        finally:
            for h in hooks:
                h.remove()


def _get_model(name: str, num_classes: int) -> nn.Module:
    """torchvision's model, without auxiliary heads (GoogLeNet, Inception-v3 return a tuple of
    logits in training mode with them; the trainer wants one tensor). GoogLeNet and
    Inception-v3 announce that their default initialization will change in a future
    torchvision: a note about torchvision's plans, not about the user's run (the pinned
    torchvision's default is what runs), so it is not shown."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The default weight initialization of",
                                category=FutureWarning)
        try:
            return tvm.get_model(name, weights=None, num_classes=num_classes, aux_logits=False)
        except TypeError:  # the model has no auxiliary heads (raised before any weight is drawn)
            return tvm.get_model(name, weights=None, num_classes=num_classes)


def _mobilenetv2_as_before(cfg: ModelConfig) -> nn.Module:
    """The study's `mobilenetv2`, bit for bit as it was built before any model could be named,
    so that cached models keep meaning what their keys say: the first convolution is always
    redrawn on the ImageNet stem, and on 3-channel data the `cifar` stem keeps stride 2 (a
    quirk of that code; torchvision's `mobilenet_v2` gets the general rule of `_adapt_stem`)."""
    m = tvm.mobilenet_v2(num_classes=cfg.num_classes)
    first = m.features[0][0]
    stride = 1 if cfg.stem == CIFAR_STEM else 2
    if stride != 1 or cfg.in_channels != 3:
        m.features[0][0] = nn.Conv2d(cfg.in_channels, first.out_channels, 3, stride, 1,
                                     bias=False)
    if cfg.stem == CIFAR_STEM or cfg.in_channels != 3:
        nn.init.kaiming_normal_(m.features[0][0].weight, mode="fan_out")
    return m


# Builders kept for the names whose earlier build the general rule does not reproduce
# (ResNet-18's it does, bit for bit).
LEGACY = {"mobilenetv2": _mobilenetv2_as_before}


def _adapt_stem(m: nn.Module, cfg: ModelConfig) -> None:
    """Rebuild the first convolution for `cfg.in_channels` and the stem (see `build`)."""
    found = [(n, c) for n, c in m.named_modules() if isinstance(c, (nn.Conv2d, nn.MaxPool2d))]
    name, conv = found[0]
    cifar = cfg.stem == CIFAR_STEM
    if cifar and conv.stride == conv.kernel_size and conv.stride[0] > 2:
        raise ConfigError(f"stem 'cifar' does not apply to {cfg.name}: its first convolution is "
                          f"a {conv.kernel_size[0]}×{conv.kernel_size[0]} patch embedding; use "
                          f"stem: imagenet")
    if not cifar and cfg.in_channels == conv.in_channels:
        return
    kernel, stride, padding = conv.kernel_size, conv.stride, conv.padding
    if cifar:
        kernel, stride, padding = (3, 1, 1) if kernel[0] > 3 else (kernel, 1, padding)
        after = found[1] if len(found) > 1 else (None, None)
        if isinstance(after[1], nn.MaxPool2d):  # the stem's pooling, before any other conv
            replace_module(m, after[0], nn.Identity())
    new = nn.Conv2d(cfg.in_channels, conv.out_channels, kernel, stride, padding,
                    dilation=conv.dilation, groups=conv.groups, bias=conv.bias is not None)
    nn.init.kaiming_normal_(new.weight, mode="fan_out", nonlinearity="relu")
    if new.bias is not None:
        nn.init.zeros_(new.bias)
    replace_module(m, name, new)


@functools.cache
def check_input(cfg: ModelConfig, size: int) -> None:
    """One clear line when the architecture cannot classify `size`×`size` images (a forward
    pass on the meta device: shapes only, no memory, no time)."""
    model = build_meta(cfg)
    x = torch.empty(2, cfg.in_channels, size, size, device="meta")
    for training in (False, True):  # evaluated and trained: both must give plain scores
        try:
            with torch.no_grad():
                out = model.train(training)(x)
        except (RuntimeError, ValueError, AssertionError) as e:
            raise ConfigError(f"{cfg.name} cannot take {size}×{size} images: "
                              f"{str(e).splitlines()[0][:160]}") from None
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, cfg.num_classes):
            raise ConfigError(f"{cfg.name} does not return one score per class for "
                              f"{size}×{size} images{' in training mode' if training else ''}")


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


def classifier(model: nn.Module) -> tuple[str, nn.Module]:
    """The layer whose outputs are the classes: the last Conv2d or Linear of a float model, as
    torchvision orders every classifier's modules. Not "the last Linear": SqueezeNet classifies
    with a 1×1 convolution, and loading its checkpoints ended in an IndexError (a new user's
    walkthrough, 2026-12-07)."""
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    if not layers:
        raise ConfigError(f"{type(model).__name__} has no Conv2d or Linear layer to classify")
    return layers[-1]


UNCOVERED_SHARE = 0.01  # weights outside Conv2d/Linear worth a warning


def uncovered(model: nn.Module) -> tuple[float, list[str]]:
    """The share of a model's weight tensors (2-D and up) outside its Conv2d and Linear layers,
    which pruning, dynamic INT8 and the sparsity count cover, and their names, largest first."""
    inside = {id(m.weight) for _, m in prunable(model) if isinstance(m.weight, torch.Tensor)}
    weights = [(n, p.numel(), id(p)) for n, p in model.named_parameters() if p.dim() >= 2]
    outside = sorted(((n, k) for n, k, i in weights if i not in inside), key=lambda x: -x[1])
    total = sum(k for _, k, _ in weights)
    return (sum(k for _, k in outside) / total if total else 0.0), [n for n, _ in outside]


def require_dense_float(model: nn.Module, doing: str) -> None:
    """ConfigError where `model` is not the plain float model `doing` needs: pruning masks still
    attached (weight = weight_orig × mask, which sharing overwrote only until the next forward
    pass, and a save wrote at twice the size and could not be loaded), or quantized modules
    (pruning one ended in torch's "'function' object has no attribute 'device'")."""
    if tprune.is_pruned(model):
        raise ConfigError(f"{doing} needs the pruning masks folded into the weights first: "
                          f"prune.make_permanent_(model)")
    if any(type(m).__module__.startswith("torch.ao.nn.quantized") for m in model.modules()):
        raise ConfigError(f"{doing} needs a float model; this one is quantized")


@contextlib.contextmanager
def evaluating(model: nn.Module):
    """`model` in eval mode inside, in the mode it had after: a measurement or prediction left a
    model its caller was training in eval mode (a library user's walkthrough, 2026-12-07)."""
    was = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was)


def warn_uncovered(model: nn.Module) -> None:
    """ViT keeps a quarter of its weights in MultiheadAttention's `in_proj_weight`: "sparsity
    0.5" left them whole and uncounted (a new user's walkthrough, 2026-12-07)."""
    share, names_ = uncovered(model)
    if share > UNCOVERED_SHARE:
        kinds = Counter(n.rsplit(".", 1)[-1] for n in names_)  # largest first, as `uncovered`
        LOG.warning("%.1f%% of %s's weights (%s) lie outside the Conv2d and Linear layers that "
                    "pruning, dynamic INT8 and the sparsity count cover: they stay dense",
                    100 * share, type(model).__name__,
                    ", ".join(f"{k} ×{c}" if c > 1 else k for k, c in list(kinds.items())[:3]))


def _is_dynamic_quantized_linear(m: nn.Module) -> bool:
    return type(m).__name__ == "Linear" and type(m).__module__.startswith("torch.ao.nn.quantized")


def weight_of(m: nn.Module) -> torch.Tensor:
    """The float weight of a Conv2d / Linear, or the dequantized weight of a quantized Linear."""
    w = m.weight() if callable(getattr(m, "weight", None)) else m.weight
    return w.dequantize() if w.is_quantized else w.detach()


def fingerprint(model: nn.Module) -> str | None:
    """Hash of a float model's structure and exact weights (equal fingerprints, equal
    predictions and latency); None for models holding anything else (quantized packed params)."""
    if not isinstance(model, nn.Module):
        return None
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        if not isinstance(t, torch.Tensor) or t.is_quantized:
            return None
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:24]
