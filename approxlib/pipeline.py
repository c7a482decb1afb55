"""The study as a graph of cached stages: train → prune + fine-tune → quantize → evaluate.

`plan` turns a profile into the model variants each section needs (A–E as in the original);
`chain` turns a variant into its stages, each keyed by the hash of its own config chained to its
upstream key; `run` materializes what is missing and returns one `results.csv` row per variant.
Variants shared by several sections (B's baseline is C's 0%) are trained once.
"""
from __future__ import annotations

import dataclasses
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
import torchvision
from tqdm.auto import tqdm

from . import data as D
from . import measure as ME
from . import models as M
from . import prune as P
from . import quantize as Q
from . import store as S
from . import train as T
from .config import (SECTIONS, ConfigError, check_model, ModelConfig, PruneConfig, QuantConfig, config_hash,
                     data_config, finetune_config, measure_config, train_config)

# Bump when a stage's code changes what it produces, so stale cache entries are not reused.
CACHE_VERSION = 4

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
}


@dataclass(frozen=True)
class Variant:
    section: str
    model: str
    dataset: str
    prune_ratio: float = 0.0
    quant: str = "none"

    @property
    def prune_method(self) -> str:
        return "l1-unstructured" if self.prune_ratio > 0 else "none"

    @property
    def label(self) -> str:
        parts = [self.model, self.dataset]
        if self.prune_ratio > 0:
            parts.append(f"pruned {self.prune_ratio:.0%}")
        if self.quant != "none":
            parts.append(self.quant)
        return " ".join(parts) if len(parts) > 2 else " ".join(parts + ["baseline"])


@dataclass(frozen=True)
class Stage:
    kind: str  # train | prune | quantize | evaluate
    key: str
    label: str
    configs: tuple
    upstream: "Stage | None" = None


def parse_sections(text: str | list | None) -> list[str]:
    if text is None or text == "" or text == "all":
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
                  "E": ["resnet18", "mobilenetv2"]}


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
    }
    # A ratio of 0 in A/B/D/E would repeat the baseline: drop the duplicates, keep order.
    return [v for s in sections for v in dict.fromkeys(per_section[s])]


def model_config(p: dict, model: str, dataset: str) -> ModelConfig:
    return ModelConfig(model, D.NUM_CLASSES[dataset], D.IN_CHANNELS[dataset], p["stem"])


def chain(v: Variant, p: dict) -> Stage:
    """The evaluate stage of a variant; its `upstream` links lead back to training."""
    data = data_config(p, v.dataset)
    mc = model_config(p, v.model, v.dataset)
    tc = train_config(p)
    st = Stage("train", config_hash("train", CACHE_VERSION, data, mc, tc),
               f"train {v.model} on {v.dataset}", (data, mc, tc))
    if v.prune_ratio > 0:
        pc, fc = PruneConfig(v.prune_ratio), finetune_config(p)
        st = Stage("prune", config_hash("prune", CACHE_VERSION, pc, fc, data, st.key),
                   f"prune {v.model} {v.prune_ratio:.0%} + fine-tune", (data, mc, pc, fc), st)
    if v.quant != "none":
        qc = QuantConfig(v.quant)
        st = Stage("quantize", config_hash("quantize", CACHE_VERSION, qc, st.key),
                   f"quantize {v.model} {v.quant}", (qc,), st)
    mcfg = measure_config(p)
    return Stage("evaluate", config_hash("evaluate", CACHE_VERSION, mcfg, data, st.key),
                 f"evaluate {v.label}", (mcfg, data), st)


def stages(v: Variant, p: dict) -> list[Stage]:
    out, st = [], chain(v, p)
    while st is not None:
        out.append(st)
        st = st.upstream
    return out[::-1]


def is_cached(st: Stage, store: S.Store) -> bool:
    if st.kind == "evaluate":
        return store.read_json("metrics", st.key) is not None
    return store.has(st.kind, st.key)


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

    def _splits(self, data_cfg) -> D.Splits:
        return D.load(data_cfg, self.data_root)

    def artifact(self, st: Stage) -> Path:
        """Path of a train/prune/quantize stage's checkpoint, computing it if needed."""
        path = self.store.path(st.kind, st.key)
        if path.is_file():
            return path
        t0 = time.perf_counter()
        meta = {"stage": st.kind, "key": st.key, "label": st.label,
                "configs": [{"type": type(c).__name__, **dataclasses.asdict(c)}
                            for c in st.configs if dataclasses.is_dataclass(c)],
                "upstream": st.upstream.key if st.upstream else None, **provenance()}
        if st.kind == "train":
            data_cfg, mc, tc = st.configs
            model, hist = T.train(M.build(mc, tc.seed), self._splits(data_cfg), tc, self.p["device"],
                                  desc=st.label, progress=self.progress)
            quant = "none"
            meta["history"] = hist
        elif st.kind == "prune":
            data_cfg, mc, pc, fc = st.configs
            model, info = S.load_checkpoint(self.artifact(st.upstream), expect=mc)
            model, hist = P.prune_and_finetune(model, pc, self._splits(data_cfg), fc,
                                               self.p["device"], st.label, self.progress)
            quant = "none"
            meta["history"] = hist
        elif st.kind == "quantize":
            (qc,) = st.configs
            model, info = S.load_checkpoint(self.artifact(st.upstream))
            model = Q.quantize(model, qc)
            mc, quant = ModelConfig(**info["model"]), qc.method
        else:
            raise ValueError(f"not an artifact stage: {st.kind}")
        meta["seconds"] = time.perf_counter() - t0
        S.save_checkpoint(model, path, mc, quant, meta)
        self.computed.append(st.key)
        return path

    def evaluate(self, st: Stage) -> dict:
        """Metrics of the artifact upstream of an evaluate stage (cached as JSON)."""
        cached = self.store.read_json("metrics", st.key)
        if cached is not None:
            return cached
        mcfg, data_cfg = st.configs
        path = self.artifact(st.upstream)
        model, _ = S.load_checkpoint(path)
        splits = self._splits(data_cfg)
        t0 = time.perf_counter()
        # The test split is only ever reported; the validation accuracy is what selection may use.
        pred = T.predict(model, splits.test_x)
        acc = (pred == splits.test_y).float().mean().item()
        val_acc = T.accuracy(model, splits.val_x, splits.val_y)
        params, zeros = ME.count_params(model)
        wz, wt = P.global_sparsity(model)
        timing = ME.latency_ms(model, tuple(splits.test_x.shape[1:]), mcfg)
        up = self.store.path(st.upstream.kind, st.upstream.key, ".pt")
        metrics = {
            "accuracy": acc, "test_images": len(splits.test_y), "size_bytes": path.stat().st_size,
            "params": params, "zero_params": zeros, "sparsity": wz / wt, **timing,
            "artifact": str(up), "artifact_key": st.upstream.key,
            "predictions": pred.tolist(),  # per-image, for paired tests (McNemar) in the report
            "layers": ME.layer_sparsity(model).to_dict(orient="records"),
            "val_accuracy": val_acc, "eval_seconds": time.perf_counter() - t0,
            **provenance(),
        }
        self.store.write_json("metrics", st.key, metrics)
        self.computed.append(st.key)
        return metrics


def row(v: Variant, p: dict, m: dict) -> dict:
    """One results.csv row: the contract's columns, then provenance and extras."""
    return {
        "section": v.section, "model": v.model, "dataset": v.dataset, "stem": p["stem"],
        "prune_method": v.prune_method, "prune_ratio": v.prune_ratio, "quant": v.quant,
        "codec": "none", "seed": p["seed"], "accuracy": m["accuracy"],
        "size_bytes": m["size_bytes"], "latency_ms": m["latency_ms"], "params": m["params"],
        "zero_params": m["zero_params"], "sparsity": m["sparsity"], "artifact": m["artifact"],
        "profile": p["profile"], "val_accuracy": m["val_accuracy"],
        "latency_iqr_ms": m["latency_iqr_ms"], "throughput_img_s": m["throughput_img_s"],
        "threads": m["threads"], "test_images": m["test_images"], "epochs": p["epochs"],
        "finetune_epochs": p["finetune_epochs"] if v.prune_ratio > 0 else 0,
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
    df = pd.DataFrame(rows)
    if out_dir is not None:
        write_results(df, Path(out_dir), sections)
        for v, m in metrics.items():
            if v.section == "C" or v.prune_ratio > 0:
                name = f"{v.model}_{v.dataset}_p{round(v.prune_ratio * 100):02d}_{v.quant}.csv"
                S.write_text(Path(out_dir) / "sparsity" / name,
                             pd.DataFrame(m["layers"]).to_csv(index=False))
    return df, runner


def write_results(df: pd.DataFrame, out_dir: Path, sections: list[str]) -> Path:
    """Replace the rows of `sections` in out_dir/results.csv, keep the others (atomic)."""
    path = Path(out_dir) / "results.csv"
    if path.is_file():
        old = pd.read_csv(path)
        old = old[~old["section"].isin(sections)]
        df = pd.concat([old, df], ignore_index=True)
    extra = [c for c in df.columns if c not in RESULT_COLUMNS]
    df = df[RESULT_COLUMNS + extra].sort_values("section", kind="stable")
    S.write_text(path, df.to_csv(index=False))
    return path


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
