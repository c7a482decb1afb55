"""The smoke run the parallel suite shares, computed in a process of its own beside the tests.

`make test` runs the tests on one-thread pytest-xdist workers. The controller starts this
script as the session starts (tests/conftest.py) and the workers run the tests that do not need
its store meanwhile, ordered first: three one-thread processes keep both cores busy, where
computing the run first on two threads left the workers waiting for it (474 s of stages here,
2026-12-06) and a two-thread team beside a worker slows both. One thread, as the workers have,
so a test that retrains an entry of this store gets the same bits.

    python tests/shared_smoke.py ROOT     # ROOT/data holds Fashion-MNIST

writes ROOT/models (the store), ROOT/results.pkl (the rows), ROOT/computed.json (the keys the run
computed), then ROOT/done.txt; or ROOT/failed.txt with the traceback."""
import json
import os
import sys
import traceback
from pathlib import Path

DONE, FAILED = "done.txt", "failed.txt"


def compute(root: Path, store_dir, data_root: Path):
    """The whole smoke profile into `store_dir`, its report inputs into root/out."""
    from approxlib import pipeline
    from approxlib import store as S
    from approxlib.config import load_profile
    p = load_profile("smoke")
    store = S.Store(store_dir)
    df, runner = pipeline.run(p, list("ABCDEFGH"), store, root / "out", data_root, progress=False)
    return p, store, root, df, runner, data_root


def finished(root: Path) -> str | None:
    """None while the run is under way; else '' when it succeeded or the reason it failed."""
    if (root / FAILED).exists():
        return (root / FAILED).read_text() or "the smoke run failed"
    return "" if (root / DONE).exists() else None


def write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)  # a reader never sees half a marker


def main(root: Path) -> int:
    import torch
    torch.set_num_threads(1)
    try:
        _, _, _, df, runner, _ = compute(root, root / "models", root / "data")
        df.to_pickle(root / "results.pkl")  # written and read by this suite alone
        (root / "computed.json").write_text(json.dumps(runner.computed))
    except BaseException:
        write(root / FAILED, traceback.format_exc())
        return 1
    write(root / DONE, "")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
