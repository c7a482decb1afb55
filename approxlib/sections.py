"""What the study computes: the model variants, and each report section as a registered spec.

A `Variant` names one model as a results row shows it (model, dataset, how it is pruned,
quantized, encoded and run, its seed and protocol); `pipeline.recipe` turns it into steps.
A `Spec` is one section: its title, its models, the variants it shows for a profile, and what the
original study used. `plan` gathers the variants of the sections asked for. A new section is a
spec registered here, a report class and a notebook; no code tests a section's letter.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from . import controls
from . import methods
from . import names
from . import quants
from . import runtimes
from .config import (GENERAL_CODECS, NO_CODEC, NO_PROTOCOL, PACKED_CODEC, SHIPPED_CODEC,
                     SPARSE_CODEC, STANDARD_CODEC,
                     ConfigError, check_init_models, check_model, curve_protocol,
                     curve_sparsities, per_model, scratch_ratios)


@dataclass(frozen=True)
class Variant:
    section: str
    model: str
    dataset: str
    prune_ratio: float = 0.0
    quant: str = quants.NONE.key
    prune: str = methods.REFERENCE  # how a prune_ratio > 0 is reached: one-shot, gradual, channel
    codec: str = NO_CODEC
    runtime: str = runtimes.REFERENCE  # a `runtimes.RUNTIMES` key
    control: str = controls.NONE.key  # a `controls.CONTROLS` key: what kind of control it is
    seed: int | None = None  # None: the profile's seed
    protocol: str = NO_PROTOCOL  # or a name in h_protocols (section H)
    finetune: bool = True  # False: pruned only (section H's curve without fine-tuning)
    qp: int | None = None  # the quantization parameter of a codec that has one (NNCodec)
    kd: bool = False  # fine-tuned distilling from the dense baseline (its control too)

    @property
    def prune_method(self) -> str:
        return self.prune if self.prune_ratio > 0 else methods.UNPRUNED

    @property
    def in_profile(self) -> bool:
        """Run with the profile's own settings (its `init` among them), not a section-H
        protocol, which compares trainings from scratch."""
        return self.protocol == NO_PROTOCOL

    @property
    def control_kind(self) -> controls.Control:
        return controls.of(self.control)

    @property
    def is_control(self) -> bool:
        return self.control_kind is not controls.NONE

    @property
    def qat_trained(self) -> bool:
        """Fine-tuned as QAT is: a QAT variant, or QAT's float twin."""
        return quants.of(self.quant).trained or self.control_kind.qat_trained

    @property
    def is_dense_control(self) -> bool:
        """The equal-compute dense control: the dense model fine-tuned exactly as the variants
        pruned by `prune` are."""
        return self.control_kind.reference

    @property
    def label(self) -> str:
        parts = [self.model, self.dataset]
        if self.prune_ratio > 0:  # a one-shot method other than the reference by its label:
            # four methods' entries were listed alike in a dry run (a contributor, 2026-12-07)
            how = methods.of(self.prune)
            parts.append(f"pruned {self.prune_ratio:.0%}" + (
                how.adverb or ("" if self.prune == methods.REFERENCE else f" ({how.label})")))
        if self.quant != quants.NONE.key:
            parts.append(self.quant)
        if self.codec != NO_CODEC:
            parts.append(self.codec if self.qp is None else f"{self.codec} qp {self.qp}")
        if self.runtime != runtimes.REFERENCE:
            parts.append(self.runtime)
        if self.kd:
            parts.append("distilled")
        if self.is_control:
            parts.append(self.control_kind.words(self.prune))
        if not self.finetune:
            parts.append("not fine-tuned")
        if not self.in_profile:
            parts.append(f"{self.protocol} protocol")
        if self.seed is not None:
            parts.append(f"seed {self.seed}")
        return " ".join(parts) if len(parts) > 2 else " ".join(parts + ["baseline"])


def control_of(v: Variant) -> Variant:
    """The equal-compute dense control of a pruned + fine-tuned variant (distilled as it is)."""
    return Variant(v.section, v.model, v.dataset, prune=v.prune, control=controls.DENSE.key,
                   seed=v.seed, protocol=v.protocol, kd=v.kd)


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
    return [Variant(section, model, dataset, float(s), prune=method, seed=int(p["h_seeds"][0]),
                    protocol=curve_protocol(p), finetune=ft)
            for method in p["h_curve_methods"] for s in p["h_curve_sparsities"]
            for ft in (False, True)]


def speed_variants(p: dict, section: str, model: str, dataset: str) -> list[Variant]:
    """Section G for one model: dense and channel-pruned at each ratio, each in PyTorch eager and
    ONNX Runtime, float32 and static INT8; then what recovers accuracy at `channel_ratio` (QAT,
    distillation) and the scratch controls at `scratch_ratios`, where the profile asks."""
    out, channels = [], p["channel_method"]
    main = float(p["channel_ratio"])
    ratios = sorted({main, *map(float, p["channel_ratios"])})
    for base in (Variant(section, model, dataset),
                 *(Variant(section, model, dataset, r, prune=channels) for r in ratios)):
        for quant in quants.POST_TRAINING:
            for runtime in runtimes.RUNTIMES:
                out.append(dataclasses.replace(base, quant=quant, runtime=runtime))
    out += recovery_variants(p, Variant(section, model, dataset, main, prune=channels))
    for r in scratch_ratios(p):
        out += scratch_variants(p, Variant(section, model, dataset, r, prune=channels))
    return out


def scratch_variants(p: dict, channel: Variant) -> list[Variant]:
    """The channel-pruned architecture trained from scratch (Scratch-E, Scratch-B), in float32
    PyTorch and in ONNX Runtime, float32 (the export INT8 is quantized from, so every stage is
    planned and priced) and INT8: the fastest form of the fine-tuned model, and a way to get
    it (not for given weights: their training is unknown)."""
    if not p["scratch"] or per_model(p, "init", channel.model) is not None:
        return []
    out = []
    for c in controls.scratch():
        scratch = dataclasses.replace(channel, control=c)
        out += [scratch, *(dataclasses.replace(scratch, quant=q, runtime=runtimes.ORT.key)
                           for q in quants.POST_TRAINING)]
    return out


def recovery_variants(p: dict, channel: Variant) -> list[Variant]:
    """QAT of the dense and the channel-pruned model (in both runtimes: ONNX Runtime runs the
    exported INT8 model), and the distilled channel-pruned model (and its QAT)."""
    # dense QAT keeps `prune` (no pruning at ratio 0): with `qat_from: control` it starts from
    # the dense control fine-tuned as the channel-pruned models are
    dense = dataclasses.replace(channel, prune_ratio=0.0)

    def qat(v: Variant) -> list[Variant]:
        """QAT in both runtimes, and (with `controls`, for the undistilled) its float twin."""
        if not p["qat"]:
            return []
        with_twin = p["controls"] and not v.kd
        twin = [dataclasses.replace(v, control=controls.QAT_FLOAT.key)] if with_twin else []
        return [*(dataclasses.replace(v, quant=quants.QAT.key, runtime=r)
                  for r in runtimes.RUNTIMES), *twin]

    out = qat(dense) + qat(channel)
    if p["kd"]:
        kd = dataclasses.replace(channel, kd=True)
        out += [kd] + qat(kd)
    return out


def compression_variants(p: dict, section: str, model: str, dataset: str
                         ) -> list[Variant]:
    """Section F, Deep Compression's table for one model: dense → pruned (.pt, then what a user
    would try first on it: gzip / xz / zstd) → sparse-encoded → + weight sharing → + Huffman;
    the standard's codec (NNCodec) on the same pruned model at each of `nncodec_qps`; and the
    model gradually pruned to each further sparsity of the size-vs-accuracy grid (its bits
    curve is the grid's row)."""
    s = float(per_model(p, "dc_sparsity", model))
    grid = [Variant(section, model, dataset, x, prune=methods.GRADUAL.key)
            for x in curve_sparsities(p, model) if x != s]
    pruned = Variant(section, model, dataset, s, prune=methods.GRADUAL.key)
    shared = dataclasses.replace(pruned, quant=quants.KMEANS.key)
    distilled = ([dataclasses.replace(pruned, kd=True),
                  dataclasses.replace(shared, codec=SHIPPED_CODEC, kd=True)] if p["kd"] else [])
    return [Variant(section, model, dataset), pruned,
            *(dataclasses.replace(pruned, codec=c) for c in (*GENERAL_CODECS, SPARSE_CODEC)),
            dataclasses.replace(shared, codec=PACKED_CODEC),
            dataclasses.replace(shared, codec=SHIPPED_CODEC),
            *(dataclasses.replace(pruned, codec=STANDARD_CODEC, qp=int(q))
              for q in p["nncodec_qps"]),
            *distilled, *grid]



def _versus(ratios: Callable[[dict], list[tuple[float, str]]]):
    """Variants of each model at (prune ratio, quant) pairs read off the profile."""
    def variants(p: dict, section: str, models: list[str], dataset: str) -> list[Variant]:
        return [Variant(section, m, dataset, x, q) for m in models for x, q in ratios(p)]
    return variants


def _per_model(each: Callable[[dict, str, str, str], list[Variant]]):
    def variants(p: dict, section: str, models: list[str], dataset: str) -> list[Variant]:
        return [v for m in models for v in each(p, section, m, dataset)]
    return variants


def _controls_and_curves(p: dict, section: str, models: list[str], dataset: str
                         ) -> list[Variant]:
    return ([v for m in models for v in control_variants(p, section, m, dataset)]
            + [v for m in p["h_curve_models"] if m in models
               for v in curve_variants(p, section, m, dataset)])


@dataclass(frozen=True)
class Spec:
    """One report section."""
    letter: str
    title: str  # "{models}" is replaced by the names of the models it shows
    models: tuple[str, ...]
    # (profile, letter, models, dataset) -> the variants it shows
    variants: Callable[[dict, str, list[str], str], list[Variant]]
    original_dataset: str = "cifar10"  # what the original study used (a stand-in is named)
    dataset_key: str = "dataset"  # the profile parameter that sets its dataset
    controls: bool = True  # profile `controls`: each pruned model's equal-compute control beside it
    seeds: bool = False  # profile `seeds`: every variant repeated per seed
    summarized: bool = True  # in the report's summary table (else: its own tables summarize it)
    layer_csvs: str = "pruned"  # per-layer sparsity CSVs written for: pruned | all | none
    join: str = ", "  # between model names in the title
    original: bool = False  # one of the original study's fixed comparisons (not run by default
    # for your own data or weights: the general sections cover them)
    roofline: bool = False  # compares throughputs with this CPU's measured matrix-multiply rate
    # its latencies are compared with one another: its variants are timed together, in turns
    # (`pipeline.latency_groups`, profile `latency_rounds`); False: its findings are accuracies
    # and nothing is timed (its results.csv rows leave the latency columns empty)
    timed: bool = True
    # its files are weighed on the size-vs-accuracy trade-off, each against its model's best
    # dense model at equal compute (`analysis.trade_off`, compression_points.csv)
    trade_off: bool = False
    # what it adds to the original study, for the report's opening ("" = one of its sections)
    beyond: str = ""

    def heading(self, models, dataset: str | None = None) -> str:
        """The title with its models and dataset (by default the original study's) named."""
        return self.title.format(models=self.join.join(names.model(m) for m in models),
                                 dataset=names.dataset(dataset or self.original_dataset))


SECTIONS: dict[str, Spec] = {}


def register(spec: Spec) -> Spec:
    if spec.letter in SECTIONS:
        raise ValueError(f"section {spec.letter!r} registered twice")
    SECTIONS[spec.letter] = spec
    return spec


def _ratio(p: dict) -> float:
    return float(p["ratio"])


def _dense_and_pruned(p: dict, *quantized: str) -> list[tuple[float, str]]:
    """The baseline and the pruned model, then the pruned model quantized each way given."""
    return [(0.0, quants.NONE.key), *((_ratio(p), q) for q in (quants.NONE.key, *quantized))]


for _spec in (
    Spec("A", "{models}: baseline vs pruned", ("mobilenetv2",),
         _versus(_dense_and_pruned), seeds=True, original=True),
    Spec("B", "{models}: baseline, pruned, pruned + INT8", ("resnet18",),
         _versus(lambda p: _dense_and_pruned(p, quants.DYNAMIC.key)),
         seeds=True, original=True),
    Spec("C", "{models} pruning sweep and per-layer sparsity", ("resnet18",),
         _versus(lambda p: [(x, quants.NONE.key) for x in sorted({0.0, *map(float, p["ratios"])})]),
         seeds=True, layer_csvs="all"),
    Spec("D", "{models} on {dataset}: baseline vs pruned", ("resnet18",),
         _versus(_dense_and_pruned), original_dataset="cifar100",
         dataset_key="dataset_d", seeds=True, original=True),
    Spec("E", "{models}", ("resnet18", "mobilenetv2"),
         _versus(_dense_and_pruned), seeds=True, join=" vs ",
         original=True),
    Spec("F", "Real compression: Deep Compression's pipeline and the .apx format",
         ("resnet18", "mobilenetv2"), _per_model(compression_variants), trade_off=True,
         beyond="real compression"),
    Spec("G", "Real CPU speed: static INT8, channel pruning, ONNX Runtime",
         ("resnet18", "mobilenetv2"), _per_model(speed_variants), roofline=True,
         beyond="real CPU speed"),
    Spec("H", "Does pruning itself help? Controls, seeds, baselines and sensitivity",
         ("resnet18", "mobilenetv2"), _controls_and_curves, controls=False, summarized=False,
         layer_csvs="none", timed=False,
         beyond="equal-compute controls, seeds, baselines and sensitivity"),
):
    register(_spec)


def own_study(p: dict) -> bool:
    """Whether a profile studies your own images or weights rather than the original's."""
    from .data import source  # data imports config, which this module's callers import first
    return p["init"] is not None or not source(p["dataset"]).builtin


def parse_sections(text: str | list | None, p: dict | None = None) -> list[str]:
    """Section letters from `A,C` or a list; `all` is every section. None: the sections that
    apply to the profile `p` (for your own data or weights, those that are not the original
    study's fixed comparisons; else all)."""
    if text is None and p is not None and own_study(p):
        return [letter for letter, spec in SECTIONS.items() if not spec.original]
    if text is None or (isinstance(text, str) and text.strip().lower() == "all"):
        return list(SECTIONS)
    items = text if isinstance(text, list) else str(text).split(",")
    out = []
    for given in items:
        s = str(given).strip().upper()
        if s not in SECTIONS:
            raise ConfigError(f"unknown section {str(given).strip()!r}; valid: "
                              f"{', '.join(SECTIONS)}, or all alone")
        if s not in out:
            out.append(s)
    return out


def plan(p: dict, sections: list[str], models: dict[str, list[str]] | None = None
         ) -> list[Variant]:
    """The variants each section shows, in order, each once per section.

    `models` replaces a section's model list (a notebook's `model` parameter), e.g.
    {"A": ["resnet18"]}."""
    check_init_models(p, [m for ms in (models or {}).values() for m in ms])
    extra = [int(x) for x in (p["seeds"] or []) if int(x) != int(p["seed"])]
    out = []
    for letter in sections:
        spec = SECTIONS[letter]
        ms = (models or {}).get(letter) or p["models"] or list(spec.models)
        for m in ms:
            check_model(m)
        vs = spec.variants(p, letter, ms, p[spec.dataset_key])
        if p["controls"] and spec.controls:  # the float model in PyTorch, before weight
            # sharing, encoding or export
            vs += [control_of(v) for v in vs if v.prune_ratio > 0 and v.quant == quants.NONE.key
                   and v.codec == NO_CODEC and v.runtime == runtimes.REFERENCE and not v.is_control]
        if spec.seeds:  # the profile's seed keeps seed=None (what the findings compare);
            # every further seed repeats each variant, its control included
            vs += [dataclasses.replace(v, seed=x) for x in extra for v in vs]
        out += dict.fromkeys(vs)  # a ratio of 0 would repeat the baseline: once, in order
    return out
