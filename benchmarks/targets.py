"""The project's targets for sections F and G, checked on a results.csv (they are not the
report's business: a study states what it measured, not what a project hoped for).

    python benchmarks/targets.py                       # reports/quick/results.csv
    python benchmarks/targets.py --results reports/smoke/results.csv

Section F (issue 4): the Huffman-coded .apx file ≥ 49× (ResNet-18) / 15× (MobileNetV2) smaller
than the dense float32 checkpoint at ≤ 1 point below its accuracy, and ≥ 3× smaller than xz -9e
of the same pruned checkpoint (xz at the run's `general_effort`: -9e on quick and paper, -3 on
smoke, whose line is then against a weaker xz). Section G (issue 5): the fastest variant within 1 point ≥ 10×
faster than dense float32 PyTorch eager and ≥ 2× faster than dense float32 ONNX Runtime at
batch 1; static INT8 ≤ 0.5 point and ≥ 3.9× smaller; channel pruning ≥ 1.8× at the throughput
batch within 1 point. Issue 17: against the best dense model at equal compute (picked on
validation), ResNet-18's fastest variant within 1 point ≥ 4× dense ORT and ≥ 16× dense eager,
MobileNetV2's ≥ 3× dense ORT; MobileNetV2's static INT8 in PyTorch (post-training or QAT,
plain or distilled, whichever validates best) within 0.1 point of the dense model trained as
long (the baseline, or for QAT its float twin if that validates better); distilled Deep Compression of
ResNet-18 ≥ 56× within 0.3 point of its dense control distilled the same way. Issue 18: over
section F's files (the size-vs-accuracy grid, the fine-tuned .apx, NNCodec), the most compressed
within 1 validation point of the best dense model (by a one-sided 95% paired bound) ≥ 64×
(ResNet-18) / 20× (MobileNetV2) and within 1 test point of it. Prints one line
per target, each difference as the variant's accuracy minus its reference's (negative: below
it); exit status 1 if any is missed, 2 if the file cannot be checked (one line on stderr).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from approxlib import analysis, cli, controls, pipeline, quants, runtimes  # noqa: E402
from approxlib.config import ConfigError  # noqa: E402

F_RATIO = {"resnet18": 49.0, "mobilenetv2": 15.0}
F_GRID = {"resnet18": 64.0, "mobilenetv2": 20.0}  # issue 18, over the size-vs-accuracy grid


def section_f(d: pd.DataFrame, points: pd.DataFrame | None) -> list[tuple[str, bool]]:
    out = []
    kd = d[(d.section == "F") & d.kd]
    with_controls = d[(d.section == "F") & ~d.kd]
    d = with_controls[analysis.uncontrolled(with_controls)]
    for m in dict.fromkeys(d.model):
        out += distilled_f(kd[kd.model == m], m)
        out += grid_f(with_controls[with_controls.model == m], points, m)
        r = d[d.model == m]
        dense = r[(r.prune_ratio == 0) & (r.codec == "none")].iloc[0]
        ours = r[r.codec == "huffman"].iloc[0]
        xz = r[r.codec == "xz"].iloc[0]
        delta = 100 * (ours.accuracy - dense.accuracy)
        if m in F_RATIO:
            out.append((f"F {m}: {ours.compression_ratio:.1f}x >= {F_RATIO[m]:.0f}x at "
                        f"{delta:+.2f} >= -1 points of dense", ours.compression_ratio >= F_RATIO[m]
                        and delta >= -1))
        vs_xz = xz.size_bytes / ours.size_bytes
        out.append((f"F {m}: {vs_xz:.2f}x smaller than xz >= 3x", vs_xz >= 3))
    return out


def grid_f(f: pd.DataFrame, points: pd.DataFrame | None, m: str) -> list[tuple[str, bool]]:
    """The most compressed file of the grid, NNCodec's and the fine-tuned .apx within 1 point
    of the best dense model at equal compute on validation by a one-sided 95% paired bound
    (picked on validation, reported on test) against issue 18's ratio (`f`: one model's
    undistilled section F rows, controls included; `points`: compression_points.csv, whose
    `val_lo` needs the per-image validation answers only the store holds)."""
    if m not in F_GRID:
        return []
    if points is None:  # never a silent pass
        return [(f"F {m}: the grid's files (compression_points.csv beside results.csv is "
                 f"missing: section F has not run into this folder)", False)]
    ref = analysis.compression_reference(f, m)
    best = analysis.largest_ratio_within(points, m)
    what = f"the best dense model ({analysis.reference_name(ref)})"
    if best is None:
        return [(f"F {m}: a file within 1 validation point (95% bound) of {what}", False)]
    delta = 100 * (best.accuracy - ref.accuracy)
    return [(f"F {m}: most compressed within 1 point ({best.file}) {best.ratio:.1f}x >= "
             f"{F_GRID[m]:.0f}x at {delta:+.2f} >= -1 points of {what}",
             best.ratio >= F_GRID[m] and delta >= -1)]


def distilled_f(kd: pd.DataFrame, m: str) -> list[tuple[str, bool]]:
    ours, control = kd[kd.codec == "huffman"], kd[kd.control == controls.DENSE.key]
    if m != "resnet18" or ours.empty or control.empty:
        return []
    r, c = ours.iloc[0], control.iloc[0]
    drop = 100 * (c.accuracy - r.accuracy)
    return [(f"F {m} distilled: {r.compression_ratio:.1f}x >= 56x at {-drop:+.2f} >= -0.3 "
             f"points of its distilled dense control", r.compression_ratio >= 56 and drop <= 0.3)]


def recovery_g(d: pd.DataFrame, g: pd.DataFrame, m: str, best) -> list[tuple[str, bool]]:
    """Issue 17's speed and INT8 targets of one model (`d`: speedups rows, `g`: with controls)."""
    need_ort, need_eager = {"resnet18": (4, 16), "mobilenetv2": (3, None)}.get(m, (None, None))
    out = []
    if need_ort and best is not None:
        out.append((f"G {m}: fastest within 1 point of the best dense model {best.speedup_ort:.2f}x"
                    f" >= {need_ort}x dense ORT", best.speedup_ort >= need_ort))
    if need_eager and best is not None:
        out.append((f"G {m}: fastest within 1 point {best.speedup:.1f}x >= {need_eager}x dense "
                    f"eager",
                    best.speedup >= need_eager))
    int8 = d[(d.model == m) & (d.prune_ratio == 0) & (d.runtime == runtimes.REFERENCE)
             & d.quant.isin([quants.STATIC.key, quants.QAT.key])]
    if m == "mobilenetv2" and (int8.quant == quants.QAT.key).any():
        pick = int8.loc[int8.val_accuracy.idxmax()]  # chosen on validation, reported on test
        same = analysis.int8_reference(g, pick)  # trained as long: baseline or QAT's twin
        delta = 100 * (pick.accuracy - same.accuracy)
        out.append((f"G {m}: static INT8 in PyTorch ({pick['name']}) {delta:+.2f} >= -0.1 points"
                    f" of the dense model at equal compute ({analysis.reference_name(same)})",
                    delta >= -0.1))
    return out


def section_g(d: pd.DataFrame, channel_ratio: float | None) -> list[tuple[str, bool]]:
    out = []
    g = d[d.section == "G"]
    if g.empty:  # section G did not run into this folder
        return [("G: section G's rows (none in this results.csv)", False)]
    d = analysis.speedups(analysis.speed_candidates(g))
    for m in dict.fromkeys(d.model):
        best = analysis.fastest_within(d, m)
        out += recovery_g(d, g, m, best)
        if best is None:
            out.append((f"G {m}: a variant within 1 point of the best dense model", False))
            continue
        out.append((f"G {m}: fastest within 1 point ({best['name']}) {best.speedup:.1f}x >= 10x "
                    f"eager", best.speedup >= 10))
        out.append((f"G {m}: {best.speedup_ort:.2f}x >= 2x dense ORT", best.speedup_ort >= 2))
        for runtime in runtimes.RUNTIMES:
            q = analysis.pick(d, m, 0.0, quants.STATIC.key, runtime)
            out.append((f"G {m}: static INT8 ({runtime}) {100 * q.delta:+.2f} >= -0.5 points, "
                        f"{q.smaller:.2f}x >= 3.9x smaller",
                        q.delta >= -0.005 and q.smaller >= 3.9))
        for runtime in runtimes.RUNTIMES if channel_ratio is not None else ():
            ch = analysis.pick(d, m, channel_ratio, "none", runtime)  # against dense, same runtime
            dense = analysis.pick(d, m, 0.0, "none", runtime)
            x = dense.latency_bs64_ms / ch.latency_bs64_ms
            out.append((f"G {m}: channel pruning ({runtime}) {x:.2f}x >= 1.8x at the throughput "
                        f"batch, {100 * ch.delta:+.2f} >= -1 point",
                        x >= 1.8 and ch.delta >= -0.01))
    return out


def main_channel_ratio(d: pd.DataFrame, given: float | None) -> float | None:
    """Section G's main channel ratio (the profile's `channel_ratio`): `given`, else the one
    its recovery methods and controls ran at (QAT, Scratch-E/B), else its only one."""
    g = d[(d.section == "G") & (d.prune_ratio > 0)]
    present = sorted(set(g.prune_ratio))
    if not present:
        return None
    if given is None:
        at = sorted(set(g[(g.quant == quants.QAT.key) | ~g.control.isin(
            [controls.NONE.key, controls.QAT_FLOAT.key])].prune_ratio)) or present
        if len(at) > 1:
            raise ConfigError(f"section G ran channel ratios {', '.join(map(str, at))}: name "
                              f"the profile's channel_ratio with --channel-ratio")
        return at[0]
    if given not in present:
        raise ConfigError(f"--channel-ratio {given}: section G's rows have channel ratios "
                          f"{', '.join(map(str, present))}")
    return given


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", default="reports/quick/results.csv",
                    help="a report's results.csv (default: %(default)s)")
    ap.add_argument("--channel-ratio", type=float, default=None,
                    help="the profile's channel_ratio, section G's main channel-pruned model "
                         "(default: the ratio its QAT and scratch controls ran at)")
    a = ap.parse_args(argv)
    d = pipeline.read_results(a.results, need=("val_lo",))  # "within 1 point" is decided by it
    if not d.section.isin(["F", "G"]).any():
        raise ConfigError(f"{a.results} has no rows of sections F and G: nothing to check")
    d["control"] = analysis.controls_of(d)
    d["kd"] = analysis._distilled(d)
    grid = Path(a.results).parent / "compression_points.csv"  # section F's files, where it ran
    points = pd.read_csv(grid) if grid.exists() else None
    checks = section_f(d, points) + section_g(d, main_channel_ratio(d, a.channel_ratio))
    for text, ok in checks:
        print(f"{'met   ' if ok else 'MISSED'} {text}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(cli.guarded("targets.py", main))
