import os
import shutil
import signal
from pathlib import Path

import pytest
import torch

from approxlib import data

# Tests never reach for the network: a missing dataset must fail fast, not try a download.
os.environ.setdefault("APPROX_OFFLINE", "1")
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> Path:
    """A data folder holding the real Fashion-MNIST (from Debian's package, or data/ if present)."""
    root = tmp_path_factory.mktemp("data")
    if not data._place_debian_fashion_mnist(root):
        repo_raw = Path("data/FashionMNIST/raw")
        if not repo_raw.is_dir():
            pytest.skip("Fashion-MNIST not available (install Debian's dataset-fashion-mnist)")
        (root / "FashionMNIST").mkdir()
        (root / "FashionMNIST" / "raw").symlink_to(repo_raw.resolve())
    return root


@pytest.fixture(scope="session")
def fmnist_test(data_root):
    return data.load_split("fashion-mnist", False, data_root)


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory, data_root):
    """The whole smoke profile computed once; its cache is shared by later tests."""
    from approxlib import pipeline
    from approxlib import store as S
    from approxlib.config import load_profile
    root = tmp_path_factory.mktemp("run")
    p = load_profile("smoke")
    # APPROX_TEST_STORE=DIR keeps the smoke store between local runs (a filled one computes
    # nothing); CI leaves it unset and computes everything.
    store = S.Store(os.environ.get("APPROX_TEST_STORE") or root / "models")
    df, runner = pipeline.run(p, list("ABCDEFGH"), store, root / "out", data_root, progress=False)
    return p, store, root, df, runner, data_root


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
    shutil.copytree(smoke_run[1].root, dst, copy_function=link,
                    ignore=shutil.ignore_patterns(".locks", "damaged"))
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
