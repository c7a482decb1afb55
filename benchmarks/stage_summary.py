"""Where a run's time went, from a models folder's timing records: seconds, entries and images
per second per stage kind and per section, over every entry a profile's sections need.

Unlike `reports/<profile>/stages.csv`, which a run writes at its end, this reads the records
themselves, so it also sums a run that was stopped part-way (a time limit on a lent machine).
Run: python3 benchmarks/stage_summary.py --profile smoke --models-dir models
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from approxlib import accounting  # noqa: E402
from approxlib import cli  # noqa: E402
from approxlib import pipeline  # noqa: E402
from approxlib import store  # noqa: E402
from approxlib.config import load_profile, parse_overrides  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="smoke", help="the profile whose entries are summed "
                                                        "(default: %(default)s)")
    ap.add_argument("--models-dir", default="models", help="the models folder (default: "
                                                            "%(default)s)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    a = ap.parse_args(argv)
    p = load_profile(a.profile, parse_overrides(a.overrides))
    cli.existing_store(a.models_dir)
    # since=0: every recorded entry counts as computed (the records are the whole question here)
    df = accounting.table(p, pipeline.parse_sections(None, p), store.Store(a.models_dir),
                          since=0.0)
    pd.set_option("display.width", 200)
    for by in ("kind", "section"):
        print(accounting.summary(df, by).round(1).to_string())
    print(f"{df.seconds.sum():.1f} s recorded over {int(df.seconds.notna().sum())} of the "
          f"{len(df)} entries of {a.profile}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.guarded("stage_summary.py", main))
