"""Re-time saved variants in one process and print section G's speed ratios.

    python benchmarks/latency.py                          # every section-G row of reports/quick
    python benchmarks/latency.py --results reports/smoke/results.csv --model resnet18
    python benchmarks/latency.py --artifact models/onnx/KEY.onnx --artifact models/train/KEY.pt

Each artifact (.pt checkpoint, .onnx, .apx) is loaded and timed here, all with the same thread
count, batch 1 and batch 64, in turns over `--rounds` rounds (`measure.interleaved_latency`,
the method of the report's section G), so the ratios compare like with like. Accuracies are not
re-measured: they come from results.csv (they do not depend on timing), and its `val_lo`
column decides which variants count as "within 1 point" of the best dense model at equal
compute (a one-sided 95% paired bound on validation). The last line gives, per model, the fastest
such variant's speed-ups and the channel-ratio curve (MAC reduction / measured batch-1 speed-up).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from approxlib import analysis  # noqa: E402
from approxlib import quants  # noqa: E402
from approxlib import runtimes  # noqa: E402
from approxlib import measure  # noqa: E402
from approxlib import pipeline  # noqa: E402
from approxlib.config import MeasureConfig  # noqa: E402


def time_artifacts(paths: list[str], shape: tuple[int, ...], cfg: MeasureConfig,
                   rounds: int) -> dict[str, dict]:
    models = {p: pipeline.load_artifact(Path(p), cfg.threads)[0].eval() for p in paths}
    return measure.interleaved_latency(models, shape, cfg, rounds)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", type=Path, default=Path("reports/quick/results.csv"))
    ap.add_argument("--section", default="G")
    ap.add_argument("--model", default=None, help="only this model's rows")
    ap.add_argument("--artifact", action="append", default=[],
                    help="time these files instead of results.csv rows (repeatable)")
    ap.add_argument("--input", default="1,28,28", help="input shape C,H,W (default Fashion-MNIST)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--min-time", type=float, default=1.0,
                    help="seconds of timed runs per variant and batch, over all rounds")
    ap.add_argument("--rounds", type=int, default=8, help="rounds of turns (1: one after another)")
    a = ap.parse_args(argv)
    if a.rounds < 1:
        print(f"latency.py: error: --rounds must be at least 1, got {a.rounds}", file=sys.stderr)
        return 2
    cfg = MeasureConfig(threads=a.threads, latency_warmup=10, latency_min_time=a.min_time)
    shape = tuple(int(x) for x in a.input.split(","))

    if a.artifact:
        timed = time_artifacts(a.artifact, shape, cfg, a.rounds)
        for path, t in timed.items():
            print(f"{path}: batch 1 {t['latency_ms']:.3f} ms, batch 64 {t['latency_bs64_ms']:.2f} ms")
        return 0

    if not a.results.is_file():
        print(f"latency.py: error: {a.results} not found; run `approx report` first", file=sys.stderr)
        return 2
    df = pd.read_csv(a.results)
    if "val_lo" not in df:  # "within 1 point" is decided by it
        print(f"latency.py: error: {a.results} has no val_lo column (written before "
              f"2026-12-06); run `approx report` again", file=sys.stderr)
        return 2
    df = df[df.section == a.section]
    if a.model:
        df = df[df.model == a.model]
    if df.empty:
        print(f"latency.py: error: no section {a.section} rows in {a.results}", file=sys.stderr)
        return 2
    timed = analysis.speed_candidates(df)
    t = timed.copy()
    # the section's variants in turns, every model together, as the report times them
    got = time_artifacts(list(dict.fromkeys(timed.artifact)), shape, cfg, a.rounds)
    for i, r in zip(timed.index, timed.itertuples()):
        m = got[r.artifact]
        t.loc[i, "latency_ms"] = m["latency_ms"]
        t.loc[i, "latency_bs64_ms"] = m["latency_bs64_ms"]
        t.loc[i, "report_bs1_ms"] = r.latency_ms
    t = analysis.speedups(t)
    print(t[["model", "name", "accuracy", "size_bytes", "latency_ms", "latency_bs64_ms",
             "report_bs1_ms", "speedup", "speedup_ort"]].to_string(
        index=False, float_format=lambda x: f"{x:.4g}"))
    print(last_line(t, df, a.threads))
    return 0


def last_line(t: pd.DataFrame, rows: pd.DataFrame, threads: int) -> str:
    """Per model: the fastest variant within 1 point of the best dense model at equal compute
    (picked on validation, over every re-timed variant), its speed-ups, and each channel ratio's
    MAC reduction against its measured batch-1 speed-up in ONNX Runtime and eager."""
    parts = []
    curve = analysis.channel_curve(t)
    for m in dict.fromkeys(t.model):
        ref = analysis.best_dense(rows, m)
        best = analysis.fastest_within(t, m)
        int8 = analysis.pick(t, m, 0.0, quants.STATIC.key, runtimes.REFERENCE)
        dense = analysis.pick(t, m, 0.0, "none", runtimes.REFERENCE)
        head = (f"{m}: reference={analysis.reference_name(ref).replace(' ', '_')} "
                f"int8_static_smaller={dense.size_bytes / int8.size_bytes:.2f}")
        if best is None:
            parts.append(f"{head} fastest_within_1pt=none")
            continue
        c = curve[curve.model == m]
        points = ",".join(f"{r.ratio:g}:{r.mac_reduction:.2f}/{r.speedup_bs1:.2f}"
                          for r in c[c.runtime == runtimes.ORT.key].itertuples())
        eager = ",".join(f"{r.ratio:g}:{r.mac_reduction:.2f}/{r.speedup_bs1:.2f}"
                         for r in c[c.runtime == runtimes.REFERENCE].itertuples())
        parts.append(f"{head} fastest_within_1pt={best['name'].replace(' ', '_')} "
                     f"speedup_vs_eager={best.speedup:.2f} speedup_vs_ort_fp32={best.speedup_ort:.2f} "
                     f"channels_macs/ort_bs1={points} channels_macs/eager_bs1={eager}")
    return "; ".join(parts) + f"; threads={threads}"


if __name__ == "__main__":
    sys.exit(main())
