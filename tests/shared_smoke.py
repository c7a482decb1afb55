"""The smoke run the parallel suite shares, computed beside the tests.

`make test` runs the tests on one-thread pytest-xdist workers. The controller starts this
script as the session starts (tests/conftest.py), on one thread, and the workers run the tests
that do not need its store meanwhile, ordered first. Workers left with nothing but tests that
need it help (`help_with`), as many as leave the run a core: each computes the same plan's
models on the same store in another order, and the store's locks give each stage to one of
them. One-thread processes share the cores without the waits of a two-thread team beside
another process (up to 10x), and a test that retrains an entry of this store on a one-thread
worker gets the same bits.

    python tests/shared_smoke.py ROOT     # ROOT/data holds Fashion-MNIST

writes ROOT/models (the store), ROOT/results.pkl (the rows), ROOT/computed.json (the keys the run
computed), then ROOT/done.txt; or ROOT/failed.txt with the traceback. A helper NAME writes
ROOT/helper-NAME.started, then ROOT/helper-NAME.json (the keys it computed)."""
import json
import os
import sys
import traceback
from pathlib import Path

DONE, FAILED = "done.txt", "failed.txt"
SECTIONS = list("ABCDEFGH")


def compute(root: Path, store_dir, data_root: Path):
    """The whole smoke profile into `store_dir`, its report inputs into root/out."""
    from approxlib import pipeline
    from approxlib import store as S
    from approxlib.config import load_profile
    p = load_profile("smoke")
    store = S.Store(store_dir)
    df, runner = pipeline.run(p, SECTIONS, store, root / "out", data_root, progress=False)
    return p, store, root, df, runner, data_root


def finished(root: Path) -> str | None:
    """None while the run is under way; else '' when it succeeded or the reason it failed."""
    if (root / FAILED).exists():
        return (root / FAILED).read_text() or "the smoke run failed"
    return "" if (root / DONE).exists() else None


def write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)  # a reader never sees half a file


def help_with(root: Path, data_root: Path, name: str, index: int, count: int) -> None:
    """Compute the run's models and evaluations beside it (`parallel.help_with`: in this
    helper's order, skipping what another process holds) until every one is made or the run
    has finished (its curves and timings in turns are the run's own: they need all the
    models)."""
    write(root / f"helper-{name}.started", str(os.getpid()))  # `computed` sees if it dies
    done: list[str] | dict = {"failed": "no result"}
    try:
        from approxlib import parallel
        from approxlib import store as S
        from approxlib.config import load_profile
        done = parallel.help_with(load_profile("smoke"), SECTIONS, S.Store(root / "models"),
                                  data_root, index, count, lambda: finished(root) is not None)
    except BaseException:
        done = {"failed": traceback.format_exc()}
        raise
    finally:
        write(root / f"helper-{name}.json", json.dumps(done))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not Path(f"/proc/{pid}/status").is_file() or \
        "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()  # a zombie is gone too


def computed(root: Path) -> list[str] | None:
    """What the run and its helpers computed, once every helper has finished; else None.
    RuntimeError if a helper failed or died (a killed worker writes nothing)."""
    keys = json.loads((root / "computed.json").read_text())
    for started in sorted(root.glob("helper-*.started")):
        result = started.with_suffix(".json")
        if not result.exists():
            if not _alive(int(started.read_text() or 0)):
                raise RuntimeError(f"{started.stem} ended without saying what it computed")
            return None
        got = json.loads(result.read_text())
        if isinstance(got, dict):
            raise RuntimeError(f"{started.stem} failed:\n{got['failed']}")
        keys += got
    return keys


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
