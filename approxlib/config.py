"""Profiles and the frozen, validated config dataclasses built from them.

A profile is a flat dict of simple values (see ``profiles.yaml``); each stage takes the small
dataclass that holds just the values it depends on, so that a stage's cache key changes only when
something it uses changes.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime
import difflib
import hashlib
import json
import math
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from yaml.events import AliasEvent

from . import methods
from . import quants
from . import runtimes

MODELS = ("resnet18", "mobilenetv2")  # the original study's; any torchvision classifier builds
# torchvision's first layers as built for 224-pixel images, or the first convolution at stride 1
# for small ones (models.build)
IMAGENET_STEM, CIFAR_STEM = STEMS = ("imagenet", "cifar")
# learning-rate schedules (train.SCHEDULERS); constant is the original study's
CONSTANT, ONECYCLE, COSINE = SCHEDULES = ("constant", "onecycle", "cosine")
PRECISIONS = ("auto", "fp32", "bf16")
# Where the dense model's QAT starts: the baseline, or its equal-compute dense control (the
# converged model of the dense arm, as the channel-pruned model is of its own).
QAT_STARTS = ("baseline", "control")  # what dense QAT fine-tunes (`qat_from`)
# A scratch control's budget (`ScratchConfig`): the pipeline's epochs (Scratch-E) or its FLOPs
# (Scratch-B); `controls` names its kinds by them
SAME_EPOCHS, SAME_FLOPS = SCRATCH_BUDGETS = ("epochs", "flops")
PRUNE_SCOPES = ("global", "layer")
# our .apx format's layers (compress.py): the pruned model's non-zeros, their codebook indices
# at fixed width, those Huffman-coded; the last is the file section F ships (Deep Compression's
# last stage)
SPARSE_CODEC, PACKED_CODEC, SHIPPED_CODEC = APX_CODECS = ("sparse", "packed", "huffman")
# MPEG NNC (ISO/IEC 15938-17) through its reference software, NNCodec (nncodec.py): the standard
# section F measures its files against, at each of `nncodec_qps`
STANDARD_CODEC = "nncodec"
GZIP, XZ, ZSTD = GENERAL_CODECS = ("gzip", "xz", "zstd")  # over the whole checkpoint (compress.GENERAL)
# Their settings besides each tool's strongest (None): `fast`, each tool's quick one (smoke)
GENERAL_EFFORTS = ("fast",)
NO_CODEC = "none"  # the checkpoint as `torch.save` wrote it
CODECS = (NO_CODEC, *APX_CODECS, *GENERAL_CODECS)
DEVICES = ("auto", "cpu", "cuda")


def printable(text: str) -> str:
    """One line a terminal shows as it is: whitespace runs become one space, and any other
    character that does not print (an escape code in a folder's or file's name, which could
    retitle the window or clear the screen) is written as its escape, e.g. \\x1b."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in " ".join(text.split()))


class ConfigError(ValueError):
    """A user-facing configuration problem: the CLI prints it as one line and exits with 2."""

    def _render_traceback_(self) -> list[str]:
        """What IPython shows of it in a notebook: the CLI's one line, not five frames into
        the library (papermill printed 70-100 lines for a ratio of 1.5)."""
        return [f"{type(self).__name__}: {printable(str(self))}"]


def expanded(path) -> Path:
    """A path with `~` or `~user` expanded; one line where that user has no home folder (Python
    raises RuntimeError, which reached the user as a traceback)."""
    try:
        return Path(str(path)).expanduser()
    except RuntimeError:
        raise ConfigError(f"cannot expand {show(str(path))}: no such user's home folder") from None


def from_here(path) -> str:
    """Where a relative path that was not found was looked for (a user running from another
    folder took a profile file's relative paths to be read from the file's folder)."""
    if expanded(path).is_absolute():
        return ""
    return f" (relative paths are read from {os.getcwd()}, the folder approx runs in)"


def show(value: Any, limit: int = 80) -> str:
    """A value as an error message shows it: one short line. (An int of over 4300 digits cannot
    even be turned into text, Python's guard against quadratic conversions; issue 14.)"""
    if isinstance(value, int) and value.bit_length() > 200:
        return f"an integer of about {int(value.bit_length() * math.log10(2)) + 1} digits"
    try:
        text = repr(value)
    except ValueError:  # a container holding such an int
        return f"a {type(value).__name__} holding an integer too long to show"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"unknown {name} {show(value)}; valid: {', '.join(choices)}")


def _number(name: str, value: Any, lo: float, hi: float, *, lo_open=False, hi_open=False,
            integer=False) -> None:
    """The one check every numeric parameter goes through. NaN fails no comparison, so a NaN
    ratio passed the range test and pruned nothing (issue 14): non-finite values are refused
    here, before the range test, and every bound is finite so huge integers are refused too."""
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"{name} must be {kind}, got {show(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {show(value)}")
    below = value <= lo if lo_open else value < lo
    above = value >= hi if hi_open else value > hi
    if below or above:
        interval = f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
        raise ConfigError(f"{name} must be in {interval}, got {show(value)}")


def _bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be true or false, got {show(value)}")


def check_ratio(value: Any, name: str = "ratio") -> None:
    _number(name, value, 0.0, 1.0, hi_open=True)


def check_model(name: Any) -> None:
    """Any classification model torchvision lists (models.available), or our aliases."""
    from .models import available  # models imports this module: the check is lazy
    if not isinstance(name, str) or name not in available():
        raise ConfigError(f"unknown model {show(name)}: not a torchvision classification model "
                          f"(e.g. {', '.join(MODELS)}, mobilenet_v3_small; `approx models` "
                          f"lists them)")


def check_dataset(name: Any) -> None:
    """A dataset data.source knows: a built-in name or a kind with its argument."""
    from .data import source  # data imports this module: the check is lazy
    source(name)


@dataclass(frozen=True)
class DataConfig:
    dataset: str
    train_size: int | None
    val_size: int
    seed: int = 0
    # Hashed only when set, so the keys of runs made before these fields existed still hold.
    image_size: int | None = dataclasses.field(default=None, metadata={"hash": "if set"})
    contents: str | None = dataclasses.field(default=None, metadata={"hash": "if set"})
    # The test part's digest, apart: only what scores the test split hashes it (`Step.reads_test`),
    # so a changed test image re-scores the models without training them again (a stranger's
    # test, 2026-12-07: one test image retrained every fine-tuned model)
    test_contents: str | None = dataclasses.field(default=None, metadata={"hash": "if set"})
    # At most this many test images (class-balanced, the same images for every seed: see
    # data.test_indices): a smoke run's evaluations were
    # two thirds of its time on the full 10,000-image split (measured, 638 of 994 s).
    test_size: int | None = dataclasses.field(default=None, metadata={"hash": "if set"})

    def __post_init__(self):
        check_dataset(self.dataset)
        if self.test_size is not None:
            _number("test_size", self.test_size, 1, 10**7, integer=True)
        if self.image_size is not None:
            check_image_size(self.image_size)
        if self.train_size is not None:
            _number("train_size", self.train_size, 1, 10**7, integer=True)
        _number("val_size", self.val_size, 1, 10**6, integer=True)
        _number("seed", self.seed, 0, 2**31, integer=True)


@dataclass(frozen=True)
class ModelConfig:
    name: str
    num_classes: int
    in_channels: int
    stem: str = IMAGENET_STEM

    def __post_init__(self):
        check_model(self.name)
        _choice("stem", self.stem, STEMS)
        _number("num_classes", self.num_classes, 2, 100_000, integer=True)
        _number("in_channels", self.in_channels, 1, 64, integer=True)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int
    batch_size: int = 128
    lr: float = 0.1
    schedule: str = CONSTANT
    warmup: float = 0.0
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    label_smoothing: float = 0.0
    crop_padding: int = 4
    flip: bool = True
    precision: str = "auto"
    seed: int = 0
    # Knowledge distillation from the dense baseline (Hinton et al. 2015): the loss is
    # (1 − kd_alpha) · cross-entropy + kd_alpha · T² · KL(teacher ‖ student) at temperature T.
    # None: no distillation (and not hashed, so stages without it keep their keys).
    kd_alpha: float | None = dataclasses.field(default=None, metadata={"hash": "if set"})
    kd_temperature: float | None = dataclasses.field(default=None, metadata={"hash": "if set"})
    # The share of the training split one epoch draws, a fresh random subset each epoch (a short
    # fine-tuning for smoke runs); None: all of it (and not hashed, as kd_alpha).
    epoch_fraction: float | None = dataclasses.field(default=None, metadata={"hash": "if set"})
    # Every BatchNorm's momentum while training; None: as the architecture sets it (and not
    # hashed, as kd_alpha). torchvision's MobileNetV3 and EfficientNet use 0.01, meant for
    # hundreds of ImageNet epochs: after smoke's 190 steps MobileNetV3-Small's running
    # statistics still lagged so far that it scored 10.0% on Fashion-MNIST, 69.5% at 0.1.
    bn_momentum: float | None = dataclasses.field(default=None, metadata={"hash": "if set"})

    def __post_init__(self):
        _number("epochs", self.epochs, 0, 10_000, integer=True)
        _number("batch_size", self.batch_size, 2, 65_536, integer=True)  # BatchNorm needs 2
        _number("lr", self.lr, 0.0, 100.0, lo_open=True)
        _choice("schedule", self.schedule, SCHEDULES)
        _number("warmup", self.warmup, 0.0, 1.0, hi_open=True)
        _number("momentum", self.momentum, 0.0, 1.0, hi_open=True)
        _bool("nesterov", self.nesterov)
        if self.nesterov and self.momentum == 0:
            raise ConfigError("nesterov needs momentum > 0")
        _number("weight_decay", self.weight_decay, 0.0, 1.0)
        _number("label_smoothing", self.label_smoothing, 0.0, 1.0, hi_open=True)
        _number("crop_padding", self.crop_padding, 0, 64, integer=True)
        _bool("flip", self.flip)
        _choice("precision", self.precision, PRECISIONS)
        if self.precision == "fp32":  # what auto means everywhere (train.use_bf16): one key
            # for one computation (fp32 trained a filled store again for nothing, 2026-12-07)
            object.__setattr__(self, "precision", "auto")
        _number("seed", self.seed, 0, 2**31, integer=True)
        if (self.kd_alpha is None) != (self.kd_temperature is None):
            raise ConfigError("kd_alpha and kd_temperature are set together or not at all")
        if self.kd_alpha is not None:
            _number("kd_alpha", self.kd_alpha, 0.0, 1.0, lo_open=True)
            _number("kd_temperature", self.kd_temperature, 0.0, 100.0, lo_open=True)
        if self.epoch_fraction is not None:
            _number("finetune_fraction", self.epoch_fraction, 0.0, 1.0, lo_open=True)
        if self.bn_momentum is not None:
            _number("bn_momentum", self.bn_momentum, 0.0, 1.0, lo_open=True)


def check_prune_method(method, what: str = "prune_method") -> None:
    """A one-shot pruning method: a scoring rule and a spread (prune.score_and_spread)."""
    from .prune import score_and_spread  # prune imports this module: the check is lazy
    if not isinstance(method, str):
        raise ConfigError(f"{what} must be a method name, got {show(method)}")
    try:
        score_and_spread(method)
    except ValueError as e:
        raise ConfigError(f"{what}: {e}") from None




@dataclass(frozen=True)
class PruneConfig:
    ratio: float
    method: str = methods.REFERENCE

    def __post_init__(self):
        check_prune_method(self.method)
        check_ratio(self.ratio)


@dataclass(frozen=True)
class SensitivityConfig:
    """Per-layer sensitivity analysis (as Distiller and NNI do it): prune one layer at a time to
    each of `ratios` (L1 magnitude), measure accuracy on the first `images` validation images."""
    ratios: tuple[float, ...] = (0.5, 0.75, 0.9, 0.95, 0.99)
    images: int = 1000

    def __post_init__(self):
        if not isinstance(self.ratios, tuple) or not self.ratios:
            raise ConfigError(f"h_sens_ratios must be a non-empty list, got {show(self.ratios)}")
        for r in self.ratios:
            check_ratio(r, "each of h_sens_ratios")
        if list(self.ratios) != sorted(set(self.ratios)):
            raise ConfigError(f"h_sens_ratios must rise strictly, got {list(self.ratios)}")
        _number("h_sens_images", self.images, 1, 10**6, integer=True)


@dataclass(frozen=True)
class QuantConfig:
    method: str = quants.DYNAMIC.key

    def __post_init__(self):
        _choice("quant", self.method, quants.keys())


@dataclass(frozen=True)
class GradualConfig:
    """Gradual magnitude pruning (Zhu & Gupta 2017): sparsity rises from `initial` to `sparsity`
    along a cubic curve over the first `ramp` fraction of the fine-tuning steps, the masks being
    recomputed every `every` steps; the remaining steps fine-tune at the final sparsity."""
    sparsity: float
    scope: str = "global"
    ramp: float = 0.67
    every: int = 10
    initial: float = 0.0

    def __post_init__(self):
        check_ratio(self.sparsity, "sparsity")
        _choice("prune scope", self.scope, PRUNE_SCOPES)
        _number("ramp", self.ramp, 0.0, 1.0, lo_open=True)
        _number("every", self.every, 1, 10**6, integer=True)
        _number("initial sparsity", self.initial, 0.0, self.sparsity)


@dataclass(frozen=True)
class ShareConfig:
    """Deep Compression's trained quantization: per-layer k-means over the non-zero weights,
    `bits_conv` / `bits_fc` bits of codebook index per weight, linear centroid initialization;
    BatchNorm is folded into the convolutions first, and biases are rounded to float16."""
    bits_conv: int = 4
    bits_fc: int = 4

    def __post_init__(self):
        _number("bits_conv", self.bits_conv, 1, 16, integer=True)
        _number("bits_fc", self.bits_fc, 1, 16, integer=True)


@dataclass(frozen=True)
class CodecConfig:
    """How an artifact is written: our `.apx` format (`sparse`: relative indices + float32
    values; `packed`: + codebook indices at fixed width; `huffman`: indices and gaps Huffman
    coded) or a general-purpose compressor over the checkpoint (`gzip`, `xz`, `zstd`)."""
    codec: str = SHIPPED_CODEC
    index_bits: int = 8
    # A general-purpose codec's setting: None, each tool's strongest (and not hashed, so the
    # files written before this field keep their keys); `fast`, each tool's quick setting.
    effort: str | None = dataclasses.field(default=None, metadata={"hash": "if set"})

    def __post_init__(self):
        _choice("codec", self.codec, CODECS)
        _number("index_bits", self.index_bits, 1, 16, integer=True)
        if self.effort is not None and self.effort not in GENERAL_EFFORTS:
            raise ConfigError(f"unknown general_effort {show(self.effort)}; valid: null (each "
                              f"tool's strongest setting), {', '.join(GENERAL_EFFORTS)}")
        if self.effort is not None and self.codec not in GENERAL_CODECS:
            raise ConfigError(f"general_effort applies to {', '.join(GENERAL_CODECS)}, "
                              f"not to {self.codec!r}")


@dataclass(frozen=True)
class NncConfig:
    """NNCodec (MPEG NNC, ISO/IEC 15938-17) at one quantization parameter: a uniform step of
    2^(qp / 2^qp_density) before DeepCABAC coding; a lower qp, finer steps, a larger file."""
    qp: int
    qp_density: int = 2

    def __post_init__(self):
        _number("each of nncodec_qps", self.qp, -100, 0, integer=True)
        _number("nncodec qp_density", self.qp_density, 0, 5, integer=True)


@dataclass(frozen=True)
class QatConfig:
    """When a QAT run freezes BatchNorm's statistics and the quantization ranges, as fractions
    of its steps (`quantize.freeze_schedule`); None: never (ranges and statistics keep moving)."""
    freeze_bn: float | None = dataclasses.field(default=None, metadata={"hash": "if set"})
    freeze_ranges: float | None = dataclasses.field(default=None, metadata={"hash": "if set"})

    def __post_init__(self):
        for name in ("freeze_bn", "freeze_ranges"):
            if getattr(self, name) is not None:
                _number(f"qat_{name}", getattr(self, name), 0.0, 1.0)

    @property
    def used(self) -> bool:
        return self.freeze_bn is not None or self.freeze_ranges is not None


@dataclass(frozen=True)
class ScratchConfig:
    """The budget of a train-from-scratch control (Liu et al., ICLR 2019): `epochs` (Scratch-E:
    the epochs of baseline + fine-tuning) or `flops` (Scratch-B: the FLOPs the fine-tuned
    pipeline spent — training on the dense model, `finetune_epochs` on the pruned one — at most
    `max_factor` times Scratch-E's epochs). A fine-tuning whose epochs draw `finetune_fraction`
    of the training split counts that share of each epoch (Scratch-E rounds to whole epochs)."""
    budget: str
    max_factor: float = 2.0
    finetune_epochs: int = 0  # of the total: those the pipeline ran on the pruned model
    finetune_fraction: float | None = dataclasses.field(default=None, metadata={"hash": "if set"})

    def __post_init__(self):
        _choice("scratch budget", self.budget, SCRATCH_BUDGETS)
        _number("scratch_b_max", self.max_factor, 1.0, 100.0)
        _number("finetune_epochs", self.finetune_epochs, 0, 10_000, integer=True)
        if self.finetune_fraction is not None:
            _number("finetune_fraction", self.finetune_fraction, 0.0, 1.0, lo_open=True)

    def epochs(self, total: int, flops_ratio: float) -> int:
        """Epochs to train, given baseline + fine-tuning epochs (`total`) and dense / pruned
        FLOPs per image."""
        same_epochs = self._same_epochs(total)
        if self.budget == SAME_EPOCHS:
            return same_epochs
        same_flops = (total - self.finetune_epochs) * flops_ratio + self._finetuned()
        return max(same_epochs, min(round(same_flops), self.most_epochs(total)))

    def most_epochs(self, total: int) -> int:
        """The most epochs `epochs` can give: Scratch-E's, or Scratch-B's cap."""
        same_epochs = self._same_epochs(total)
        return (same_epochs if self.budget == SAME_EPOCHS
                else round(self.max_factor * same_epochs))

    def _finetuned(self) -> float:
        """Fine-tuning's epochs as whole-split passes."""
        return self.finetune_epochs * (self.finetune_fraction or 1.0)

    def _same_epochs(self, total: int) -> int:
        """Scratch-E's: the whole-split passes of baseline + fine-tuning, halves rounded up
        (never fewer than the pipeline's)."""
        return math.floor(total - self.finetune_epochs + self._finetuned() + 0.5)


@dataclass(frozen=True)
class ChannelConfig:
    """Structured pruning (Torch-Pruning): remove `ratio` of the channels of every group,
    ranked by `criterion` (a `methods.channel()` entry's: L1 magnitude unless another is asked
    for, and then in the key), channel counts rounded to multiples of `round_to` (what
    vectorized kernels like)."""
    ratio: float
    round_to: int = 8
    criterion: str = dataclasses.field(default=methods.CHANNEL.criterion,
                                       metadata={"hash": "unless default"})

    def __post_init__(self):
        _number("channel_ratio", self.ratio, 0.0, 1.0, lo_open=True, hi_open=True)  # 0 would
        # repeat the dense model under a pruned name
        _number("round_to", self.round_to, 1, 256, integer=True)
        _choice("channel criterion", self.criterion,
                tuple(m.criterion for m in methods.channel()))


@dataclass(frozen=True)
class StaticQuantConfig:
    """Post-training static INT8 of every convolution and linear layer, calibrated on the first
    `calib_images` training images (never the test set); per-channel weights."""
    runtime: str = runtimes.EAGER.key  # whose quantizer: PyTorch FX or ONNX Runtime's
    calib_images: int = 1024

    def __post_init__(self):
        _choice("runtime", self.runtime, tuple(runtimes.RUNTIMES))
        _number("calib_images", self.calib_images, 1, 10**6, integer=True)


@dataclass(frozen=True)
class OnnxConfig:
    """Export to ONNX for ONNX Runtime, optionally with its own static INT8 (QDQ) quantization."""
    quant: str = quants.NONE.key
    calib_images: int = 1024

    def __post_init__(self):
        _choice("onnx quant", self.quant, (quants.NONE.key, quants.STATIC.key))
        _number("calib_images", self.calib_images, 1, 10**6, integer=True)


@dataclass(frozen=True)
class MeasureConfig:
    threads: int = 1
    latency_warmup: int = 10
    latency_min_time: float = 1.0
    throughput_batch: int = 64

    def __post_init__(self):
        _number("threads", self.threads, 1, 1024, integer=True)
        _number("latency_warmup", self.latency_warmup, 0, 10_000, integer=True)
        _number("latency_min_time", self.latency_min_time, 0.0, 600.0, lo_open=True)
        _number("throughput_batch", self.throughput_batch, 1, 4096, integer=True)


def recorded(configs) -> list[dict[str, Any]]:
    """The configs a file records of its making (a checkpoint's meta, an .apx header), each
    with its type: what the pipeline's stages and the single-stage commands write alike."""
    return [{"type": type(c).__name__, **config_fields(c)} for c in configs]


def config_fields(x: Any) -> dict[str, Any]:
    """A config's fields as its key and its files' headers record them: a field marked
    `"hash": "if set"` is left out while unset (None), one marked `"unless default"` while it
    holds its default, so adding one changes no key and no file written before it (an `.apx`
    header once grew by `"effort": null`)."""
    def left_out(f: dataclasses.Field) -> bool:
        how, value = f.metadata.get("hash"), getattr(x, f.name)
        return (how == "if set" and value is None) or (how == "unless default"
                                                      and value == f.default)
    unset = {f.name for f in dataclasses.fields(x) if left_out(f)}
    return {k: v for k, v in dataclasses.asdict(x).items() if k not in unset}


def config_hash(*parts: Any) -> str:
    """Stable short hash of dataclasses / plain values (canonical JSON, sorted keys)."""
    def plain(x):
        if dataclasses.is_dataclass(x):
            return {"__type__": type(x).__name__, **config_fields(x)}
        return x
    blob = json.dumps([plain(p) for p in parts], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------------------- profiles

@lru_cache(maxsize=1)
def _profiles_file() -> dict:
    text = resources.files("approxlib").joinpath("profiles.yaml").read_text()
    return yaml.load(text, Loader=_PlainLoader)  # read as a user's profile file is


def profile_names() -> list[str]:
    return list(_profiles_file()["profiles"])


# A parameter given as text (`--set`, a notebook's list or dict parameter) is at most this long
# (the longest real one, an h_protocols mapping, is ~400 characters) and nested at most this deep.
MAX_VALUE_CHARS = 10_000
MAX_DEPTH = 16


class _PlainLoader(yaml.SafeLoader):
    """YAML without anchors and aliases, nested at most MAX_DEPTH deep. Aliases let a few hundred
    characters expand past 3 GiB (a "billion laughs" bomb, issue 14), and PyYAML composes nested
    nodes recursively (a deep `[[[…]]]` overflows the stack); no parameter needs either."""

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, AliasEvent) or getattr(event, "anchor", None) is not None:
            raise ConfigError("YAML anchors and aliases (&name, *name) are not accepted")
        self._depth = getattr(self, "_depth", 0) + 1
        try:
            if self._depth > MAX_DEPTH:
                raise ConfigError(f"nested more than {MAX_DEPTH} levels deep")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):
        """A key given twice is an error: PyYAML keeps the last, so `base: smoke` then
        `base: quick` silently ran quick. Plain string keys only; anything else is left to
        PyYAML's own checks (an unhashable key, a merge key, a node that is no mapping)."""
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != STR_TAG:
                    continue
                if key_node.value in seen:
                    raise ConfigError(f"{show(key_node.value)} is given twice")
                seen.add(key_node.value)
        return super().construct_mapping(node, deep)


STR_TAG = "tag:yaml.org,2002:str"
# YAML 1.2's floats: PyYAML reads YAML 1.1, where a float needs a dot, so `--set lr=1e-3` was
# the text "1e-3" and refused as not a number (a stranger's attack on the CLI, 2026-12-06)
_PlainLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def check_plain(name: str, value: Any, depth: int = 0) -> None:
    """Parameters are plain data, as a profile holds them: strings, numbers, booleans, null, and
    lists and string-keyed mappings of those. Anything else (bytes from `!!binary`, dates, sets,
    int keys) used to pass validation and crash papermill after every stage had run (issue 14)."""
    if depth > MAX_DEPTH:
        raise ConfigError(f"{name} is nested more than {MAX_DEPTH} levels deep")
    if value is None or isinstance(value, (str, int, float)):  # bool is an int
        return
    if isinstance(value, list):
        for x in value:
            check_plain(name, x, depth + 1)
        return
    if isinstance(value, dict):
        for k, x in value.items():
            if not isinstance(k, str):
                raise ConfigError(f"{name}: mapping keys must be strings, got {show(k)} "
                                  f"({type(k).__name__}); quote it")
            check_plain(f"{name}.{k}", x, depth + 1)
        return
    raise ConfigError(f"{name}: a {type(value).__name__} value ({show(value)}) is not accepted; "
                      f"use numbers, strings, true/false, null, lists and mappings")


def check_image_size(value: Any) -> None:
    """An image size in pixels a model is trained and evaluated at (profile or checkpoint)."""
    _number("image_size", value, 8, 4096, integer=True)


def parse_value(text: str, name: str = "parameter value") -> Any:
    """`--set` values are YAML scalars/lists: `0.5`, `true`, `null`, `[0, 0.5, 0.9]`, `cifar10`.

    Text that is not YAML stays a string (the parameter's own check then names it); plain data
    only (see check_plain), no anchors or aliases, at most MAX_VALUE_CHARS characters."""
    if len(text) > MAX_VALUE_CHARS:
        raise ConfigError(f"{name} is {len(text)} characters long; at most {MAX_VALUE_CHARS}")
    try:
        value = yaml.load(text, Loader=_PlainLoader)
    except ConfigError as e:
        raise ConfigError(f"{name}: {e}") from None
    except yaml.constructor.ConstructorError as e:  # !!python/…, !custom, bad !!binary
        raise ConfigError(f"{name}: cannot read {show(text)}: "
                          f"{' '.join(str(e.problem).split())}") from None
    except yaml.YAMLError:
        return text
    except ValueError as e:  # an integer of over 4300 digits; a date like 2024-13-45
        reason = " ".join(str(e).split(":")[0].split())  # not the advice to call sys.set_int_…
        raise ConfigError(f"{name}: cannot read {show(text)}: {reason}") from None
    if isinstance(value, (datetime.date, datetime.datetime)):
        raise ConfigError(f"{name}: {show(text)} reads as a date; quote it to pass text")
    check_plain(name, value)
    return value


def parse_overrides(pairs: list[str] | None) -> dict[str, Any]:
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got {show(pair)}")
        out[key.strip()] = parse_value(value, f"--set {key.strip()}")
    return out


def is_profile_file(name: Any) -> bool:
    return isinstance(name, str) and name.endswith((".yaml", ".yml"))


def profile_label(name: str) -> str:
    """What names a profile's report folder: its name, or its file's name without `.yaml`."""
    if not is_profile_file(name):
        return name
    stem = Path(name).stem  # never a built-in profile's folder
    return f"{stem}-file" if stem in profile_names() else stem


MAX_PROFILE_BYTES = 1 << 20


def _profile_spec(name: str) -> dict[str, Any]:
    """A built-in profile's own keys, or a profile file's: `base: NAME` (a built-in profile it
    starts from; none = the defaults alone), `description`, and parameters."""
    doc = _profiles_file()
    if not is_profile_file(name):
        if not isinstance(name, str) or name not in doc["profiles"]:
            raise ConfigError(f"unknown profile {show(name)}; valid: "
                              f"{', '.join(profile_names())}, or a file ending in .yaml")
        return dict(doc["profiles"][name])
    path = Path(name)
    if not path.exists():
        raise ConfigError(f"profile file {name} not found{from_here(name)}")
    if not path.is_file() or path.stat().st_size > MAX_PROFILE_BYTES:
        raise ConfigError(f"profile file {name} is not a regular file of at most 1 MiB")
    try:
        spec = yaml.load(path.read_text(encoding="utf-8", errors="replace"), Loader=_PlainLoader)
    except (yaml.YAMLError, ValueError, OSError) as e:  # ConfigError (aliases, depth) is a ValueError
        raise ConfigError(f"cannot read profile file {name}: "
                          f"{' '.join(str(e).split())[:160]}") from None
    if not isinstance(spec, dict) or not all(isinstance(k, str) for k in spec):
        raise ConfigError(f"profile file {name} must hold `key: value` lines")
    base = spec.pop("base", None)
    if base is not None:
        if not isinstance(base, str) or base not in doc["profiles"]:
            raise ConfigError(f"{name}: unknown base {show(base)}; valid: "
                              f"{', '.join(profile_names())}")
        spec = {**doc["profiles"][base], "description": "", **spec}
    return spec


# Parameters an earlier version had: a profile that still sets one is told what became of it.
REMOVED = {"h_latency_min_time": "section H no longer times latency (it compares accuracies)"}


def _known(key, params: dict, where: str = "") -> None:
    if key in REMOVED:
        raise ConfigError(f"{where}parameter {show(key)} was removed: {REMOVED[key]}; delete it")
    if key not in params:
        near = difflib.get_close_matches(str(key), list(params), n=3)
        hint = (f"did you mean {' or '.join(near)}? All valid: " if near else "valid: ")
        raise ConfigError(f"{where}unknown parameter {show(key)}; {hint}"
                          f"{', '.join(sorted(params))}")


def default(key: str):
    """A parameter's value in `defaults`, which every profile starts from."""
    return _profiles_file()["defaults"][key]


def load_profile(name: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The profile's flat parameters (defaults + profile + overrides), validated. `name` is a
    built-in profile or a YAML file of your own (`mine.yaml`)."""
    params = dict(_profiles_file()["defaults"])
    spec = _profile_spec(name)
    description = spec.pop("description", "")
    for key in spec:
        _known(key, params, f"{name}: ")
        check_plain(key, spec[key])
    params.update(spec)
    changed = []
    for key, value in (overrides or {}).items():
        _known(key, params)
        check_plain(key, value)
        if params[key] != value:
            changed.append(key)
        params[key] = value
    params["profile"] = name
    params["description"] = " ".join(str(description).split())
    if params["description"] and changed:
        # the profile's words describe its own data and budgets: a report of smoke on a
        # user's folder said "2,000 real Fashion-MNIST training images" (2026-12-08)
        params["description"] = (f"This run sets {', '.join(sorted(changed))} otherwise; "
                                 f"the profile's own words: {params['description']}")
    validate_params(params)
    return params


@contextlib.contextmanager
def _keys(**fields: str):
    """A config built from profile keys names a bad value by the key a user sets, not by its
    own field (`--set finetune_lr=0` said "lr must be ..."): `field must ...` and
    `unknown field ...` messages."""
    try:
        yield
    except ConfigError as e:
        words = str(e).split(" ")
        at = 1 if words[0] == "unknown" and len(words) > 1 else 0
        if words[at] not in fields:
            raise
        words[at] = fields[words[at]]
        raise ConfigError(" ".join(words)) from None


FINETUNE_KEYS = {"epochs": "finetune_epochs", "lr": "finetune_lr",
                 "schedule": "finetune_schedule", "weight_decay": "finetune_weight_decay"}


def _validate_per_model(p: dict[str, Any]) -> None:
    """The configs built from per-model keys, for each model's value and the `default`."""
    defaults = {k: v["default"] for k, v in p.items()  # the `default` values, checked too
                if k in PER_MODEL and isinstance(v, dict) and "default" in v}
    for q, m in [(p, m) for m in (*MODELS, *(p["models"] or []))] + [({**p, **defaults},
                                                                      MODELS[0])]:
        with _keys(sparsity="dc_sparsity", ramp="dc_ramp", every="dc_every"):
            gradual_config(q, m)
        curve_sparsities(q, m)
        with _keys(bits_conv="dc_bits_conv", bits_fc="dc_bits_fc"):
            share_config(q, m)
        with _keys(epochs="channel_epochs", lr="channel_lr"):
            channel_finetune_config(q, m)
        with _keys(epochs="dc_epochs", lr="dc_lr"):
            dc_finetune_config(q, m)


def validate_params(p: dict[str, Any]) -> None:
    """Build every config a profile implies, so that a bad value fails before any work starts."""
    for key in PER_MODEL:
        _per_model_keys(p, key)
    named = p["models"] if isinstance(p["models"], list) else []  # checked below
    for m in (*MODELS, *named):  # each model's view of the keys every training reads
        train_config(for_model(p, m))
    p = for_model(p, MODELS[0])  # the rest builds the configs of one view
    check_dataset(p["dataset_d"])
    _choice("device", p["device"], DEVICES)
    if not isinstance(p["ratios"], list) or not p["ratios"]:
        raise ConfigError(f"ratios must be a non-empty list of numbers, got {show(p['ratios'])}")
    for r in p["ratios"]:
        check_ratio(r, "each of ratios")
    data_config(p, p["dataset"])
    train_config(p)
    with _keys(**FINETUNE_KEYS):
        finetune_config(p)
    PruneConfig(p["ratio"])
    measure_config(p)
    _number("latency_rounds", p["latency_rounds"], 0, 1000, integer=True)  # 0: no timing in turns
    if p["models"] is not None:
        for m in _list("models", p["models"]):
            check_model(m)
        if not p["models"]:
            raise ConfigError("models must name at least one model, or be null")
    _validate_per_model(p)
    with _keys(epochs="dc_share_epochs", lr="dc_share_lr"):
        share_finetune_config(p)
    with _keys(index_bits="dc_index_bits"):
        codec_config(p, SHIPPED_CODEC)
        codec_config(p, GENERAL_CODECS[0])
    _choice("channel_method", p["channel_method"], tuple(m.key for m in methods.channel()))
    ChannelConfig(p["channel_ratio"])
    for r in _list("channel_ratios", p["channel_ratios"]):
        with _keys(channel_ratio="each of channel_ratios"):
            ChannelConfig(r)
    StaticQuantConfig(calib_images=p["calib_images"])
    validate_recovery(p)
    _bool("controls", p["controls"])
    if p["seeds"] is not None:
        _seeds("seeds", p["seeds"])
    validate_section_h(p)
    bits = p["dc_bits_curve"]
    if not isinstance(bits, list) or not bits:
        raise ConfigError(f"dc_bits_curve must be a non-empty list of bit widths, got "
                          f"{show(bits)}")
    for b in bits:
        ShareConfig(b, b)
    qps = _list("nncodec_qps", p["nncodec_qps"])
    for q in qps:
        NncConfig(q)
    if len(set(qps)) != len(qps):
        raise ConfigError(f"nncodec_qps must be distinct, got {show(qps)}")
    _choice("stem", p["stem"], STEMS)


def validate_recovery(p: dict[str, Any]) -> None:
    """QAT, distillation and the scratch controls (issue 17)."""
    for key in ("qat", "kd", "scratch"):
        _bool(key, p[key])
    if p["kd"]:
        distilled(finetune_config(p), p)
    _number("qat_epochs", p["qat_epochs"], 1, 10_000, integer=True)
    _choice("qat_from", p["qat_from"], QAT_STARTS)
    with _keys(lr="qat_lr"):
        qat_config(p)
    qat_freeze(p)
    ScratchConfig(SAME_FLOPS, p["scratch_b_max"])
    scratch_ratios(p)


# What a section-H protocol may set: how a model is trained and fine-tuned, nothing else.
PROTOCOL_KEYS = ("epochs", "batch_size", "lr", "schedule", "warmup", "momentum", "nesterov",
                 "weight_decay", "label_smoothing", "crop_padding", "flip", "finetune_epochs",
                 "finetune_lr", "finetune_schedule", "finetune_weight_decay", "bn_momentum")


def _list(name: str, value: Any) -> list:
    if not isinstance(value, list):
        raise ConfigError(f"{name} must be a list, got {show(value)}")
    return value


def _seeds(name: str, value: Any) -> None:
    """A non-empty list of distinct seeds (each checked first: a list item is unhashable)."""
    seeds = _list(name, value)
    for s in seeds:
        _number(f"each of {name}", s, 0, 2**31, integer=True)
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"{name} must be a non-empty list of distinct seeds, got {show(seeds)}")


# Protocol names label tables, figures and variants; NO_PROTOCOL, the profile's own settings,
# is the protocol of every variant outside section H and so no protocol's name.
PROTOCOL_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,31}")
NO_PROTOCOL = "profile"


def qat_from_control(p: dict[str, Any]) -> bool:
    """Whether dense QAT starts from the equal-compute dense control, not the baseline."""
    return p["qat_from"] == QAT_STARTS[1]


def curve_protocol(p: dict[str, Any]) -> str:
    """The protocol section H's sparsity curve runs under: `tuned`, else the first one."""
    return "tuned" if "tuned" in p["h_protocols"] else next(iter(p["h_protocols"]))


def validate_section_h(p: dict[str, Any]) -> None:
    _seeds("h_seeds", p["h_seeds"])
    if p["h_train_size"] is not None:
        _number("h_train_size", p["h_train_size"], 1, 10**7, integer=True)
    if p["h_epochs"] is not None:
        _number("h_epochs", p["h_epochs"], 1, 10_000, integer=True)
    protocols = p["h_protocols"]
    if not isinstance(protocols, dict) or not protocols:
        raise ConfigError(f"h_protocols must map protocol names to parameter overrides, got "
                          f"{show(protocols)}")
    for name, spec in protocols.items():
        if not isinstance(name, str) or not PROTOCOL_NAME.fullmatch(name) or name == NO_PROTOCOL:
            raise ConfigError(f"h_protocols: protocol name {show(name)} must be a letter and up "
                              f"to 31 letters, digits, _ or -, and not {NO_PROTOCOL!r}")
        if not isinstance(spec, dict):
            raise ConfigError(f"h_protocols.{name} must be a mapping, got {show(spec)}")
        bad = sorted(set(spec) - set(PROTOCOL_KEYS))
        if bad:
            raise ConfigError(f"h_protocols.{name} sets {', '.join(bad)}; a protocol may set "
                              f"{', '.join(PROTOCOL_KEYS)}")
        q = protocol_params(p, name)
        with _keys(**{k: f"h_protocols.{name}.{k}" for k in spec}):  # what the protocol set
            train_config(q)
        with _keys(**{f: f"h_protocols.{name}.{k}" for f, k in FINETUNE_KEYS.items()
                      if k in spec}):
            finetune_config(q)
    for m in _list("h_curve_models", p["h_curve_models"]):
        check_model(m)
    for r in _list("h_curve_sparsities", p["h_curve_sparsities"]):
        check_ratio(r, "each of h_curve_sparsities")
    for m in _list("h_curve_methods", p["h_curve_methods"]):
        check_prune_method(m, "each of h_curve_methods")
    sensitivity_config(p)


def protocol_params(p: dict, protocol: str, seed: int | None = None) -> dict:
    """The profile as one of section H's runs sees it: the protocol's training settings, H's
    training subset and epochs and the run's seed. (Its variants are not timed: section H
    compares accuracies, and sections A–C time the same unstructured pruning in turns.)"""
    if protocol not in p["h_protocols"]:
        raise ConfigError(f"unknown protocol {show(protocol)}; valid: "
                          f"{', '.join(p['h_protocols'])}")
    q = {**p, **p["h_protocols"][protocol]}
    if p["h_train_size"] is not None:
        q["train_size"] = p["h_train_size"]
    if p["h_epochs"] is not None and "epochs" not in p["h_protocols"][protocol]:
        q["epochs"] = p["h_epochs"]
    if seed is not None:
        q["seed"] = seed
    return q


def sensitivity_config(p: dict) -> SensitivityConfig:
    ratios = _list("h_sens_ratios", p["h_sens_ratios"])
    for r in ratios:  # before float(), which would take "nan" or "0.5" given as text
        check_ratio(r, "each of h_sens_ratios")
    return SensitivityConfig(tuple(float(r) for r in ratios), p["h_sens_images"])


def data_config(p: dict, dataset: str) -> DataConfig:
    return DataConfig(dataset, p["train_size"], p["val_size"], p["seed"], p["image_size"],
                      test_size=p["test_size"])


def train_config(p: dict) -> TrainConfig:
    return TrainConfig(
        epochs=p["epochs"], batch_size=p["batch_size"], lr=p["lr"], schedule=p["schedule"],
        warmup=p["warmup"], momentum=p["momentum"], nesterov=p["nesterov"],
        weight_decay=p["weight_decay"], label_smoothing=p["label_smoothing"],
        crop_padding=p["crop_padding"], flip=p["flip"], precision=p["precision"], seed=p["seed"],
        bn_momentum=p["bn_momentum"],
    )


def finetune_config(p: dict) -> TrainConfig:
    """The original fine-tunes with plain SGD (momentum 0.9, no weight decay, no smoothing)."""
    return TrainConfig(
        epochs=p["finetune_epochs"], batch_size=p["batch_size"], lr=p["finetune_lr"],
        schedule=p["finetune_schedule"], warmup=0.0, momentum=p["momentum"], nesterov=False,
        weight_decay=p["finetune_weight_decay"], label_smoothing=0.0,
        crop_padding=p["crop_padding"], flip=p["flip"], precision=p["precision"], seed=p["seed"],
        epoch_fraction=p["finetune_fraction"], bn_momentum=p["bn_momentum"],
    )


def measure_config(p: dict) -> MeasureConfig:
    return MeasureConfig(p["threads"], p["latency_warmup"], p["latency_min_time"],
                         p["throughput_batch"])


def scratch_ratios(p: dict) -> list[float]:
    """The channel ratios at which section G trains the pruned architecture from scratch:
    those of `scratch_ratios` (null: `channel_ratio` alone) that section G also fine-tunes (a
    scratch control needs the fine-tuned model it controls), so trimming `channel_ratios`
    trims them too; none with `scratch: false`."""
    tuned = {float(p["channel_ratio"]), *map(float, _list("channel_ratios", p["channel_ratios"]))}
    given = ([p["channel_ratio"]] if p["scratch_ratios"] is None
             else _list("scratch_ratios", p["scratch_ratios"]))
    for r in given:
        _number("each of scratch_ratios", r, 0, 1, lo_open=True, hi_open=True)
    out = sorted({float(r) for r in given} & tuned)
    if not p["scratch"]:
        return []
    if not out:
        raise ConfigError(f"scratch_ratios must name at least one of section G's channel "
                          f"ratios ({', '.join(f'{r:g}' for r in sorted(tuned))}), got "
                          f"{show(p['scratch_ratios'])}")
    return out


def curve_sparsities(p: dict, model: str) -> list[float]:
    """The final sparsities of section F's size-vs-accuracy grid for `model`: `dc_sparsity` and
    each of `dc_curve_sparsities` (every one a gradually pruned model, k-means at each of
    `dc_bits_curve`), in increasing order."""
    extra = _list(f"dc_curve_sparsities for {model}", per_model(p, "dc_curve_sparsities", model))
    for s in extra:
        _number(f"each of dc_curve_sparsities for {model}", s, 0, 1, lo_open=True, hi_open=True)
    out = sorted({float(per_model(p, "dc_sparsity", model)), *map(float, extra)})
    # files, labels and per-layer tables name a sparsity by its whole percent
    for a, b in zip(out, out[1:]):
        if round(100 * a) == round(100 * b):
            raise ConfigError(f"dc_curve_sparsities for {model}: {a:g} and {b:g} (dc_sparsity "
                              f"included) are both {round(100 * a)}%; give sparsities at least "
                              f"one percent apart")
    return out


def gradual_config(p: dict, model: str) -> GradualConfig:
    return GradualConfig(sparsity=per_model(p, "dc_sparsity", model), scope=p["dc_scope"],
                         ramp=p["dc_ramp"],
                         every=p["dc_every"])


def distilled(cfg: TrainConfig, p: dict) -> TrainConfig:
    """A fine-tuning `cfg` that distils from the dense baseline with the profile's `kd_alpha`
    and `kd_temperature` (the one rule every distilled step and its control follow)."""
    if p["kd_alpha"] is None or p["kd_temperature"] is None:
        raise ConfigError("kd_alpha and kd_temperature must be numbers (kd: false turns "
                          "distillation off)")
    return dataclasses.replace(cfg, kd_alpha=p["kd_alpha"], kd_temperature=p["kd_temperature"])


def qat_config(p: dict) -> TrainConfig:
    """Quantization-aware fine-tuning: the fine-tuning settings at `qat_epochs`, `qat_lr`."""
    return dataclasses.replace(finetune_config(p), epochs=p["qat_epochs"], lr=p["qat_lr"])


def qat_freeze(p: dict) -> QatConfig:
    """When QAT freezes BatchNorm and the ranges: `qat_freeze_bn`, `qat_freeze_ranges`."""
    return QatConfig(p["qat_freeze_bn"], p["qat_freeze_ranges"])


def dc_finetune_config(p: dict, model: str) -> TrainConfig:
    """Gradual pruning trains like the fine-tuning of the other sections, for `dc_epochs` (per
    model: a higher final sparsity needs a longer run to recover). At least one: the sparsity
    is reached during training (with none, `approx compress` wrote an unpruned file)."""
    epochs = per_model(p, "dc_epochs", model)
    if isinstance(epochs, int) and not isinstance(epochs, bool) and epochs < 1:
        raise ConfigError(f"dc_epochs for {model} is {epochs}: gradual pruning reaches its "
                          f"sparsity while it trains, so it needs at least 1")
    return dataclasses.replace(finetune_config(p), epochs=epochs, lr=p["dc_lr"])


def share_config(p: dict, model: str) -> ShareConfig:
    return ShareConfig(per_model(p, "dc_bits_conv", model), per_model(p, "dc_bits_fc", model))


def share_finetune_config(p: dict) -> TrainConfig:
    return dataclasses.replace(finetune_config(p), epochs=p["dc_share_epochs"],
                               lr=p["dc_share_lr"])


def codec_config(p: dict, codec: str) -> CodecConfig:
    effort = p["general_effort"] if codec in GENERAL_CODECS else None
    return CodecConfig(codec, p["dc_index_bits"], effort)


# Parameters that may differ per model: one value, or {model: value, ..., default: value}.
PER_MODEL = ("dc_sparsity", "dc_curve_sparsities", "dc_epochs", "dc_bits_conv", "dc_bits_fc",
             "channel_epochs", "channel_lr", "init", "bn_momentum")
# Per-model keys that every training and fine-tuning config reads: resolved for a variant's
# model before its configs are built (`for_model`), so TrainConfig takes one value
TRAINING_PER_MODEL = ("bn_momentum",)


def for_model(p: dict, model: str) -> dict:
    """The profile as `model`'s trainings see it: `TRAINING_PER_MODEL` resolved for it."""
    return {**p, **{k: per_model(p, k, model) for k in TRAINING_PER_MODEL}}


def _per_model_keys(p: dict, key: str) -> None:
    value = p[key]
    if isinstance(value, dict):
        for k in value:
            if k != "default":
                check_model(k)


def check_init_models(p: dict, chosen: list[str] = ()) -> None:
    """Weights given for a model the profile never runs would be silently unused: refused.
    The profile runs `models` (null: the original study's), and any a notebook `chosen`."""
    studied = list(dict.fromkeys([*(p["models"] or MODELS), *chosen]))
    if isinstance(p["init"], dict):
        for k in p["init"]:
            if k != "default" and k not in studied:
                raise ConfigError(f"init gives weights for {k}, which this profile does not run "
                                  f"(models: {', '.join(studied)}); name it in models, or spell "
                                  f"it as models does")


def per_model(p: dict, key: str, model: str) -> Any:
    """A parameter that is one value for all models or a {model: value} mapping, where
    `default` covers the models it does not name."""
    value = p[key]
    if not isinstance(value, dict):
        return value
    if model in value:
        return value[model]
    if "default" in value:
        return value["default"]
    raise ConfigError(f"{key} has no value for {model}: add `{model}: ...` or `default: ...` "
                      f"(now {show(value)})")


def channel_finetune_config(p: dict, model: str) -> TrainConfig:
    return dataclasses.replace(finetune_config(p), epochs=per_model(p, "channel_epochs", model),
                               lr=per_model(p, "channel_lr", model))
