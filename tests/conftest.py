import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from approxlib import data
from approxlib import parallel

import shared_smoke  # tests/, on the path beside this file

# Tests never reach for the network: a missing dataset must fail fast, not try a download.
os.environ.setdefault("APPROX_OFFLINE", "1")
# Under pytest-xdist (`make test` runs `-n`) each worker gets one thread, and so do the kernels
# and commands it starts: two 2-thread teams on 2 cores wait on each other (the tests after the
# smoke run took 600 s, about what one process takes, some of them 10x longer; with one thread
# each, 403 s; README, logbook "Tests on two workers").
WORKER = os.environ.get("PYTEST_XDIST_WORKER")
if WORKER:
    os.environ["OMP_NUM_THREADS"] = "1"
torch.set_num_threads(1 if WORKER else min(2, os.cpu_count() or 1))
# The folder of the smoke run the controller started for its workers (see pytest_sessionstart)
SHARED_SMOKE = "APPROX_TEST_SMOKE_SHARED"
SMOKE_PROCESS = pytest.StashKey[subprocess.Popen]()


def _fashion_mnist(root: Path) -> Path | None:
    """`root` holding the real Fashion-MNIST (from Debian's package, or data/ if present)."""
    if not data._place_debian_fashion_mnist(root):
        repo_raw = Path("data/FashionMNIST/raw")
        if not repo_raw.is_dir():
            return None
        (root / "FashionMNIST").mkdir()
        (root / "FashionMNIST" / "raw").symlink_to(repo_raw.resolve())
    return root


def _smoke_selected(config) -> bool:
    """Whether the paths pytest was given hold a test file that uses the smoke run (the
    controller does not collect; `-k` may still leave out every such test)."""
    here = Path(__file__).resolve().parent
    chosen = [(config.invocation_params.dir / a.split("::")[0]).resolve() for a in config.args]
    return any("smoke_run" in f.read_text() and any(c == f or c in f.parents for c in chosen)
               for f in here.glob("test_*.py"))


def pytest_sessionstart(session):
    """With workers (`-n`), the controller starts the smoke run in a process of its own, on one
    thread, and the workers, started next, run the tests that do not need it meanwhile, then
    help compute it (tests/shared_smoke.py says why); the tests that use it then only read its
    models folder, rows and what it computed. A kept APPROX_TEST_STORE needs no such run. A
    failed run fails the tests that use it, not the session."""
    cfg = session.config
    if (WORKER or not getattr(cfg.option, "numprocesses", None) or cfg.option.collectonly
            or os.environ.get("APPROX_TEST_STORE") or not _smoke_selected(cfg)):
        return
    root = cfg._tmp_path_factory.mktemp("smoke-shared")  # pytest's own temp root and rotation
    (root / "data").mkdir()
    if _fashion_mnist(root / "data") is None:
        return  # the data_root fixture skips what needs it
    reporter = cfg.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"computing the smoke run the tests share beside them ({root})")
    with open(root / "log.txt", "wb") as log:
        proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("shared_smoke.py")),
                                 str(root)], env={**os.environ, "OMP_NUM_THREADS": "1"},
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    threading.Thread(target=_watch, args=(proc, root), daemon=True).start()
    cfg.stash[SMOKE_PROCESS] = proc
    os.environ[SHARED_SMOKE] = str(root)  # the workers, started next, inherit it


def _watch(proc: subprocess.Popen, root: Path) -> None:
    """A run killed before it could say so (out of memory, a signal) fails its tests too."""
    code = proc.wait()
    if shared_smoke.finished(root) is None:
        log = (root / "log.txt").read_text(errors="replace")[-3000:]
        shared_smoke.write(root / shared_smoke.FAILED,
                           f"its process ended with status {code}:\n{log}")


def pytest_sessionfinish(session):
    """A session ended early (-x, ^C) leaves no smoke run computing behind it."""
    proc = session.config.stash.get(SMOKE_PROCESS, None)
    if proc is not None and proc.poll() is None:
        proc.terminate()
        proc.wait(timeout=60)


def pytest_collection_modifyitems(items):
    """The tests that need no smoke run first (with workers they run while it is computed),
    then those that use it; the slow ones first within each: workers hand out tests in this
    order, and a minute-long test started last keeps one worker busy while the others have
    nothing left."""
    items.sort(key=lambda item: ("smoke_run" in getattr(item, "fixturenames", ()),
                                 item.get_closest_marker("slow") is None))


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
    nothing); CI leaves it unset and computes everything, here or, with workers, beside them
    (its runner's `computed` then lists what that run computed)."""
    root = tmp_path_factory.mktemp("run")
    kept = os.environ.get("APPROX_TEST_STORE")
    shared = Path(os.environ[SHARED_SMOKE]) if WORKER and SHARED_SMOKE in os.environ else None
    if shared is not None and not kept:
        keys = _wait_for(shared, data_root)
    run = shared_smoke.compute(root, kept or (shared / "models" if shared else root / "models"),
                               data_root)
    if shared is not None and not kept:  # the shared run's rows and what it computed
        run[4].computed = keys
        run = (*run[:3], pd.read_pickle(shared / "results.pkl"), *run[4:])
    return run


def _wait_for(shared: Path, data_root: Path, limit: float = 3600.0) -> list[str]:
    """Until the shared smoke run and its helpers have finished (this worker one of them while
    the run is under way, if it is among the first `helpers`: tests/shared_smoke.py); what
    they computed. A failed or hung run fails the test."""
    # One process per core: the run and as many helpers as leave it a core (on 2 cores, two
    # helpers that skip what another holds made the run finish 10.6 min in, against 9.7 when
    # one of them mostly waited on locks, 2026-12-06); the other workers wait.
    helpers = min(parallel.cores() - 1,
                  int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    index = int(WORKER.removeprefix("gw"))
    if shared_smoke.finished(shared) is None and index < helpers:
        shared_smoke.help_with(shared, data_root, WORKER, index, helpers)
    deadline = time.monotonic() + limit
    while True:
        failure = shared_smoke.finished(shared)
        if failure:
            pytest.fail("the smoke run failed beside the tests:\n" + failure, pytrace=False)
        keys = shared_smoke.computed(shared) if failure == "" else None
        if keys is not None:
            return keys
        if time.monotonic() > deadline:
            pytest.fail(f"the shared smoke run did not finish in {limit:.0f} s", pytrace=False)
        time.sleep(0.5)


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
