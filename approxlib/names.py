"""Display names: how models, datasets and codecs are written in the report, its tables and its
figures, and a results row's label. A control kind, a runtime, a pruning method and a
quantization carry their own names (`controls`, `runtimes`, `methods`, `quants`); a name not
listed is shown as it is spelled in the profile (a torchvision model added through the profile
needs no entry here)."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from pathlib import Path

from . import controls
from . import methods
from . import quants
from . import runtimes
from . import stats
from .config import CIFAR_STEM, CONSTANT, COSINE, IMAGENET_STEM, NO_CODEC, ONECYCLE

MODELS = {"resnet18": "ResNet-18", "mobilenetv2": "MobileNetV2"}
DATASETS = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "fashion-mnist": "Fashion-MNIST"}
CODECS = {"sparse": "sparse .apx", "packed": "packed .apx", "huffman": "Huffman .apx",
          "gzip": "gzip", "xz": "xz", "zstd": "zstd", "nncodec": "NNCodec (MPEG NNC)"}
# The short words the report's names and findings use, spelled out once at its top (a
# stranger's review found them used pages before the caption that defined them)
BALANCED = "balanced accuracy"  # the report's name for `stats.balanced_accuracy`
TERMS = {
    "ORT": "ONNX Runtime",
    "QAT": "quantization-aware training (INT8 simulated while fine-tuning)",
    "Scratch-E": "the pruned architecture trained from scratch for the epochs of baseline + "
                 "fine-tuning (Liu et al., ICLR 2019)",
    "Scratch-B": "the same architecture trained from scratch for the FLOPs of baseline + "
                 "fine-tuning, or fewer where its epochs reach their cap (twice Scratch-E's "
                 "by default)",
    "KD": "knowledge distillation from the dense baseline",
    "qp": "NNCodec's quantization parameter (uniform step 2<sup>qp/4</sup>)",
    "one-shot": "pruned once to the ratio, then fine-tuned",
    BALANCED: "the mean over the test classes of the share of each named right (always "
              "naming one class scores 1/k, however imbalanced the classes)",
    "float twin": "a model fine-tuned exactly as its QAT model, in float32: what QAT's INT8 "
                  "is measured against",
    stats.TIMING_NOISE: "a change of latency no larger than the two timings' interquartile "
                        f"ranges over rounds, or than {stats.TIMING_FLOOR:.0%} "
                        f"({stats.FEW_ROUNDS_FLOOR:.0%} where fewer than {stats.MIN_ROUNDS} "
                        f"rounds were timed: in 3 rounds, one architecture timed twice "
                        f"differed by 16%)",
}


# A profile key as a protocol's text names it: a template for its value, and how values read
SCHEDULES = {CONSTANT: "constant lr", ONECYCLE: "one-cycle schedule", COSINE: "cosine schedule"}
SETTINGS = {
    "schedule": ("{}", SCHEDULES), "lr": ("peak lr {}", None),
    "warmup": ("warm-up {:.0%} of the steps", None), "batch_size": ("batch {}", None),
    "weight_decay": ("weight decay {}", None),
    "nesterov": ("Nesterov momentum {}", {True: "on", False: "off"}),
    "label_smoothing": ("label smoothing {}", None), "finetune_lr": ("fine-tuning lr {}", None),
    "finetune_schedule": ("fine-tuning with {}", SCHEDULES),
    "epochs": (lambda n: count(n, "epoch"), None),
    "momentum": ("momentum {}", None), "crop_padding": ("random-crop padding {}", None),
    "flip": ("random horizontal flips {}", {True: "on", False: "off"}),
    "finetune_epochs": (lambda n: count(n, "fine-tuning epoch"), None),
    "finetune_weight_decay": ("fine-tuning weight decay {}", None),
    "bn_momentum": ("BatchNorm momentum {}", None),
    "stem": ("{}", {IMAGENET_STEM: "ImageNet stem (torchvision's first layers, as for "
                                   "224-pixel images)",
                    CIFAR_STEM: "CIFAR stem (the first convolution at stride 1)"}),
}


def setting(key: str, value) -> str:
    """"peak lr 0.05", "Nesterov momentum off": a profile key and its value in words (an
    unknown key as "key value")."""
    template, values = SETTINGS.get(key, (f"{key} {{}}", None))
    value = (values or {}).get(value, value)
    return template(value) if callable(template) else template.format(value)


def joined(items: list[str]) -> str:
    """"A", "A and B", "A, B and C"."""
    return " and ".join(items) if len(items) < 3 else f"{', '.join(items[:-1])} and {items[-1]}"


def count(n, word: str) -> str:
    """"1 epoch", "2 epochs", "0.5 epochs" (a reviewer read "epoch(s)" as unfinished text)."""
    n = n.item() if isinstance(n, np.generic) else n  # NumPy's: a bool of its own from `!=`
    number = f"{n:,}" if isinstance(n, int) else f"{n:g}" if isinstance(n, float) else str(n)
    return f"{number} {word}{'s' * bool(n != 1)}"


def model(name: str) -> str:
    return MODELS.get(name, name)


def dataset(name: str) -> str:
    """A dataset's name; one of a kind with an argument (`imagefolder:PATH`) by its folder."""
    kind, colon, arg = name.partition(":")
    if name in DATASETS or not colon:
        return DATASETS.get(name, name)
    return f"{Path(arg).name or arg} ({kind})"


def method(name: str) -> str:
    return methods.label(name)


def codec(name: str) -> str:
    return CODECS.get(name, name)


def is_control(r) -> bool:
    """Whether a results row is a control (rows from before the column, or without one: no)."""
    c = getattr(r, "control", None)
    return isinstance(c, str) and c != controls.NONE.key


def distilled(r) -> bool:
    """Whether a results row was fine-tuned by distillation (rows from before the column: no)."""
    kd = getattr(r, "kd", False)
    return isinstance(kd, (bool, np.bool_)) and bool(kd)


def variant_label(r) -> str:
    """A results row as a reader names it, e.g. "ResNet-18 pruned 50% + static INT8"."""
    parts = [model(r.model)]
    given = isinstance(getattr(r, "init", ""), str) and getattr(r, "init", "")
    # rows written before the column existed were all pruned by the reference method
    prune = getattr(r, "prune_method", methods.REFERENCE)
    parts.append(("given" if given else "baseline") if r.prune_ratio == 0
                 else methods.of(prune).pruned(r.prune_ratio))
    if is_control(r):
        parts[-1] = controls.label(r.control) + (
            f" of {parts[-1]}" if r.prune_ratio > 0 else "")
    if distilled(r):
        parts.append("+ distillation")
    if r.quant != quants.NONE.key:
        parts.append(f"+ {quants.label(r.quant)}")
    run = getattr(r, "runtime", runtimes.REFERENCE)
    if run != runtimes.REFERENCE:
        parts.append(f"({runtimes.label(run)})")
    codec_ = getattr(r, "codec", NO_CODEC)
    if codec_ != NO_CODEC:
        qp = getattr(r, "qp", None)
        parts.append(f"+ {codec(codec_)}" + ("" if qp is None or pd.isna(qp) else f" qp {int(qp)}"))
    return " ".join(parts)


def terms_used(text: str) -> str:
    """"Terms: ORT = ONNX Runtime; …" for each of `TERMS` that `text` uses, in TERMS' order;
    "" when it uses none."""
    used = [f"{k} = {v}" for k, v in TERMS.items()
            if re.search(rf"(?<!\w){re.escape(k)}(?!\w)", text)]
    return "" if not used else "Terms: " + "; ".join(used) + "."
