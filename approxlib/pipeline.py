"""The study as a graph of cached stages: train → prune + fine-tune → quantize / share → encode
→ evaluate.

`plan` turns a profile into the model variants each section needs (A–E as in the original, F for
Deep Compression);
`chain` turns a variant into its stages, each keyed by the hash of its own config chained to its
upstream key; `run` materializes what is missing and returns one `results.csv` row per variant.
Variants shared by several sections (B's baseline is C's 0%) are trained once.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import hashlib
import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import filelock
import numpy as np
import pandas as pd
import torch
import torchvision
from tqdm.auto import tqdm

from . import analysis
from . import compress
from . import data
from . import measure
from . import methods
from . import models
from . import nncodec
from . import prune
from . import quantize
from . import quants
from . import runtime
from . import runtimes
from . import share
from . import stats
from . import store
from . import train
from .config import (
    ChannelConfig,
    NO_CODEC,
    SHIPPED_CODEC,
    STANDARD_CODEC,
    ConfigError,
    DataConfig,
    ModelConfig,
    NncConfig,
    OnnxConfig,
    PruneConfig,
    QuantConfig,
    ScratchConfig,
    ShareConfig,
    StaticQuantConfig,
    TrainConfig,
    channel_finetune_config,
    codec_config,
    config_hash,
    data_config,
    dc_finetune_config,
    distilled,
    finetune_config,
    for_model,
    from_here,
    gradual_config,
    measure_config,
    per_model,
    profile_label,
    protocol_params,
    qat_config,
    qat_freeze,
    qat_from_control,
    recorded,
    sensitivity_config,
    share_config,
    share_finetune_config,
    train_config,
)
from .sections import SECTIONS, Variant, control_of, parse_sections, plan  # noqa: F401
from .steps import (
    CACHE_VERSION,
    Channel,
    Checkpoint,
    Control,
    Encode,
    Evaluate,
    Given,
    Gradual,
    Nnc,
    Onnx,
    Prune,
    Qat,
    QatFloat,
    Quantize,
    Scratch,
    Sensitivity,
    Share,
    Static,
    Step,
    Train,
)
from .models import fingerprint

RESULT_COLUMNS = [  # the contract of DESIGN.md, in order; extra columns follow
    "section", "model", "dataset", "stem", "prune_method", "prune_ratio", "quant", "codec", "seed",
    "accuracy", "size_bytes", "latency_ms", "params", "zero_params", "sparsity", "artifact",
]
NUM = (int, float)


def _fields(**types):
    """A cached JSON entry's check: each named field present, of one of its types."""
    return lambda obj: all(isinstance(obj.get(k), t) for k, t in types.items())


# What a timed evaluation adds (an untimed one's section times its variants in turns, or,
# like section H, compares no latencies)
TIMING_FIELDS = ("latency_ms", "latency_iqr_ms", "latency_bs64_ms", "throughput_img_s")


def _metrics_ok(m: dict) -> bool:
    return (_fields(accuracy=NUM, val_accuracy=NUM, size_bytes=int, params=int, zero_params=int,
                    sparsity=NUM, threads=int, test_images=int, predictions=list, layers=list,
                    artifact=str, artifact_key=str, git_commit=str, torch_version=str,
                    cpu=str)(m)
            # entries from before `timed` are timed; their batch-64 latency may be missing
            and (_fields(latency_ms=NUM, latency_iqr_ms=NUM, throughput_img_s=NUM)(m)
                 if m.get("timed", True) else m["timed"] is False)
            and 0 <= m["accuracy"] <= 1 and 0 <= m["sparsity"] <= 1
            and len(m["predictions"]) == m["test_images"]
            and all(isinstance(x, int) for x in m["predictions"])
            and _val_correct_ok(m))


def _val_correct_ok(m: dict) -> bool:
    """Per validation image, 1 where the model is right: what a pick on validation needs to
    know how sure it is (`stats.paired_lower_bound`). Entries from before it are recomputed."""
    v = m.get("val_correct")
    return (isinstance(v, list) and len(v) > 0 and all(x in (0, 1) for x in v)
            and isinstance(m.get("val_accuracy"), NUM)
            and abs(sum(v) / len(v) - m["val_accuracy"]) < 1e-6)


# Loads of an artifact that another process keeps making again before `Runner._loaded` gives up
LOAD_TRIES = 3
# a `timing` entry's fields, as `Runner._account` writes them
TIMING_RECORD = ("kind", "model", "seconds", "images", "threads", "batch", "finished", "device")
# The device of a record made before records named one (2026-12-07): every one of those was made
# on a CPU but one lent GPU machine's, whose store is gone
OLD_DEVICE = "cpu"
# Where an entry that trains nothing (an evaluation, encoding, export, timing) runs, whatever the
# profile's `device` (which is for training only)
UNTRAINED_DEVICE = "cpu"


def _count(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and 0 <= x < 2 ** 53


def _timing_ok(t: dict) -> bool:
    """A stage's recorded cost (`Runner._account`): seconds (positive, under 30 years),
    counts. Its training batch size and device are optional: records made before them still
    price."""
    return (_fields(kind=str, model=str, seconds=NUM, finished=NUM)(t)
            and isinstance(t.get("device", ""), str)
            and not isinstance(t["seconds"], bool) and 0 < t["seconds"] < 1e9
            and _count(t.get("images")) and _count(t.get("threads"))
            and _count(t.get("batch", 0)))


# JSON entries that record how another entry was made, not what it is: one found damaged is
# set aside, and its entry, which is whole, is not made again for it; what follows instead (a
# fingerprint is written anew by the evaluation that found it damaged)
RECORDS = {"timing": "its stage's cost unknown until the stage is made again",
           "fingerprints": "the model it names measured again and its record rewritten"}

# What a cached JSON entry must hold to be used; anything else is set aside and recomputed.
JSON_CHECKS = {
    "metrics": _metrics_ok,
    "fingerprints": _fields(metrics=str),
    "sensitivity": _fields(rows=list, key=str, images=int),
    "curve": lambda c: isinstance(c.get("points"), list) and all(
        isinstance(pt, dict) and _val_correct_ok(pt)
        and _fields(bits=int, accuracy=NUM, val_accuracy=NUM, codebook=int, bytes=int)(pt)
        for pt in c["points"]),
    "encode": _fields(bytes=int, source_bytes=int, tensors=list, encode_seconds=NUM,
                      decode_seconds=NUM),
    "onnx": _fields(seconds=NUM),
    # stage accounting: one per computed stage, evaluation and curve (`Runner._account`)
    "timing": _timing_ok,
}
JSON_CHECKS["nncodec"] = JSON_CHECKS["encode"]


def _latency_ok(c: dict) -> bool:
    t, d = c.get("timings"), c.get("digests", {})  # digests: entries since 2026-12-06
    return isinstance(t, dict) and len(t) > 0 and isinstance(d, dict) and _fields(
        cpu=str, git_commit=str, torch_version=str)(c) and all(
        isinstance(x, dict) and _fields(latency_ms=NUM, latency_iqr_ms=NUM, latency_bs64_ms=NUM,
                                        throughput_img_s=NUM, rounds=int)(x)
        and x["latency_ms"] > 0 and x["latency_bs64_ms"] > 0 for x in t.values())


JSON_CHECKS["latency"] = _latency_ok  # a section's variants timed in turns (`Runner.interleaved`)


@dataclass(frozen=True)
class Stage:
    """A step of one variant's recipe, keyed by its configs chained to its upstream key."""
    step: Step
    key: str
    label: str
    upstream: "Stage | None" = None

    @property
    def kind(self) -> str:
        return self.step.kind


def model_config(p: dict, model: str, dataset: str) -> ModelConfig:
    """The architecture for a dataset, checked to classify its images (one line if not)."""
    src = data.source(dataset, p["image_size"])
    mc = ModelConfig(model, src.classes, src.channels, p["stem"])
    models.check_input(mc, src.size)
    return mc


def variant_params(p: dict, v: Variant) -> dict:
    """The profile as this variant sees it: section H's protocols and seeds change it, and its
    model's value of the per-model keys every training reads (`config.for_model`)."""
    if not v.in_profile:
        return for_model(protocol_params(p, v.protocol, v.seed), v.model)
    return for_model(p if v.seed is None else {**p, "seed": v.seed}, v.model)


class Pruning:
    """How the variants of one `prune` method reach their sparsity: the fine-tuning they (and
    their dense controls) get, and their steps. This base is one-shot pruning, for every
    method `prune.score_and_spread` scores and spreads; a method with steps of its own is a subclass
    registered in PRUNINGS under its `methods` entry's key (which names it in the report)."""
    method: methods.Method | None = None  # None: every one-shot method
    curve = False  # its float model gets section F's bits-vs-accuracy curve (`has_curve`)

    def finetune(self, p: dict, model: str) -> TrainConfig:
        return finetune_config(p)

    def steps(self, v: Variant, p: dict, ds, mc: ModelConfig, fc: TrainConfig) -> list[Step]:
        if not v.finetune:
            fc = dataclasses.replace(fc, epochs=0)
        pc = PruneConfig(v.prune_ratio, v.prune)
        first = [Sensitivity(ds, mc, sensitivity_config(p))] if prune.guided(pc.method) else []
        return first + [Prune(ds, mc, pc, fc)]


class GradualPruning(Pruning):
    """Zhu & Gupta's gradual magnitude pruning during fine-tuning (section F)."""
    method = methods.GRADUAL
    curve = True

    def finetune(self, p: dict, model: str) -> TrainConfig:
        return dc_finetune_config(p, model)

    def steps(self, v, p, ds, mc, fc) -> list[Step]:
        gc = gradual_config(p, v.model)
        if gc.sparsity != v.prune_ratio:  # a point of section F's grid
            gc = dataclasses.replace(gc, sparsity=v.prune_ratio)
        return [Gradual(ds, mc, gc, fc)]


class ChannelPruning(Pruning):
    """Torch-Pruning's structured channel pruning by its method's criterion, then fine-tuning
    (section G); one registered for each `methods.channel()` entry."""

    def __init__(self, method: methods.Method):
        self.method = method

    def finetune(self, p: dict, model: str) -> TrainConfig:
        return channel_finetune_config(p, model)

    def channel(self, v: Variant, p: dict, ds, mc: ModelConfig, fc: TrainConfig) -> Step:
        return Channel(ds, mc, ChannelConfig(v.prune_ratio, criterion=self.method.criterion), fc)

    def steps(self, v, p, ds, mc, fc) -> list[Step]:
        return [self.channel(v, p, ds, mc, fc)]


PRUNINGS: dict[str, Pruning] = {p.method.key: p for p in (
    GradualPruning(), *map(ChannelPruning, methods.channel()))}
ONE_SHOT = Pruning()


def pruning(v: Variant) -> Pruning:
    return PRUNINGS.get(v.prune, ONE_SHOT)


def finetune_of(v: Variant, p: dict):
    """How a pruned variant of this kind is fine-tuned (and so its control)."""
    return distilled_if(v, pruning(v).finetune(p, v.model), p)


def distilled_if(v: Variant, cfg, p: dict):
    """`cfg` distilling from the dense baseline when the variant is a distilled one."""
    return distilled(cfg, p) if v.kd else cfg


def prune_steps(v: Variant, p: dict, ds, mc: ModelConfig) -> list[Step]:
    """How a variant reaches its sparsity (its dense control: fine-tuned as it would be; a
    scratch control: the pruned model's shape, trained afresh)."""
    fc = finetune_of(v, p)
    if v.control_kind.budget:
        return [pruning(v).channel(v, p, ds, mc, fc), scratch_step(v, p, ds, mc)]
    if v.is_dense_control or qat_of_control(v, p):
        return [Control(ds, mc, fc)]
    if v.prune_ratio == 0:
        return []
    return pruning(v).steps(v, p, ds, mc, fc)


def qat_of_control(v: Variant, p: dict) -> bool:
    """Whether a dense QAT variant (or its float twin) starts from the dense control fine-tuned
    as its `prune` method's models are (`qat_from: control`), not from the baseline."""
    return v.qat_trained and v.prune_ratio == 0 and qat_from_control(p)


def scratch_step(v: Variant, p: dict, ds, mc: ModelConfig) -> Scratch:
    """Scratch-E / Scratch-B: the baseline's training for baseline + fine-tuning epochs."""
    tc, ft = train_config(p), finetune_of(v, p)
    tc = dataclasses.replace(tc, epochs=tc.epochs + ft.epochs)
    budget = ScratchConfig(v.control_kind.budget, float(p["scratch_b_max"]), ft.epochs,
                           ft.epoch_fraction)
    return Scratch(ds, mc, tc, budget)


class Quantizing:
    """How the variants of one `quant` method (a `quantize.METHODS` name) are stored or run
    after pruning: their steps. This base stores the weights as they are, or quantizes them
    with `quantize.quantize` (dynamic INT8), in PyTorch; a runtime that runs the exported graph
    (`runtimes.Runtime.exported`) gets the export instead, quantized by that runtime. A method
    with steps of its own is a subclass registered in QUANTIZINGS under its `quants` entry's
    key (which names it in the report)."""
    quant: quants.Quant | None = None  # None: every quantization without steps of its own

    def steps(self, v: Variant, p: dict, ds, mc: ModelConfig) -> list[Step]:
        if runtimes.of(v.runtime).exported:
            return [Onnx(ds, mc, OnnxConfig(v.quant, p["calib_images"]))]
        return [Quantize(QuantConfig(v.quant))] if v.quant != quants.NONE.key else []


class SharedWeights(Quantizing):
    """k-means weight sharing with codebook fine-tuning (section F)."""
    quant = quants.KMEANS

    def steps(self, v, p, ds, mc) -> list[Step]:
        return [Share(ds, mc, share_config(p, v.model),
                      distilled_if(v, share_finetune_config(p), p))]


class StaticInt8(Quantizing):
    """Post-training static INT8: PyTorch FX's, or the exporting runtime's own (base)."""
    quant = quants.STATIC

    def steps(self, v, p, ds, mc) -> list[Step]:
        if runtimes.of(v.runtime).exported:
            return super().steps(v, p, ds, mc)
        return [Static(ds, mc, StaticQuantConfig(runtimes.EAGER.key, p["calib_images"]))]


class QatInt8(Quantizing):
    """Quantization-aware fine-tuning to static INT8; an exporting runtime runs the same
    integers, exported as they are (`runtime.export_onnx`), not quantized again."""
    quant = quants.QAT

    def steps(self, v, p, ds, mc) -> list[Step]:
        qat = Qat(ds, mc, distilled_if(v, qat_config(p), p), qat_freeze(p))
        if runtimes.of(v.runtime).exported:
            return [qat, Onnx(ds, mc, OnnxConfig(quants.NONE.key, p["calib_images"]))]
        return [qat]


QUANTIZINGS: dict[str, Quantizing] = {q.quant.key: q for q in (SharedWeights(), StaticInt8(),
                                                                QatInt8())}


def quant_steps(v: Variant, p: dict, ds, mc: ModelConfig) -> list[Step]:
    """How a variant's weights are stored or run: shared, exported, quantized (or as they are).
    A control fine-tuned as QAT is (QAT's float twin) gets that fine-tuning, in float32."""
    if v.control_kind.qat_trained:
        return [QatFloat(ds, mc, distilled_if(v, qat_config(p), p))]
    return QUANTIZINGS.get(v.quant, Quantizing()).steps(v, p, ds, mc)


def first_step(v: Variant, p: dict, ds, mc: ModelConfig) -> Step:
    """Where a variant's weights come from: the profile's `init` file for this model, or
    training from scratch (always for section H's protocols, which compare trainings)."""
    init = per_model(p, "init", mc.name) if v.in_profile else None
    if init is None:
        return Train(ds, mc, train_config(p))
    path = Path(str(init))
    try:
        st = path.stat()
    except OSError:
        raise ConfigError(f"init: weights not found: {path}{from_here(path)}") from None
    return Given(mc, _checked_digest(str(path), st.st_size, st.st_mtime_ns, mc), str(path))


@functools.lru_cache(maxsize=64)
def _checked_digest(path: str, size: int, mtime_ns: int, mc: ModelConfig) -> str:
    """The digest of the file's weights (`store.weights_digest`), once its tensors are known to
    fit `mc` (so a file that fits one of the profile's models but not another fails before
    anything trains, in one line). Not the file's bytes: the same weights saved again hold
    another serialization id, and made every stage again (a stranger's test, 2026-12-07).
    Cached per size and modification time: a replaced file is read again."""
    try:
        model = store.load_weights(Path(path), mc)
    except store.CheckpointError as e:
        raise ConfigError(f"init for {mc.name}: {e}") from None
    return store.weights_digest(model.state_dict())


def _identified(p: dict, v: Variant) -> DataConfig:
    """The variant's data config with its files' digest; a size that does not fit names the key
    that set it (section H's runs take their training subset from h_train_size)."""
    try:
        return data.identify(data_config(p, v.dataset))
    except ConfigError as e:
        if v.in_profile or p["h_train_size"] is None:
            raise
        data.identify(data_config({**p, "train_size": None}, v.dataset))  # another problem: its
        raise ConfigError(f"section H's runs (h_train_size {p['h_train_size']}): {e}"  # own line
                          ) from None


def recipe(v: Variant, p: dict) -> tuple[Step, ...]:
    """A variant's steps, from training to evaluation."""
    p = variant_params(p, v)
    ds, mc = _identified(p, v), model_config(p, v.model, v.dataset)
    return (first_step(v, p, ds, mc), *prune_steps(v, p, ds, mc),
            *quant_steps(v, p, ds, mc), *codec_steps(v, p, ds, mc),
            Evaluate(measure_config(p), ds, latency=times_itself(v, p)))


def timed_in_turns(v: Variant, p: dict) -> bool:
    """Whether `v`'s latencies come from its section's variants timed together
    (`latency_groups`) rather than from its own evaluation."""
    spec = SECTIONS.get(v.section)
    return bool(p["latency_rounds"]) and spec is not None and spec.timed


def times_itself(v: Variant, p: dict) -> bool:
    """Whether `v`'s evaluation times it: a variant of no section (e.g. `approx train`'s), or of
    a section that compares latencies when `latency_rounds` is 0. Nothing is timed for a
    section whose findings are accuracies (`Spec.timed`; section H: 39 timings nobody read,
    about 30 s of smoke's stages, measured)."""
    spec = SECTIONS.get(v.section)
    return spec is None or (spec.timed and not p["latency_rounds"])


def codec_steps(v: Variant, p: dict, ds, mc: ModelConfig) -> list[Step]:
    """How a variant is written: an .apx or general-purpose codec, or NNCodec at its qp."""
    if v.codec == NO_CODEC:
        return []
    if v.codec == STANDARD_CODEC:
        nncodec.check_available()
        return [Nnc(mc, NncConfig(v.qp))]
    return [Encode(mc, codec_config(p, v.codec), ds)]


def chain(v: Variant, p: dict) -> Stage:
    """The evaluate stage of a variant; its `upstream` links lead back to training."""
    st = None
    for step in recipe(v, p):
        label = step.label(v) + (", distilled" if step.distils() else "")
        st = Stage(step, step.key(st.key if st else None), label, st)
    return st


def model_config_of(st: Stage) -> ModelConfig:
    """The architecture a stage's artifacts hold: its training stage's model config."""
    while st.upstream is not None:
        st = st.upstream
    return st.step.model


def stages(v: Variant, p: dict) -> list[Stage]:
    out, st = [], chain(v, p)
    while st is not None:
        out.append(st)
        st = st.upstream
    return out[::-1]


def _entries(st: Stage) -> list[tuple[str, str, Callable | None]]:
    """The store entries a stage leaves: (kind, suffix, the check its JSON must pass)."""
    step = st.step
    if step.json_kind:
        return [(step.json_kind, ".json", JSON_CHECKS[step.json_kind])]
    return [(st.kind, step.suffix, None)] + (
        [(st.kind, ".json", JSON_CHECKS[st.kind])] if step.record else [])


def is_cached(st: Stage, cache: store.Store) -> bool:
    return all(cache.has(kind, st.key, suffix, check) for kind, suffix, check in _entries(st))


def read_by_suffix(path: Path) -> bool:
    """Whether `load_artifact` reads `path` by its suffix (a codec's, NNCodec's, ONNX's) rather
    than as a checkpoint, whatever that is named."""
    suffixes = {c.suffix for c in compress.CODECS.values()} | {nncodec.SUFFIX, runtime.ONNX_SUFFIX}
    return Path(path).suffix in suffixes


def load_artifact(path: Path, threads: int = 1, expect: ModelConfig | None = None
                  ) -> tuple[torch.nn.Module, dict]:
    """Any artifact a stage writes: a .pt checkpoint, an .apx file or a compressed checkpoint.

    `expect`, when known, is the architecture it must hold; it also sets how far a compressed
    checkpoint may inflate (compress.checkpoint_limit: 256 MiB without it)."""
    path = Path(path)
    codec = next((c for c in compress.CODECS.values() if path.suffix == c.suffix), None)
    if codec is not None:
        return codec.load(path, expect)
    if path.suffix == nncodec.SUFFIX:
        if expect is None:
            raise store.CheckpointError(f"{path}: an NNCodec bitstream needs its architecture")
        return nncodec.load(path, expect)
    if path.suffix == runtime.ONNX_SUFFIX:
        if not path.is_file():
            raise store.CheckpointError(f"ONNX model not found: {path}")
        return runtime.OrtModel(path, threads), {"model": None, "meta": {}, "quant": "onnx"}
    return store.load_checkpoint(path, expect)


@functools.lru_cache(maxsize=None)
def dense_bytes(mc: ModelConfig) -> int:
    return compress.dense_state_dict_bytes(mc)


@functools.lru_cache(maxsize=None)
def dense_flops(mc: ModelConfig, size: int) -> int:
    return measure.flops(models.build(mc), (mc.in_channels, size, size))


# ------------------------------------------------------------------------------------ execution

def git_commit() -> str:
    try:
        root = Path(__file__).resolve().parent.parent
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root,
                              capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return head.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def provenance() -> dict:
    return {"git_commit": git_commit(), "torch_version": torch.__version__,
            "torchvision_version": torchvision.__version__, **measure.hardware()}


class Runner:
    """Materializes stages through the cache. `progress=False` silences the bars (tests)."""

    def __init__(self, p: dict, cache: store.Store, data_root: Path | None = None,
                 progress: bool = True, wait: bool = True):
        self.p, self.store, self.data_root, self.progress = p, cache, data_root, progress
        # False: a stage another process is computing raises store.Busy instead of being
        # waited for (a helper goes on to other work and comes back)
        self.wait = wait
        self.computed: list[str] = []  # stage keys computed (not loaded) in this run
        self.metrics: dict[Variant, dict] = {}  # evaluated variants of this run
        self.curves: dict[Variant, list[dict]] = {}  # section F: bits-vs-accuracy points
        self._accounting: list[list] = []  # open `_account` entries, innermost last
        self.on_first_compute: Callable[[str, str], None] | None = None  # `run`'s hook
        self._metas: dict[Path, tuple] = {}  # artifact → (its digest, the meta it was made with)
        cache.remove_stale_temps()  # what killed writers left behind

    def _holding(self, kind: str, key: str) -> contextlib.AbstractContextManager:
        return self.store.holding(kind, key, self.wait)

    @property
    def device(self) -> str:
        return self.p["device"]

    def splits(self, data_cfg) -> data.Splits:
        return data.load(data_cfg, self.data_root)

    def calibration(self, data_cfg, n: int) -> torch.Tensor:
        """The first `n` training images as floats: static INT8 calibration (never test data)."""
        return data.to_float(self.splits(data_cfg).train_x[:n])

    def load(self, st: Stage, expect: ModelConfig | None = None) -> tuple[torch.nn.Module, dict]:
        """The model a stage's checkpoint holds (computed first if missing)."""
        return store.load_checkpoint(self.artifact(st), expect=expect)

    def teacher(self, st: Stage, cfg) -> torch.nn.Module | None:
        """What a distilling step learns from: the dense model its chain starts with (the
        trained or given baseline); None when `cfg` does not distil."""
        if cfg.kd_alpha is None:
            return None
        root = st
        while root.upstream is not None:
            root = root.upstream
        return self.load(root, model_config_of(st))[0]

    def materialize(self, st: Stage) -> None:
        """Whatever a stage produces: an artifact, or its JSON entry (metrics, sensitivity)."""
        if st.step.json_kind:  # its `run` computes and writes the entry (Evaluate, Sensitivity)
            st.step.run(self, st, None, None)
        else:
            self.artifact(st)

    def artifact(self, st: Stage) -> Path:
        """Path of a stage's verified artifact (checkpoint or encoded file), computing it if
        needed. A run sharing the store that is computing it already is waited for (or, with
        `wait=False`, met with store.Busy)."""
        path = self._current(st)
        if path is not None:
            return path
        if st.upstream is not None:  # upstream first: hold no lock while it is computed
            self.artifact(st.upstream)
        with self._holding(st.kind, st.key):
            return self._current(st) or self._compute(st)

    def _current(self, st: Stage) -> Path | None:
        """The stage's verified artifact if it was made from its upstream's weights as they are
        stored now (`store.weights_digest`, recorded when it was made): a model derived from an
        upstream made again since with other bits — other threads, code or machine — is made
        again too, else a report would set the new model beside one derived from the old
        (found by a stranger's test, 2026-12-07). An upstream made again with the same bits
        (a damaged file recomputed) leaves it be. The upstream is made first where missing.
        Entries that record no weights (written before) are trusted unless this run made their
        upstream after them, the rule metrics without a digest follow (`_remade`)."""
        path = self._present(st)
        if path is None or st.upstream is None:
            return path
        made_from, now = self._meta(path, st).get("upstream_weights"), self._upstream_weights(st)
        if made_from is None or now is None:
            return None if self._remade(st) else path
        return path if made_from == now else None

    def _meta(self, path: Path, st: Stage) -> dict:
        """The meta the verified artifact at `path` was made with (`_recorded`), read once per
        version of the file."""
        seen = self.store.digest(path)
        if self._metas.get(path, (None,))[0] != seen:
            self._metas[path] = (seen, _recorded(st, self.store))
        return self._metas[path][1]

    def _present(self, st: Stage) -> Path | None:
        """The stage's verified artifact, if it and its JSON record (encode, onnx) are intact."""
        path = self.store.fetch(st.kind, st.key, st.step.suffix)
        if (path is not None and st.step.record
                and self.store.read_json(st.kind, st.key, JSON_CHECKS[st.kind]) is None):
            self.store.set_aside(path, f"its {st.kind} record is missing or damaged")
            return None
        return path

    def _account_stage(self, st: Stage) -> contextlib.AbstractContextManager:
        """`_account` for a stage: its kind, key, model and training batch size."""
        return self._account(st.kind, st.key, model_config_of(st).name, st.step.train_batch())

    @contextlib.contextmanager
    def _account(self, kind: str, key: str, model: str, batch: int = 0):
        """Record what computing an entry cost (wall seconds, images through a model, the torch
        threads and device it started on, the batch size it trains at or 0) as its `timing`
        entry: the report's time table and --dry-run's estimates read them.
        Exclusive: an entry computed inside another (a damaged upstream remade while loading)
        is counted in its own record only."""
        if self.on_first_compute is not None:
            announce, self.on_first_compute = self.on_first_compute, None
            announce(kind, key)
        t0, n0 = time.perf_counter(), data.images_seen()
        # at the start: a timing in turns sets the threads back to its own before it ends
        threads = torch.get_num_threads()
        device = train.device_type(self.device) if batch else UNTRAINED_DEVICE
        if batch:  # it trains: its bits follow the threads' order of sums
            self._warn_other_threads(kind, key, threads, device)
        inner = [0.0, 0]  # seconds and images of entries accounted inside this one
        self._accounting.append(inner)
        try:
            yield
        finally:
            self._accounting.pop()
        seconds, images = time.perf_counter() - t0, data.images_seen() - n0
        if self._accounting:
            self._accounting[-1][0] += seconds - inner[0]
            self._accounting[-1][1] += images - inner[1]
        record = dict(zip(TIMING_RECORD, (kind, model, seconds - inner[0], images - inner[1],
                                          threads, batch, time.time(), device)))
        try:  # the entry itself is stored: a lost record costs an estimate, not the run
            self.store.write_json("timing", key, record)
        except OSError as e:
            store.LOG.warning("no timing record for %s %s: %s", kind, key, e)

    def _warn_other_threads(self, kind: str, key: str, threads: int, device: str) -> None:
        """A trained entry made again (deleted, damaged, stale) on other torch threads or
        another device than it was made on before comes out with other bits: a notebook on 2
        threads remade a model that `make report`'s one-thread processes had made, and its
        accuracy moved from 71.8% to 69.7% without a word (2026-12-07). Said where its old
        record tells."""
        old = self.store.peek_json("timing", key, JSON_CHECKS["timing"])
        if old is None:
            return
        was = (old["threads"], old.get("device", OLD_DEVICE))
        if was != (threads, device):
            how = [f"--threads {was[0]}"] if was[0] != threads else []
            how += [f"device {was[1]}"] if was[1] != device else []
            store.LOG.warning("%s %s is made again on %d torch threads (%s); it was made on %d "
                              "(%s), and its numbers can differ from that one's (runs agree "
                              "bit for bit on equal threads and device: %s)", kind, key,
                              threads, device, *was,
                              " and ".join(how) + (", or a notebook's threads parameter"
                                                   if was[0] != threads else ""))

    def _compute(self, st: Stage) -> Path:
        if st.step.json_kind:  # accounted where its entry is written (sensitivity, metrics)
            return self._compute_step(st)
        with self._account_stage(st):
            return self._compute_step(st)

    def _compute_step(self, st: Stage) -> Path:
        """Run the stage's step; save the model it returns, publish the file it wrote."""
        path = self.store.path(st.kind, st.key, st.step.suffix)
        t0 = time.perf_counter()
        configs = [c for c in st.step.configs() if dataclasses.is_dataclass(c)]
        meta = {"stage": st.kind, "key": st.key, "label": st.label,
                "configs": recorded(configs),
                **next((data.recorded_classes(c) for c in configs if isinstance(c, DataConfig)),
                       {}),
                "upstream": st.upstream.key if st.upstream else None,
                "upstream_weights": self._upstream_weights(st), **provenance(),
                "device": train.device_type(self.device) if st.step.train_batch()
                else UNTRAINED_DEVICE}  # keys name none: a record
        out = st.step.run(self, st, path, meta)
        if st.step.json_kind:  # its JSON entry is the artifact, written and counted by it
            return path
        if isinstance(out, Checkpoint):
            meta["seconds"] = time.perf_counter() - t0
            store.save_checkpoint(out.model, path, out.model_config, out.quant, meta, out.shapes)
        self.store.publish(st.kind, st.key, st.step.suffix)
        self.computed.append(st.key)
        return path

    def sensitivity(self, st: Stage) -> dict:
        """Section H's per-layer sensitivity of a trained model (cached as JSON): validation
        accuracy with one layer at a time pruned to each ratio. The entry records the weights
        it measured (`upstream_weights`) and, as its own `weights_sha256`, a digest of those
        weights and its rows, what the guided pruning after it is made from: a table of a
        baseline made again with other bits is measured again, and a pruning made from other
        weights or other rows is made again (`_current`)."""
        cached = self._current_sensitivity(st)
        if cached is not None:
            return cached
        with self._holding("sensitivity", st.key):
            cached = self._current_sensitivity(st)
            if cached is not None:
                return cached
            with self._account_stage(st):
                weights = self._upstream_weights(st)
                out = {**st.step.measure(self, st), "upstream_weights": weights}
                out["weights_sha256"] = None if weights is None else hashlib.sha256(
                    json.dumps([weights, out["rows"]], sort_keys=True).encode()).hexdigest()
                self.store.write_json("sensitivity", st.key, {**out, **provenance()})
            self.computed.append(st.key)
            return out

    def _upstream_weights(self, st: Stage) -> str | None:
        """What a stage is made from, as its upstream holds it now (made first if missing):
        recorded as its `upstream_weights` and compared by `_current`."""
        if st.upstream is None:
            return None
        return self._meta(self.artifact(st.upstream), st.upstream).get("weights_sha256")

    def _current_sensitivity(self, st: Stage) -> dict | None:
        """The stored sensitivity table, if it measured the upstream's weights as they are."""
        if self._current(st) is None:
            return None
        return self.store.read_json("sensitivity", st.key, JSON_CHECKS["sensitivity"])

    def evaluate(self, st: Stage) -> dict:
        """Metrics of the artifact upstream of an evaluate stage (cached as JSON).

        An artifact whose decoded weights are bit-identical to an already-evaluated model's
        (xz of a checkpoint, the same weights in two encodings) reuses that model's accuracy and
        latency (where timed): the fingerprint covers every weight bit and the structure.
        """
        cached = self._cached_metrics(st)
        if cached is not None:
            return cached
        self.artifact(st.upstream)
        with self._holding("metrics", st.key):
            cached = self._cached_metrics(st)
            if cached is not None:
                return cached
            with self._account_stage(st):
                return self._evaluate(st)

    def _remade(self, st: Stage) -> bool:
        """Whether this run made the artifact an evaluation measures after it last measured it
        (or at all, if it has not): metrics cached before describe the old file. Counted over
        the whole run, as a helper that met store.Busy comes back to an evaluation later. The
        rule for metrics that name no digest (written before 2026-12-06): it cannot see what
        another process made or measured."""
        last = {k: i for i, k in enumerate(self.computed)}
        return st.upstream.key in last and last.get(st.key, -1) < last[st.upstream.key]

    def _digest(self, st: Stage) -> str | None:
        """The SHA-256 of the stage's verified artifact as it is now (None if absent): what a
        measurement of it records, and checks before it is used again."""
        path = self._present(st)
        return None if path is None else self.store.digest(path)

    def _cached_metrics(self, st: Stage) -> dict | None:
        """Metrics of the artifact's file as it is now: still there, intact, and the bytes they
        measured (by its digest; an artifact made again by any process since is measured
        again unless its bytes are the same). results.csv names the artifact a user would ship,
        so metrics of a damaged or deleted one are measured again."""
        cached = self.store.read_json("metrics", st.key, JSON_CHECKS["metrics"])
        path = None if cached is None else self._current(st.upstream)
        if path is None:
            return None
        measured = cached.get("artifact_sha256")
        if self._remade(st) if measured is None else measured != self.store.digest(path):
            return None
        return {**cached, "artifact": str(path)}  # where it is now: the folder may have moved

    def _loaded(self, st: Stage, threads: int, expect: ModelConfig | None
                ) -> tuple[Path, torch.nn.Module, str, int]:
        """A stage's artifact loaded, with the digest and size of the very bytes loaded: taken
        before loading and checked after, so a file another process made again meanwhile (or
        set aside, or replaced half-way through a read that then failed) is loaded again, and
        a measurement never names a file it did not measure."""
        for _ in range(LOAD_TRIES):
            path = self.artifact(st)  # verified, remade if damaged
            seen = self.store.identity(path)
            if seen is None:  # replaced or set aside since: `artifact` looks again
                continue
            try:
                model = load_artifact(path, threads, expect=expect)[0]
            except (store.CheckpointError, OSError):
                if self.store.identity(path) == seen:
                    raise  # the checked bytes themselves do not load
                continue
            if self.store.identity(path) == seen:
                return path, model, *seen
        raise store.CheckpointError(f"{path} was made again by another process at each of "
                                    f"{LOAD_TRIES} loads; is another run remaking it?")

    def _evaluate(self, st: Stage) -> dict:
        mcfg = st.step.measure
        path, model, digest, size = self._loaded(st.upstream, mcfg.threads, model_config_of(st))
        fp = fingerprint(model)
        same_key = f"{fp}-{config_hash(st.step.version, *st.step.hashed())}" if fp else None
        same = (self.store.read_json("fingerprints", same_key, JSON_CHECKS["fingerprints"],
                                     RECORDS["fingerprints"]) if same_key else None)
        metrics = (self.store.read_json("metrics", same["metrics"], JSON_CHECKS["metrics"])
                   if same is not None else None)
        if metrics is not None and metrics.get("fingerprint") != fp:
            # the twin's entry measures another model now (its artifact made again since with
            # other weights): a model made again bit for bit was given the other's accuracy
            # (a stranger's test, 2026-12-07)
            metrics = None
        if metrics is None:  # no twin, or its metrics are gone or of another model: measure
            same = None
            # a fingerprint means a plain float model: it is its own float source
            float_model = model if fp else self._float_model(st.upstream)
            metrics = self._measure(model, st.step, float_model)
        metrics = {**metrics, "size_bytes": size, "artifact": str(path),
                   "artifact_key": st.upstream.key, "artifact_sha256": digest,
                   "fingerprint": fp,
                   "measured_as": same["metrics"] if same is not None else st.key}
        if st.upstream.step.encodes:
            kind = st.upstream.kind
            metrics["encode"] = self.store.read_json(kind, st.upstream.key, JSON_CHECKS[kind])
        self.store.write_json("metrics", st.key, metrics)
        if same_key and same is None:
            self.store.write_json("fingerprints", same_key, {"metrics": st.key})
        self.computed.append(st.key)
        return metrics

    def _float_model(self, st: Stage) -> torch.nn.Module:
        """The float PyTorch model an artifact was made from (itself when it is one): what
        parameters, sparsity and FLOPs are counted on for quantized and ONNX artifacts."""
        while not st.step.float_model:
            st = st.upstream
        return self.load(st)[0]

    def _measure(self, model, step: Evaluate, float_model: torch.nn.Module) -> dict:
        splits = self.splits(step.data)
        shape = tuple(splits.test_x.shape[1:])
        t0 = time.perf_counter()
        # Timed first, on the freshly loaded model: a static-INT8 (FX) model whose first forward
        # pass is a 2-thread batch of 500 then ran batch 1 on 1 thread 2.2× slower (2.98 vs
        # 1.38 ms, ResNet-18, measured); the first call settles its kernels. A deployment sets
        # its thread count once, so the timing must see that configuration first.
        timing = (measure.latency_ms(model, shape, step.measure) if step.timed
                  else {"threads": step.measure.threads})
        # The test split is only ever reported; the validation accuracy is what selection may use.
        pred = runtime.predict(model, splits.test_x)
        acc = train.share(pred == splits.test_y)
        val_right = runtime.predict(model, splits.val_x) == splits.val_y
        # Counted on the float model: a statically quantized or ONNX model hides its weights in
        # packed parameters or a graph, and holds the same ones.
        counted = float_model
        params, zeros = measure.count_params(counted)
        wz, wt = prune.global_sparsity(counted)
        return {
            "accuracy": acc, "test_images": len(splits.test_y),
            "params": params, "zero_params": zeros, "sparsity": wz / wt, **timing,
            "flops": measure.flops(float_model, shape),
            "predictions": pred.tolist(),  # per-image, for paired tests (McNemar) in the report
            "layers": measure.layer_sparsity(counted).to_dict(orient="records"),
            "val_accuracy": train.share(val_right),
            "val_correct": val_right.int().tolist(),  # paired bounds for picks on validation
            "eval_seconds": time.perf_counter() - t0, "timed": step.timed,
            **provenance(),
        }

    def interleaved(self, g: LatencyGroup) -> dict:
        """Batch-1 and batch-64 timings of a group's artifacts (`timings`, by artifact key) and
        where they were taken (provenance), timed in turns over `latency_rounds` rounds
        (`measure.interleaved_latency`); cached as JSON. An entry is used only if it times every
        artifact of the group as its file is now (the digests it names; an entry without them
        only if none was remade in this run after it was made), as an evaluation's metrics
        are: one made in this run by another section with the same artifacts is used."""
        arts = {st.upstream.key: st.upstream for st in g.evaluations}

        def fresh(e: dict) -> bool:
            if "digests" in e:
                return all((d := self._digest(up)) is not None and e["digests"].get(k) == d
                           for k, up in arts.items())
            last = {k: i for i, k in enumerate(self.computed)}  # last time each was made here
            remade = max((last[k] for k in arts if k in last), default=-1)
            return remade < 0 or last.get(g.key, -1) > remade

        def usable():
            e = self.store.read_json("latency", g.key, JSON_CHECKS["latency"])
            return e if e is not None and set(arts) <= set(e["timings"]) and fresh(e) else None
        if (cached := usable()) is not None:
            return cached
        with self._holding("latency", g.key):
            if (cached := usable()) is not None:
                return cached
            with self._account("latency", g.key, g.model):
                entry = self._interleaved(g)
            self.computed.append(g.key)
            return entry

    def _interleaved(self, g: LatencyGroup) -> dict:
        """Each distinct model timed once: artifacts that decode to the same weights and
        structure (equal fingerprints in their metrics: xz of a checkpoint, a lossless .apx of
        it) share the timing of the first, as their evaluations share accuracy (section F:
        10 of smoke's 28 files)."""
        mcfg = measure_config(self.p)
        for _ in range(LOAD_TRIES):
            picked = self._to_time(g, mcfg.threads)
            if picked is not None:
                break
        else:
            raise store.CheckpointError(
                f"section {g.section}'s artifacts were made again by another process at each "
                f"of {LOAD_TRIES} timings; is another run remaking them?")
        loaded, same, digests = picked
        shape = tuple(self.splits(g.evaluations[0].step.data).test_x.shape[1:])  # as evaluated
        timed = measure.interleaved_latency(loaded, shape, mcfg, int(self.p["latency_rounds"]))
        entry = {"timings": {art: timed[rep] for art, rep in same.items()},
                 "same_as": {art: rep for art, rep in same.items() if art != rep},
                 "digests": digests, **provenance()}
        self.store.write_json("latency", g.key, entry)
        return entry

    def _to_time(self, g: LatencyGroup, threads: int) -> tuple[dict, dict, dict] | None:
        """The models to time (one per fingerprint), which artifact's timing each artifact
        takes, and the digest of each artifact's bytes; None when a file loaded is not the
        one its metrics measured (another process made it again since): its metrics, and so
        its twins, are then measured again by the next call, and a row never pairs the
        accuracy of one file with the latency of another."""
        loaded, same, digests = {}, {}, {}
        first: dict[str, str] = {}  # fingerprint: the artifact timed for it
        for st in g.evaluations:  # each verified (remade if damaged) by its cached metrics
            metrics = self.evaluate(st)
            art, fp = st.upstream.key, metrics.get("fingerprint")
            same[art] = first.setdefault(fp, art) if fp else art
            if same[art] == art and art not in loaded:
                _, model, digests[art], _ = self._loaded(st.upstream, threads,
                                                         model_config_of(st))
                if metrics.get("artifact_sha256") not in (None, digests[art]):
                    return None
                loaded[art] = model.eval()
            elif art not in digests:  # metrics from before 2026-12-06 name none: as it is now
                digests[art] = metrics.get("artifact_sha256") or self._digest(st.upstream)
        return loaded, same, digests

    def bits_curve(self, v: Variant) -> list[dict]:
        """Accuracy against codebook bits for a gradually pruned model: k-means centroids as
        they are (no codebook fine-tuning), validation and test accuracy per bit width."""
        gradual, bits, key = curve_key(v, self.p)
        cached = self.store.read_json("curve", key, JSON_CHECKS["curve"])
        if cached is not None:
            return cached["points"]
        with self._holding("curve", key):
            cached = self.store.read_json("curve", key, JSON_CHECKS["curve"])
            if cached:
                return cached["points"]
            with self._account("curve", key, gradual.step.model.name):
                return self._bits_curve(gradual, bits, key)

    def _bits_curve(self, gradual: Stage, bits: list[int], key: str) -> list[dict]:
        pruned, _ = self.load(gradual)
        splits, points = self.splits(gradual.step.data), []
        p = for_model(self.p, gradual.step.model.name)
        for b in bits:
            model, rows, _ = share.share_and_finetune(
                copy.deepcopy(pruned), ShareConfig(b, b), splits,
                dataclasses.replace(share_finetune_config(p), epochs=0), progress=False)
            blob, _ = compress.encode(model, gradual.step.model,
                                      codec_config(self.p, SHIPPED_CODEC))
            val_right = runtime.predict(model, splits.val_x) == splits.val_y
            test_right = runtime.predict(model, splits.test_x) == splits.test_y
            points.append({"bits": b, "val_accuracy": train.share(val_right),
                           "val_correct": val_right.int().tolist(),
                           "accuracy": train.share(test_right),
                           "codebook": max(r["k"] for r in rows), "bytes": len(blob)})
        self.store.write_json("curve", key, {"points": points, "upstream": gradual.key})
        self.computed.append(key)
        return points


@dataclass(frozen=True)
class LatencyGroup:
    """The variants of a section whose latencies are compared with one another
    (`Spec.timed`; across models too: E compares ResNet-18 with MobileNetV2): their artifacts
    timed together, in turns, cached under `key`. Per section, so that a notebook run
    alone reads the figures the report shows; sections with the same artifacts share the
    entry."""
    section: str
    models: tuple[str, ...]
    key: str
    evaluations: tuple[Stage, ...]  # each variant's evaluate stage, in plan order

    def times(self, v: Variant) -> bool:
        """Whether `v`'s row takes its latencies from this group."""
        return v.section == self.section

    @property
    def model(self) -> str:
        """Its models as the accounting names them, e.g. resnet18+mobilenetv2."""
        return "+".join(self.models)


def latency_groups(p: dict, variants: list[Variant], chains: list[Stage]) -> list[LatencyGroup]:
    """The interleaved timings `run` makes (none when `latency_rounds` is 0); the key covers
    the artifacts, the measurement settings and the rounds."""
    groups: dict[str, list[tuple[Variant, Stage]]] = {}
    for v, st in zip(variants, chains):
        if timed_in_turns(v, p):
            groups.setdefault(v.section, []).append((v, st))
    out = []
    for section, members in groups.items():
        arts = sorted({st.upstream.key for _, st in members})
        # 2: artifacts of one model (equal fingerprints) timed once (`Runner._interleaved`)
        key = config_hash("latency", CACHE_VERSION, 2, measure_config(p),
                          int(p["latency_rounds"]), arts)
        out.append(LatencyGroup(section, tuple(dict.fromkeys(v.model for v, _ in members)), key,
                                tuple(st for _, st in members)))
    return out


def has_curve(v: Variant) -> bool:
    """Section F's bits-vs-accuracy curve hangs off each plain gradually pruned variant (not
    its distilled twin: one curve per model)."""
    return (v.prune_ratio > 0 and pruning(v).curve and v.quant == quants.NONE.key
            and v.codec == NO_CODEC and not v.kd and not v.is_control)


def curve_key(v: Variant, p: dict) -> tuple[Stage, list[int], str]:
    """The gradual-pruning stage a curve starts from, its bit widths and its cache key."""
    gradual = next(s for s in stages(v, p) if isinstance(s.step, Gradual))
    bits = [int(b) for b in p["dc_bits_curve"]]
    # 2: each point's .apx (Huffman) bytes; 3: its right/wrong per validation image
    return gradual, bits, config_hash("curve", CACHE_VERSION, 3, bits, gradual.step.data,
                                      gradual.key)


def weight_bits(v: Variant, p: dict) -> str:
    """results.csv's `weight_bits`: "conv/fc" bits per stored weight (`quantize.Method.bits`;
    a codebook's from the profile), or a codec's qp. ONNX Runtime's INT8 stores 8-bit weights
    as PyTorch's does."""
    if v.qp is not None:
        return f"qp {v.qp}"
    bits = quantize.METHODS[v.quant].bits
    if bits is None:
        return f"{per_model(p, 'dc_bits_conv', v.model)}/{per_model(p, 'dc_bits_fc', v.model)}"
    return bits


def row(v: Variant, p: dict, m: dict) -> dict:
    """One results.csv row: the contract's columns, then provenance and extras."""
    p = variant_params(p, v)
    init = per_model(p, "init", v.model) if v.in_profile else None
    epochs, extra_epochs = trained_epochs(v, p, m, init)
    lat = latencies(m, p)
    return {
        "section": v.section, "model": v.model, "dataset": v.dataset, "stem": p["stem"],
        "prune_method": v.prune_method, "prune_ratio": v.prune_ratio, "quant": v.quant,
        "codec": v.codec, "seed": p["seed"], "accuracy": m["accuracy"],
        "size_bytes": m["size_bytes"], "latency_ms": lat["latency_ms"], "params": m["params"],
        "zero_params": m["zero_params"], "sparsity": m["sparsity"], "artifact": m["artifact"],
        "compression_ratio": dense_bytes(model_config(p, v.model, v.dataset)) / m["size_bytes"],
        "runtime": v.runtime,
        "latency_bs64_ms": lat["latency_bs64_ms"],
        # cached metrics from before this column: the FLOPs of the dense architecture
        "flops": m.get("flops") or dense_flops(model_config(p, v.model, v.dataset),
                                               data.source(v.dataset, p["image_size"]).size),
        "profile": profile_label(p["profile"]),  # one spelling, however the file was named
        "val_accuracy": m["val_accuracy"],
        "latency_iqr_ms": lat["latency_iqr_ms"], "throughput_img_s": lat["throughput_img_s"],
        "threads": m["threads"], "test_images": m["test_images"],
        # rounds of an interleaved timing (`Runner.interleaved`); 0: its evaluation's own;
        # empty where nothing was timed
        "latency_rounds": m.get("rounds", 0 if "latency_ms" in m else None),
        "epochs": epochs, "init": Path(init).name if init else "",
        "finetune_epochs": extra_epochs, "control_lr": control_lr(v, p),
        "control": v.control, "protocol": v.protocol,
        "kd": v.kd,
        "layers_csv": layer_csv_name(v) if shows_layers(v) else "",
        "weight_bits": weight_bits(v, p),
        "qp": v.qp,
        "schedule": p["schedule"], "train_size": p["train_size"], "artifact_key": m["artifact_key"],
        "git_commit": m["git_commit"], "torch_version": m["torch_version"], "cpu": m["cpu"],
    }


# What an interleaved timing gives a variant's metrics, and so its results row (the report's
# comparisons read the same figures): the timings, how many rounds, and where they were taken
# (a Dask run times them on the machine that runs `approx report`)
RETIMED = (*TIMING_FIELDS, "rounds", "cpu", "git_commit", "torch_version")


def latencies(m: dict, p: dict) -> dict:
    """A row's latency columns (`TIMING_FIELDS`): its timing in turns or its evaluation's own;
    empty (None) where nothing was timed (`Spec.timed`). Metrics cached before batch-64 latency
    was kept give the throughput run's median block (throughput = batch / median)."""
    if "latency_ms" not in m:
        return dict.fromkeys(TIMING_FIELDS)
    return {"latency_ms": m["latency_ms"], "latency_iqr_ms": m["latency_iqr_ms"],
            "latency_bs64_ms": m.get("latency_bs64_ms",
                                     p["throughput_batch"] / m["throughput_img_s"] * 1e3),
            "throughput_img_s": m["throughput_img_s"]}


def control_lr(v: Variant, p: dict) -> float | None:
    """The learning rate of a dense control's extra epochs, which tells apart controls of one
    model and length (section F's gradual pruning fine-tunes at `dc_lr`, one-shot pruning at
    `finetune_lr`): the summary named two such controls alike (a review, 2026-12-07)."""
    return finetune_of(v, p).lr if v.is_dense_control else None


def trained_epochs(v: Variant, p: dict, m: dict, init) -> tuple[int, int]:
    """(training epochs, fine-tuning epochs) of a variant as it was made: none for given
    weights; a scratch control's own epochs (its budget read off its FLOPs, as its step does);
    a pruned or control variant's fine-tuning plus any quantization-aware fine-tuning."""
    if v.control_kind.budget:
        step = scratch_step(v, p, None, None)
        mc = model_config(p, v.model, v.dataset)
        ratio = dense_flops(mc, data.source(v.dataset, p["image_size"]).size) / m["flops"]
        return step.scratch.epochs(step.train.epochs, ratio), 0
    fine_tuned = (v.is_dense_control or (v.prune_ratio > 0 and v.finetune)
                  or qat_of_control(v, p))
    extra = (finetune_of(v, p).epochs if fine_tuned else 0) + (
        qat_config(p).epochs if v.qat_trained else 0)
    return (0 if init else p["epochs"]), extra


def run(p: dict, sections: list[str], cache: store.Store, out_dir: Path | None = None,
        data_root: Path | None = None, progress: bool = True,
        models: dict[str, list[str]] | None = None, every_stage_made=None,
        on_first_compute=None) -> tuple[pd.DataFrame, Runner]:
    """Compute (or load) every variant of `sections`; write results.csv + sparsity CSVs.
    `every_stage_made()`, if given, is called once every variant's stages are in the store,
    before the bits curves and the timings in turns (`parallel` stops its helpers there);
    `on_first_compute(kind, key)` before the first entry this process computes."""
    data.refresh()
    if out_dir is not None:  # what killed writers of the report folder left (index.html too)
        store.remove_stale_temps(Path(out_dir))
    runner = Runner(p, cache, data_root, progress)
    runner.on_first_compute = on_first_compute
    metrics = runner.metrics
    variants = plan(p, sections, models)
    chains = [chain(v, p) for v in variants]  # every recipe checked before anything trains
    # every dataset's test labels read first: a missing CIFAR-100 was found only after
    # sections A-C had trained (a stranger's run of `paper`, 2026-12-07)
    labels = (labels_of(p, variants, data_root),
              labels_of(p, variants, data_root, data.val_labels))
    prepare_data(p, variants, cache, data_root)  # bad images stop it here
    bar = tqdm(list(zip(variants, chains)), desc=f"{p['profile']}: variants",
               disable=not progress)
    for v, st in bar:
        bar.set_postfix_str(f"{v.section}: {v.label}")
        metrics[v] = runner.evaluate(st)
    if every_stage_made is not None:
        every_stage_made()
    for v in variants:  # section F's bits-vs-accuracy curve, one per gradually pruned model
        if has_curve(v):
            bar.set_postfix_str(f"{v.section}: bits curve of {v.label}")
            runner.curves[v] = runner.bits_curve(v)
    for g in latency_groups(p, variants, chains):  # latencies compared: timed in turns
        bar.set_postfix_str(f"{g.section}: its variants timed in turns")
        entry = runner.interleaved(g)
        for v, st in zip(variants, chains):
            if g.times(v):
                t = {**entry["timings"][st.upstream.key],
                     **{k: entry[k] for k in ("cpu", "git_commit", "torch_version")}}
                m = metrics[v]
                if entry.get("digests", {}).get(st.upstream.key) != m.get("artifact_sha256"):
                    m = runner.evaluate(st)  # made again since the loop above: measured
                    # again while its section was timed (`Runner._to_time`)
                metrics[v] = {**m, **{f: t[f] for f in RETIMED}}
    df = _integers(label_columns(pd.DataFrame([row(v, p, metrics[v]) for v in variants]),
                                 [metrics[v] for v in variants], *labels))
    if out_dir is not None:
        write_tables(df, metrics, Path(out_dir), sections)
        if runner.curves:
            # the store keeps each point's validation answers; the CSV gives the figures
            curve = analysis.curve_frame(runner.curves).drop(columns="val_correct")
            store.write_text(Path(out_dir) / "compression_bits.csv", curve.to_csv(index=False))
        points = analysis.trade_off(df, metrics, runner.curves)
        if len(points):
            store.write_text(Path(out_dir) / "compression_points.csv",
                             points.to_csv(index=False))
    return df, runner


def data_configs(p: dict, variants: list[Variant]) -> list[DataConfig]:
    return [data_config(variant_params(p, v), v.dataset) for v in variants]


def prepare_data(p: dict, variants: list[Variant], cache: store.Store, data_root) -> None:
    """Each dataset's images read (downloaded, decoded) as its stages will read them, before
    any stage runs or a helper or cluster worker starts, unless every stage is in the store
    already (a whole run from its cache reads no pixels): a bad image stops a run before any
    work, and two processes never download one file at once."""
    if all(_present(st, cache) for v in variants for st in stages(v, p)):  # to the first gap
        return
    for dataset, image_size in dict.fromkeys((c.dataset, c.image_size)
                                             for c in data_configs(p, variants)):
        data.source(dataset, image_size).prepare(data_root)


def _present(st: Stage, cache: store.Store) -> bool:
    """Whether the stage's entries are in the store, here or at its URL (not verified: the run
    verifies what it reads)."""
    return all(cache.exists(kind, st.key, suffix) for kind, suffix, _ in _entries(st))


def label_columns(df: pd.DataFrame, metrics: list[dict], test_labels: list[np.ndarray],
                  val_labels: list[np.ndarray]) -> pd.DataFrame:
    """results.csv's columns that need each row's labels (`labels_of`) or per-image answers
    (`metrics`, in the rows' order): `val_lo`, `chance`, `val_chance`, `balanced_accuracy`,
    `balanced_chance`."""
    df = df.copy()
    df["val_lo"] = analysis.validation_bounds(
        df.assign(val_correct=[m["val_correct"] for m in metrics]))
    df["chance"] = [stats.chance_level(y) for y in test_labels]
    df["val_chance"] = [stats.chance_level(y) for y in val_labels]
    df["balanced_accuracy"] = [stats.balanced_accuracy(y, m["predictions"])
                               for m, y in zip(metrics, test_labels)]
    df["balanced_chance"] = [stats.balanced_chance(y) for y in test_labels]
    return df


def labels_of(p: dict, variants: list[Variant], data_root,
              labels=data.test_labels) -> list[np.ndarray]:
    """Per variant, the labels of its test split (or what `labels` gives, e.g.
    `data.val_labels`), read once per dataset: what results.csv's `chance`, `val_chance` and
    `balanced_accuracy` are counted on (the report warns of models at chance)."""
    cfgs, read = data_configs(p, variants), {}
    for cfg in cfgs:
        if cfg not in read:
            read[cfg] = np.asarray(labels(cfg, data_root))
    return [read[cfg] for cfg in cfgs]


def shows_layers(v: Variant) -> bool:
    """Whether the report's `sparsity/` folder has a per-layer table of `v`: the variants
    their section asks for, PyTorch models only (an encoded file or an ONNX export holds the
    same weights)."""
    which = SECTIONS[v.section].layer_csvs
    return ((which == "all" or (which == "pruned" and v.prune_ratio > 0))
            and v.codec == NO_CODEC and not v.is_control and v.runtime == runtimes.REFERENCE)


def write_tables(df: pd.DataFrame, metrics: dict[Variant, dict], out_dir: Path,
                 sections: list[str]) -> None:
    """results.csv with this run's rows for `sections`, and the per-layer tables of
    `sparsity/` its rows name (`layers_csv`); a table the replaced rows named and no row names
    any more (a ratio an earlier run showed and this one left out) is removed. Under
    results.csv's lock: a run writing other sections of the folder at the same time keeps its
    rows and its fresh tables."""
    folder = out_dir / "sparsity"
    with _results_lock(out_dir):
        for v, m in metrics.items():
            if shows_layers(v):
                store.write_text(folder / layer_csv_name(v),
                                 pd.DataFrame(m["layers"]).to_csv(index=False))
        for name in write_results(df, out_dir, sections):
            (folder / name).unlink(missing_ok=True)


def layer_csv_name(v: Variant) -> str:
    """e.g. resnet18_fashion-mnist_p70_none.csv (one-shot global magnitude, as the original
    named them), resnet18_fashion-mnist_p50_channels_kd_int8-qat.csv; a further seed's
    variant ends in _seedN."""
    suffix = methods.of(v.prune).suffix
    method = ("" if v.prune_ratio == 0 else f"_{v.prune}" if suffix is None else suffix)
    return (f"{v.model}_{data.file_label(v.dataset)}_p{round(v.prune_ratio * 100):02d}{method}"
            f"{'_kd' if v.kd else ''}_{v.quant}{'' if v.seed is None else f'_seed{v.seed}'}.csv")


def _integers(df: pd.DataFrame) -> pd.DataFrame:
    """Columns of integers with empty cells (a codec without `qp`, a row never timed) kept as
    integers: read back beside NaN they turn into floats, and "3" written again as "3.0"
    would change every row a notebook's reuse digest covers (`executed.inputs_digest`)."""
    return df.astype({c: "Int64" for c in ("qp", "latency_rounds") if c in df})


def _results_lock(out_dir: Path) -> filelock.FileLock:
    """Two runs writing one report folder each keep the other's rows (re-entrant)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    return filelock.FileLock(out_dir / ".results.csv.lock", is_singleton=True)


def write_results(df: pd.DataFrame, out_dir: Path, sections: list[str]) -> set[str]:
    """Replace the rows of `sections` in out_dir/results.csv, keep the others (atomic).
    Returns the per-layer tables (`layers_csv`) the replaced rows named and no row names now."""
    path = Path(out_dir) / "results.csv"
    replaced = pd.DataFrame()
    with _results_lock(path.parent):
        if path.is_file():
            old = pd.read_csv(path)
            mine = old["section"].isin(sections)
            replaced, old = old[mine], old[~mine]
            df = pd.concat([old, df], ignore_index=True)
        df = _integers(df)
        extra = [c for c in df.columns if c not in RESULT_COLUMNS]
        df = df[RESULT_COLUMNS + extra].sort_values("section", kind="stable")
        store.write_text(path, df.to_csv(index=False))
    return _named(replaced) - _named(df)


def _named(df: pd.DataFrame) -> set[str]:
    """The per-layer tables rows name (none where a version before `layers_csv` wrote them)."""
    return {n for n in df.get("layers_csv", ()) if isinstance(n, str) and n}


def read_results(path: Path | str, need: tuple[str, ...] = ()) -> pd.DataFrame:
    """A results.csv a user names (the scripts in benchmarks/), or ConfigError in one line:
    missing, a folder, not a CSV, or without the columns `need` (a file an older version
    wrote, or another CSV of the report's folder such as stages.csv)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path} {store.missing(path)}: run `approx report`, or name a "
                          f"report's results.csv")
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path} is not a results.csv: {' '.join(str(e).split())}") from None
    absent = [c for c in ("section", "model", *need) if c not in df]
    if absent:
        raise ConfigError(f"{path} has no {', '.join(absent)} column: not a results.csv, or "
                          f"one an older version wrote; run `approx report` again")
    return df


def verify_store(cache: store.Store) -> list[dict]:
    """Every local entry of a store, and why a run would not trust it (None: intact). Nothing
    is moved; a run sets each untrusted entry aside and recomputes it, and re-measures the
    metrics of an artifact it recomputes."""
    out = []
    for kind, f in cache.entries():
        why = cache.verify(f)
        if why is None and f.suffix == ".json":
            obj = store.read_json_entry(f, JSON_CHECKS.get(kind))
            why = obj if isinstance(obj, str) else None
        out.append({"kind": kind, "key": f.name.split(".")[0], "path": f, "problem": why})
    for digest in sorted(cache.root.glob(f"*/*{store.DIGEST}")):  # its file deleted
        if not digest.with_name(digest.name[:-len(store.DIGEST)]).exists():
            out.append({"kind": digest.parent.name, "key": digest.name.split(".")[0],
                        "path": digest.with_name(digest.name[:-len(store.DIGEST)]),
                        "problem": "missing (its digest is left): a run makes it again"})
    _stale_lineage(cache, out)
    bad = {e["key"] for e in out if e["problem"]}
    for e in out:  # metrics and timings of a damaged artifact are measured again with it
        if e["kind"] in ("metrics", "latency") and not e["problem"]:
            m = store.read_json_entry(e["path"])
            keys = ({m.get("artifact_key")} | set(m.get("timings") or ())
                    if isinstance(m, dict) else set())
            if keys & bad:
                e["problem"] = f"its artifact {min(keys & bad)} is made again: re-measured"
    return out


def _stale_lineage(cache: store.Store, entries: list[dict]) -> None:
    """Marks each intact artifact made from other weights than its upstream holds now (that
    upstream made again with other bits since), and every entry derived from one so marked,
    however far down: a run makes them all again (`Runner._current`, `missing_keys`). One
    whose upstream is missing or damaged is made again only if that comes out different."""
    metas = _lineage_metas(entries)
    stale: dict[str, str] = {}
    while True:  # to a fixed point: a derived entry's own upstream may be stale
        found = {key: why for key, (meta, _) in metas.items()
                 if key not in stale and (why := _stale_because(meta, metas, stale))}
        if not found:
            break
        stale.update(found)
    for key, why in stale.items():
        metas[key][1]["problem"] = why


def _lineage_metas(entries: list[dict]) -> dict[str, tuple[dict, dict]]:
    """key -> (the meta an intact entry was made with, its entry): a checkpoint's, an encoded
    file's or ONNX graph's JSON record, or a JSON entry that records weights (sensitivity)."""
    metas = {}
    for e in entries:
        if e["problem"]:
            continue
        if e["path"].suffix == ".pt":
            metas[e["key"]] = (store.checkpoint_meta(e["path"]), e)
        elif e["path"].suffix != ".json":
            meta = store.read_json_entry(e["path"].with_name(f"{e['key']}.json"))
            metas[e["key"]] = (meta if isinstance(meta, dict) else {}, e)
    for e in entries:  # after the files: a file's record shares its key
        if not e["problem"] and e["path"].suffix == ".json" and e["key"] not in metas:
            meta = store.read_json_entry(e["path"])
            if isinstance(meta, dict) and "weights_sha256" in meta:
                metas[e["key"]] = (meta, e)
    return metas


def _stale_because(meta: dict, metas: dict, stale: dict) -> str | None:
    """Why an entry made from `meta["upstream"]` is made again, or None."""
    up, made_from = meta.get("upstream"), meta.get("upstream_weights")
    if up in stale:
        return f"made from {up}, which is made again: made again"
    if _other_weights(made_from, metas.get(up, ({}, None))[0].get("weights_sha256")):
        return f"made from other weights than {up} holds now: made again"
    return None


def _other_weights(made_from: str | None, now: str | None) -> bool:
    """Whether an entry made from `made_from` no longer derives from its upstream, which holds
    `now`: both recorded and unequal (entries of before 2026-12-07 record none)."""
    return made_from is not None and now is not None and made_from != now


def distinct_stages(p: dict, sections: list[str]):
    """Every distinct stage the sections need, in execution order, with the first variant that
    needs it (a stage several variants share is listed once): what a dry run lists and the
    accounting prices."""
    seen = set()
    for v in plan(p, sections):
        for st in stages(v, p):
            if st.key not in seen:
                seen.add(st.key)
                yield v, st


def dry_run(p: dict, sections: list[str], cache: store.Store) -> list[dict]:
    """Every distinct stage the sections need, in execution order, with whether a run finds it
    cached (`missing_keys`: a deleted model was listed alone, and more was made, 2026-12-07)."""
    staged = [st for _, st in distinct_stages(p, sections)]
    missing = missing_keys(staged, cache)
    return [{"stage": st.kind, "key": st.key, "label": st.label, "cached": st.key not in missing}
            for st in staged]


def missing_keys(staged: list[Stage], cache: store.Store) -> set[str]:
    """The keys of `staged` (each upstream before what derives from it) a run will compute:
    what is not stored; the metrics of an artifact it makes (they name the file's digest); a
    stored model made from other weights than its upstream holds now, and all derived from it
    (`Runner._current`); metrics of another file than the one stored now. One derived from a
    missing model is made again only if that comes out with other bits, which no one can know
    before: not counted, unless it records no weights (written before 2026-12-07: a run makes
    it again after its upstream, `Runner._remade`)."""
    remade, changed = set(), set()
    for st in staged:
        up = st.upstream.key if st.upstream is not None else None
        stored = is_cached(st, cache)
        if st.step.json_kind == "metrics":  # of another file than the one there now
            again = up in remade or (stored and _measured_other(st, cache))
        else:
            again = stored and up is not None and (
                up in changed or _made_from_other(st, cache)
                or up in remade and _recorded(st, cache).get("upstream_weights") is None)
            if again:
                changed.add(st.key)
        if not stored or again:
            remade.add(st.key)
    return remade


def _made_from_other(st: Stage, cache: store.Store) -> bool:
    """Whether a stored derived entry records other upstream weights than its upstream's file
    here holds (False where either records none)."""
    return _other_weights(_recorded(st, cache).get("upstream_weights"),
                          _recorded(st.upstream, cache).get("weights_sha256"))


def _measured_other(st: Stage, cache: store.Store) -> bool:
    """Whether stored metrics name another file digest than their artifact's file here has."""
    metrics = store.read_json_entry(cache.path(st.step.json_kind, st.key, ".json"))
    measured = metrics.get("artifact_sha256") if isinstance(metrics, dict) else None
    path = cache.path(st.upstream.kind, st.upstream.key, st.upstream.step.suffix)
    return measured is not None and path.is_file() and measured != cache.digest(path)


def _recorded(st: Stage, cache: store.Store) -> dict:
    """The meta a stored entry was made with, from its file here (its JSON record, or its
    checkpoint's, tensors mapped); {} where there is none to read."""
    if st.step.record or st.step.json_kind:  # an encoded file's record, or the entry itself
        meta = store.read_json_entry(cache.path(st.step.json_kind or st.kind, st.key, ".json"))
        return meta if isinstance(meta, dict) else {}
    path = cache.path(st.kind, st.key, st.step.suffix)
    return store.checkpoint_meta(path) if path.suffix == ".pt" and path.is_file() else {}
