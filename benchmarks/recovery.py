"""Section G's dense INT8 recovery for one model, without the rest of the report: the dense
float32 baseline, post-training static INT8 and QAT static INT8 in PyTorch, each evaluated
through the pipeline (cached in the models folder), with McNemar's test between them. Their
latencies are the report's (section G times its variants together, in turns) or
`benchmarks/latency.py`'s.

    python benchmarks/recovery.py --profile quick --model mobilenetv2 --models-dir /tmp/qmn

The reference issue 17 asks for (the dense model trained with equal compute) is section G's
dense control: run the section (`approx report --sections G`) for it.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from approxlib import cli  # noqa: E402
from approxlib import data  # noqa: E402
from approxlib import pipeline  # noqa: E402
from approxlib import quants  # noqa: E402
from approxlib import stats  # noqa: E402
from approxlib import store  # noqa: E402
from approxlib.config import data_config, load_profile  # noqa: E402
from approxlib.sections import Variant  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--model", default="mobilenetv2")
    ap.add_argument("--models-dir", type=Path, default=Path("models"))
    a = ap.parse_args(argv)
    p = load_profile(a.profile)
    cli.check_store(str(a.models_dir))
    missing = [st for q in (quants.NONE.key, quants.STATIC.key, quants.QAT.key)
               for st in pipeline.stages(Variant("G", a.model, p["dataset"], quant=q), p)
               if not pipeline.is_cached(st, store.Store(a.models_dir))]
    if missing:  # a bare run in a folder without the profile's models trains for many minutes
        print(f"recovery.py: {len(missing)} of the {a.profile} profile's entries are not in "
              f"{a.models_dir}: computing them (progress below)", file=sys.stderr)
    runner = pipeline.Runner(p, store.Store(a.models_dir), None, progress=bool(missing))
    out = {}
    for name, quant in (("baseline", quants.NONE.key), ("post-training INT8", quants.STATIC.key),
                        ("QAT INT8", quants.QAT.key)):
        t = time.perf_counter()
        v = Variant("G", a.model, p["dataset"], quant=quant)
        m = out[name] = runner.evaluate(pipeline.chain(v, p))
        print(f"{name}: test {100 * m['accuracy']:.2f}% val {100 * m['val_accuracy']:.2f}% "
              f"{m['size_bytes'] / 1e6:.2f} MB "
              f"({time.perf_counter() - t:.0f} s)", flush=True)
    y = data.test_labels(data_config(p, p["dataset"]), None).numpy()
    names = list(out)
    for x, z in ((names[0], names[1]), (names[0], names[2]), (names[1], names[2])):
        r = stats.mcnemar(y, np.asarray(out[x]["predictions"]), np.asarray(out[z]["predictions"]))
        print(f"{z} - {x}: {100 * (out[z]['accuracy'] - out[x]['accuracy']):+.2f} points, "
              f"McNemar p = {r['p_value']:.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.guarded("recovery.py", main))
