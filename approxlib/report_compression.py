"""Section F of the report: Deep Compression's stages, the .apx format against what a user would
try first, the bits-vs-accuracy curve and the per-layer storage, with generated findings."""
from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pandas as pd

from . import analysis, compress, names, plots, stats
from . import pipeline
from . import quants
from . import store
from .config import NO_CODEC, SHIPPED_CODEC, STANDARD_CODEC, XZ, per_model
from .report import Section, _fmt_pct, _md, _table

# Published ratios reached without accuracy loss, on other models and data (shown as labelled
# lines, never as our points): (who, model and dataset, ratio).
PUBLISHED = [("Deep Compression", "VGG-16, ImageNet", 49.0),
             ("DeepCABAC", "VGG-16, ImageNet", 63.6),
             ("Oktay et al.", "ResNet-18, ImageNet", 24.0)]


class CompressionSection(Section):
    """Section F. Everything shown is computed from this run's rows and cached artifacts."""

    letter = "F"

    def __init__(self, run):
        super().__init__(run)
        self.with_controls = self.df  # what the reference is picked from
        self._drop_controls()
        kd = np.array([names.distilled(r) for r in self.df.itertuples()], dtype=bool)
        self.distilled = self.df[kd].reset_index(drop=True)  # its own lines, not the stages
        self.df = self.df[~kd].reset_index(drop=True)
        # the grid's further sparsities are points of the size-vs-accuracy figures, not stages
        self.df, self.grid = analysis.split_grid(
            self.df, {m: per_model(self.p, "dc_sparsity", m) for m in set(self.df.model)})
        self.models_in = list(dict.fromkeys(self.df.model))
        self.curves = analysis.curve_frame(run.curves)

    def _row(self, model: str, stage: analysis.CompressionStage) -> pd.Series:
        return analysis.stage_row(self.df, model, stage)

    def variants_text(self) -> str:
        p = self.p
        return (f"compressed models pruned gradually from the baseline over "
                f"{self._each_count('dc_epochs', 'epoch')} (lr {p['dc_lr']}, "
                f"{names.SCHEDULES[p['finetune_schedule']]}; mask update every {p['dc_every']} "
                f"steps over the first {p['dc_ramp']:.0%} of them), then codebooks fine-tuned "
                f"{names.count(p['dc_share_epochs'], 'epoch')} at lr {p['dc_share_lr']}; "
                f"checkpoints picked on the validation split among epochs at the final sparsity")

    def stages(self) -> pd.DataFrame:
        return analysis.compression_stages(self.df)

    # ------------------------------------------------------------------------------ content
    def header(self) -> None:
        super().header()
        p = self.p
        sp = self._each("dc_sparsity", "{:.0%}")
        bits = ", ".join(f"{names.model(m)} {per_model(p, 'dc_bits_conv', m)}/"
                         f"{per_model(p, 'dc_bits_fc', m)}"
                         for m in self.models_in)
        _md(f"Deep Compression (Han, Mao & Dally, ICLR 2016) on our models: gradual magnitude "
            f"pruning ({p['dc_scope']}, Zhu & Gupta's cubic schedule) to {sp} sparsity, "
            f"BatchNorm folded into the convolutions, per-layer k-means weight sharing "
            f"({bits} bits per convolution / classifier weight, linear initialization) with "
            f"fine-tuned codebooks, then relative indices "
            f"({p['dc_index_bits']}-bit, with escapes) and Huffman coding in our `.apx` format. "
            f"Ratios are against the dense float32 state dict (`torch.save`); sizes are real "
            f"file bytes." + self._grid_text())

    def _each(self, key: str, fmt: str = "{}") -> str:
        """A per-model parameter as the text says it: one value when every model shown has it,
        else each model's ("6 (ResNet-18), 3 (MobileNetV2)")."""
        values = {m: fmt.format(per_model(self.p, key, m)) for m in self.models_in}
        if len(set(values.values())) <= 1:
            return next(iter(values.values()), "")
        return ", ".join(f"{v} ({names.model(m)})" for m, v in values.items())

    def _share_words(self) -> str:
        """What the weight-sharing stage includes: its codebook fine-tuning, which a reader
        would otherwise credit to sharing itself (review, 2026-12-07)."""
        epochs = self.p["dc_share_epochs"]
        return (f" (with {names.count(epochs, 'epoch')} of codebook fine-tuning)" if epochs
                else " (k-means centroids, not fine-tuned)")

    def _each_count(self, key: str, word: str) -> str:
        """`_each` with its unit: "1 epoch", "2 epochs", "6 (ResNet-18), 3 (MobileNetV2) epochs"."""
        values = {per_model(self.p, key, m) for m in self.models_in}
        if len(values) <= 1:
            return names.count(values.pop(), word) if values else ""
        return f"{self._each(key)} {word}s"

    def _grid_text(self) -> str:
        """The size-vs-accuracy grid's further sparsities, as this run's rows have them."""
        if self.grid.empty:
            return ""
        each = "; ".join(f"{names.model(m)} {', '.join(f'{s:.0%}' for s in sorted(g.prune_ratio))}"
                         for m, g in self.grid.groupby("model", sort=False))
        return (f" For the size-vs-accuracy grid the same gradual pruning also reached {each}; "
                f"every sparsity's model is coded with k-means at "
                f"{', '.join(str(b) for b in self.p['dc_bits_curve'])} bits, without codebook "
                f"fine-tuning.")

    def table(self) -> None:
        t = self.stages()
        out = pd.DataFrame({
            "model": t.model.map(names.model), "stage": t.stage,
            "top-1 (%)": t.accuracy * 100,
            "95% CI (%)": [f"{100 * a:.1f}–{100 * b:.1f}" for a, b in zip(t.acc_lo, t.acc_hi)],
            "Δ vs baseline (points)": t.delta * 100, "size (kB)": t.size_bytes / 1e3,
            "ratio (×)": t.ratio, "bits / non-zero weight": t.bits_per_nonzero,
            "weight bits (conv/fc)": t.weight_bits, "sparsity (%)": t.sparsity * 100,
        })
        _table(out, {"size (kB)": 1, "ratio (×)": 1, "sparsity (%)": 1})
        _md(self.caption("Table", "Deep Compression's stages, each a real file: size, ratio "
                         "against the dense float32 checkpoint, and test accuracy"))

    def baselines_table(self) -> None:
        rows = []
        for m in self.models_in:
            pruned = self._row(m, analysis.PRUNED_FILE)
            ours = self._row(m, analysis.SHIPPED_FILE)
            for codec in (NO_CODEC, *compress.GENERAL_CODECS):
                r = self.df[(self.df.model == m) & (self.df.quant == quants.NONE.key)
                            & (self.df.prune_ratio == pruned.prune_ratio)
                            & (self.df.codec == codec)].iloc[0]
                rows.append({"model": names.model(m),
                             "file": "pruned checkpoint (.pt)" if codec == NO_CODEC
                             else f"pruned checkpoint + {codec}",
                             "size (kB)": r.size_bytes / 1e3, "ratio (×)": r.compression_ratio,
                             ".apx (Huffman) is smaller by (×)": r.size_bytes / ours.size_bytes})
        _table(pd.DataFrame(rows), {"size (kB)": 1, "ratio (×)": 1})
        effort = self.p["general_effort"]
        settings = ", ".join(c.setting(effort) for c in compress.GENERAL.values())
        _md(self.caption("Table", f"What a user would try first: general-purpose compressors "
                         f"({settings}) on the same pruned float32 checkpoint, against our "
                         f"Huffman-coded .apx file"))

    def standard_table(self) -> None:
        nnc = self.df[self.df.codec == STANDARD_CODEC]
        if nnc.empty:
            _md("*NNCodec was not run (profile key `nncodec_qps` is empty).*")
            return
        rows = []
        for m in self.models_in:
            ours = self._row(m, analysis.SHIPPED_FILE)
            for r in [ours, *nnc[nnc.model == m].sort_values("qp").itertuples()]:
                enc = self.metrics[self._variant(r)]["encode"]
                rows.append({
                    "model": names.model(m),
                    "file": (f".apx (k-means {ours.weight_bits} bits, Huffman)" if r is ours
                             else f"NNCodec qp {int(r.qp)}"),
                    "top-1 (%)": 100 * r.accuracy,
                    "Δ vs .apx (points)": 100 * (r.accuracy - ours.accuracy),
                    "size (kB)": r.size_bytes / 1e3, "ratio (×)": r.compression_ratio,
                    "sparsity (%)": 100 * r.sparsity, "encode (s)": enc["encode_seconds"],
                    "decode (s)": enc["decode_seconds"]})
        _table(pd.DataFrame(rows), {"size (kB)": 1, "ratio (×)": 1, "sparsity (%)": 1})
        _md(self.caption("Table", "Against the standard: MPEG's Neural Network Coding "
                         "(ISO/IEC 15938-17, Fraunhofer's NNCodec reference software: uniform "
                         "quantization at step 2<sup>qp/4</sup>, DeepCABAC arithmetic coding) on "
                         "the same gradually pruned model, BatchNorm folded as in .apx, decoded by NNCodec "
                         "and evaluated on the test split; no fine-tuning after its quantization, "
                         "whereas the .apx codebooks were fine-tuned. Sparsity is that of the "
                         "decoded weights: NNCodec's dependent quantization may give a pruned "
                         "weight a non-zero level"))

    def fig_stages(self) -> None:
        self._figure(plots.compression_stages(self.stages()),
                     "Compression ratio (log scale) and top-1 accuracy (95% intervals) at each "
                     "stage")

    def _reference(self, model: str) -> pd.Series:
        """The best dense model at equal compute, picked on validation: the row `points` bounds
        every file against (`analysis.compression_reference`)."""
        return analysis.compression_reference(self.with_controls, model)

    @functools.cached_property
    def points(self) -> pd.DataFrame:
        """Every file of the size-vs-accuracy trade-off, each with its validation bound against
        its model's best dense model (`val_lo`), as `compression_points.csv` has them."""
        return analysis.trade_off(self.run.df, self.run.metrics, self.run.curves)

    def fig_tradeoff(self) -> None:
        points = self.points
        dense = {m: self._reference(m).accuracy for m in self.models_in}
        self._figure(plots.ratio_accuracy(points, dense, PUBLISHED),
                     "Size against accuracy: every file section F wrote (the .apx file of each "
                     "gradually pruned model of the grid at each codebook width without "
                     "fine-tuning, the fine-tuned .apx file, distilled too where it ran, NNCodec "
                     "at each qp where it ran), "
                     "with the Pareto front; the solid line is the best dense model at equal "
                     "compute (picked on validation). Grey vertical lines, their ratios above the "
                     "panels: published ratios on other models and data, for scale")

    def fig_bits(self) -> None:
        dense = {m: self._reference(m).accuracy for m in self.models_in}
        tuned = {}
        for m in self.models_in:
            r = self._row(m, analysis.SHIPPED_FILE)
            bits = int(str(r.weight_bits).split("/")[0])
            tuned[m] = (bits, r.accuracy, r.prune_ratio)
        self._figure(plots.bits_curve(self.curves, dense, tuned),
                     "Test accuracy against codebook bits at each final sparsity of the grid "
                     "(k-means centroids without fine-tuning; the star is the fine-tuned "
                     "codebook the .apx file stores); the solid line is the best dense model at "
                     "equal compute (picked on validation)")

    def _tensor_stats(self, model: str) -> pd.DataFrame:
        r = self._row(model, analysis.SHIPPED_FILE)
        enc = self.metrics[self._variant(r)]["encode"]
        t = pd.DataFrame(enc["tensors"])
        t = t[t.encoding == "sparse"].copy()
        t["layer"] = t.tensor.str.removesuffix(".weight")
        t["sparsity"] = 1 - t.nonzero / t.numel
        return t.reset_index(drop=True)

    def fig_layers(self) -> None:
        self._figure(plots.layer_bits({m: self._tensor_stats(m) for m in self.models_in}),
                     "Per layer: sparsity and the bits the .apx file spends per non-zero weight")

    def layer_table(self) -> None:
        for m in self.models_in:
            t = self._tensor_stats(m)
            store.write_text(self.out / f"compression_layers_{m}.csv", t.to_csv(index=False))
        m = self.models_in[0]
        t = self._tensor_stats(m)
        out = pd.DataFrame({
            "layer": t.layer, "weights": t.numel,
            "kept (%)": (1 - t.sparsity) * 100, "codebook (entries)": t.codebook,
            "relative index (bits/non-zero)": t.index_bits,
            "codebook index (bits/non-zero)": t.value_bits,
            "bytes": t["bytes"], "ratio vs fp32 (×)": 4 * t.numel / t["bytes"],
        })
        _table(out, {"kept (%)": 1, "ratio vs fp32 (×)": 1})
        _md(self.caption("Table", f"{names.model(m)} per layer, as in Deep Compression's "
                         f"tables (every model's table is in the report's "
                         f"`compression_layers_<model>.csv`)"))

    # ----------------------------------------------------------------------------- findings
    def _tradeoff_lines(self, model: str) -> list[str]:
        points, ref = self.points, self._reference(model)
        best = analysis.largest_ratio_within(points, model)
        front = points[(points.model == model) & points.front].sort_values("ratio")
        head = ("  - Size against accuracy (test top-1): the Pareto front holds "
                + ", ".join(f"{r.file} ({r.ratio:.1f}×, {_fmt_pct(r.accuracy)})"
                            for r in front.itertuples()) + ". ")
        against = (f"the best dense model at equal compute ({analysis.reference_name(ref)}, "
                   f"{_fmt_pct(ref.accuracy)})")
        within = analysis.points_words(analysis.BUDGET_POINTS)
        if best is None:
            return [head + f"No file is within {within} of {against} on validation by its "
                           f"one-sided 95% paired bound."]
        return [head + f"The most compressed file within {within} of {against} on validation, "
                       f"by its one-sided 95% paired bound (not the estimate), is "
                       f"{best.file}: **{best.ratio:.1f}×** at {_fmt_pct(best.accuracy)} test "
                       f"({100 * (best.accuracy - ref.accuracy):+.2f} points; on validation "
                       f"{100 * (best.val_accuracy - ref.val_accuracy):+.2f}, bound "
                       f"{100 * best.val_lo:+.2f})."]

    def _standard_lines(self, model: str) -> list[str]:
        t = analysis.against_standard(self.df)
        if model not in set(t.model):
            return []
        r = t[t.model == model].iloc[0]
        within = analysis.points_words(analysis.NNC_TOLERANCE_POINTS)
        if np.isnan(r.larger):
            which = ("NNCodec's one setting does not decode" if r.settings == 1 else
                     f"None of NNCodec's {r.settings} settings decodes")
            return [f"  - {which} to within {within} of the .apx file's validation accuracy "
                    f"(NNCodec's files are not fine-tuned after quantization), so the two "
                    f"formats are not compared at equal accuracy here."]
        how = (f"{100 * (r.larger - 1):.1f}% larger than" if r.larger > 1 else
               f"{100 * (1 - r.larger):.1f}% smaller than")
        return [f"  - Against the standard: NNCodec's smallest file within {within} of "
                f"the .apx file's validation accuracy (qp {int(r.qp)}: "
                f"{r.nnc_bytes / 1e3:.0f} kB, top-1 {_fmt_pct(r.nnc_accuracy)} vs "
                f"{_fmt_pct(r.apx_accuracy)}; by the point estimates, not a paired bound: on a "
                f"small validation split that is less than one image) — the .apx file is "
                f"{how} it."]

    def _distillation_lines(self, model: str, ours: pd.Series) -> list[str]:
        """The same pipeline fine-tuned by distillation from the dense baseline: its Huffman
        file against the plain one, and against its own dense control (distilled the same
        way), which is what "within N points of dense at equal compute" compares with."""
        kd = self.distilled[(self.distilled.model == model)
                            & (self.distilled.codec == SHIPPED_CODEC)]
        if kd.empty:
            return []
        r = kd.iloc[0]
        v = self._variant(r)
        line = (f"  - With distillation (α = {self.p['kd_alpha']}, T = "
                f"{self.p['kd_temperature']}) in gradual pruning and codebook fine-tuning: "
                f"Huffman .apx **{r.compression_ratio:.1f}×** at {_fmt_pct(r.accuracy)}, "
                f"{100 * (r.accuracy - ours.accuracy):+.2f} points against the same pipeline "
                f"without it ({self.paired_words(self._variant(ours), v)})")
        pruned = dataclasses.replace(v, quant=quants.NONE.key, codec=NO_CODEC)
        control = pipeline.control_of(pruned)
        if control in self.metrics:
            c = self.metrics[control]
            line += (f"; against its dense control distilled the same way "
                     f"({_fmt_pct(c['accuracy'])}): {100 * (r.accuracy - c['accuracy']):+.2f} "
                     f"points ({self.paired_words(control, v)})")
        return [line + "."]

    def findings(self) -> None:
        lines = []
        for m in self.models_in:
            dense, pruned, sparse, packed, ours = (self._row(m, s)
                                                   for s in analysis.COMPRESSION_STAGES)
            test = self.mcnemar(self._variant(dense), self._variant(ours))
            drop = dense.accuracy - ours.accuracy
            lines.append(
                f"- **{names.model(m)}**: {dense.size_bytes / 1e6:.2f} MB → "
                f"{ours.size_bytes / 1e3:.0f} kB, **{ours.compression_ratio:.1f}×** "
                f"(pruning + sparse encoding {sparse.compression_ratio:.1f}×, "
                f"+ weight sharing {packed.compression_ratio:.1f}×, + Huffman "
                f"{ours.compression_ratio:.1f}×); top-1 {_fmt_pct(dense.accuracy)} → "
                f"{_fmt_pct(ours.accuracy)} ({-100 * drop:+.2f} points; McNemar "
                f"{stats.p_words(test['p_value'])}, "
                f"{stats.verdict_words(test['p_value'])}).")
            xz = self.df[(self.df.model == m) & (self.df.codec == XZ)].iloc[0]
            xz_setting = compress.GENERAL[XZ].setting(self.p["general_effort"])
            best = self.df[(self.df.model == m) & self.df.codec.isin(compress.GENERAL_CODECS)]
            best = best.loc[best.size_bytes.idxmin()]
            lines.append(
                f"  - Against {xz_setting} on the same pruned checkpoint "
                f"({xz.size_bytes / 1e3:.0f} kB) "
                f"the .apx file is {xz.size_bytes / ours.size_bytes:.2f}× smaller; "
                f"the best general-purpose codec here is {best.codec} "
                f"({best.size_bytes / 1e3:.0f} kB).")
            enc = self.metrics[self._variant(ours)]["encode"]
            same = ours.accuracy == packed.accuracy
            lines.append(
                f"  - Huffman coding is lossless: the decoded file's weights equal the weight-"
                f"shared model's bit for bit (checked when the file was written), and its test "
                f"accuracy is {'identical' if same else 'DIFFERENT'} ({_fmt_pct(ours.accuracy)} "
                f"vs {_fmt_pct(packed.accuracy)}). Encoding took {enc['encode_seconds']:.2f} s, "
                f"decoding {enc['decode_seconds']:.2f} s on this CPU.")
            lines += self._standard_lines(m)
            lines += self._tradeoff_lines(m)
            lines += self._control_lines(self._variant(dense), self._variant(pruned))
            lines += self._distillation_lines(m, ours)
            gain = pruned.accuracy - dense.accuracy
            lines.append(
                f"  - Pruning to {pruned.sparsity:.1%} changed top-1 by {100 * gain:+.2f} points "
                f"and weight sharing{self._share_words()} by "
                f"{100 * (ours.accuracy - pruned.accuracy):+.2f} more; the "
                f"pruned .pt file stays {pruned.size_bytes / dense.size_bytes:.2f}× the dense "
                f"size, as the original found: zeros cost 32 bits until they are encoded.")
        controlled = any(c.is_dense_control for c in self.metrics)
        lines.append(
            f"- The compressed models trained more epochs than the dense baseline: gradual "
            f"pruning over {self._each_count('dc_epochs', 'epoch')}, then "
            f"{names.count(self.p['dc_share_epochs'], 'epoch')} of codebook fine-tuning. "
            + ("Each dense control trained its model's gradual-pruning epochs "
               "without pruning: pruned vs control is what pruning itself does, control vs "
               "baseline what the extra training does (the codebook epochs have no control)."
               if controlled else
               "Caution: without an equal-compute dense control (profile `controls`), an "
               "accuracy change cannot be credited to pruning rather than to that training."))
        _md("**What the numbers say.**\n\n" + "\n".join(lines))
