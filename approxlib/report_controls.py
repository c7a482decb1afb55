"""Section H of the report: does pruning itself raise accuracy? Equal-compute dense controls under
the original's protocol and a tuned one, over several seeds; ShrinkBench's baselines (random,
layer-wise magnitude) beside global magnitude on a sparsity curve; per-layer sensitivity and the
ratios it suggests; a verdict generated from the numbers."""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import analysis, methods, names, plots, stats
from . import prune
from .config import curve_protocol, protocol_params, sensitivity_config
from .report import TRAINING_SETTINGS, Section, _augmentation, _fmt_pct, _md, _table


class ControlsSection(Section):
    """Section H. Every number is computed from this run's rows and cached artifacts."""

    letter = "H"

    def __init__(self, run):
        super().__init__(run)
        d = self.df
        self.ratio = float(self.p["ratio"])
        d["finetuned"] = d.finetune_epochs > 0
        d["role"] = analysis.roles(d, self.ratio)
        self.models_in = list(dict.fromkeys(d.model))
        seeds = [int(s) for s in self.p["h_seeds"]]
        runs = d[d.role.isin(list(analysis.ROLE_NAMES)) & d.seed.isin(seeds)]
        self.seeds_df = analysis.learned_runs(runs)
        self.left_out = runs[~runs.index.isin(self.seeds_df.index)]
        self.curve_protocol = curve_protocol(self.p)
        self.curve_seed = seeds[0]
        self.curve = self._curve()
        self._sens: dict[str, pd.DataFrame] = {}

    # ------------------------------------------------------------------------------ captions
    def training_text(self) -> str:
        """Section H trains under its protocols, not as the profile's baselines are: only what
        they share (the profile's settings each protocol starts from, the augmentation)."""
        p = self.p
        shared = [k for k in TRAINING_SETTINGS
                  if not any(k in spec for spec in p["h_protocols"].values())]
        return (f"SGD with {_augmentation(p)} unless a protocol says otherwise"
                + "".join(f", {names.setting(k, p[k])}" for k in shared)
                + f"; checkpoint picked on {p['val_size']:,} validation images")

    def variants_text(self) -> str:
        p = self.p
        protos = "; ".join(f"**{name}**: " + (", ".join(names.setting(k, v)
                                                         for k, v in spec.items())
                                              or "the profile's own settings")
                           for name, spec in p["h_protocols"].items())
        runs = {name: protocol_params(p, name) for name in p["h_protocols"]}  # as they train
        size = _per_protocol({k: "all" if q["train_size"] is None else f"{q['train_size']:,}"
                              for k, q in runs.items()})
        epochs = _per_protocol({k: names.count(q["epochs"], "epoch") for k, q in runs.items()})
        return (f"section H trains on {size} training images per run, for {epochs}, "
                f"with seeds "
                f"{', '.join(map(str, p['h_seeds']))}, under each protocol ({protos}); pruned = "
                f"{self.ratio:.0%} global L1 + "
                f"{names.setting('finetune_epochs', p['finetune_epochs'])}; "
                f"control = the same fine-tuning without pruning")

    def header(self) -> None:
        super().header()
        rates = "; ".join(f"{name} {q['lr']:g} then {q['finetune_lr']:g}" for name, q in (
            (name, protocol_params(self.p, name)) for name in self.p["h_protocols"]))
        _md("The original study's headline, *pruning raises accuracy by up to 15 points*, "
            "compares a model trained at a constant learning rate of 0.1 with the same model "
            f"after more epochs at 0.01 (here: {rates}). The **equal-compute control** is the "
            "dense baseline "
            "fine-tuned exactly as the pruned model is (same epochs, learning rate, data order), "
            "without pruning: *pruned − control* is what pruning itself does, *control − "
            "baseline* what the extra low-learning-rate training does. Each is measured per "
            "seed (paired: the same baseline feeds both) and summarized as a mean with a 95% "
            "Student-t interval over seeds. The sparsity curve adds ShrinkBench's baselines "
            "(random and layer-wise magnitude pruning) and sensitivity-guided per-layer ratios, "
            f"under the {self.curve_protocol} protocol, seed {self.curve_seed}.")

    # ------------------------------------------------------------------------- protocols
    def summary(self) -> pd.DataFrame:
        return analysis.seed_means(self.seeds_df, ["model", "protocol", "role"])

    def differences(self) -> pd.DataFrame:
        """Per model and protocol: paired (by seed) accuracy differences, mean and 95% CI."""
        return analysis.paired_differences(self.seeds_df)

    def left_out_note(self) -> str:
        """The runs `analysis.learned_runs` left out, in words ("" when none was)."""
        if self.left_out.empty:
            return ""
        runs = []
        for (m, pr, seed), g in self.left_out.groupby(["model", "protocol", "seed"], sort=False):
            accs = ", ".join(f"{analysis.ROLE_NAMES[r.role]} {100 * r.val_accuracy:.1f}%"
                             for r in g.itertuples())
            runs.append(f"{names.model(m)}, {pr} protocol, seed {seed} ({accs}; chance on "
                        f"validation {100 * g.val_chance.iloc[0]:.1f}%)")
        return (f"*Left out of the tables, the figure's means and the verdict, because its "
                f"baseline or dense control did not learn (top-1 on validation within "
                f"{100 * analysis.CHANCE_MARGIN:.0f} points of chance): " + "; ".join(runs)
                + ". Its rows stay in results.csv.*")

    def table_protocols(self) -> None:
        if self.left_out_note():
            _md(self.left_out_note())
        if self.seeds_df.empty:
            _md("*No run is left to compare.*")
            return
        s = self.summary()
        t = pd.DataFrame({
            "model": s.model.map(names.model), "protocol": s.protocol,
            "variant": s.role.map(analysis.ROLE_NAMES), "seeds": s.n,
            "top-1 mean (%)": 100 * s["mean"], "sd (points)": 100 * s.sd,
            "95% CI (%)": [_interval(r, clip=True) for r in s.itertuples()],
        })
        _table(t)
        _md(self.caption("Table", f"Baseline, equal-compute dense control and {self.ratio:.0%} "
                         f"pruned model per protocol: mean top-1 over seeds, standard deviation "
                         f"and 95% t-interval of the mean (cut at 0 and 100%)"))
        d = self.differences()
        t = pd.DataFrame({
            "model": d.model.map(names.model), "protocol": d.protocol,
            "difference": d.difference, "seeds": d.n,
            "mean (points)": 100 * d["mean"],
            "95% CI (points)": [_interval(r, signed=True) for r in d.itertuples()],
            "verdict": [stats.interval_words(r) for r in d.to_dict("records")],
        })
        _table(t)
        _md(self.caption("Table", "Paired accuracy differences (same seed), mean and 95% "
                         "t-interval over seeds, every seed scored on the same test images (the "
                         "interval is the spread between training runs; the test images' own "
                         "sampling error is not in it); 'within noise' when the interval "
                         "contains 0, 'no interval' where none can be estimated (–: one seed, "
                         "or the same difference in every seed)"))

    def fig_protocols(self) -> None:
        if self.seeds_df.empty:
            return
        self._figure(plots.protocol_bars(self.summary(), self.seeds_df),
                     "Mean top-1 over seeds with 95% intervals (bars) and each seed (dots): "
                     "baseline, equal-compute dense control, pruned + fine-tuned")

    # ------------------------------------------------------------------------- the curve
    def _curve(self) -> pd.DataFrame:
        d = self.df
        c = d[(d.protocol == self.curve_protocol) & (d.seed == self.curve_seed)
              & (d.prune_ratio > 0) & analysis.uncontrolled(d)
              & d.prune_method.isin(self.p["h_curve_methods"])
              & d.model.isin(self.p["h_curve_models"])
              & d.prune_ratio.isin([float(x) for x in self.p["h_curve_sparsities"]])].copy()
        c["ratio_x"] = analysis.weight_ratio(c.sparsity)
        return c

    def _dense(self, model: str) -> pd.Series:
        d = self.df
        return d[(d.model == model) & (d.role == analysis.BASELINE)
                 & (d.protocol == self.curve_protocol) & (d.seed == self.curve_seed)].iloc[0]

    def fig_curve(self) -> None:
        if self.curve.empty:
            _md("*No sparsity curve in this run (`h_curve_models` is empty or excludes these "
                "models).*")
            return
        dense = {m: self._dense(m).accuracy for m in dict.fromkeys(self.curve.model)}
        self._figure(plots.sparsity_curve(self.curve, dense),
                     "Top-1 accuracy against the ratio of weights to non-zero weights in the "
                     "pruned layers (1 / (1 − sparsity); not file bytes; log scale) for each "
                     "pruning method, fine-tuned (solid) and not (dashed)" + self._chance_note())

    def table_curve(self) -> None:
        if self.curve.empty:
            return
        c = self.curve.sort_values(["model", "finetuned", "prune_ratio"])
        t = c.pivot_table(index=["model", "finetuned", "prune_ratio"], columns="prune_method",
                          values="accuracy", sort=False) * 100
        t = t[[m for m in self.p["h_curve_methods"] if m in t.columns]]
        t.columns = [names.method(m) for m in t.columns]
        t = t.reset_index()
        t.insert(0, "model", t.pop("model").map(names.model))
        t["fine-tuned"] = t.pop("finetuned").map({True: "yes", False: "no"})
        t["weights / non-zero (×)"] = analysis.weight_ratio(t.pop("prune_ratio"))
        _table(t, {"weights / non-zero (×)": 1})
        _md(self.caption("Table", "Top-1 test accuracy (%) of each method at each ratio of "
                         "weights to non-zero weights in the pruned layers (1 / (1 − "
                         "sparsity); not file bytes, which section F measures), with and "
                         "without fine-tuning" + self._chance_note()))

    def _chance_note(self) -> str:
        """The curve's chance level, and how many of its entries sit at it: smoke's 10.00%
        entries went unnamed, one with a McNemar p of 5.6e-84 beside it (a referee,
        2026-12-07)."""
        c = self.curve
        if "chance" not in c or c.chance.isna().all():
            return ""
        lo, hi = c.chance.min(), c.chance.max()
        level = _fmt_pct(lo) if abs(hi - lo) < 5e-5 else f"{_fmt_pct(lo)}–{_fmt_pct(hi)}"
        n = int(analysis.at_chance(c).sum())
        return (f"; chance, always naming the most frequent test class, is {level}"
                + (f": {n} of the {len(c)} entries are within "
                   f"{100 * analysis.CHANCE_MARGIN:.0f} points of it, models the pruning left "
                   f"guessing (a comparison with them says only that)" if n else ""))

    # ---------------------------------------------------------------------- sensitivity
    def sensitivity(self, model: str) -> pd.DataFrame:
        """The cached per-layer sensitivity rows of a curve model, with accuracy drops."""
        if model not in self._sens:
            rows = next(t for (m, _), t in self.run.sensitivity.items() if m == model)["rows"]
            base = next(r["accuracy"] for r in rows if r["layer"] is None)
            t = pd.DataFrame([r for r in rows if r["layer"] is not None])
            t["drop"] = 100 * (base - t.accuracy)
            t.attrs["rows"], t.attrs["base"] = rows, base
            self._sens[model] = t
        return self._sens[model]

    def _sens_models(self) -> list[str]:
        return [m for m in self.p["h_curve_models"] if m in self.models_in
                and any(k[0] == m for k in self.run.sensitivity)]

    def fig_sensitivity(self) -> None:
        sc = sensitivity_config(self.p)
        for m in self._sens_models():
            self._figure(plots.sensitivity_heatmap(self.sensitivity(m), m),
                         f"{names.model(m)}: validation accuracy drop with one layer at a time "
                         f"pruned (first {sc.images:,} validation images)")

    def table_layer_ratios(self) -> None:
        for m in self._sens_models():
            t = self.sensitivity(m)
            layers = t.drop_duplicates("layer")[["layer", "weights"]].reset_index(drop=True)
            for s in self.p["h_curve_sparsities"]:
                ratios = prune.sensitivity_ratios(t.attrs["rows"], float(s))
                layers[f"@{float(s):.1%}"] = [round(100 * ratios[n], 1) for n in layers.layer]
            _table(layers, default=1)
            _md(self.caption("Table", f"{names.model(m)}: the sensitivity-guided method's "
                             f"per-layer pruning ratios (%) at each overall sparsity"))

    # -------------------------------------------------------------------------- verdict
    def verdict(self) -> None:
        diffs, summary = self.differences(), self.summary()
        lines = [self._model_verdict(m, diffs, summary) for m in self.models_in]
        if not diffs.empty:
            lines.append(self._claim_verdict(diffs))
        _md("**Verdict.**\n\n" + "\n".join(lines + self._curve_verdict()))

    def _model_verdict(self, m: str, diffs: pd.DataFrame, summary: pd.DataFrame) -> str:
        """One model's protocols: what pruning + fine-tuning, the fine-tuning alone and pruning
        itself change, each over the seeds that protocol kept (`analysis.learned_runs`)."""
        parts = []
        for pr in self.p["h_protocols"]:
            def get(name, frame=diffs, key="difference"):
                r = frame[(frame.model == m) & (frame.protocol == pr) & (frame[key] == name)]
                return r.iloc[0].to_dict() if len(r) else None
            pc, pb, cb = (get(x) for x in (analysis.PRUNED_VS_CONTROL,
                                           analysis.PRUNED_VS_BASELINE,
                                           analysis.CONTROL_VS_BASELINE))
            if pc is None:
                continue
            base = get(analysis.BASELINE, summary, "role")
            parts.append(
                f"under the **{pr}** protocol ({int(pc['n'])} seed{'s' * (pc['n'] > 1)}, "
                f"baseline {100 * base['mean']:.2f}%), pruning then fine-tuning changes top-1 "
                f"by {_pts(pb)} against the baseline, the same fine-tuning without pruning by "
                f"{_pts(cb)}, so pruning itself contributes **{_pts(pc)}**"
                + ("" if stats.no_interval(pc) else f" ({stats.interval_words(pc)})"))
        if not parts:
            return (f"- **{names.model(m)}**: in no seed did both the baseline and its dense "
                    f"control learn, so there is nothing to compare.")
        return (f"- **{names.model(m)}** ({self.ratio:.0%} global L1): " + "; ".join(parts)
                + ".")

    def _claim_verdict(self, diffs: pd.DataFrame) -> str:
        """The original's claim against the controls: pruned − control beyond noise anywhere?"""
        def where(rows) -> str:
            return ", ".join(f"{names.model(r['model'])} ({r['protocol']})" for r in rows)
        gains = diffs[diffs.difference == analysis.PRUNED_VS_CONTROL].to_dict("records")
        real_gain = [r for r in gains if stats.direction(r) > 0]  # beyond noise
        real_loss = [r for r in gains if stats.direction(r) < 0]
        untested = [r for r in gains if stats.no_interval(r)]
        big_lr = diffs[diffs.difference == analysis.CONTROL_VS_BASELINE]
        return ("- **On the original's claim**: "
                + ("pruned − control has no interval in any model and protocol (one seed, or "
                   "the same difference in every seed), so pruning's own effect is untested; "
                   if len(untested) == len(gains) else
                   "in no model and protocol is pruned − control above zero beyond the noise "
                   "between seeds; " if not real_gain else
                   f"pruned − control is above zero beyond the noise between seeds in "
                   f"{where(real_gain)}; ")
                + (f"it is below zero beyond that noise in {where(real_loss)}; "
                   if real_loss else "")
                + (f"it has no interval in {where(untested)}; "
                   if untested and len(untested) < len(gains) else "")
                + "the extra fine-tuning alone moves the baseline by "
                + ", ".join(f"{_pts(r)} ({names.model(r['model'])}, {r['protocol']})"
                            for r in big_lr.to_dict("records"))
                + self._training_effect(big_lr))

    @staticmethod
    def _training_effect(control_gain: pd.DataFrame) -> str:
        """What control − baseline says, worded by its intervals: a move within seed noise is
        no evidence that the extra training, rather than chance, moved the baseline."""
        rows = control_gain.to_dict("records")
        up, down = ([f"{names.model(r['model'])} ({r['protocol']})" for r in rows
                     if stats.direction(r) == sign] for sign in (1, -1))
        if control_gain.lo.isna().all():
            why = ("one seed" if (control_gain.n < 2).all() else
                   "one seed, or seeds with the same difference")
            return (f". There is no interval ({why}): these moves cannot be told from "
                    f"seed-to-seed noise.")
        none = [f"{names.model(r['model'])} ({r['protocol']})" for r in rows
                if stats.no_interval(r)]
        if not up and not down:
            return (". No interval excludes zero" + (f" ({', '.join(none)} without one)"
                                                     if none else "")
                    + ": over these seeds the extra training's effect cannot be told from "
                    "seed-to-seed noise.")
        return "".join(
            [f". It raises the baseline beyond noise in {', '.join(up)}: there, a gain from "
             f"'pruning' that the dense control matches is the extra training (its "
             f"learning-rate schedule), not pruning" if up else "",
             f". It lowers the baseline beyond noise in {', '.join(down)}: there, a loss to "
             f"pruning that the dense control shares is the extra training, not pruning"
             if down else ""]) + "."

    def _curve_verdict(self) -> list[str]:
        """Per curve model: each sensitivity-guided method against global magnitude at every
        point (McNemar), and how far random pruning trails it."""
        shown = list(dict.fromkeys(self.curve.prune_method))
        guided = [m for m in shown if prune.guided(m)]
        rand = [m for m in shown if not prune.informed(m)]
        if not guided:
            return []
        out = []
        for m in dict.fromkeys(self.curve.model):
            for method in guided:
                pairs = analysis.method_pairs(self.curve, method, methods.REFERENCE)
                if (pairs.model == m).any():
                    out += self._guided_lines(pairs[pairs.model == m], method)
            for r in rand:
                pairs = analysis.method_pairs(self.curve, r, methods.REFERENCE)
                if (pairs.model == m).any():
                    out.append(self._random_line(pairs[pairs.model == m], r))
        return out

    def _random_line(self, pairs: pd.DataFrame, method: str) -> str:
        """How far an uninformed method trails global magnitude over the curve; "magnitude
        carries information" only where it is below beyond noise (McNemar) at some point and
        above beyond noise at none (a referee saw the claim made from a 0.1-point gap)."""
        gap = (-100 * pairs["diff"]).round(1) + 0.0  # no "-0.0"
        real = [np.sign(r.diff) for r in pairs.itertuples()
                if stats.significant(self.mcnemar(r.b, r.a)["p_value"])]
        below, above = real.count(-1), real.count(1)
        verdict = (f": below it beyond noise at {below} of {len(pairs)} points (McNemar), so "
                   f"magnitude carries information, as ShrinkBench's baseline is meant to show."
                   if below and not above else
                   f": beyond noise (McNemar) below it at {below} and above it at {above} of "
                   f"{len(pairs)} points." if real else
                   f": within test-image noise (McNemar) at all {len(pairs)} points.")
        return (f"  - {names.method(method).capitalize()} pruning scores "
                f"{_gap_words(gap.min(), gap.max())} {names.method(methods.REFERENCE)} over "
                f"the curve" + verdict)

    def _guided_lines(self, pairs: pd.DataFrame, method: str) -> list[str]:
        points, wins, real = [], 0, 0
        for r in pairs.itertuples():
            p = self.mcnemar(r.b, r.a)["p_value"]
            d = 100 * r.diff
            points.append(f"{analysis.weight_ratio(r.prune_ratio):.0f}× "
                          f"{'fine-tuned' if r.finetuned else 'not fine-tuned'}: "
                          f"{100 * r.a_acc:.2f}% vs {100 * r.b_acc:.2f}% ({d:+.2f} "
                          f"points, McNemar {stats.p_words(p)})")
            wins += d > 0
            real += d > 0 and stats.significant(p)
        what = (f"{names.method(method)} pruning scores above "
                f"{names.method(methods.REFERENCE)}")
        head = (f"{what} at {wins} of {len(points)} points, beyond noise at {real} (McNemar at "
                f"5% per point, not corrected for the {len(points)} tests)"
                if wins else f"{what} at none of the {len(points)} points")
        return [f"- **{names.model(pairs.model.iloc[0])} sparsity curve** "
                f"({self.curve_protocol} protocol, seed {self.curve_seed}, one run per point): "
                f"{head}. " + "; ".join(points) + "."]


def _per_protocol(values: dict) -> str:
    """One value when every protocol has it, else each protocol's: "2,000 (original), all
    (tuned)"."""
    if len(set(values.values())) == 1:
        return str(next(iter(values.values())))
    return ", ".join(f"{v} ({k})" for k, v in values.items())


def _gap_words(lo: float, hi: float) -> str:
    """How far below (positive) or above (negative) a reference a method scores over a
    curve, from the smallest to the largest gap in points: "0.0 to 64.7 points below"."""
    if lo >= 0:
        return f"{lo:.1f} to {hi:.1f} points below"
    if hi <= 0:
        return f"{-hi:.1f} to {-lo:.1f} points above"
    return f"from {-lo:.1f} points above to {hi:.1f} points below"


def _interval(r, signed: bool = False, clip: bool = False) -> str:
    """A 95% interval in percent or points; `clip`: an accuracy's, cut to 0-100% (a
    t-interval over three seeds can run past both ends)."""
    lo, hi = (r["lo"], r["hi"]) if isinstance(r, dict) else (r.lo, r.hi)
    if lo != lo:  # NaN: one seed
        return "–"
    if clip:
        lo, hi = max(lo, 0.0), min(hi, 1.0)
    f = "{:+.2f}" if signed else "{:.2f}"
    return f"{f.format(100 * lo)} to {f.format(100 * hi)}"


def _pts(r: dict) -> str:
    if stats.no_interval(r):  # stats.mean_ci: one seed, or every seed's difference the same
        return f"{100 * r['mean']:+.2f} points ({stats.no_interval(r)}, no interval)"
    return (f"{100 * r['mean']:+.2f} points (95% CI {100 * r['lo']:+.2f} to "
            f"{100 * r['hi']:+.2f})")
