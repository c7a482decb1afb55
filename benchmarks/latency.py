"""Re-time saved variants in one process and print section G's speed ratios.

    python benchmarks/latency.py                          # every section-G row of reports/quick
    python benchmarks/latency.py --results reports/smoke/results.csv --model resnet18
    python benchmarks/latency.py --artifact models/onnx/KEY.onnx --artifact models/train/KEY.pt

Each artifact (.pt checkpoint, .onnx, .apx) is loaded and timed here, all with the same thread
count, batch 1 and batch 64, medians of `torch.utils.benchmark` blocks after warm-up — the
report's method, in one run, so the ratios compare like with like. Accuracies are not
re-measured: they come from results.csv (they do not depend on timing) and only decide which
variants count as "within 1 point" of the dense model.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from approxlib import measure as ME  # noqa: E402
from approxlib import pipeline as PL  # noqa: E402
from approxlib.config import MeasureConfig  # noqa: E402


def time_artifact(path: str, shape: tuple[int, ...], cfg: MeasureConfig) -> dict:
    model, _ = PL.load_artifact(Path(path), cfg.threads)
    return ME.latency_ms(model, shape, cfg)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", type=Path, default=Path("reports/quick/results.csv"))
    ap.add_argument("--section", default="G")
    ap.add_argument("--model", default=None, help="only this model's rows")
    ap.add_argument("--artifact", action="append", default=[],
                    help="time these files instead of results.csv rows (repeatable)")
    ap.add_argument("--input", default="1,28,28", help="input shape C,H,W (default Fashion-MNIST)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--min-time", type=float, default=1.0, help="seconds of timed runs per batch")
    a = ap.parse_args(argv)
    cfg = MeasureConfig(threads=a.threads, latency_warmup=10, latency_min_time=a.min_time)
    shape = tuple(int(x) for x in a.input.split(","))

    if a.artifact:
        for path in a.artifact:
            t = time_artifact(path, shape, cfg)
            print(f"{path}: batch 1 {t['latency_ms']:.3f} ms, batch 64 {t['latency_bs64_ms']:.2f} ms")
        return 0

    if not a.results.is_file():
        print(f"latency.py: error: {a.results} not found; run `approx report` first", file=sys.stderr)
        return 2
    df = pd.read_csv(a.results)
    df = df[df.section == a.section]
    if a.model:
        df = df[df.model == a.model]
    if df.empty:
        print(f"latency.py: error: no section {a.section} rows in {a.results}", file=sys.stderr)
        return 2
    rows = []
    for r in df.itertuples():
        t = time_artifact(r.artifact, shape, cfg)
        rows.append({"model": r.model, "pruned": r.prune_ratio, "quant": r.quant,
                     "runtime": r.runtime, "accuracy": r.accuracy, "size_bytes": r.size_bytes,
                     "bs1_ms": t["latency_ms"], "bs64_ms": t["latency_bs64_ms"],
                     "report_bs1_ms": r.latency_ms})
    t = pd.DataFrame(rows)
    print(t.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    for m, d in t.groupby("model", sort=False):
        base = d[(d.pruned == 0) & (d.quant == "none") & (d.runtime == "pytorch")].iloc[0]
        ort = d[(d.pruned == 0) & (d.quant == "none") & (d.runtime == "onnxruntime")].iloc[0]
        ok = d[d.accuracy >= base.accuracy - 0.01]
        best = ok.loc[ok.bs1_ms.idxmin()]
        int8 = d[(d.pruned == 0) & (d.quant == "int8-static") & (d.runtime == "pytorch")].iloc[0]
        ch = d[(d.pruned > 0) & (d.quant == "none") & (d.runtime == "pytorch")].iloc[0]
        print(f"{m}: fastest_within_1pt={best.quant}/{best.runtime}/pruned{best.pruned:g} "
              f"speedup_vs_eager={base.bs1_ms / best.bs1_ms:.2f} "
              f"speedup_vs_ort_fp32={ort.bs1_ms / best.bs1_ms:.2f} "
              f"int8_static_smaller={base.size_bytes / int8.size_bytes:.2f} "
              f"channel_bs64_speedup={base.bs64_ms / ch.bs64_ms:.2f} threads={a.threads}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
