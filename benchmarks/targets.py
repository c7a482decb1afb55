"""The project's targets for sections F and G, checked on a results.csv (they are not the
report's business: a study states what it measured, not what a project hoped for).

    python benchmarks/targets.py                       # reports/quick/results.csv
    python benchmarks/targets.py --results reports/smoke/results.csv

Section F (issue 4): the Huffman-coded .apx file ≥ 49× (ResNet-18) / 15× (MobileNetV2) smaller
than the dense float32 checkpoint at ≤ 1 point below its accuracy, and ≥ 3× smaller than xz -9e
of the same pruned checkpoint. Section G (issue 5): the fastest variant within 1 point ≥ 10×
faster than dense float32 PyTorch eager and ≥ 2× faster than dense float32 ONNX Runtime at
batch 1; static INT8 ≤ 0.5 point and ≥ 3.9× smaller; channel pruning ≥ 1.8× at the throughput
batch within 1 point. Prints one line per target; exit status 1 if any is missed.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from approxlib import analysis  # noqa: E402

F_RATIO = {"resnet18": 49.0, "mobilenetv2": 15.0}


def section_f(d: pd.DataFrame) -> list[tuple[str, bool]]:
    out = []
    d = d[(d.section == "F") & (d.control == "none")]
    for m in dict.fromkeys(d.model):
        r = d[d.model == m]
        dense = r[(r.prune_ratio == 0) & (r.codec == "none")].iloc[0]
        ours = r[r.codec == "huffman"].iloc[0]
        xz = r[r.codec == "xz"].iloc[0]
        drop = 100 * (dense.accuracy - ours.accuracy)
        if m in F_RATIO:
            out.append((f"F {m}: {ours.compression_ratio:.1f}x >= {F_RATIO[m]:.0f}x at "
                        f"{drop:+.2f} <= 1 point", ours.compression_ratio >= F_RATIO[m]
                        and drop <= 1))
        vs_xz = xz.size_bytes / ours.size_bytes
        out.append((f"F {m}: {vs_xz:.2f}x smaller than xz >= 3x", vs_xz >= 3))
    return out


def section_g(d: pd.DataFrame) -> list[tuple[str, bool]]:
    out = []
    g = d[d.section == "G"]
    d = analysis.speedups(g[g.control == "none"])
    for m in dict.fromkeys(d.model):
        best = analysis.fastest_within(d, m, analysis.best_dense_accuracy(g, m))
        if best is None:
            out.append((f"G {m}: a variant within 1 point of the best dense model", False))
            continue
        out.append((f"G {m}: fastest within 1 point ({best['name']}) {best.speedup:.1f}x >= 10x "
                    f"eager", best.speedup >= 10))
        out.append((f"G {m}: {best.speedup_ort:.2f}x >= 2x dense ORT", best.speedup_ort >= 2))
        for runtime in ("pytorch", "onnxruntime"):
            q = analysis.pick(d, m, 0.0, "int8-static", runtime)
            out.append((f"G {m}: static INT8 ({runtime}) {100 * q.delta:+.2f} >= -0.5 points, "
                        f"{q.smaller:.2f}x >= 3.9x smaller",
                        q.delta >= -0.005 and q.smaller >= 3.9))
        ratio = d[(d.model == m) & (d.prune_ratio > 0)].prune_ratio.iloc[0]
        ort = analysis.pick(d, m, 0.0, "none", "onnxruntime")
        for runtime in ("pytorch", "onnxruntime"):  # each against dense in the same runtime
            ch = analysis.pick(d, m, ratio, "none", runtime)
            dense = analysis.pick(d, m, 0.0, "none", "pytorch") if runtime == "pytorch" else ort
            x = dense.latency_bs64_ms / ch.latency_bs64_ms
            out.append((f"G {m}: channel pruning ({runtime}) {x:.2f}x >= 1.8x at the throughput "
                        f"batch, {100 * ch.delta:+.2f} >= -1 point",
                        x >= 1.8 and ch.delta >= -0.01))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default="reports/quick/results.csv")
    a = ap.parse_args()
    d = pd.read_csv(a.results)
    d["control"] = d.get("control", pd.Series("none", index=d.index)).fillna("none")
    checks = section_f(d) + section_g(d)
    for text, ok in checks:
        print(f"{'met   ' if ok else 'MISSED'} {text}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
