"""Figures from results DataFrames. Every axis carries its unit; callers add the caption."""
from __future__ import annotations

import textwrap

import matplotlib
import matplotlib.lines
import matplotlib.ticker

matplotlib.use("Agg")  # headless: papermill, CI and the PDF renderer have no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from . import analysis, methods, names, quants, runtimes  # noqa: E402

MB = 1e6


def _log_ticks(ax, which: str = "x") -> None:
    """A log axis labelled at 1, 2 and 5 × each power of ten (plain numbers), so values can be
    read off it; matplotlib's default labels only the powers of ten."""
    getattr(ax, f"set_{which}scale")("log")
    axis = getattr(ax, f"{which}axis")
    axis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=(1, 2, 5)))
    axis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    axis.set_minor_locator(matplotlib.ticker.LogLocator(base=10, subs="auto"))
    axis.set_minor_formatter(matplotlib.ticker.NullFormatter())
# One colour per model, in the order models appear (the first two as before; any number works).
MODEL_COLORS = ["#4C72B0", "#DD8452", "#55A868", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C",
                "#CCB974", "#64B5CD", "#C44E52"]
COLORS = {"none": "#4C72B0", "pruned": "#DD8452", "quantized": "#55A868"}
plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 110, "font.size": 9,
                     "axes.spines.top": False, "axes.spines.right": False})


def _color(r) -> str:
    if names.is_control(r):
        return "#8C8C8C"
    if r.quant != quants.NONE.key:
        return COLORS["quantized"]
    return COLORS["none"] if r.prune_ratio == 0 else COLORS["pruned"]


def _yerr(r) -> list | None:
    """95% interval of a row's accuracy (points), when the caller added acc_lo/acc_hi."""
    if not hasattr(r, "acc_lo"):
        return None
    return [[100 * (r.accuracy - r.acc_lo)], [100 * (r.acc_hi - r.accuracy)]]


def accuracy_rows(df: pd.DataFrame) -> plt.Figure:
    """Accuracy (with its 95% interval where given), one row per variant: `acc_vs_size` where
    every file has one size, whose variants stacked on one vertical line and hid each other."""
    d = df.sort_values("accuracy")
    fig, ax = plt.subplots(figsize=(6.2, 0.9 + 0.38 * len(d)))
    for i, r in enumerate(d.itertuples()):
        err = _yerr(r)
        ax.errorbar(r.accuracy * 100, i, xerr=err, fmt="o", ms=7, color=_color(r), capsize=3)
    ax.set_yticks(range(len(d)), [names.variant_label(r) for r in d.itertuples()], fontsize=8)
    ax.set_xlabel("Top-1 test accuracy (%)")
    ax.set_ylim(-0.6, len(d) - 0.4)
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return fig


def acc_vs_size(df: pd.DataFrame) -> plt.Figure:
    """Accuracy (with its 95% interval where given) against size on disk."""
    fig, ax = plt.subplots(figsize=(6.2, 3.4))
    # Variants of equal size sit on one vertical line: stagger their labels by accuracy rank
    # among them (ranked over every variant, a small model's labels ran into the x axis)
    d = df.sort_values("accuracy", ascending=False)
    ranks = d.groupby((d.size_bytes / MB).round(1), sort=False).cumcount()
    for rank, r in zip(ranks, d.itertuples()):
        ax.errorbar(r.size_bytes / MB, r.accuracy * 100, yerr=_yerr(r), fmt="o", ms=7,
                    color=_color(r), capsize=3, zorder=3)
        ax.annotate(names.variant_label(r), (r.size_bytes / MB, r.accuracy * 100), fontsize=8,
                    xytext=(8, 10 - 13 * rank), textcoords="offset points",
                    arrowprops={"arrowstyle": "-", "color": "0.6", "lw": 0.5})
    ax.set_xlabel("Size on disk (MB)")
    ax.set_ylabel("Top-1 test accuracy (%)")
    ax.grid(alpha=0.3)
    lo, hi = (df.size_bytes.min() / MB, df.size_bytes.max() / MB)
    pad = max(0.05 * hi, hi - lo) * 0.6
    ax.set_xlim(max(0, lo - pad), hi + pad * 1.8)
    fig.tight_layout()
    return fig


def metric_bars(df: pd.DataFrame) -> plt.Figure:
    """Accuracy, batch-1 latency and size side by side, one bar per variant; the model's name
    once, as the title, where all bars are one model's (repeated under each bar, the labels
    ran into each other)."""
    fig, axes = plt.subplots(1, 3, figsize=(9.5, 3.4))
    one = df.model.nunique() == 1
    labels = [textwrap.fill(names.variant_label(r).removeprefix(
                  f"{names.model(r.model)} " if one else ""), 9) for r in df.itertuples()]
    if one:
        fig.suptitle(names.model(df.model.iloc[0]), fontsize=9)
    colors = [_color(r) for r in df.itertuples()]
    specs = [("accuracy", 100, "Top-1 test accuracy (%)", "{:.1f}"),
             ("latency_ms", 1, "CPU latency, batch 1 (ms)", "{:.2f}"),
             ("size_bytes", 1 / MB, "Size on disk (MB)", "{:.2f}")]
    for ax, (col, scale, ylabel, fmt) in zip(axes, specs):
        vals = df[col] * scale
        bars = ax.bar(range(len(vals)), vals, color=colors)
        ax.bar_label(bars, [fmt.format(v) for v in vals], fontsize=7, padding=2)
        ax.set_xticks(range(len(vals)), labels, fontsize=7)
        ax.set_ylabel(ylabel)
        ax.set_ylim(0, vals.max() * 1.18)
    fig.tight_layout()
    return fig


def vs_ratio(df: pd.DataFrame) -> plt.Figure:
    """Accuracy, latency and size against the pruning ratio (section C); an equal-compute dense
    control, where given, as a dashed line on the accuracy axis."""
    controls = df[[names.is_control(r) for r in df.itertuples()]]
    d = df[[not names.is_control(r) for r in df.itertuples()]].sort_values("prune_ratio")
    x = d.prune_ratio * 100
    fig, axes = plt.subplots(1, 3, figsize=(9.5, 3.1))
    specs = [(d.accuracy * 100, "Top-1 test accuracy (%)"),
             (d.latency_ms, "CPU latency, batch 1 (ms)"),
             (d.size_bytes / MB, "Size on disk (MB)")]
    for ax, (y, ylabel) in zip(axes, specs):
        ax.plot(x, y, "o-", color=COLORS["pruned"])
        if ylabel.startswith("Top-1") and len(controls):
            ax.axhline(100 * controls.accuracy.iloc[0], color="#8C8C8C", ls="--", lw=1,
                       label="dense control")
        if ylabel.startswith("Top-1") and "acc_lo" in d:
            ax.fill_between(x, d.acc_lo * 100, d.acc_hi * 100, color=COLORS["pruned"],
                            alpha=0.2, label="95% interval")
            ax.legend(fontsize=7)
        ax.set_xlabel("Pruning ratio (% of Conv/Linear weights)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if not ylabel.startswith("Top-1"):  # from zero: a 2% latency spread drew a steep V
            ax.set_ylim(0, y.max() * 1.15)
    fig.tight_layout()
    return fig


def layer_sparsity(layers: dict[float, pd.DataFrame]) -> plt.Figure:
    """Per-layer sparsity (%) for each pruning ratio; layers in network order."""
    fig, ax = plt.subplots(figsize=(9.5, 3.6))
    first = next(iter(layers.values()))
    for ratio, t in sorted(layers.items()):
        ax.plot(range(len(t)), t.sparsity * 100, "o-", ms=3, label=f"{ratio:.0%} global")
    ax.set_xticks(range(len(first)), first.layer, rotation=90, fontsize=6)
    ax.set_ylabel("Zero weights in layer (%)")
    ax.set_xlabel("Layer (network order)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, title="pruning ratio", title_fontsize=7)
    fig.tight_layout()
    return fig


def models_side_by_side(df: pd.DataFrame) -> plt.Figure:
    """Section E: each model's baseline and pruned variant, per metric."""
    models = list(dict.fromkeys(df.model))
    control = pd.Series([names.is_control(r) for r in df.itertuples()], index=df.index)
    groups = sorted({(r.prune_ratio, bool(c)) for r, c in zip(df.itertuples(), control)},
                    key=lambda g: (g[0], not g[1]))  # baseline, control, pruned
    fig, axes = plt.subplots(1, 3, figsize=(9.5, 3.2))
    specs = [("accuracy", 100, "Top-1 test accuracy (%)", "{:.1f}"),
             ("latency_ms", 1, "CPU latency, batch 1 (ms)", "{:.2f}"),
             ("size_bytes", 1 / MB, "Size on disk (MB)", "{:.1f}")]
    width = 0.8 / len(groups)
    for ax, (col, scale, ylabel, fmt) in zip(axes, specs):
        for j, (ratio, ctl) in enumerate(groups):
            vals = [df[(df.model == m) & (df.prune_ratio == ratio) & (control == ctl)][col].mean()
                    * scale for m in models]
            bars = ax.bar([i + j * width for i in range(len(models))], vals, width,
                          color="#8C8C8C" if ctl else COLORS["none"] if ratio == 0
                          else COLORS["pruned"],
                          label="dense control" if ctl else "baseline" if ratio == 0
                          else f"pruned {ratio:.0%}")
            ax.bar_label(bars, [fmt.format(v) for v in vals], fontsize=7, padding=2)
        ax.set_xticks([i + width * (len(groups) - 1) / 2 for i in range(len(models))],
                      [names.model(m) for m in models])
        ax.set_ylabel(ylabel)
        ax.set_ylim(0, ax.get_ylim()[1] * 1.12)
    _legend_below(fig, *axes[0].get_legend_handles_labels(), len(groups), 0.07)
    return fig


# ------------------------------------------------------------------------------ section F

def compression_stages(stages: pd.DataFrame) -> plt.Figure:
    """Deep Compression's stages per model: compression ratio (log scale) and accuracy."""
    models = list(dict.fromkeys(stages.model))
    order = list(dict.fromkeys(stages.stage))
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.4))
    width = 0.8 / len(models)
    palette = MODEL_COLORS
    for j, m in enumerate(models):
        d = stages[stages.model == m].set_index("stage").reindex(order)
        xs = [i + j * width for i in range(len(order))]
        bars = axes[0].bar(xs, d.ratio, width, color=palette[j % len(palette)],
                           label=names.model(m))
        axes[0].bar_label(bars, [f"{v:.1f}×" for v in d.ratio], fontsize=7, padding=2)
        axes[1].errorbar(xs, d.accuracy * 100, yerr=[(d.accuracy - d.acc_lo) * 100,
                                                     (d.acc_hi - d.accuracy) * 100],
                         fmt="o", color=palette[j % len(palette)], capsize=3, label=names.model(m))
    ticks = [i + width * (len(models) - 1) / 2 for i in range(len(order))]
    short = {s.label: s.short for s in analysis.COMPRESSION_STAGES}
    labels = [short.get(n, n) for n in order]
    _log_ticks(axes[0], "y")
    axes[0].set_ylabel("Compression ratio vs dense fp32 (×, log scale)")
    axes[0].set_ylim(0.8, stages.ratio.max() * 2.5)
    axes[1].set_ylabel("Top-1 test accuracy (%)")
    for ax in axes:
        ax.set_xticks(ticks, labels, fontsize=7)
        ax.grid(alpha=0.3, axis="y")
    axes[0].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


# How each kind of file is drawn; `grid`: one shade per final sparsity (darker: sparser), the
# codebook bits written beside each point
KIND_STYLE = {
    "curve": {"marker": "o", "color": "#8172B3", "grid": True,
              "label": ".apx, k-means (no fine-tuning): shade = sparsity, digits = bits"},
    "apx": {"marker": "*", "color": "#DD8452", "grid": False,
            "label": ".apx, fine-tuned codebook (the file section F ships)"},
    "apx-kd": {"marker": "*", "color": "#4C72B0", "grid": False,
               "label": "the same, fine-tuned by distillation"},
    # red: the grid's viridis shades run through green, in which NNCodec's ▼ were lost
    "nncodec": {"marker": "s", "color": "#C44E52", "grid": False,
                "label": "NNCodec (MPEG NNC), by qp"},
}


def bits_curve(curve: pd.DataFrame, dense: dict, tuned: dict) -> plt.Figure:
    """Test accuracy against codebook bits (k-means, no fine-tuning), per model, a line per
    final sparsity (darker: sparser); the best dense model's accuracy (`dense`) and the 1-point
    budget as lines; the fine-tuned codebook (`tuned`: model → bits, accuracy, sparsity) as a
    star."""
    models = list(dict.fromkeys(curve.model))
    fig, axes = plt.subplots(1, len(models), figsize=(4.8 * len(models), 4.0), squeeze=False)
    for ax, m in zip(axes[0], models):
        d = curve[curve.model == m].sort_values("bits")
        levels = sorted(d.sparsity.unique())
        # 6 points below the dense model (or the best point, if lower), lowered where that
        # would hide most points (`_floor`): a collapsed width (k-means at 2 bits) sits on the
        # bottom edge as ▼ instead of squeezing the range
        shown = [*d.accuracy * 100, *([tuned[m][1] * 100] if m in tuned else [])]
        lo = _floor(shown, max(min(d.accuracy.min() * 100,
                                   dense[m] * 100 - analysis.BUDGET_POINTS) - 1,
                               min(dense[m] * 100, max(shown)) - 6))
        for shade, (s, g) in zip(_shades(len(levels)), d.groupby("sparsity")):
            ax.plot(g.bits, (g.accuracy * 100).clip(lower=lo), "-", color=shade)
            _clipped(ax, g.bits, g.accuracy * 100, lo, "o", color=shade,
                     label=f"k-means, pruned {s:.0%}")
        ax.axhline(dense[m] * 100, color=COLORS["none"], lw=1, label="best dense model")
        _budget_line(ax, dense[m])
        if m in tuned:
            b, acc, sparsity = tuned[m]
            # F3's star: the same file in the same colour
            _clipped(ax, [b], [acc * 100], lo, "*", ms=12, color=KIND_STYLE["apx"]["color"],
                     label=f"+ codebook fine-tuning (pruned {sparsity:.0%})")
        _titled(ax, names.model(m), shown, lo)
        ax.set_xlabel("Codebook index bits per weight")
        ax.set_ylabel("Top-1 test accuracy (%)")
        # the star's bits too: smoke's 5-bit star sat past the grid's last tick (4)
        ax.set_xticks(sorted({*d.bits, *([tuned[m][0]] if m in tuned else [])}))
        ax.set_ylim(lo - 0.3, dense[m] * 100 + 1.5)
        ax.grid(alpha=0.3)
        # under the panel: inside, it covered the star and the lines near the dense model
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2,
                  frameon=False)
    fig.tight_layout()
    return fig


def _legend_below(fig, handles, labels, ncol: int, band: float) -> None:
    """One legend under every panel, the panels laid out above it in `1 - band` of the figure:
    inside a panel, each legend of this module once covered data whatever corner it took."""
    fig.legend(handles, labels, fontsize=7, loc="lower center", ncol=ncol, frameon=False)
    fig.tight_layout(rect=(0, band, 1, 1))


def _shades(n: int) -> list:
    """`n` colours from light to dark (viridis): one per final sparsity, sparser darker. Alpha
    steps of one hue (0.57, 0.78, 1.0) could not be told apart in print."""
    cmap = matplotlib.colormaps["viridis"]
    return [cmap(x) for x in (np.linspace(0.75, 0.05, n) if n > 1 else [0.35])]


def _floor(y, lo: float) -> float:
    """An axis' lower end: `lo`, lowered where it would put more than a quarter of the points
    `y` (%) on the bottom edge as ▼. Smoke's MobileNetV2 panels showed four of five files
    there (a review, 2026-12-07): the edge is for a collapsed outlier, not for most of the
    data."""
    y = np.sort(np.asarray(y, dtype=float))
    return min(lo, y[len(y) // 4] - 1) if len(y) else lo


def _clipped(ax, x, y, lo: float, marker: str, **style) -> None:
    """Points at or above `lo` as `marker`; those below it on the bottom edge as ▼ (the axis
    stays on the range that can be read; `_titled` says how far they fell)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    up = y >= lo - 1e-9  # a point on the edge itself is shown, not counted as below
    ax.plot(x[up], y[up], marker, ls="none", **style)
    if (~up).any():
        ax.plot(x[~up], np.full((~up).sum(), lo), "v", ls="none",
                **{**style, "ms": 6, "label": None})


def _budget_line(ax, dense: float) -> None:
    """The dashed line `analysis.BUDGET_POINTS` below the best dense model's accuracy."""
    ax.axhline(dense * 100 - analysis.BUDGET_POINTS, color=COLORS["none"], lw=1, ls="--",
               label=f"− {analysis.points_words(analysis.BUDGET_POINTS)}")


def _titled(ax, title: str, y, lo: float) -> None:
    """The panel's title, with a second line counting the points drawn as ▼ below `lo`: inside
    the panel a legend placed at "best" covered that note, and beside the title it ran into
    it (the review of 2026-12-06)."""
    y = np.asarray(y, dtype=float)
    below = y < lo - 1e-9
    note = f"\n▼ {below.sum()} below {lo:.1f}% (lowest {y.min():.1f}%)" if below.any() else ""
    ax.set_title(title + note, fontsize=9, pad=10)  # clear of tags above the panel (`_published`)


def _files(ax, d: pd.DataFrame, lo: float) -> list:
    """Every file of one model's panel (KIND_STYLE); returns the handles of its sparsity shades
    (each model's grid has its own sparsities, so each panel gets its own key)."""
    shades = []
    for kind, st in KIND_STYLE.items():
        k = d[d.kind == kind]
        if k.empty:  # a kind this run did not make (e.g. `nncodec_qps: []`) is not in the key
            continue
        groups = list(k.groupby("sparsity")) if st["grid"] else [(None, k)]
        colors = _shades(len(groups)) if st["grid"] else [st["color"]]
        for i, ((sp, g), color) in enumerate(zip(groups, colors)):
            _clipped(ax, g.ratio, g.accuracy * 100, lo, st["marker"],
                     ms=11 if st["marker"] == "*" else 6, color=color,
                     label=st["label"] if i == len(groups) - 1 else None)
            if st["grid"]:
                shades.append(matplotlib.lines.Line2D(
                    [], [], marker=st["marker"], ls="none", color=color,
                    label=f"{sp:.0%} sparse"))
        for r in k.itertuples() if st["grid"] else ():
            ax.annotate(f"{r.bits:g}", (r.ratio, max(lo, 100 * r.accuracy)), fontsize=5,
                        xytext=(3, 2), textcoords="offset points", color="0.3")
    return shades


# One line style per published ratio: they are told apart in the key below the panels
PUBLISHED_STYLES = [":", "-.", (0, (5, 2, 1, 2, 1, 2)), (0, (1, 3))]


def _published(ax, published: list[tuple]) -> None:
    """The published ratios as vertical lines, named in the key and tagged with their ratio just
    above the panel: their names written along the lines, inside the panel, crossed the files'
    markers (the review of 2026-12-06)."""
    for (who, what, ratio), ls in zip(published, PUBLISHED_STYLES * len(published)):
        ax.axvline(ratio, color="0.5", lw=0.9, ls=ls, label=f"{who} ({what}): {ratio:g}×")
        ax.annotate(f"{ratio:g}×", (ratio, 1.0), xycoords=("data", "axes fraction"),
                    xytext=(0, 1), textcoords="offset points", fontsize=6, color="0.4",
                    ha="center", va="bottom", annotation_clip=False)


def ratio_accuracy(points: pd.DataFrame, dense: dict, published: list[tuple]) -> plt.Figure:
    """Per model: test accuracy against compression ratio (log scale) of every file section F
    wrote, the Pareto front joined, the best dense model's accuracy (`dense`) and its 1-point
    budget as lines, and the published ratios (other models and datasets: labelled, not
    comparable in accuracy) as vertical lines."""
    models = list(dict.fromkeys(points.model))
    fig, axes = plt.subplots(1, len(models), figsize=(4.8 * len(models), 4.6), squeeze=False)
    for ax, m in zip(axes[0], models):
        d = points[points.model == m]
        # the axis spans 4 points below the reference (`_floor` lowers it where that would
        # hide most files): a collapsed file (k-means at 2 bits) is drawn on the bottom edge
        # as ▼, not stretching the axis
        lo = _floor(d.accuracy * 100, max(d.accuracy.min() * 100 - 0.5,
                                          min(dense[m], d.accuracy.max()) * 100 - 4))
        shades = _files(ax, d, lo)
        front = d[d.front].sort_values("ratio")
        ax.plot(front.ratio, (front.accuracy * 100).clip(lower=lo), "-", color="0.4", lw=1,
                label="Pareto front")
        ax.axhline(dense[m] * 100, color=COLORS["none"], lw=1, label="best dense model")
        _budget_line(ax, dense[m])
        _published(ax, published)
        if len(shades) > 1:
            ax.legend(handles=shades, fontsize=6, loc="best", title="k-means", title_fontsize=6)
        _log_ticks(ax)
        _titled(ax, names.model(m), d.accuracy * 100, lo)
        ax.set_xlabel("Compression ratio vs dense float32 (×, log scale)")
        ax.set_ylabel("Top-1 test accuracy (%)")
        ax.set_ylim(lo - 0.3, max(d.accuracy.max(), dense[m]) * 100 + 1)
        ax.grid(alpha=0.3, which="both")
    key = {}  # every panel's entries, once each (a kind one model lacks is still named)
    for ax in axes[0]:
        for h, label in zip(*ax.get_legend_handles_labels()):
            key.setdefault(label, h)
    _legend_below(fig, list(key.values()), list(key), 3, 0.19)
    return fig


def layer_bits(layers: dict[str, pd.DataFrame]) -> plt.Figure:
    """Per layer: sparsity and the stored bits per non-zero weight (relative index + value)."""
    fig, axes = plt.subplots(len(layers), 1, figsize=(11, 3.2 * len(layers)), squeeze=False)
    for ax, (m, t) in zip(axes[:, 0], layers.items()):
        x = range(len(t))
        ax.bar(x, t.index_bits, color="#8172B2", label="relative index (bits / non-zero)")
        ax.bar(x, t.value_bits, bottom=t.index_bits, color="#55A868",
               label="codebook index (bits / non-zero)")
        ax.set_ylabel("Bits per non-zero weight")
        ax2 = ax.twinx()
        ax2.plot(x, t.sparsity * 100, "o", ms=3, color=COLORS["pruned"], label="sparsity (%)")
        ax2.set_ylabel("Zero weights in layer (%)")
        # both scales end 30% above their data, the legend's band: it once hid the sparsity
        # dots of the layers pruned to 90-100%
        ax2.set_ylim(0, 130)
        ax2.set_yticks(range(0, 101, 20))
        ax.set_xticks(list(x), t.layer, rotation=90, fontsize=6 if len(t) > 30 else 7)
        ax.set_title(names.model(m), fontsize=9)
        lines = ax.get_legend_handles_labels()
        lines2 = ax2.get_legend_handles_labels()
        ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=7, loc="upper left", ncol=3)
        ax.set_ylim(0, max(1.0, (t.index_bits + t.value_bits).max()) * 1.3)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------ section G

def _legend_markers() -> list[tuple[str, str]]:
    """Section G's precisions × runtimes in the legend's order: float32 and static INT8 in each
    runtime, then QAT in each (each runtime's markers: `runtimes.Runtime.marker`)."""
    *post_training, qat = quants.PRECISIONS
    return [*((q, rt) for rt in runtimes.RUNTIMES for q in post_training),
            *((qat, rt) for rt in runtimes.RUNTIMES)]


def _pareto_panel(ax, d: pd.DataFrame, color: str) -> pd.DataFrame:
    """One model's variants (marker = precision × runtime, hollow = channel-pruned, × =
    distilled) and its Pareto front, which it returns."""
    d = d.sort_values("latency_ms")
    for r in d.itertuples():
        ax.errorbar(r.latency_ms, r.accuracy * 100, yerr=_yerr(r),
                    fmt=runtimes.of(r.runtime).marker(r.quant), ms=6, capsize=2,
                    mfc="white" if r.prune_ratio > 0 else color, color=color)
        if names.distilled(r):
            ax.plot(r.latency_ms, r.accuracy * 100, "x", ms=4, color=color)
    front = d[analysis.pareto_front(d.latency_ms, d.accuracy)]
    ax.plot(front.latency_ms, front.accuracy * 100, "-", color=color, lw=1, alpha=0.7,
            label="Pareto front")
    _log_ticks(ax)
    ax.set_xlabel("CPU latency, batch 1 (ms, log scale)")
    ax.set_ylabel("Top-1 test accuracy (%)")
    ax.grid(alpha=0.3, which="both")
    return front


# Where a label may sit from its point (points right, up): the first that overlaps no label
# placed before it is taken, the last if all do
LABEL_OFFSETS = ((5, -9), (5, 4), (5, -18), (5, 13), (5, -27), (5, 22))


def _labels_apart(ax, front: pd.DataFrame) -> None:
    """Name each variant of a panel's front beside it: markers alone left a reader unable to
    find the one the findings name (a review, 2026-12-07); at one offset, neighbouring points
    of a log axis printed their names over each other (a referee, 2026-12-07). Call after the
    layout, which moves the points. Hand-written: a few labels per panel, placed greedily;
    adjustText would be a dependency for this one figure."""
    renderer, placed = ax.figure.canvas.get_renderer(), []
    for r in front.itertuples() if "name" in front else ():
        for i, offset in enumerate(LABEL_OFFSETS):
            label = ax.annotate(r.name, (r.latency_ms, r.accuracy * 100), fontsize=5.5,
                                color="0.2", xytext=offset, textcoords="offset points",
                                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none",
                                      "alpha": 0.85})
            box = label.get_window_extent(renderer)
            if i == len(LABEL_OFFSETS) - 1 or not any(box.overlaps(b) for b in placed):
                placed.append(box)
                break
            label.remove()


def pareto(df: pd.DataFrame) -> plt.Figure:
    """Per model: accuracy against batch-1 latency (log scale), the Pareto front (no variant
    both faster and more accurate) joined by a line. One panel per model: on one axis both
    models' 30-odd variants each crowded into 1-3 ms (the review of 2026-12-06)."""
    models = list(dict.fromkeys(df.model))
    fig, axes = plt.subplots(1, len(models), figsize=(4.8 * len(models), 4.4), squeeze=False)
    fronts = [_pareto_panel(ax, df[df.model == m], MODEL_COLORS[j % len(MODEL_COLORS)])
              for j, (ax, m) in enumerate(zip(axes[0], models))]
    for ax, m in zip(axes[0], models):
        ax.set_title(names.model(m), fontsize=9)
    ax = axes[0][0]  # the key, drawn once for every panel
    for q, rt in _legend_markers():
        ax.plot([], [], runtimes.of(rt).marker(q), color="0.3", mfc="0.3",
                label=f"{quants.of(q).short}, {runtimes.label(rt)}")
    ax.plot([], [], "o", color="0.3", mfc="white", label="hollow: channel-pruned")
    if any(names.distilled(r) for r in df.itertuples()):
        ax.plot([], [], "x", color="0.3", label="×: distilled")
    _legend_below(fig, *ax.get_legend_handles_labels(), 4, 0.12)
    for ax, front in zip(axes[0], fronts):
        _labels_apart(ax, front)
    return fig


def speedups(df: pd.DataFrame, batch: int) -> plt.Figure:
    """Speed-up over dense fp32 eager at batch 1 and batch `batch`, per variant and model."""
    models = list(dict.fromkeys(df.model))
    order = list(dict.fromkeys(df.name))
    fig, axes = plt.subplots(1, 2, figsize=(9.5, max(3.6, 1.0 + 0.17 * len(order) * len(models))),
                             sharey=True)
    palette = MODEL_COLORS
    width = 0.8 / len(models)
    for ax, (col, title) in zip(axes, (("speedup", "batch 1"), ("speedup_bs64", f"batch {batch}"))):
        for j, m in enumerate(models):
            d = df[df.model == m].set_index("name").reindex(order)
            bars = ax.barh([i + j * width for i in range(len(order))], d[col], width,
                           color=palette[j % len(palette)], label=names.model(m))
            ax.bar_label(bars, [f"{v:.1f}×" for v in d[col]], fontsize=6, padding=2)
        ax.axvline(1, color="0.4", lw=0.8)
        _log_ticks(ax)
        ax.set_xlabel(f"Speed-up, {title} (×, log scale)")
        ax.grid(alpha=0.3, axis="x")
    axes[0].set_yticks([i + width * (len(models) - 1) / 2 for i in range(len(order))], order,
                       fontsize=7)
    axes[0].invert_yaxis()
    handles, labels = axes[0].get_legend_handles_labels()  # above the bars, never on them
    fig.legend(handles, labels, fontsize=7, loc="upper center", ncol=len(models), frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    return fig


def channel_curve(curve: pd.DataFrame, batch: int) -> plt.Figure:
    """Measured speed-up of each channel-pruned float32 model over its dense model in the same
    runtime, against how many fewer multiply-adds it does (`analysis.channel_curve`), at batch 1
    and the throughput batch; the diagonal is a speed-up equal to the MAC reduction."""
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.6), sharey=True)
    top = max(curve.mac_reduction.max(), curve[["speedup_bs1", "speedup_bs64"]].max().max())
    for ax, (col, title) in zip(axes, (("speedup_bs1", "batch 1"),
                                       ("speedup_bs64", f"batch {batch}"))):
        for j, m in enumerate(dict.fromkeys(curve.model)):
            for rt in runtimes.RUNTIMES.values():
                d = curve[(curve.model == m) & (curve.runtime == rt.key)].sort_values(
                    "mac_reduction")
                ax.plot([1, *d.mac_reduction], [1, *d[col]], rt.line, marker=rt.marker(), ms=5,
                        color=MODEL_COLORS[j % len(MODEL_COLORS)],
                        label=f"{names.model(m)}, {rt.label}")
                # one runtime's points labelled: both share the ratios, and four labels per
                # ratio overlapped
                for r in d.itertuples() if rt is runtimes.EAGER else ():
                    ax.annotate(f"−{r.ratio:.0%}", (r.mac_reduction, getattr(r, col)),
                                fontsize=6, xytext=(3, -8), textcoords="offset points")
        ax.plot([1, top * 1.1], [1, top * 1.1], color="0.5", lw=0.8, ls=":",
                label="speed-up = MAC reduction")
        ax.set_xlabel("MAC reduction (dense / pruned, ×)")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("Measured speed-up over dense (×)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="upper center", ncol=3, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.86))
    return fig


# ------------------------------------------------------------------------------ section H

ROLE_COLORS = {analysis.BASELINE: COLORS["none"], analysis.CONTROL: "#8C8C8C",
               analysis.PRUNED: COLORS["pruned"]}


def protocol_bars(summary: pd.DataFrame, seeds: pd.DataFrame) -> plt.Figure:
    """Per model and protocol: baseline, equal-compute control and pruned model, mean top-1 over
    seeds with 95% intervals (bars) and every seed (dots)."""
    models = list(dict.fromkeys(summary.model))
    protocols = list(dict.fromkeys(summary.protocol))
    roles = list(analysis.ROLE_NAMES)
    fig, axes = plt.subplots(1, len(models), figsize=(4.8 * len(models), 3.4), squeeze=False)
    width = 0.8 / len(roles)
    for ax, m in zip(axes[0], models):
        for j, role in enumerate(roles):
            xs, ys, err = [], [], [[], []]
            for i, pr in enumerate(protocols):
                r = summary[(summary.model == m) & (summary.protocol == pr)
                            & (summary.role == role)]
                if r.empty:
                    continue
                r = r.iloc[0]
                xs.append(i + (j - 1) * width)
                ys.append(100 * r["mean"])
                # NaN with one seed; cut to 0-100% (two seeds' t-interval ran off the axes)
                lo = max(r["lo"], 0.0) if r["lo"] == r["lo"] else r["mean"]
                hi = min(r["hi"], 1.0) if r["hi"] == r["hi"] else r["mean"]
                err[0].append(100 * (r["mean"] - lo))
                err[1].append(100 * (hi - r["mean"]))
                pts = seeds[(seeds.model == m) & (seeds.protocol == pr) & (seeds.role == role)]
                ax.plot([xs[-1]] * len(pts), 100 * pts.accuracy, "k.", ms=3, zorder=4)
            ax.bar(xs, ys, width, yerr=err, capsize=3, color=ROLE_COLORS[role],
                   label=analysis.ROLE_NAMES[role])
        ax.set_xticks(range(len(protocols)), [f"{p} protocol" for p in protocols])
        ax.set_ylabel("Top-1 test accuracy (%)")
        ax.set_title(names.model(m), fontsize=9)
        sm = summary[summary.model == m]
        low = 100 * min(seeds[seeds.model == m].accuracy.min(), sm["lo"].min(skipna=True))
        high = 100 * max(seeds[seeds.model == m].accuracy.max(), sm["hi"].max(skipna=True))
        ax.set_ylim(max(0, low - 3), min(100, high + 3))
        ax.grid(alpha=0.3, axis="y")
    _legend_below(fig, *axes[0][0].get_legend_handles_labels(), 3, 0.08)
    return fig


def sparsity_curve(curve: pd.DataFrame, dense: dict[str, float]) -> plt.Figure:
    """Top-1 accuracy against compression ratio (log scale) per method, fine-tuned (solid) and
    not (dashed); the dense model as a horizontal line."""
    models = list(dict.fromkeys(curve.model))
    fig, axes = plt.subplots(1, len(models), figsize=(6.2 * len(models) + 2.6, 3.8),
                             squeeze=False)
    for ax, m in zip(axes[0], models):
        d = curve[curve.model == m]
        for j, method in enumerate(dict.fromkeys(d.prune_method)):
            color = methods.of(method).color or MODEL_COLORS[-1 - j % 5]  # a new one: its own
            for ft, style in ((True, "o-"), (False, "s--")):
                x = d[(d.prune_method == method) & (d.finetuned == ft)].sort_values("ratio_x")
                ax.plot(x.ratio_x, 100 * x.accuracy, style, ms=4, color=color,
                        alpha=1.0 if ft else 0.6,
                        label=f"{names.method(method)}{'' if ft else ' (no fine-tuning)'}")
        ax.axhline(100 * dense[m], color="k", lw=0.8, ls=":", label="dense")
        ax.set_xscale("log", base=2)
        # ticks where the points are: powers of two put smoke's 5× point between 4× and 8×
        ax.set_xticks(sorted(d.ratio_x.unique()))
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:.3g}×"))
        ax.set_xlabel("Weights / non-zero weights of Conv/Linear layers (1 / (1 − sparsity), log "
                      "scale)")
        ax.set_ylabel("Top-1 test accuracy (%)")
        ax.set_title(names.model(m), fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.tight_layout()
    return fig


def sensitivity_heatmap(sens: pd.DataFrame, model: str) -> plt.Figure:
    """Validation accuracy drop (points) with one layer at a time pruned to each ratio."""
    t = sens.pivot(index="layer", columns="ratio", values="drop")
    t = t.loc[list(dict.fromkeys(sens.layer))]  # network order
    fig, ax = plt.subplots(figsize=(6.4, 0.2 * len(t) + 1.4))
    vmax = max(1.0, float(t.values.max()))
    im = ax.imshow(t.values, aspect="auto", cmap="Reds", vmin=0, vmax=vmax)
    ax.set_xticks(range(t.shape[1]), [f"{r:.0%}" for r in t.columns])
    ax.set_yticks(range(t.shape[0]), t.index, fontsize=6)
    for i in range(t.shape[0]):
        for j in range(t.shape[1]):
            v = t.values[i, j]
            ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=5.5,
                    color="white" if v > 0.6 * vmax else "black")
    ax.set_xlabel("Fraction of this layer's weights pruned (L1)")
    ax.set_title(f"{names.model(model)}: validation accuracy drop (points)",
                 fontsize=9)
    fig.colorbar(im, ax=ax, label="Accuracy drop (points)")
    fig.tight_layout()
    return fig
