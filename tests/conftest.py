import json
import os
import shutil
import signal
import traceback
from pathlib import Path

import pandas as pd
import pytest
import torch

from approxlib import data

# Tests never reach for the network: a missing dataset must fail fast, not try a download.
os.environ.setdefault("APPROX_OFFLINE", "1")
# Under pytest-xdist (`make test` runs `-n`) each worker gets one thread, and so do the kernels
# and commands it starts: two 2-thread teams on 2 cores wait on each other (the tests after the
# smoke run took 600 s, about what one process takes, some of them 10x longer; with one thread
# each, 403 s).
WORKER = os.environ.get("PYTEST_XDIST_WORKER")
if WORKER:
    os.environ["OMP_NUM_THREADS"] = "1"
torch.set_num_threads(1 if WORKER else min(2, os.cpu_count() or 1))
# The store a controller filled for its workers (see pytest_sessionstart)
SHARED_SMOKE = "APPROX_TEST_SMOKE_SHARED"


def _fashion_mnist(root: Path) -> Path | None:
    """`root` holding the real Fashion-MNIST (from Debian's package, or data/ if present)."""
    if not data._place_debian_fashion_mnist(root):
        repo_raw = Path("data/FashionMNIST/raw")
        if not repo_raw.is_dir():
            return None
        (root / "FashionMNIST").mkdir()
        (root / "FashionMNIST" / "raw").symlink_to(repo_raw.resolve())
    return root


def _smoke(root: Path, store_dir, data_root: Path):
    from approxlib import pipeline
    from approxlib import store as S
    from approxlib.config import load_profile
    p = load_profile("smoke")
    store = S.Store(store_dir)
    df, runner = pipeline.run(p, list("ABCDEFGH"), store, root / "out", data_root, progress=False)
    return p, store, root, df, runner, data_root


def _smoke_selected(config) -> bool:
    """Whether the paths pytest was given hold a test file that uses the smoke run (the
    controller does not collect; `-k` may still leave out every such test)."""
    here = Path(__file__).resolve().parent
    chosen = [(config.invocation_params.dir / a.split("::")[0]).resolve() for a in config.args]
    return any("smoke_run" in f.read_text() and any(c == f or c in f.parents for c in chosen)
               for f in here.glob("test_*.py"))


def pytest_sessionstart(session):
    """With workers (`-n`), the controller computes the smoke run once before they start, on
    two threads as the suite run in one process does (the run is the suite's longest wait, and
    training a 2,000-image model on one thread took 1.6x as long), and hands the workers its
    models folder, its rows and what it computed; they only read them. A kept
    APPROX_TEST_STORE needs no such run. A failed run fails the tests that use it, not the
    session."""
    cfg = session.config
    if (WORKER or not getattr(cfg.option, "numprocesses", None) or cfg.option.collectonly
            or os.environ.get("APPROX_TEST_STORE") or not _smoke_selected(cfg)):
        return
    root = cfg._tmp_path_factory.mktemp("smoke-shared")  # pytest's own temp root and rotation
    (root / "data").mkdir()
    data_root = _fashion_mnist(root / "data")
    if data_root is None:
        return  # the data_root fixture skips what needs it
    reporter = cfg.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line("computing the smoke run the tests share, before the workers start "
                            "(about 5 minutes on 2 cores)")
    try:
        _, _, _, df, runner, _ = _smoke(root, root / "models", data_root)
        df.to_pickle(root / "results.pkl")  # written and read by this suite alone
        (root / "computed.json").write_text(json.dumps(runner.computed))
    except Exception:
        (root / "failed.txt").write_text(traceback.format_exc())
    os.environ[SHARED_SMOKE] = str(root)  # the workers, started next, inherit it


def pytest_collection_modifyitems(items):
    """The slow tests first: workers hand out tests in this order, and a minute-long test
    started last keeps one worker busy while the others have nothing left."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> Path:
    """A data folder holding the real Fashion-MNIST (from Debian's package, or data/ if present)."""
    root = _fashion_mnist(tmp_path_factory.mktemp("data"))
    if root is None:
        pytest.skip("Fashion-MNIST not available (install Debian's dataset-fashion-mnist)")
    return root


@pytest.fixture(scope="session")
def fmnist_test(data_root):
    return data.load_split("fashion-mnist", False, data_root)


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory, data_root):
    """The whole smoke profile computed once; its cache is shared by later tests.

    APPROX_TEST_STORE=DIR keeps the smoke store between local runs (a filled one computes
    nothing); CI leaves it unset and computes everything, here or, with workers, in the
    controller (its runner's `computed` then lists what that run computed)."""
    root = tmp_path_factory.mktemp("run")
    kept = os.environ.get("APPROX_TEST_STORE")
    shared = Path(os.environ[SHARED_SMOKE]) if WORKER and SHARED_SMOKE in os.environ else None
    if shared is not None and (shared / "failed.txt").exists():
        pytest.fail("the smoke run failed in the controller:\n"
                    + (shared / "failed.txt").read_text(), pytrace=False)
    run = _smoke(root, kept or (shared / "models" if shared else root / "models"), data_root)
    if shared is not None and not kept:  # the controller's rows and what it computed
        run[4].computed = json.loads((shared / "computed.json").read_text())
        run = (*run[:3], pd.read_pickle(shared / "results.pkl"), *run[4:])
    return run


@pytest.fixture
def store_copy(smoke_run, tmp_path):
    """A private copy of the smoke run's store in `tmp_path / "models"`, made of hard links
    (cheap): the store replaces a file only by renaming a new one over it, never writes through
    an old one, so the shared store keeps what the plan put there (a kept APPROX_TEST_STORE too,
    run after run). Locks and set-aside files stay behind."""
    from approxlib import store as S

    def link(src, dst):
        try:
            os.link(src, dst)
        except OSError:  # another file system
            shutil.copy2(src, dst)
    dst = tmp_path / "models"
    # another worker's write may be under way: its temporary file (.name~host~pid~...) is left
    shutil.copytree(smoke_run[1].root, dst, copy_function=link,
                    ignore=shutil.ignore_patterns(".locks", "damaged", ".*~*"))
    return S.Store(dst)


@pytest.fixture
def no_hang():
    """Fail instead of hanging: reading a FIFO without a writer blocks for ever, and a
    regression there would stall the suite rather than fail a test."""
    def stop(*_):
        raise TimeoutError("blocked for 20 s")
    old = signal.signal(signal.SIGALRM, stop)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)
