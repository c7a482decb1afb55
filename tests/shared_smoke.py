"""The smoke run the parallel suite shares, computed in a process of its own beside the tests.

`make test` runs the tests on one-thread pytest-xdist workers. The controller starts this
script as the session starts (tests/conftest.py) and the workers run the tests that do not need
its store meanwhile, ordered first. The run's stages go to a local Dask cluster of one-thread
workers, one per core (approxlib.cluster, which handles their order): one-thread processes
share the cores without the waits of a two-thread team beside another process (up to 10x), and
a test that retrains an entry of this store on a one-thread pytest worker gets the same bits.

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


def compute_on_cluster(root: Path, data_root: Path, workers: int):
    """`compute`'s result, the stages computed on a local Dask cluster of `workers` one-thread
    processes (approxlib.cluster), the timings in turns here after them; the runner's
    `computed` lists both, as a run in one process would."""
    from approxlib import cluster
    from approxlib import pipeline
    from approxlib import store as S
    from approxlib.config import load_profile
    p, sections, url = load_profile("smoke"), list("ABCDEFGH"), str(root / "models")
    build, evals, curves = cluster.graph(p, sections, S.Store(url))
    made = ([st.key for st in build] + [pipeline.curve_key(v, p)[2] for v in curves]
            + [st.key for st in evals])
    df, runner = cluster.run(p, sections, url, root / "out", data_root, progress=False,
                             workers=workers, threads=1)
    runner.computed = made + runner.computed
    return df, runner


def main(root: Path) -> int:
    import torch
    torch.set_num_threads(1)
    try:
        df, runner = compute_on_cluster(root, root / "data", max(1, os.cpu_count() or 1))
        df.to_pickle(root / "results.pkl")  # written and read by this suite alone
        (root / "computed.json").write_text(json.dumps(runner.computed))
    except BaseException:
        write(root / FAILED, traceback.format_exc())
        return 1
    write(root / DONE, "")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
