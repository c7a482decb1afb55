"""Each kind of stage as one small registered class: its configs, cache key, artifact suffix,
whether it trains, its label and how it runs.

A variant's stages are a recipe: a tuple of steps, folded into a chain where each stage's key is
the hash of its step's configs chained to its upstream key (`pipeline.chain`). The runner
(`pipeline.Runner`) only dispatches: it verifies, locks, and saves what `run` returns. A new kind
of stage is one class here, registered with `@register`, the way Torch-Pruning makes a new
criterion one `Importance` class.

`run(ctx, st, path, meta)` gets the runner as `ctx` (its `load`, `artifact`, `splits`,
`calibration`, `teacher`, `store`, `device`, `progress`) and either returns a `Checkpoint` to be saved at
`path` with `meta`, or writes `path` itself (encoded files, ONNX) and returns None.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch

from . import compress
from . import models
from . import nncodec
from . import prune
from . import methods
from . import quantize
from . import quants
from . import runtime
from . import share
from . import store
from . import structured
from . import train
from . import measure
from .config import (ChannelConfig, CodecConfig, DataConfig, GradualConfig, MeasureConfig,
                     ModelConfig, NncConfig, OnnxConfig, PruneConfig, QatConfig, QuantConfig,
                     ScratchConfig, SensitivityConfig, ShareConfig, StaticQuantConfig,
                     TrainConfig, config_hash)

# Bump when a stage's code changes what it produces, so stale cache entries are not reused.
# A step's own `version` (in its key after this one) is bumped when only that step changes.
CACHE_VERSION = 4

REGISTRY: dict[str, type["Step"]] = {}


def register(cls: type["Step"]) -> type["Step"]:
    """Make a step kind known by its `kind` (what the store's folder and the dry run show)."""
    if cls.kind in REGISTRY:
        raise ValueError(f"step kind {cls.kind!r} registered twice")
    REGISTRY[cls.kind] = cls
    return cls


@dataclass(frozen=True)
class Checkpoint:
    """What a model-producing step returns: saved as a checkpoint with the stage's metadata."""
    model: torch.nn.Module
    model_config: ModelConfig
    quant: str = quants.NONE.key
    shapes: dict | None = None


@dataclass(frozen=True)
class Step:
    """One kind of stage. Subclasses are frozen dataclasses whose fields are their configs, in
    the order they are hashed into the key and recorded in the artifact's metadata."""
    kind: ClassVar[str]
    version: ClassVar[int | None] = None  # the step's own code version (None: none yet)
    trains: ClassVar[bool] = False  # runs an optimizer (a GPU helps)
    float_model: ClassVar[bool] = True  # its artifact is a float PyTorch model (counted on)
    json_kind: ClassVar[str | None] = None  # its result is a JSON entry of this kind, no file
    record: ClassVar[bool] = False  # writes a JSON record of its own kind beside its artifact
    encodes: ClassVar[bool] = False  # writes a file format: its record (bytes, seconds) is
    # shown with the metrics of the file
    reads_test: ClassVar[bool] = False  # scores the test split: its key hashes the test
    # part's digest (`DataConfig.test_contents`); no other step reads the test images

    @property
    def suffix(self) -> str:
        return ".pt"

    @property
    def timed(self) -> bool:
        """Whether it measures latency: then it must run alone on its machine."""
        return False

    def configs(self) -> tuple:
        return tuple(getattr(self, f.name) for f in dataclasses.fields(self))

    def key(self, upstream: str | None) -> str:
        own = () if self.version is None else (self.version,)
        up = () if upstream is None else (upstream,)
        hashed = self.hashed() if self.reads_test else tuple(
            dataclasses.replace(c, test_contents=None) if isinstance(c, DataConfig) else c
            for c in self.hashed())
        return config_hash(self.kind, CACHE_VERSION, *own, *hashed, *up)

    def hashed(self) -> tuple:
        """The configs in the order the key hashes them (kept as they were: cached stages
        keep their keys)."""
        return self.configs()

    def label(self, v) -> str:
        raise NotImplementedError

    def distils(self) -> bool:
        """Whether one of its training configs distils from a teacher (its label says so: the
        stage is otherwise named like its undistilled twin)."""
        return any(getattr(c, "kd_alpha", None) is not None for c in self.configs())

    def planned_epochs(self, cfg) -> int:
        """The epochs its training config `cfg` will run, as `--dry-run` prices them."""
        return cfg.epochs

    def train_batch(self) -> int:
        """The batch size it trains at (its first training config that runs an epoch; 0 if it
        does not train, a pruning without fine-tuning too). Recorded with its cost: where a
        GPU waits on kernel launches, images per second follow the batch size (README logbook,
        "The dry run across batch sizes"), so `--dry-run` prices a training entry from rates
        recorded at its own batch size."""
        return next((c.batch_size for c in self.configs()
                     if isinstance(c, TrainConfig) and self.planned_epochs(c) > 0), 0)

    def run(self, ctx, st, path: Path, meta: dict) -> Checkpoint | None:
        raise NotImplementedError


@register
@dataclass(frozen=True)
class Train(Step):
    """Train a freshly initialized model."""
    kind = "train"
    trains = True
    data: DataConfig
    model: ModelConfig
    train: TrainConfig

    def label(self, v) -> str:
        return f"train {v.model} on {v.dataset}"

    def run(self, ctx, st, path, meta):
        model, meta["history"] = train.train(
            models.build(self.model, self.train.seed), ctx.splits(self.data), self.train,
            ctx.device, desc=st.label, progress=ctx.progress)
        return Checkpoint(model, self.model)


@register
@dataclass(frozen=True)
class Given(Step):
    """Weights someone already trained (a torchvision state dict or an approxlib checkpoint),
    checked against the architecture, in place of training a baseline."""
    kind = "given"
    model: ModelConfig
    digest: str  # of its weights (`store.weights_digest`): other weights, another key; a
    path: str  # moved file or the same weights saved again, the same

    def hashed(self):
        return self.model, self.digest

    def label(self, v) -> str:
        return f"read {v.model} from {Path(self.path).name}"

    def run(self, ctx, st, path, meta):
        model = store.load_weights(Path(self.path), self.model)
        if store.weights_digest(model.state_dict()) != self.digest:
            raise store.CheckpointError(f"{self.path} changed after this run was planned; "
                                        f"run it again")
        return Checkpoint(model, self.model)


@register
@dataclass(frozen=True)
class Control(Step):
    """The equal-compute dense control: fine-tuned exactly as its pruned twin, unpruned."""
    kind = "control"
    trains = True
    data: DataConfig
    model: ModelConfig
    finetune: TrainConfig

    def hashed(self):
        return self.finetune, self.data

    def label(self, v) -> str:
        return f"fine-tune {v.model} dense as {v.prune} is (control)"

    def run(self, ctx, st, path, meta):
        model, info = ctx.load(st.upstream, self.model)
        model, meta["history"] = train.train(model, ctx.splits(self.data), self.finetune,
                                             ctx.device, desc=st.label, progress=ctx.progress,
                                             teacher=ctx.teacher(st, self.finetune))
        # the upstream's layer sizes (QAT's twin of a channel-pruned model is not dense)
        return Checkpoint(model, self.model, shapes=info["shapes"])


@register
@dataclass(frozen=True)
class QatFloat(Control):
    """QAT's equal-compute control: the same fine-tuning from the same model (settings, data
    order, epochs), in float32, so that what QAT's INT8 model loses is measured against a float
    model trained exactly as long."""
    kind = "qat-float"

    def label(self, v) -> str:
        return f"fine-tune {v.model} as QAT does, in float32 (control)"


@register
@dataclass(frozen=True)
class Gradual(Step):
    """Gradual magnitude pruning during fine-tuning (Zhu & Gupta's cubic schedule)."""
    kind = "gradual"
    trains = True
    data: DataConfig
    model: ModelConfig
    gradual: GradualConfig
    finetune: TrainConfig

    def hashed(self):
        return self.gradual, self.finetune, self.data

    def label(self, v) -> str:
        return f"prune {v.model} gradually to {v.prune_ratio:.0%}"

    def run(self, ctx, st, path, meta):
        model, _ = ctx.load(st.upstream, self.model)
        model, meta["history"] = prune.gradual_prune(
            model, self.gradual, ctx.splits(self.data), self.finetune, ctx.device, st.label,
            ctx.progress, teacher=ctx.teacher(st, self.finetune))
        return Checkpoint(model, self.model)


@register
@dataclass(frozen=True)
class Channel(Step):
    """Structured pruning (whole channels, Torch-Pruning) + fine-tuning: a smaller dense model."""
    kind = "channel"
    trains = True
    data: DataConfig
    model: ModelConfig
    channel: ChannelConfig
    finetune: TrainConfig

    def hashed(self):
        return self.channel, self.finetune, self.data

    def label(self, v) -> str:
        return f"prune {v.model}{methods.of(v.prune).adverb} {v.prune_ratio:.0%} + fine-tune"

    def run(self, ctx, st, path, meta):
        model, _ = ctx.load(st.upstream, self.model)
        splits = ctx.splits(self.data)
        meta["params_before"] = sum(p.numel() for p in model.parameters())
        structured.channel_prune_(model, self.channel, self.model.in_channels, self.model.name,
                                  seed=self.finetune.seed)
        meta["params_after"] = sum(p.numel() for p in model.parameters())
        model, meta["history"] = train.train(model, splits, self.finetune, ctx.device,
                                             desc=st.label, progress=ctx.progress,
                                             teacher=ctx.teacher(st, self.finetune))
        return Checkpoint(model, self.model, shapes=structured.shapes(model))


@register
@dataclass(frozen=True)
class Scratch(Step):
    """The train-from-scratch control of a channel-pruned model (Liu et al., ICLR 2019): the
    upstream checkpoint's architecture, freshly initialized with the training seed as the
    architecture initializes itself (`structured.fresh_like`) and
    trained with the baseline's settings and data order, for the epochs `scratch` makes of
    `train.epochs` (Scratch-E: baseline + fine-tuning's) or as many more as the budget allows
    (Scratch-B)."""
    kind = "scratch"
    # 1: torchvision's initialization rule for resized layers (structured.fresh_like)
    version = 1
    trains = True
    data: DataConfig
    model: ModelConfig
    train: TrainConfig  # epochs: baseline + fine-tuning's (`scratch` makes them its budget)
    scratch: ScratchConfig

    def label(self, v) -> str:
        return f"train {v.model}'s {v.prune_ratio:.0%}-pruned shape from scratch ({self.scratch.budget})"

    def planned_epochs(self, cfg) -> int:
        """Scratch-B's epochs follow the pruned model's FLOPs, unknown before it exists: priced
        at its cap, an upper bound that 50% channels reach or nearly reach (smoke: 8 of 8
        epochs; quick's MobileNetV2: 23 of 24)."""
        return self.scratch.most_epochs(cfg.epochs)

    def run(self, ctx, st, path, meta):
        _, info = ctx.load(st.upstream, self.model)
        model = structured.fresh_like(self.model, info["shapes"], self.train.seed)
        splits = ctx.splits(self.data)
        shape = (self.model.in_channels, *splits.train_x.shape[-2:])
        ratio = (measure.flops(models.build(self.model), shape) / measure.flops(model, shape))
        cfg = dataclasses.replace(self.train, epochs=self.scratch.epochs(self.train.epochs, ratio))
        meta["epochs"], meta["flops_ratio"] = cfg.epochs, ratio
        model, meta["history"] = train.train(model, splits, cfg, ctx.device, desc=st.label,
                                             progress=ctx.progress)
        return Checkpoint(model, self.model, shapes=info["shapes"])


@register
@dataclass(frozen=True)
class Sensitivity(Step):
    """Per-layer sensitivity of a trained model (a JSON entry, read by the pruning after it)."""
    kind = "sensitivity"
    json_kind = "sensitivity"
    data: DataConfig
    model: ModelConfig
    sensitivity: SensitivityConfig

    @property
    def suffix(self) -> str:
        return ".json"

    def hashed(self):
        return self.sensitivity, self.data

    def label(self, v) -> str:
        return f"sensitivity of {v.model}'s layers"

    def measure(self, ctx, st) -> dict:
        """Validation accuracy with one layer at a time pruned to each ratio."""
        t0 = time.perf_counter()
        model, _ = ctx.load(st.upstream, self.model)
        splits, sc = ctx.splits(self.data), self.sensitivity
        rows = prune.layer_sensitivity(model, sc.ratios, splits.val_x[:sc.images],
                                       splits.val_y[:sc.images], progress=ctx.progress)
        return {"stage": self.kind, "key": st.key, "label": st.label,
                "upstream": st.upstream.key, "images": min(sc.images, len(splits.val_y)),
                "rows": rows, "seconds": time.perf_counter() - t0}

    def run(self, ctx, st, path, meta):
        ctx.sensitivity(st)


@register
@dataclass(frozen=True)
class Prune(Step):
    """One-shot unstructured pruning (a `PruneConfig` method) + fine-tuning (0 epochs: none).
    After a sensitivity stage, each layer gets the ratio its sensitivity allows."""
    kind = "prune"
    trains = True
    data: DataConfig
    model: ModelConfig
    prune: PruneConfig
    finetune: TrainConfig

    def hashed(self):
        # a score's raised `version` (its scores changed) makes its pruned models anew; at 0,
        # as every shipped one is, the key is as it always was
        version = prune.score_version(self.prune.method)
        return (self.prune, self.finetune, self.data) + ((version,) if version else ())

    def label(self, v) -> str:
        what = "" if v.prune == methods.REFERENCE else f" ({v.prune})"
        return (f"prune {v.model} {v.prune_ratio:.0%}{what}"
                + (" + fine-tune" if self.finetune.epochs else ""))

    def run(self, ctx, st, path, meta):
        source, ratios = st.upstream, None
        if isinstance(source.step, Sensitivity):
            ratios = prune.sensitivity_ratios(ctx.sensitivity(source)["rows"], self.prune.ratio)
            meta["layer_ratios"] = ratios
            source = source.upstream
        model, _ = ctx.load(source, self.model)
        model, meta["history"] = prune.prune_and_finetune(
            model, self.prune, ctx.splits(self.data), self.finetune, ctx.device, st.label,
            ctx.progress, layer_ratios=ratios, teacher=ctx.teacher(st, self.finetune))
        return Checkpoint(model, self.model)


@register
@dataclass(frozen=True)
class Share(Step):
    """Weight sharing: k-means codebooks per layer, then codebook fine-tuning."""
    kind = "share"
    trains = True
    data: DataConfig
    model: ModelConfig
    share: ShareConfig
    finetune: TrainConfig

    def hashed(self):
        return self.share, self.finetune, self.data

    def label(self, v) -> str:
        return (f"share {v.model} weights (k-means {self.share.bits_conv}/"
                f"{self.share.bits_fc} bits)")

    def run(self, ctx, st, path, meta):
        model, _ = ctx.load(st.upstream, self.model)
        model, meta["layers"], meta["history"] = share.share_and_finetune(
            model, self.share, ctx.splits(self.data), self.finetune, ctx.device, st.label,
            ctx.progress, teacher=ctx.teacher(st, self.finetune))
        return Checkpoint(model, self.model, quants.KMEANS.key)


@register
@dataclass(frozen=True)
class Static(Step):
    """PyTorch's post-training static INT8 (FX), calibrated on training images."""
    kind = "static"
    # 2: compact lossless layout (quantize.pack_state).
    version = 2
    float_model = False
    data: DataConfig
    model: ModelConfig
    quant: StaticQuantConfig

    def hashed(self):
        return self.quant, self.data

    def label(self, v) -> str:
        return f"quantize {v.model} {quants.STATIC.key} (FX)"

    def run(self, ctx, st, path, meta):
        model, info = ctx.load(st.upstream, self.model)
        model = quantize.quantize_static(model, ctx.calibration(self.data,
                                                                self.quant.calib_images))
        return Checkpoint(model, self.model, quants.STATIC.key, info["shapes"])


@register
@dataclass(frozen=True)
class Qat(Step):
    """Quantization-aware fine-tuning (FX fake quantization, x86), then static INT8: the same
    kind of model as `Static`, with weights trained to survive the rounding."""
    kind = "qat"
    trains = True
    float_model = False
    data: DataConfig
    model: ModelConfig
    finetune: TrainConfig
    freeze: QatConfig = QatConfig()

    def hashed(self):  # unfrozen QAT keeps the keys it had before freezing existed
        return self.configs() if self.freeze.used else self.configs()[:-1]

    def label(self, v) -> str:
        return f"quantization-aware fine-tune {v.model} to {quants.STATIC.key}"

    def run(self, ctx, st, path, meta):
        model, info = ctx.load(st.upstream, self.model)
        splits = ctx.splits(self.data)
        steps = self.finetune.epochs * train.steps_per_epoch(len(splits.train_y), self.finetune)
        prepared, meta["history"] = train.train(
            quantize.prepare_qat(model), splits, self.finetune, ctx.device, desc=st.label,
            progress=ctx.progress, teacher=ctx.teacher(st, self.finetune),
            after_step=quantize.freeze_schedule(steps, self.freeze.freeze_bn,
                                                self.freeze.freeze_ranges))
        return Checkpoint(quantize.convert_qat(prepared), self.model, quants.STATIC.key,
                          info["shapes"])


@register
@dataclass(frozen=True)
class Quantize(Step):
    """PyTorch's dynamic quantization (a `QuantConfig` method)."""
    kind = "quantize"
    float_model = False
    quant: QuantConfig

    def label(self, v) -> str:
        return f"quantize {v.model} {self.quant.method}"

    def run(self, ctx, st, path, meta):
        model, info = ctx.load(st.upstream)
        return Checkpoint(quantize.quantize(model, self.quant), ModelConfig(**info["model"]),
                          self.quant.method)


@register
@dataclass(frozen=True)
class Onnx(Step):
    """Export to ONNX (an INT8 upstream, e.g. QAT's, as the QDQ graph of its own integers:
    `runtime.export_onnx`); with int8-static, ONNX Runtime's own static INT8 (QDQ)."""
    kind = "onnx"
    # 2: 7-bit weights, so u8s8 does not saturate on CPUs without VNNI (runtime.quantize_onnx).
    # 3: float models exported by TorchScript's exporter too (a tenth of dynamo's time).
    version = 3
    float_model = False
    record = True
    data: DataConfig
    model: ModelConfig
    onnx: OnnxConfig

    @property
    def suffix(self) -> str:
        return runtime.ONNX_SUFFIX

    def hashed(self):
        return self.onnx, self.data

    def label(self, v) -> str:
        return f"export {v.label} to ONNX"

    def run(self, ctx, st, path, meta):
        t0 = time.perf_counter()
        if self.onnx.quant == quants.NONE.key:
            model, _ = ctx.load(st.upstream, self.model)
            size = ctx.splits(self.data).test_x.shape[-1]
            runtime.export_onnx(model, path, self.model.in_channels, size)
        else:  # quantize the float export of the same model: the float variant's own stage
            # (issue 19: it was exported a second time, 5-19 s a model; the graph is the same)
            runtime.quantize_onnx(ctx.artifact(self.float_export(st)), path,
                                  ctx.calibration(self.data, self.onnx.calib_images))
        ctx.store.write_json(self.kind, st.key, {**meta, "seconds": time.perf_counter() - t0})

    def float_export(self, st):
        """The stage exporting the same upstream model without quantization."""
        step = dataclasses.replace(self, onnx=dataclasses.replace(self.onnx, quant=quants.NONE.key))
        return dataclasses.replace(st, step=step, key=step.key(st.upstream.key),
                                   label=st.label.replace(f" {quants.STATIC.key}", ""))


@register
@dataclass(frozen=True)
class Encode(Step):
    """Write the upstream checkpoint with a codec (.apx, or gzip/xz/zstd over the .pt); the
    round trip is checked bit-exact in memory before the file is written."""
    kind = "encode"
    float_model = False
    record = True
    encodes = True
    model: ModelConfig
    codec: CodecConfig
    data: DataConfig

    @property
    def suffix(self) -> str:
        return compress.CODECS[self.codec.codec].file_suffix

    def hashed(self):
        return (self.codec,)

    def label(self, v) -> str:
        return f"encode {v.label}"

    # What an .apx header records of its making: the stage, its configs and its source, not the
    # commit or machine (the sidecar JSON has those), so that the file's bytes, and the size the
    # report gives, are the same whichever commit or machine wrote it (a commit hash once moved
    # a file by 8 bytes). Not an image folder's class names either: the size the report
    # gives would grow with their length (the checkpoint it encodes records them).
    header_meta: ClassVar[tuple[str, ...]] = ("stage", "key", "label", "configs", "upstream")

    def run(self, ctx, st, path, meta):
        source = ctx.artifact(st.upstream)
        cc = self.codec
        header = {k: meta[k] for k in self.header_meta if k in meta}
        data, stats, encode_s, decode_s, exact = compress.CODECS[cc.codec].write(
            source, self.model, cc, header)
        if not exact:  # the codec's contract; a failure here is a bug, never a result
            raise RuntimeError(f"{cc.codec} round trip of {source} is not bit-exact")
        with store.atomic_path(path) as tmp:
            tmp.write_bytes(data)
        ctx.store.write_json(self.kind, st.key, {
            **meta, "encode_seconds": encode_s, "decode_seconds": decode_s,
            "source_bytes": source.stat().st_size, "bytes": path.stat().st_size,
            "tensors": stats})


@register
@dataclass(frozen=True)
class Nnc(Step):
    """NNCodec, MPEG's standard codec for neural networks, on the upstream float model (BatchNorm
    folded, as .apx stores it); its bitstream is the artifact, decoded by NNCodec to evaluate."""
    kind = "nncodec"
    # 1: nncodec 2.1.3 (the Makefile's pin) at its defaults (dependent quantization, parameter
    # optimization); bump when either changes, so old bitstreams are not reused.
    version = 1
    float_model = False
    record = True
    encodes = True
    model: ModelConfig
    nnc: NncConfig

    @property
    def suffix(self) -> str:
        return nncodec.SUFFIX

    def label(self, v) -> str:
        return f"encode {v.label}"

    def run(self, ctx, st, path, meta):
        model, _ = ctx.load(st.upstream, self.model)
        result = nncodec.encode(model, path, self.nnc.qp, self.nnc.qp_density, self.model)
        ctx.store.write_json(self.kind, st.key, {
            **meta, "encode_seconds": result["encode_seconds"],
            "decode_seconds": result["decode_seconds"],
            "source_bytes": ctx.artifact(st.upstream).stat().st_size, "bytes": result["bytes"],
            "tensors": []})


@register
@dataclass(frozen=True)
class Evaluate(Step):
    """Measure the upstream artifact: accuracy, size, latency, sparsity (a `metrics` entry).

    `latency=False` leaves latency out: a section that compares latencies times its variants
    again together, in turns (`pipeline.latency_groups`), and that timing replaces this one,
    so taking it here was a second measurement nobody read (smoke: 0.6-0.9 s of an
    evaluation's 1.5 s; quick: about 2 s); a section that compares no latencies (H) times
    nothing (`Spec.timed`). An untimed evaluation need not run alone."""
    kind = "evaluate"
    reads_test = True
    # 2: latency is timed before any other forward pass (see Runner._measure).
    # 3: each validation image's right/wrong (`val_correct`), for picks by a paired bound.
    version = 3
    json_kind = "metrics"
    measure: MeasureConfig
    data: DataConfig
    latency: bool = True

    @property
    def timed(self) -> bool:
        return self.latency

    def hashed(self) -> tuple:
        """A timed evaluation keeps the key it had before `latency` existed."""
        return (self.measure, self.data) + (() if self.latency else ("untimed",))

    def label(self, v) -> str:
        return f"evaluate {v.label}"

    def run(self, ctx, st, path, meta):
        ctx.evaluate(st)
