"""Re-time saved variants in one process and print section G's speed ratios.

    python benchmarks/latency.py                          # every section-G row of reports/quick
    python benchmarks/latency.py --results reports/smoke/results.csv --model resnet18
    python benchmarks/latency.py --artifact models/onnx/KEY.onnx --artifact models/train/KEY.pt

Each artifact (.pt checkpoint, .onnx, .apx) is loaded and timed here, all with the same thread
count, batch 1 and the throughput batch (`--batch`, 64 as quick's), in turns over `--rounds` rounds (`measure.interleaved_latency`,
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
from approxlib import cli  # noqa: E402
from approxlib.config import ConfigError, MeasureConfig  # noqa: E402


def time_artifacts(paths: list[str], shape: tuple[int, ...], cfg: MeasureConfig,
                   rounds: int) -> dict[str, dict]:
    models = {p: pipeline.load_artifact(Path(p), cfg.threads)[0].eval() for p in paths}
    return measure.interleaved_latency(models, shape, cfg, rounds)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", type=Path, default=Path("reports/quick/results.csv"),
                    help="a report's results.csv: its section G rows are timed "
                         "(default: %(default)s)")
    ap.add_argument("--model", default=None, help="only this model's rows")
    ap.add_argument("--artifact", action="append", default=[],
                    help="time these files instead of results.csv rows (repeatable)")
    ap.add_argument("--input", default="1,28,28", help="input shape C,H,W (default Fashion-MNIST)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=64,
                    help="the throughput batch (default 64, quick's; smoke's is 16)")
    ap.add_argument("--min-time", type=float, default=1.0,
                    help="seconds of timed runs per variant and batch, over all rounds")
    ap.add_argument("--rounds", type=int, default=8, help="rounds of turns (1: one after another)")
    a = ap.parse_args(argv)
    if a.rounds < 1:
        raise ConfigError(f"--rounds must be at least 1, got {a.rounds}")
    cfg = MeasureConfig(threads=a.threads, latency_warmup=10, latency_min_time=a.min_time,
                        throughput_batch=a.batch)
    shape = input_shape(a.input)

    if a.artifact:
        timed = time_artifacts(a.artifact, shape, cfg, a.rounds)
        for path, t in timed.items():
            print(f"{path}: batch 1 {t['latency_ms']:.3f} ms, batch {a.batch} "
                  f"{t['latency_bs64_ms']:.2f} ms")
        return 0

    df = pipeline.read_results(a.results, need=("val_lo",))  # "within 1 point" is decided by it
    df = df[df.section == "G"]
    if df.empty:
        raise ConfigError(f"{a.results} has no section G rows (this script re-times section G)")
    if a.model and a.model not in set(df.model):
        raise ConfigError(f"--model {a.model}: section G's rows are of "
                          f"{', '.join(dict.fromkeys(df.model))}")
    if a.model:
        df = df[df.model == a.model]
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


def input_shape(text: str) -> tuple[int, ...]:
    """--input C,H,W: three positive integers."""
    try:
        shape = tuple(int(x) for x in text.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise ConfigError(f"--input {text}: give channels,height,width, e.g. 1,28,28")
    return shape


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
    sys.exit(cli.guarded("latency.py", main))
