"""Section F of the report: Deep Compression's stages, the .apx format against what a user would
try first, the bits-vs-accuracy curve and the per-layer storage, with generated findings."""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import data as D
from . import analysis, names, plots, stats
from . import store as S
from .config import per_model
from .pipeline import Runner
from .report import Section, _display, _fmt_pct, _md

STAGES = analysis.COMPRESSION_STAGES


class CompressionSection(Section):
    """Section F. Everything shown is computed from this run's rows and cached artifacts."""

    def __init__(self, *args, **kw):
        super().__init__("F", *args, **kw)
        self._drop_controls()
        self.models_in = list(dict.fromkeys(self.df.model))
        self.curves = self._load_curves()

    def _load_curves(self) -> pd.DataFrame:
        runner = Runner(self.p, self.store, self.data_dir, progress=False)
        rows = []
        for v in self.metrics:
            if v.prune_method == "gradual-l1" and v.quant == "none" and v.codec == "none":
                rows += [{"model": v.model, "sparsity": v.prune_ratio, **pt}
                         for pt in runner.bits_curve(v)]
        return pd.DataFrame(rows)

    def _row(self, model: str, stage: str) -> pd.Series:
        return analysis.stage_row(self.df, model, stage)

    def variants_text(self) -> str:
        p = self.p
        return (f"compressed models pruned gradually from the trained baseline over "
                f"{p['dc_epochs']} epoch(s) (lr {p['dc_lr']}, {p['finetune_schedule']}; mask "
                f"update every {p['dc_every']} steps over the first {p['dc_ramp']:.0%} of "
                f"them), then codebooks fine-tuned {p['dc_share_epochs']} epoch(s) at lr "
                f"{p['dc_share_lr']}; checkpoints picked on the validation split among epochs "
                f"at the final sparsity")

    def stages(self) -> pd.DataFrame:
        return analysis.compression_stages(self.df)

    # ------------------------------------------------------------------------------ content
    def header(self) -> None:
        super().header()
        p = self.p
        sp = ", ".join(f"{names.model(m)} {per_model(p, 'dc_sparsity', m):.0%}"
                       for m in self.models_in)
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
            f"file bytes.")

    def table(self) -> None:
        t = self.stages()
        out = pd.DataFrame({
            "model": t.model.map(names.model), "stage": t.stage,
            "top-1 (%)": (t.accuracy * 100).round(2),
            "95% CI (%)": [f"{100 * a:.1f}–{100 * b:.1f}" for a, b in zip(t.acc_lo, t.acc_hi)],
            "Δ vs dense (points)": (t.delta * 100).round(2),
            "size (kB)": (t.size_bytes / 1e3).round(1), "ratio (×)": t.ratio.round(1),
            "bits / non-zero weight": t.bits_per_nonzero.round(2),
            "weight bits (conv/fc)": t.weight_bits, "sparsity (%)": (t.sparsity * 100).round(1),
        })
        _display(out.style.hide(axis="index").format(precision=2))
        _md(self.caption("Table", "Deep Compression's stages, each a real file: size, ratio "
                         "against the dense float32 checkpoint, and test accuracy"))

    def baselines_table(self) -> None:
        rows = []
        for m in self.models_in:
            pruned = self._row(m, "pruned (.pt)")
            ours = self._row(m, "+ Huffman coding")
            for codec in ("none", "gzip", "xz", "zstd"):
                r = self.df[(self.df.model == m) & (self.df.quant == "none")
                            & (self.df.prune_ratio == pruned.prune_ratio)
                            & (self.df.codec == codec)].iloc[0]
                rows.append({"model": names.model(m),
                             "file": "pruned checkpoint (.pt)" if codec == "none"
                             else f"pruned checkpoint + {codec}",
                             "size (kB)": round(r.size_bytes / 1e3, 1),
                             "ratio (×)": round(r.compression_ratio, 1),
                             ".apx (Huffman) is smaller by (×)": round(r.size_bytes / ours.size_bytes, 2)})
        _display(pd.DataFrame(rows).style.hide(axis="index").format(precision=2))
        _md(self.caption("Table", "What a user would try first: general-purpose compressors "
                         "(gzip -9, xz -9e, zstd -19) on the same pruned float32 checkpoint, "
                         "against our Huffman-coded .apx file"))

    def fig_stages(self) -> None:
        self._figure(plots.compression_stages(self.stages()),
                     "Compression ratio (log scale) and top-1 accuracy (95% intervals) at each "
                     "stage")

    def fig_bits(self) -> None:
        dense = {m: self._row(m, STAGES[0][0]).accuracy for m in self.models_in}
        tuned = {}
        for m in self.models_in:
            r = self._row(m, "+ Huffman coding")
            bits = int(str(r.weight_bits).split("/")[0])
            tuned[m] = (bits, r.accuracy)
        self._figure(plots.bits_curve(self.curves, dense, tuned),
                     "Test accuracy against codebook bits (k-means centroids without "
                     "fine-tuning; the star is the fine-tuned codebook the .apx file stores)")

    def _tensor_stats(self, model: str) -> pd.DataFrame:
        r = self._row(model, "+ Huffman coding")
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
            S.write_text(self.out / f"compression_layers_{m}.csv", t.to_csv(index=False))
        m = self.models_in[0]
        t = self._tensor_stats(m)
        out = pd.DataFrame({
            "layer": t.layer, "weights": t.numel,
            "kept (%)": ((1 - t.sparsity) * 100).round(1), "codebook": t.codebook,
            "index bits/nz": t.index_bits.round(2), "value bits/nz": t.value_bits.round(2),
            "bytes": t["bytes"], "ratio vs fp32 (×)": (4 * t.numel / t["bytes"]).round(1),
        })
        _display(out.style.hide(axis="index").format(precision=2))
        _md(self.caption("Table", f"{names.model(m)} per layer, as in Deep Compression's "
                         f"tables (every model's table is in the report's "
                         f"`compression_layers_<model>.csv`)"))

    # ----------------------------------------------------------------------------- findings
    def findings(self) -> None:
        y = D.source(self.dataset).labels("test", self.data_dir).numpy()
        lines = []
        for m in self.models_in:
            dense, pruned = self._row(m, STAGES[0][0]), self._row(m, "pruned (.pt)")
            packed, ours = self._row(m, "+ weight sharing"), self._row(m, "+ Huffman coding")
            pd_, po = (np.asarray(self.metrics[self._variant(r)]["predictions"])
                       for r in (dense, ours))
            test = stats.mcnemar(y, pd_, po)
            drop = dense.accuracy - ours.accuracy
            lines.append(
                f"- **{names.model(m)}**: {dense.size_bytes / 1e6:.2f} MB → "
                f"{ours.size_bytes / 1e3:.0f} kB, **{ours.compression_ratio:.1f}×** "
                f"(pruning + sparse encoding {self._row(m, 'pruned, sparse-encoded').compression_ratio:.1f}×, "
                f"+ weight sharing {packed.compression_ratio:.1f}×, + Huffman "
                f"{ours.compression_ratio:.1f}×); top-1 {_fmt_pct(dense.accuracy)} → "
                f"{_fmt_pct(ours.accuracy)} ({-100 * drop:+.2f} points; McNemar p = "
                f"{test['p_value']:.3g}, "
                f"{'within noise' if test['p_value'] >= 0.05 else 'a real difference'}).")
            xz = self.df[(self.df.model == m) & (self.df.codec == "xz")].iloc[0]
            best = self.df[(self.df.model == m) & self.df.codec.isin(["gzip", "xz", "zstd"])]
            best = best.loc[best.size_bytes.idxmin()]
            lines.append(
                f"  - Against xz -9e on the same pruned checkpoint ({xz.size_bytes / 1e3:.0f} kB) "
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
            lines += self._control_lines(self._variant(dense), self._variant(pruned), y)
            gain = pruned.accuracy - dense.accuracy
            lines.append(
                f"  - Pruning to {pruned.sparsity:.1%} changed top-1 by {100 * gain:+.2f} points "
                f"and weight sharing by {100 * (ours.accuracy - pruned.accuracy):+.2f} more; the "
                f"pruned .pt file stays {pruned.size_bytes / dense.size_bytes:.2f}× the dense "
                f"size, as the original found: zeros cost 32 bits until they are encoded.")
        controlled = any(c.is_control for c in self.metrics)
        lines.append(
            f"- The compressed models trained {self.p['dc_epochs']} + "
            f"{self.p['dc_share_epochs']} more epochs than the dense baseline. "
            + (f"The dense control trained the {self.p['dc_epochs']} gradual-pruning epochs "
               f"without pruning: pruned vs control is what pruning itself does, control vs "
               f"baseline what the extra training does (the codebook epochs have no control)."
               if controlled else
               "Caution: without an equal-compute dense control (profile `controls`), an "
               "accuracy change cannot be credited to pruning rather than to that training."))
        _md("**What the numbers say.**\n\n" + "\n".join(lines))
