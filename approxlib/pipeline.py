"""The study as a graph of cached stages: train → prune + fine-tune → quantize / share → encode
→ evaluate.

`plan` turns a profile into the model variants each section needs (A–E as in the original, F for
Deep Compression);
`chain` turns a variant into its stages, each keyed by the hash of its own config chained to its
upstream key; `run` materializes what is missing and returns one `results.csv` row per variant.
Variants shared by several sections (B's baseline is C's 0%) are trained once.
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import filelock
import pandas as pd
import torch
import torchvision
from tqdm.auto import tqdm

from . import compress as Z
from . import data as D
from . import measure as ME
from . import models as M
from . import prune as P
from . import quantize as Q
from . import runtime as RT
from . import share as SH
from . import store as S
from . import structured as ST
from . import train as T
from .config import (SECTIONS, ChannelConfig, ConfigError, ModelConfig, OnnxConfig, PruneConfig,
                     QuantConfig, ShareConfig, StaticQuantConfig, channel_finetune_config,
                     check_model, codec_config, config_hash, data_config, dc_finetune_config,
                     finetune_config, gradual_config, measure_config,
                     protocol_params, sensitivity_config, share_config, share_finetune_config,
                     train_config)

# Bump when a stage's code changes what it produces, so stale cache entries are not reused.
CACHE_VERSION = 4
# Bump when only the evaluation changes: every variant is re-measured, nothing is retrained.
# 2: latency is timed before any other forward pass (see Runner._measure).
EVAL_VERSION = 2
# Bump when only the static INT8 checkpoint's layout changes (calibration is cheap to redo).
# 2: compact lossless layout (quantize.pack_state).
STATIC_VERSION = 2
# Bump when only the ONNX export or ORT quantization changes.
# 2: 7-bit weights, so u8s8 does not saturate on CPUs without VNNI (runtime.quantize_onnx).
ONNX_VERSION = 2

RESULT_COLUMNS = [  # the contract of DESIGN.md, in order; extra columns follow
    "section", "model", "dataset", "stem", "prune_method", "prune_ratio", "quant", "codec", "seed",
    "accuracy", "size_bytes", "latency_ms", "params", "zero_params", "sparsity", "artifact",
]
SECTION_TITLES = {
    "A": "MobileNetV2: baseline vs pruned",
    "B": "ResNet-18: baseline, pruned, pruned + INT8",
    "C": "ResNet-18 pruning sweep and per-layer sparsity",
    "D": "ResNet-18 on the 100-class dataset: baseline vs pruned",
    "E": "ResNet-18 vs MobileNetV2",
    "F": "Real compression: Deep Compression's pipeline and the .apx format",
    "G": "Real CPU speed: static INT8, channel pruning, ONNX Runtime",
    "H": "Does pruning itself help? Controls, seeds, baselines and sensitivity",
}
# Stages that train (a GPU helps): the rest load, transform, export or measure a model.
TRAINING_STAGES = ("train", "prune", "gradual", "control", "channel", "share")
# Where each encode stage's artifact lives (general-purpose codecs compress the .pt checkpoint).
CODEC_SUFFIX = {"sparse": ".apx", "packed": ".apx", "huffman": ".apx", "gzip": ".pt.gz",
                "xz": ".pt.xz", "zstd": ".pt.zst"}

NUM = (int, float)


def _fields(**types):
    """A cached JSON entry's check: each named field present, of one of its types."""
    return lambda obj: all(isinstance(obj.get(k), t) for k, t in types.items())


def _metrics_ok(m: dict) -> bool:
    return (_fields(accuracy=NUM, val_accuracy=NUM, size_bytes=int, params=int, zero_params=int,
                    sparsity=NUM, latency_ms=NUM, latency_iqr_ms=NUM, throughput_img_s=NUM,
                    threads=int, test_images=int, predictions=list, layers=list, artifact=str,
                    artifact_key=str, git_commit=str, torch_version=str, cpu=str)(m)
            and 0 <= m["accuracy"] <= 1 and 0 <= m["sparsity"] <= 1
            and len(m["predictions"]) == m["test_images"]
            and all(isinstance(x, int) for x in m["predictions"]))


# What a cached JSON entry must hold to be used; anything else is set aside and recomputed.
JSON_CHECKS = {
    "metrics": _metrics_ok,
    "fingerprints": _fields(metrics=str),
    "sensitivity": _fields(rows=list, key=str, images=int),
    "curve": lambda c: (isinstance(c.get("points"), list) and all(
        _fields(bits=int, accuracy=NUM, val_accuracy=NUM, codebook=int)(pt)
        for pt in c["points"] if isinstance(pt, dict)) and all(isinstance(pt, dict)
                                                             for pt in c["points"])),
    "encode": _fields(bytes=int, source_bytes=int, tensors=list, encode_seconds=NUM,
                      decode_seconds=NUM),
    "onnx": _fields(seconds=NUM),
}
# Stages whose artifact comes with a JSON record that later stages read.
RECORDED = ("encode", "onnx")


@dataclass(frozen=True)
class Variant:
    section: str
    model: str
    dataset: str
    prune_ratio: float = 0.0
    quant: str = "none"
    prune: str = "l1-unstructured"  # how a prune_ratio > 0 is reached: one-shot, gradual, channel
    codec: str = "none"
    runtime: str = "pytorch"  # pytorch (eager) | onnxruntime
    # equal-compute: the dense model fine-tuned exactly as variants pruned by `prune` are
    control: str = "none"
    seed: int | None = None  # None: the profile's seed
    protocol: str = "profile"  # profile | a name in h_protocols (section H)
    finetune: bool = True  # False: pruned only (section H's curve without fine-tuning)

    @property
    def prune_method(self) -> str:
        return self.prune if self.prune_ratio > 0 else "none"

    @property
    def is_control(self) -> bool:
        return self.control != "none"

    @property
    def label(self) -> str:
        parts = [self.model, self.dataset]
        if self.prune_ratio > 0:
            parts.append(f"pruned {self.prune_ratio:.0%}"
                         + {"gradual-l1": " gradually", "channel-l1": " channels"}.get(self.prune, ""))
        if self.quant != "none":
            parts.append(self.quant)
        if self.codec != "none":
            parts.append(self.codec)
        if self.runtime != "pytorch":
            parts.append(self.runtime)
        if self.is_control:
            parts.append(f"dense control of {self.prune}")
        if not self.finetune:
            parts.append("not fine-tuned")
        if self.protocol != "profile":
            parts.append(f"{self.protocol} protocol")
        if self.seed is not None:
            parts.append(f"seed {self.seed}")
        return " ".join(parts) if len(parts) > 2 else " ".join(parts + ["baseline"])


@dataclass(frozen=True)
class Stage:
    kind: str  # train | prune | quantize | evaluate
    key: str
    label: str
    configs: tuple
    upstream: "Stage | None" = None


def parse_sections(text: str | list | None) -> list[str]:
    if text is None or text == "all":
        return list(SECTIONS)
    items = text if isinstance(text, list) else str(text).split(",")
    out = []
    for s in items:
        s = str(s).strip().upper()
        if s not in SECTIONS:
            raise ConfigError(f"unknown section {s!r}; valid: {', '.join(SECTIONS)}")
        if s not in out:
            out.append(s)
    return out


SECTION_MODELS = {"A": ["mobilenetv2"], "B": ["resnet18"], "C": ["resnet18"], "D": ["resnet18"],
                  "E": ["resnet18", "mobilenetv2"], "F": ["resnet18", "mobilenetv2"],
                  "G": ["resnet18", "mobilenetv2"], "H": ["resnet18", "mobilenetv2"]}


def control_of(v: Variant) -> Variant:
    """The equal-compute dense control of a pruned + fine-tuned variant."""
    return Variant(v.section, v.model, v.dataset, prune=v.prune, control="equal-compute",
                   seed=v.seed, protocol=v.protocol)


def control_variants(p: dict, section: str, model: str, dataset: str) -> list[Variant]:
    """Section H for one model: per protocol and seed, the baseline, the pruned + fine-tuned model
    and its equal-compute dense control."""
    out = []
    for protocol in p["h_protocols"]:
        for seed in p["h_seeds"]:
            pruned = Variant(section, model, dataset, float(p["ratio"]), seed=int(seed),
                             protocol=protocol)
            out += [Variant(section, model, dataset, seed=int(seed), protocol=protocol), pruned,
                    control_of(pruned)]
    return out


def curve_variants(p: dict, section: str, model: str, dataset: str) -> list[Variant]:
    """Section H's sparsity curve: each method at each sparsity, with and without fine-tuning,
    under the `tuned` protocol (else the first one), first seed."""
    protocol = "tuned" if "tuned" in p["h_protocols"] else next(iter(p["h_protocols"]))
    seed = int(p["h_seeds"][0])
    return [Variant(section, model, dataset, float(s), prune=method, seed=seed,
                    protocol=protocol, finetune=ft)
            for method in p["h_curve_methods"] for s in p["h_curve_sparsities"]
            for ft in (False, True)]


def speed_variants(p: dict, model: str, dataset: str) -> list[Variant]:
    """Section G for one model: dense and channel-pruned, each in PyTorch eager and ONNX Runtime,
    float32 and static INT8."""
    out = []
    for base in (Variant("G", model, dataset),
                 Variant("G", model, dataset, float(p["channel_ratio"]), prune="channel-l1")):
        for quant in ("none", "int8-static"):
            for runtime in ("pytorch", "onnxruntime"):
                out.append(dataclasses.replace(base, quant=quant, runtime=runtime))
    return out


def compression_variants(p: dict, model: str, dataset: str) -> list[Variant]:
    """Section F, Deep Compression's table for one model: dense → pruned (.pt, then what a user
    would try first on it: gzip / xz / zstd) → sparse-encoded → + weight sharing → + Huffman."""
    s = float(p["dc_sparsity"][model])
    pruned = Variant("F", model, dataset, s, prune="gradual-l1")
    shared = dataclasses.replace(pruned, quant="kmeans")
    return [Variant("F", model, dataset), pruned,
            *(dataclasses.replace(pruned, codec=c) for c in ("gzip", "xz", "zstd", "sparse")),
            dataclasses.replace(shared, codec="packed"), dataclasses.replace(shared, codec="huffman")]


def plan(p: dict, sections: list[str], models: dict[str, list[str]] | None = None
         ) -> list[Variant]:
    """The variants each section shows (the original study's sections A–E).

    `models` replaces a section's model list (a notebook's `model` parameter), e.g. {"A": ["resnet18"]}.
    """
    r, ds = float(p["ratio"]), p["dataset"]
    ms = {**SECTION_MODELS, **(models or {})}
    for names in ms.values():
        for m in names:
            check_model(m)
    per_section = {
        "A": [Variant("A", m, ds, x) for m in ms["A"] for x in (0.0, r)],
        "B": [Variant("B", m, ds, x, q) for m in ms["B"]
              for x, q in ((0.0, "none"), (r, "none"), (r, "int8-dynamic"))],
        "C": [Variant("C", m, ds, x) for m in ms["C"]
              for x in sorted({0.0, *map(float, p["ratios"])})],
        "D": [Variant("D", m, p["dataset_d"], x) for m in ms["D"] for x in (0.0, r)],
        "E": [Variant("E", m, ds, x) for m in ms["E"] for x in (0.0, r)],
        "F": [v for m in ms["F"] for v in compression_variants(p, m, ds)],
        "G": [v for m in ms["G"] for v in speed_variants(p, m, ds)],
        "H": [v for m in ms["H"] for v in control_variants(p, "H", m, ds)]
             + [v for m in p["h_curve_models"] if m in ms["H"]
                for v in curve_variants(p, "H", m, ds)],
    }
    if p["controls"]:  # A–G: each pruned + fine-tuned model's control beside it (F and G:
        # the float model in PyTorch, before weight sharing, encoding or export)
        for s in "ABCDEFG":
            per_section[s] += [control_of(v) for v in per_section[s]
                               if v.prune_ratio > 0 and v.quant == "none" and v.codec == "none"
                               and v.runtime == "pytorch"]
    # A–E over several seeds: the profile's seed keeps seed=None (what the findings compare);
    # every further seed repeats each variant, its control included.
    extra = [int(x) for x in (p["seeds"] or []) if int(x) != int(p["seed"])]
    for s in "ABCDE":
        per_section[s] += [dataclasses.replace(v, seed=x) for x in extra
                           for v in per_section[s]]
    # A ratio of 0 in A/B/D/E would repeat the baseline: drop the duplicates, keep order.
    return [v for s in sections for v in dict.fromkeys(per_section[s])]


def model_config(p: dict, model: str, dataset: str) -> ModelConfig:
    return ModelConfig(model, D.NUM_CLASSES[dataset], D.IN_CHANNELS[dataset], p["stem"])


def variant_params(p: dict, v: Variant) -> dict:
    """The profile as this variant sees it (section H's protocols and seeds change it)."""
    if v.protocol != "profile":
        return protocol_params(p, v.protocol, v.seed)
    return p if v.seed is None else {**p, "seed": v.seed}


def finetune_of(v: Variant, p: dict):
    """How a pruned variant of this kind is fine-tuned (and so its control)."""
    if v.prune == "gradual-l1":
        return dc_finetune_config(p)
    if v.prune == "channel-l1":
        return channel_finetune_config(p, v.model)
    return finetune_config(p)


def chain(v: Variant, p: dict) -> Stage:
    """The evaluate stage of a variant; its `upstream` links lead back to training."""
    p = variant_params(p, v)
    data = data_config(p, v.dataset)
    mc = model_config(p, v.model, v.dataset)
    tc = train_config(p)
    st = Stage("train", config_hash("train", CACHE_VERSION, data, mc, tc),
               f"train {v.model} on {v.dataset}", (data, mc, tc))
    if v.is_control:
        fc = finetune_of(v, p)
        st = Stage("control", config_hash("control", CACHE_VERSION, fc, data, st.key),
                   f"fine-tune {v.model} dense as {v.prune} is (control)", (data, mc, fc), st)
    elif v.prune_ratio > 0 and v.prune == "gradual-l1":
        gc, fc = gradual_config(p, v.model), dc_finetune_config(p)
        if gc.sparsity != v.prune_ratio:
            gc = dataclasses.replace(gc, sparsity=v.prune_ratio)
        st = Stage("gradual", config_hash("gradual", CACHE_VERSION, gc, fc, data, st.key),
                   f"prune {v.model} gradually to {v.prune_ratio:.0%}", (data, mc, gc, fc), st)
    elif v.prune_ratio > 0 and v.prune == "channel-l1":
        cc, fc = ChannelConfig(v.prune_ratio), channel_finetune_config(p, v.model)
        st = Stage("channel", config_hash("channel", CACHE_VERSION, cc, fc, data, st.key),
                   f"prune {v.model} channels {v.prune_ratio:.0%} + fine-tune",
                   (data, mc, cc, fc), st)
    elif v.prune_ratio > 0:
        pc, fc = PruneConfig(v.prune_ratio, v.prune), finetune_config(p)
        if not v.finetune:
            fc = dataclasses.replace(fc, epochs=0)
        if v.prune == "l1-sensitivity":
            sc = sensitivity_config(p)
            st = Stage("sensitivity", config_hash("sensitivity", CACHE_VERSION, sc, data, st.key),
                       f"sensitivity of {v.model}'s layers", (data, mc, sc), st)
        what = "" if v.prune == "l1-unstructured" else f" ({v.prune})"
        st = Stage("prune", config_hash("prune", CACHE_VERSION, pc, fc, data, st.key),
                   f"prune {v.model} {v.prune_ratio:.0%}{what}"
                   + (" + fine-tune" if fc.epochs else ""), (data, mc, pc, fc), st)
    if v.quant == "kmeans":
        sc, fc = share_config(p, v.model), share_finetune_config(p)
        st = Stage("share", config_hash("share", CACHE_VERSION, sc, fc, data, st.key),
                   f"share {v.model} weights (k-means {sc.bits_conv}/{sc.bits_fc} bits)",
                   (data, mc, sc, fc), st)
    elif v.runtime == "onnxruntime":
        oc = OnnxConfig(v.quant, p["calib_images"])
        st = Stage("onnx", config_hash("onnx", CACHE_VERSION, ONNX_VERSION, oc, data, st.key),
                   f"export {v.label} to ONNX", (data, mc, oc), st)
    elif v.quant == "int8-static":
        qc = StaticQuantConfig("pytorch", p["calib_images"])
        st = Stage("static", config_hash("static", CACHE_VERSION, STATIC_VERSION, qc, data,
                                           st.key),
                   f"quantize {v.model} int8-static (FX)", (data, mc, qc), st)
    elif v.quant != "none":
        qc = QuantConfig(v.quant)
        st = Stage("quantize", config_hash("quantize", CACHE_VERSION, qc, st.key),
                   f"quantize {v.model} {v.quant}", (qc,), st)
    if v.codec != "none":
        cc = codec_config(p, v.codec)
        st = Stage("encode", config_hash("encode", CACHE_VERSION, cc, st.key),
                   f"encode {v.label}", (mc, cc, data), st)
    mcfg = measure_config(p)
    return Stage("evaluate", config_hash("evaluate", CACHE_VERSION, EVAL_VERSION, mcfg, data,
                                         st.key),
                 f"evaluate {v.label}", (mcfg, data), st)


def model_config_of(st: Stage) -> ModelConfig:
    """The architecture a stage's artifacts hold: its training stage's model config."""
    while st.kind != "train":
        st = st.upstream
    return st.configs[1]


def stages(v: Variant, p: dict) -> list[Stage]:
    out, st = [], chain(v, p)
    while st is not None:
        out.append(st)
        st = st.upstream
    return out[::-1]


def suffix(st: Stage) -> str:
    if st.kind == "onnx":
        return ".onnx"
    if st.kind == "sensitivity":
        return ".json"
    return CODEC_SUFFIX[st.configs[1].codec] if st.kind == "encode" else ".pt"


def is_cached(st: Stage, store: S.Store) -> bool:
    if st.kind in ("evaluate", "sensitivity"):
        kind = "metrics" if st.kind == "evaluate" else st.kind
        return store.has(kind, st.key, ".json", JSON_CHECKS[kind])
    return store.has(st.kind, st.key, suffix(st)) and (
        st.kind not in RECORDED or store.has(st.kind, st.key, ".json", JSON_CHECKS[st.kind]))


def load_artifact(path: Path, threads: int = 1, expect: ModelConfig | None = None
                  ) -> tuple[torch.nn.Module, dict]:
    """Any artifact a stage writes: a .pt checkpoint, an .apx file or a compressed checkpoint.

    `expect`, when known, is the architecture it must hold; it also sets how far a compressed
    checkpoint may inflate (compress.checkpoint_limit: 256 MiB without it)."""
    path = Path(path)
    if path.suffix == ".apx":
        return Z.load(path, expect)
    if path.suffix == ".onnx":
        if not path.is_file():
            raise S.CheckpointError(f"ONNX model not found: {path}")
        return RT.OrtModel(path, threads), {"model": None, "meta": {}, "quant": "onnx"}
    codec = {".gz": "gzip", ".xz": "xz", ".zst": "zstd"}.get(path.suffix)
    if codec is not None:
        if not path.is_file():
            raise S.CheckpointError(f"checkpoint not found: {path}")
        limit = Z.checkpoint_limit(expect)
        if path.stat().st_size > limit:  # compressed, it can only be smaller than the limit
            raise S.CheckpointError(f"{path}: larger than any checkpoint of this architecture")
        data = Z.general_decompress(path.read_bytes(), codec, limit)
        return S.load_checkpoint(path, expect, data=data)
    return S.load_checkpoint(path, expect)


def fingerprint(model: torch.nn.Module) -> str | None:
    """Hash of a float model's structure and exact weights (equal fingerprints, equal
    predictions and latency); None for models holding anything else (quantized packed params)."""
    if not isinstance(model, torch.nn.Module):
        return None
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        if not isinstance(t, torch.Tensor) or t.is_quantized:
            return None
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:24]


@functools.lru_cache(maxsize=None)
def dense_bytes(mc: ModelConfig) -> int:
    return Z.dense_state_dict_bytes(mc)


@functools.lru_cache(maxsize=None)
def dense_flops(mc: ModelConfig, dataset: str) -> int:
    return ME.flops(M.build(mc), (mc.in_channels, D.IMAGE_SIZE[dataset], D.IMAGE_SIZE[dataset]))


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
            "torchvision_version": torchvision.__version__, **ME.hardware()}


class Runner:
    """Materializes stages through the cache. `progress=False` silences the bars (tests)."""

    def __init__(self, p: dict, store: S.Store, data_root: Path | None = None,
                 progress: bool = True):
        self.p, self.store, self.data_root, self.progress = p, store, data_root, progress
        self.computed: list[str] = []  # stage keys computed (not loaded) in this run
        self.metrics: dict[Variant, dict] = {}  # evaluated variants of this run
        self.curves: dict[Variant, list[dict]] = {}  # section F: bits-vs-accuracy points
        store.remove_stale_temps()  # what killed writers left behind

    def _splits(self, data_cfg) -> D.Splits:
        return D.load(data_cfg, self.data_root)

    def artifact(self, st: Stage) -> Path:
        """Path of a stage's verified artifact (checkpoint or encoded file), computing it if
        needed. A run sharing the store that is computing it already is waited for."""
        path = self._present(st)
        if path is not None:
            return path
        if st.upstream is not None:  # upstream first: hold no lock while it is computed
            self.artifact(st.upstream)
        with self.store.lock(st.kind, st.key):
            return self._present(st) or self._compute(st)

    def _present(self, st: Stage) -> Path | None:
        """The stage's verified artifact, if it and its JSON record (encode, onnx) are intact."""
        path = self.store.fetch(st.kind, st.key, suffix(st))
        if (path is not None and st.kind in RECORDED
                and self.store.read_json(st.kind, st.key, JSON_CHECKS[st.kind]) is None):
            self.store.set_aside(path, f"its {st.kind} record is missing or damaged")
            return None
        return path

    def _compute(self, st: Stage) -> Path:
        path = self.store.path(st.kind, st.key, suffix(st))
        t0 = time.perf_counter()
        meta = {"stage": st.kind, "key": st.key, "label": st.label,
                "configs": [{"type": type(c).__name__, **dataclasses.asdict(c)}
                            for c in st.configs if dataclasses.is_dataclass(c)],
                "upstream": st.upstream.key if st.upstream else None, **provenance()}
        if st.kind == "encode":
            self._encode(st, path, meta)
            self.store.publish(st.kind, st.key, suffix(st))
            self.computed.append(st.key)
            return path
        if st.kind == "sensitivity":
            self.sensitivity(st)
            return path
        if st.kind == "onnx":
            self._onnx(st, path)
            self.store.publish(st.kind, st.key, suffix(st))
            self.store.write_json("onnx", st.key, {**meta, "seconds": time.perf_counter() - t0})
            self.computed.append(st.key)
            return path
        shapes = None
        if st.kind == "train":
            data_cfg, mc, tc = st.configs
            model, hist = T.train(M.build(mc, tc.seed), self._splits(data_cfg), tc, self.p["device"],
                                  desc=st.label, progress=self.progress)
            quant = "none"
            meta["history"] = hist
        elif st.kind == "prune":
            data_cfg, mc, pc, fc = st.configs
            source, ratios = st.upstream, None
            if source.kind == "sensitivity":  # per-layer ratios from the sensitivity analysis
                ratios = P.sensitivity_ratios(self.sensitivity(source)["rows"], pc.ratio)
                meta["layer_ratios"] = ratios
                source = source.upstream
            model, info = S.load_checkpoint(self.artifact(source), expect=mc)
            model, meta["history"] = P.prune_and_finetune(
                model, pc, self._splits(data_cfg), fc, self.p["device"], st.label, self.progress,
                layer_ratios=ratios)
            quant = "none"
        elif st.kind == "gradual":
            data_cfg, mc, pc, fc = st.configs
            model, info = S.load_checkpoint(self.artifact(st.upstream), expect=mc)
            model, meta["history"] = P.gradual_prune(model, pc, self._splits(data_cfg), fc,
                                                     self.p["device"], st.label, self.progress)
            quant = "none"
        elif st.kind == "control":
            data_cfg, mc, fc = st.configs
            model, info = S.load_checkpoint(self.artifact(st.upstream), expect=mc)
            model, meta["history"] = T.train(model, self._splits(data_cfg), fc, self.p["device"],
                                             desc=st.label, progress=self.progress)
            quant = "none"
        elif st.kind == "channel":
            data_cfg, mc, cc, fc = st.configs
            model, info = S.load_checkpoint(self.artifact(st.upstream), expect=mc)
            splits = self._splits(data_cfg)
            meta["params_before"] = sum(p.numel() for p in model.parameters())
            ST.channel_prune_(model, cc, mc.in_channels)
            meta["params_after"] = sum(p.numel() for p in model.parameters())
            model, meta["history"] = T.train(model, splits, fc, self.p["device"], desc=st.label,
                                             progress=self.progress)
            quant, shapes = "none", ST.shapes(model)
        elif st.kind == "static":
            data_cfg, mc, qc = st.configs
            model, info = S.load_checkpoint(self.artifact(st.upstream), expect=mc)
            model = Q.quantize_static(model, self._calibration(data_cfg, qc.calib_images))
            quant, shapes = "int8-static", info["shapes"]
        elif st.kind == "share":
            data_cfg, mc, sc, fc = st.configs
            model, info = S.load_checkpoint(self.artifact(st.upstream), expect=mc)
            model, meta["layers"], meta["history"] = SH.share_and_finetune(
                model, sc, self._splits(data_cfg), fc, self.p["device"], st.label, self.progress)
            quant = "kmeans"
        elif st.kind == "quantize":
            (qc,) = st.configs
            model, info = S.load_checkpoint(self.artifact(st.upstream))
            model = Q.quantize(model, qc)
            mc, quant = ModelConfig(**info["model"]), qc.method
        else:
            raise ValueError(f"not an artifact stage: {st.kind}")
        meta["seconds"] = time.perf_counter() - t0
        S.save_checkpoint(model, path, mc, quant, meta, shapes)
        self.store.publish(st.kind, st.key, suffix(st))
        self.computed.append(st.key)
        return path

    def sensitivity(self, st: Stage) -> dict:
        """Section H's per-layer sensitivity of a trained model (cached as JSON): validation
        accuracy with one layer at a time pruned to each ratio."""
        cached = self.store.read_json("sensitivity", st.key, JSON_CHECKS["sensitivity"])
        if cached is not None:
            return cached
        with self.store.lock("sensitivity", st.key):
            return (self.store.read_json("sensitivity", st.key, JSON_CHECKS["sensitivity"])
                    or self._sensitivity(st))

    def _sensitivity(self, st: Stage) -> dict:
        t0 = time.perf_counter()
        data_cfg, mc, sc = st.configs
        model, _ = S.load_checkpoint(self.artifact(st.upstream), expect=mc)
        splits = self._splits(data_cfg)
        rows = P.layer_sensitivity(model, sc.ratios, splits.val_x[:sc.images],
                                   splits.val_y[:sc.images], progress=self.progress)
        out = {"stage": "sensitivity", "key": st.key, "label": st.label,
               "upstream": st.upstream.key, "images": min(sc.images, len(splits.val_y)),
               "rows": rows, "seconds": time.perf_counter() - t0, **provenance()}
        self.store.write_json("sensitivity", st.key, out)
        self.computed.append(st.key)
        return out

    def _calibration(self, data_cfg, n: int) -> torch.Tensor:
        """The first `n` training images as floats: static INT8 calibration (never test data)."""
        return D.to_float(self._splits(data_cfg).train_x[:n])

    def _onnx(self, st: Stage, path: Path) -> None:
        """Export the upstream float model to ONNX; with int8-static, quantize it in ONNX Runtime."""
        import tempfile
        data_cfg, mc, oc = st.configs
        model, _ = S.load_checkpoint(self.artifact(st.upstream), expect=mc)
        size = self._splits(data_cfg).test_x.shape[-1]
        if oc.quant == "none":
            RT.export_onnx(model, path, mc.in_channels, size)
            return
        with tempfile.TemporaryDirectory() as tmp:
            fp32 = Path(tmp) / "fp32.onnx"
            RT.export_onnx(model, fp32, mc.in_channels, size)
            RT.quantize_onnx(fp32, path, self._calibration(data_cfg, oc.calib_images))

    def _encode(self, st: Stage, path: Path, meta: dict) -> None:
        """Write the encoded artifact; its sidecar JSON keeps timings and per-tensor stats."""
        mc, cc, _ = st.configs
        source = self.artifact(st.upstream)
        # Encode, decode and compare in memory; only a verified file is written (atomically).
        if cc.codec in Z.APX_CODECS:
            model, _ = S.load_checkpoint(source, expect=mc)
            t0 = time.perf_counter()
            data, stats = Z.encode(model, mc, cc, meta)
            t1 = time.perf_counter()
            decoded, _ = Z.decode(data)
            exact = fingerprint(decoded) == fingerprint(model)
        else:
            raw = source.read_bytes()
            t0 = time.perf_counter()
            data, stats = Z.general_compress(raw, cc.codec), []
            t1 = time.perf_counter()
            exact = Z.general_decompress(data, cc.codec, limit=len(raw)) == raw
        t2 = time.perf_counter()
        if not exact:  # the codec's contract; a failure here is a bug, never a result
            raise RuntimeError(f"{cc.codec} round trip of {source} is not bit-exact")
        with S.atomic_path(path) as tmp:
            tmp.write_bytes(data)
        self.store.write_json("encode", st.key, {
            **meta, "encode_seconds": t1 - t0, "decode_seconds": t2 - t1,
            "source_bytes": source.stat().st_size, "bytes": path.stat().st_size,
            "tensors": stats})

    def evaluate(self, st: Stage) -> dict:
        """Metrics of the artifact upstream of an evaluate stage (cached as JSON).

        An artifact whose decoded weights are bit-identical to an already-evaluated model's
        (xz of a checkpoint, the same weights in two encodings) reuses that model's accuracy and
        latency: the fingerprint covers every weight bit and the structure.
        """
        cached = self._cached_metrics(st)
        if cached is not None:
            return cached
        done = len(self.computed)
        self.artifact(st.upstream)
        remade = st.upstream.key in self.computed[done:]  # old metrics describe the old file
        with self.store.lock("metrics", st.key):
            return (None if remade else self._cached_metrics(st)) or self._evaluate(st)

    def _cached_metrics(self, st: Stage) -> dict | None:
        """Metrics whose artifact is still there and intact: results.csv names the artifact a
        user would ship, so metrics of a damaged or deleted one are measured again."""
        cached = self.store.read_json("metrics", st.key, JSON_CHECKS["metrics"])
        if cached is None or self._present(st.upstream) is None:
            return None
        return cached

    def _evaluate(self, st: Stage) -> dict:
        mcfg, data_cfg = st.configs
        path = self.artifact(st.upstream)
        model, _ = load_artifact(path, mcfg.threads, expect=model_config_of(st))
        fp = fingerprint(model)
        same_key = f"{fp}-{config_hash(EVAL_VERSION, mcfg, data_cfg)}" if fp else None
        same = (self.store.read_json("fingerprints", same_key, JSON_CHECKS["fingerprints"])
                if same_key else None)
        metrics = (self.store.read_json("metrics", same["metrics"], JSON_CHECKS["metrics"])
                   if same is not None else None)
        if metrics is None:  # no twin, or its metrics are gone: measure this one
            same = None
            # a fingerprint means a plain float model: it is its own float source
            float_model = model if fp else self._float_model(st.upstream)
            metrics = self._measure(model, mcfg, data_cfg, float_model)
        metrics = {**metrics, "size_bytes": path.stat().st_size, "artifact": str(path),
                   "artifact_key": st.upstream.key, "fingerprint": fp,
                   "measured_as": same["metrics"] if same is not None else st.key}
        if st.upstream.kind == "encode":
            metrics["encode"] = self.store.read_json("encode", st.upstream.key,
                                                     JSON_CHECKS["encode"])
        self.store.write_json("metrics", st.key, metrics)
        if same_key and same is None:
            self.store.write_json("fingerprints", same_key, {"metrics": st.key})
        self.computed.append(st.key)
        return metrics

    def _float_model(self, st: Stage) -> torch.nn.Module:
        """The float PyTorch model an artifact was made from (itself when it is one): what
        parameters, sparsity and FLOPs are counted on for quantized and ONNX artifacts."""
        while st.kind in ("onnx", "static", "quantize", "encode"):
            st = st.upstream
        model, _ = S.load_checkpoint(self.artifact(st))
        return model

    def _measure(self, model, mcfg, data_cfg, float_model: torch.nn.Module) -> dict:
        splits = self._splits(data_cfg)
        shape = tuple(splits.test_x.shape[1:])
        t0 = time.perf_counter()
        # Timed first, on the freshly loaded model: a static-INT8 (FX) model whose first forward
        # pass is a 2-thread batch of 500 then ran batch 1 on 1 thread 2.2× slower (2.98 vs
        # 1.38 ms, ResNet-18, measured); the first call settles its kernels. A deployment sets
        # its thread count once, so the timing must see that configuration first.
        timing = ME.latency_ms(model, shape, mcfg)
        # The test split is only ever reported; the validation accuracy is what selection may use.
        pred = RT.predict(model, splits.test_x)
        acc = (pred == splits.test_y).float().mean().item()
        val_acc = (RT.predict(model, splits.val_x) == splits.val_y).float().mean().item()
        # Counted on the float model: a statically quantized or ONNX model hides its weights in
        # packed parameters or a graph, and holds the same ones.
        counted = float_model
        params, zeros = ME.count_params(counted)
        wz, wt = P.global_sparsity(counted)
        return {
            "accuracy": acc, "test_images": len(splits.test_y),
            "params": params, "zero_params": zeros, "sparsity": wz / wt, **timing,
            "flops": ME.flops(float_model, shape),
            "predictions": pred.tolist(),  # per-image, for paired tests (McNemar) in the report
            "layers": ME.layer_sparsity(counted).to_dict(orient="records"),
            "val_accuracy": val_acc, "eval_seconds": time.perf_counter() - t0,
            **provenance(),
        }

    def bits_curve(self, v: Variant) -> list[dict]:
        """Accuracy against codebook bits for a gradually pruned model: k-means centroids as
        they are (no codebook fine-tuning), validation and test accuracy per bit width."""
        gradual = next(s for s in stages(v, self.p) if s.kind == "gradual")
        data_cfg = gradual.configs[0]
        bits = [int(b) for b in self.p["dc_bits_curve"]]
        key = config_hash("curve", CACHE_VERSION, bits, data_cfg, gradual.key)
        cached = self.store.read_json("curve", key, JSON_CHECKS["curve"])
        if cached is not None:
            return cached["points"]
        with self.store.lock("curve", key):
            cached = self.store.read_json("curve", key, JSON_CHECKS["curve"])
            return cached["points"] if cached else self._bits_curve(gradual, bits, key)

    def _bits_curve(self, gradual: Stage, bits: list[int], key: str) -> list[dict]:
        data_cfg = gradual.configs[0]
        pruned, _ = S.load_checkpoint(self.artifact(gradual))
        splits, points = self._splits(data_cfg), []
        for b in bits:
            model, rows, _ = SH.share_and_finetune(
                copy.deepcopy(pruned), ShareConfig(b, b), splits,
                dataclasses.replace(share_finetune_config(self.p), epochs=0), progress=False)
            points.append({"bits": b, "val_accuracy": T.accuracy(model, splits.val_x, splits.val_y),
                           "accuracy": T.accuracy(model, splits.test_x, splits.test_y),
                           "codebook": max(r["k"] for r in rows)})
        self.store.write_json("curve", key, {"points": points, "upstream": gradual.key})
        self.computed.append(key)
        return points


def row(v: Variant, p: dict, m: dict) -> dict:
    """One results.csv row: the contract's columns, then provenance and extras."""
    p = variant_params(p, v)
    fine_tuned = v.is_control or (v.prune_ratio > 0 and v.finetune)
    extra_epochs = finetune_of(v, p).epochs if fine_tuned else 0
    return {
        "section": v.section, "model": v.model, "dataset": v.dataset, "stem": p["stem"],
        "prune_method": v.prune_method, "prune_ratio": v.prune_ratio, "quant": v.quant,
        "codec": v.codec, "seed": p["seed"], "accuracy": m["accuracy"],
        "size_bytes": m["size_bytes"], "latency_ms": m["latency_ms"], "params": m["params"],
        "zero_params": m["zero_params"], "sparsity": m["sparsity"], "artifact": m["artifact"],
        "compression_ratio": dense_bytes(model_config(p, v.model, v.dataset)) / m["size_bytes"],
        "runtime": v.runtime,
        # cached metrics from before these columns: batch-64 latency is the throughput run's
        # median block (throughput = batch / median), FLOPs those of the dense architecture
        "latency_bs64_ms": m.get("latency_bs64_ms",
                                 p["throughput_batch"] / m["throughput_img_s"] * 1e3),
        "flops": m.get("flops") or dense_flops(model_config(p, v.model, v.dataset),
                                               v.dataset),
        "profile": p["profile"], "val_accuracy": m["val_accuracy"],
        "latency_iqr_ms": m["latency_iqr_ms"], "throughput_img_s": m["throughput_img_s"],
        "threads": m["threads"], "test_images": m["test_images"], "epochs": p["epochs"],
        "finetune_epochs": extra_epochs, "control": v.control, "protocol": v.protocol,
        # bits per stored conv/fc weight: k-means codebook indices, or float32 (dynamic INT8
        # quantizes the classifier only)
        "weight_bits": (f"{p['dc_bits_conv'][v.model]}/{p['dc_bits_fc'][v.model]}"
                        if v.quant == "kmeans"
                        else "32/8" if v.quant == "int8-dynamic" else "32/32"),
        "schedule": p["schedule"], "train_size": p["train_size"], "artifact_key": m["artifact_key"],
        "git_commit": m["git_commit"], "torch_version": m["torch_version"], "cpu": m["cpu"],
    }


def run(p: dict, sections: list[str], store: S.Store, out_dir: Path | None = None,
        data_root: Path | None = None, progress: bool = True,
        models: dict[str, list[str]] | None = None) -> tuple[pd.DataFrame, Runner]:
    """Compute (or load) every variant of `sections`; write results.csv + sparsity CSVs."""
    runner = Runner(p, store, data_root, progress)
    rows, metrics = [], runner.metrics
    variants = plan(p, sections, models)
    bar = tqdm(variants, desc=f"{p['profile']}: variants", disable=not progress)
    for v in bar:
        bar.set_postfix_str(f"{v.section}: {v.label}")
        m = runner.evaluate(chain(v, p))
        rows.append(row(v, p, m))
        metrics[v] = m
    for v in variants:  # section F's bits-vs-accuracy curve, one per gradually pruned model
        if v.prune_method == "gradual-l1" and v.quant == "none" and v.codec == "none":
            bar.set_postfix_str(f"{v.section}: bits curve of {v.label}")
            runner.curves[v] = runner.bits_curve(v)
    df = pd.DataFrame(rows)
    if out_dir is not None:
        write_results(df, Path(out_dir), sections)
        if runner.curves:
            curve = pd.DataFrame([{"model": v.model, "dataset": v.dataset,
                                   "sparsity": v.prune_ratio, **pt}
                                  for v, pts in runner.curves.items() for pt in pts])
            S.write_text(Path(out_dir) / "compression_bits.csv", curve.to_csv(index=False))
        for v, m in metrics.items():
            if ((v.section == "C" or v.prune_ratio > 0) and v.codec == "none"
                    and v.section != "H" and not v.is_control):
                method = "_gradual" if v.prune_method == "gradual-l1" else ""
                name = (f"{v.model}_{v.dataset}_p{round(v.prune_ratio * 100):02d}{method}_"
                        f"{v.quant}.csv")
                S.write_text(Path(out_dir) / "sparsity" / name,
                             pd.DataFrame(m["layers"]).to_csv(index=False))
    return df, runner


def write_results(df: pd.DataFrame, out_dir: Path, sections: list[str]) -> Path:
    """Replace the rows of `sections` in out_dir/results.csv, keep the others (atomic)."""
    path = Path(out_dir) / "results.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    # Under a lock: two runs writing one folder each keep the other's rows.
    with filelock.FileLock(path.with_name(".results.csv.lock"), is_singleton=True):
        if path.is_file():
            old = pd.read_csv(path)
            old = old[~old["section"].isin(sections)]
            df = pd.concat([old, df], ignore_index=True)
        extra = [c for c in df.columns if c not in RESULT_COLUMNS]
        df = df[RESULT_COLUMNS + extra].sort_values("section", kind="stable")
        S.write_text(path, df.to_csv(index=False))
    return path


def verify_store(store: S.Store) -> list[dict]:
    """Every local entry of a store, and why a run would not trust it (None: intact). Nothing
    is moved; a run sets each untrusted entry aside and recomputes it, and re-measures the
    metrics of an artifact it recomputes."""
    out = []
    for kind, f in store.entries():
        why = store.verify(f)
        if why is None and f.suffix == ".json":
            obj = S.read_json_entry(f, JSON_CHECKS.get(kind))
            why = obj if isinstance(obj, str) else None
        out.append({"kind": kind, "key": f.name.split(".")[0], "path": f, "problem": why})
    bad = {e["key"] for e in out if e["problem"]}
    for e in out:  # metrics of a damaged artifact are measured again with it
        if e["kind"] == "metrics" and not e["problem"]:
            m = S.read_json_entry(e["path"])
            if isinstance(m, dict) and m.get("artifact_key") in bad:
                e["problem"] = f"its artifact {m['artifact_key']} is damaged (re-measured)"
    return out


def dry_run(p: dict, sections: list[str], store: S.Store) -> list[dict]:
    """Every distinct stage the sections need, in execution order, with its cache status."""
    seen, out = set(), []
    for v in plan(p, sections):
        for st in stages(v, p):
            if st.key in seen:
                continue
            seen.add(st.key)
            out.append({"stage": st.kind, "key": st.key, "label": st.label,
                        "cached": is_cached(st, store)})
    return out
