"""The Dask executor and the fsspec artifact store (issue: scale out)."""
import json
import logging
import os
import signal
import socket
import threading
import time

import pytest
import torch

from approxlib import cluster
from approxlib import executors
from approxlib import measure
from approxlib import parallel
from approxlib import pipeline
from approxlib import store as S
from approxlib.config import ModelConfig
from approxlib.config import load_profile
from approxlib.models import build


def test_url_store_publishes_whole_files_and_fetches_them_elsewhere(tmp_path):
    url = f"file://{tmp_path / 'shared'}"
    a = S.Store(url, cache=tmp_path / "cache-a")
    mc = ModelConfig("resnet18", 10, 1, "imagenet")
    path = a.path("train", "k1")
    S.save_checkpoint(build(mc, 0), path, mc)
    assert not S.Store(url, cache=tmp_path / "cache-b").has("train", "k1")  # not yet published
    a.publish("train", "k1")
    a.write_json("metrics", "k1", {"accuracy": 0.5})
    shared = sorted(p.relative_to(tmp_path / "shared").as_posix()
                    for p in (tmp_path / "shared").rglob("*"))
    assert shared == ["metrics", "metrics/k1.json", "metrics/k1.json.sha256", "train",
                      "train/k1.pt", "train/k1.pt.sha256"]  # digests beside, no temp files
    b = S.Store(url, cache=tmp_path / "cache-b")  # another worker: an empty local cache
    assert b.has("train", "k1") and b.read_json("metrics", "k1") == {"accuracy": 0.5}
    got = b.fetch("train", "k1")
    assert got == tmp_path / "cache-b" / "train" / "k1.pt"
    assert got.read_bytes() == path.read_bytes()
    S.load_checkpoint(got, expect=mc)
    assert b.fetch("train", "missing") is None and b.read_json("metrics", "missing") is None
    with pytest.raises(S.ConfigError, match="cannot use artifact store"):
        S.Store("nosuchprotocol://bucket/x")


def test_training_on_cuda_needs_a_worker_with_a_gpu(tmp_path, capsys):
    """Training tasks on CUDA ask for a worker's `gpus`: a local cluster on a machine without
    CUDA, or workers offering none, left the run waiting for ever at 0% (a stranger's test,
    2026-12-07); each is one line now."""
    from types import SimpleNamespace
    from approxlib import cli
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    code = cli.main(["report", "--profile", "smoke", "--sections", "A", "--stages-only",
                     "--executor", "dask", "--threads", "1", "--set", "device=cuda",
                     "--models-dir", str(tmp_path / "m"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "has no CUDA device" in err, err
    # a dry run answers whether the run would start (it priced a run that could not)
    code = cli.main(["report", "--profile", "smoke", "--sections", "A", "--dry-run",
                     "--executor", "dask", "--set", "device=cuda",
                     "--models-dir", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "has no CUDA device" in err, err

    class Workers:  # a scheduler whose one worker offers 2 cpus and no gpus
        scheduler = SimpleNamespace(address="tcp://10.0.0.5:8786")

        def wait_for_workers(self, n, timeout):
            pass

        def scheduler_info(self):
            return {"workers": {"w": {"resources": {"cpus": 2}}}}
    cluster._check_workers(Workers(), 2)
    with pytest.raises(S.ConfigError, match="no Dask worker offers a GPU.*gpus=1"):
        cluster._check_workers(Workers(), 2, gpus=True)


def test_cli_rejects_cluster_options_without_dask_executor(tmp_path, capsys):
    from approxlib import cli
    for args, msg in ((["--scheduler", "tcp://127.0.0.1:1"], "needs --executor dask"),
                      (["--executor", "dask", "--threads", "0"], "at least 1"),
                      (["--executor", "ray"], "invalid choice")):
        code = cli.main(["report", "--profile", "smoke", "--models-dir", str(tmp_path), *args])
        err = capsys.readouterr().err
        assert code == 2 and msg in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def _executing(dask_worker):
    return [str(ts.key) for ts in dask_worker.state.executing]


def _kill_first_training_worker(c, killed: list, deadline: float) -> None:
    """Kill (SIGKILL) the first worker seen running a training stage: a crash mid-task."""
    while time.monotonic() < deadline and not killed:
        try:
            for addr, keys in c.run(_executing).items():
                train = [k for k in keys if k.startswith("train-")]
                if train:
                    pid = c.run(os.getpid, workers=[addr])[addr]
                    os.kill(pid, signal.SIGKILL)
                    killed.append(train[0])
                    return
        except Exception:  # a worker restarting between the two calls: look again
            pass
        time.sleep(0.2)


@pytest.fixture
def one_thread():
    """One PyTorch thread per process: two 1-thread workers fill this 2-core machine without
    oversubscribing it (two 2-thread teams on 2 cores slow PyTorch up to tenfold)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield 1
    torch.set_num_threads(before)


# Section B of the smoke profile on fewer images: every stage kind of A–E (train, prune, control,
# quantize, evaluate) with the same code paths, in seconds rather than the minutes the whole
# profile takes: what is tested is that the cluster computes what one process does, bit for bit
TINY = {"train_size": 512, "val_size": 64, "test_size": 200, "epochs": 2, "calib_images": 32}


@pytest.mark.slow
def test_dask_cluster_equals_local_run_despite_a_killed_worker(data_root, one_thread, tmp_path,
                                                              caplog):
    """Section B (every stage kind of A–E: train, prune, control, quantize, evaluate; section A
    adds only MobileNetV2's of the same kinds) on a 2-worker local cluster (loopback), artifacts
    in an fsspec store: one worker is killed while it trains; the run completes, every artifact
    loads, and every model equals a local run's bit for bit (same weights, same predictions).
    The local run is two processes (`approx report --workers 2`: this one and a helper), so
    both ways of spreading the stages are held to one process's bits."""
    pytest.importorskip("distributed")
    p = load_profile("smoke", TINY)
    sections = ["B"]
    with caplog.at_level(logging.WARNING, logger="approxlib"):
        local_df, local_runner = parallel.run(p, sections, tmp_path / "local", None, data_root,
                                              progress=False, workers=2, threads=one_thread)
    assert not [r for r in caplog.records if "helper" in r.getMessage()]  # none died
    assert all(s["cached"] for s in pipeline.dry_run(p, sections, S.Store(tmp_path / "local")))
    url = f"file://{tmp_path / 'shared'}"
    killed: list[str] = []
    t0 = time.monotonic()
    with cluster.client(workers=2, threads=one_thread) as c:
        killer = threading.Thread(target=_kill_first_training_worker,
                                  args=(c, killed, time.monotonic() + 120), daemon=True)
        killer.start()
        ran = cluster.execute(c, p, sections, url, data_root, one_thread,
                              cache=str(tmp_path / "cache"), progress=False)
        killer.join()
    assert time.monotonic() - t0 < 600  # a hang fails here, not at CI's limit
    assert killed, "no training task was seen running"
    # every distinct stage of B once (the store started empty)
    assert ran == len({st.key for v in pipeline.plan(p, sections) for st in pipeline.stages(v, p)})
    store = S.Store(url, cache=tmp_path / "cache")
    assert all(s["cached"] for s in pipeline.dry_run(p, sections, store))
    shared = tmp_path / "shared"
    assert not [f for f in shared.rglob("*") if f.name.endswith(".tmp")]
    for f in shared.rglob("*.pt"):  # whole, loadable checkpoints only
        S.load_checkpoint(f)
    for f in shared.rglob("*.json"):
        json.loads(f.read_text())
    df, runner = pipeline.run(p, sections, store, tmp_path / "out", data_root, progress=False)
    # every stage came from the cluster's store; the timing in turns is the client's own
    chains = [pipeline.chain(v, p) for v in pipeline.plan(p, sections)]
    assert runner.computed == list(dict.fromkeys(g.key for g in pipeline.latency_groups(
        p, pipeline.plan(p, sections), chains)))
    local = local_df.reset_index(drop=True)
    cols = ["section", "model", "prune_ratio", "quant", "control", "accuracy", "val_accuracy",
            "params", "zero_params", "sparsity"]
    assert df[cols].equals(local[cols])
    for v, m in runner.metrics.items():
        mine = local_runner.metrics[v]
        assert m["fingerprint"] == mine["fingerprint"]  # every weight bit (None for INT8)
        assert m["predictions"] == mine["predictions"]


def _server(reply: bytes | None):
    """A TCP server on loopback that answers every connection with `reply` (None: silence)."""
    srv = socket.create_server(("127.0.0.1", 0))

    def serve():
        while True:
            conn, _ = srv.accept()
            conn.recv(100)
            if reply is not None:
                conn.sendall(reply)
    threading.Thread(target=serve, daemon=True).start()
    return srv, f"tcp://127.0.0.1:{srv.getsockname()[1]}"


def test_what_is_no_working_scheduler_is_one_line(monkeypatch, capsys, tmp_path):
    """A stranger's walkthrough (2026-12-07): an HTTP reply, read as frame lengths, asked numpy
    for 3 EiB (a traceback); a server that never answers hung the client for ever; a scheduler
    without workers ended in distributed's TimeoutError, which our error line then broke on;
    a local cluster of 64 workers on 2 cores ran nothing for minutes; `--scheduler ''` ran
    a local cluster instead."""
    from distributed import LocalCluster
    from distributed.exceptions import WorkerStartTimeoutError
    from approxlib import cli
    from approxlib.config import ConfigError
    monkeypatch.setattr(cluster, "CONNECT_S", 2)
    monkeypatch.setattr(cluster, "HANDSHAKE_S", 1)
    monkeypatch.setattr(cluster, "WORKER_WAIT_S", 1)
    srv, address = _server(b"HTTP/1.0 426 Upgrade Required\r\n\r\n" * 20)
    with pytest.raises(ConfigError, match=f"{address} does not answer as a Dask scheduler"):
        with cluster.client(address, None, 1):
            pass
    srv.close()
    srv, address = _server(None)
    t0 = time.monotonic()
    with pytest.raises(ConfigError, match=f"the Dask scheduler at {address} did not answer in "
                                          f"3 s: is a Dask scheduler listening"):
        with cluster.client(address, None, 1):
            pass
    assert time.monotonic() - t0 < 10
    srv.close()
    with LocalCluster(n_workers=0, processes=False, dashboard_address=None) as empty:
        with pytest.raises(ConfigError, match=r"no Dask worker joined the scheduler at "
                           rf"{empty.scheduler_address} in 1 s; start workers with `dask worker "
                           rf"{empty.scheduler_address} --nthreads 1 --resources cpus=2`"):
            with cluster.client(empty.scheduler_address, None, 2):
                pass
    assert cli.os_error_line(WorkerStartTimeoutError(0, 1, 60)).startswith("Only 0/1 workers")
    import dask
    with dask.config.set({"scheduler-address": " "}):
        with pytest.raises(ConfigError, match=r"scheduler-address \(DASK_SCHEDULER_ADDRESS\) "
                                              r"is blank"):
            with cluster.client(None, None, 1):
                pass
    # the setting would replace the local cluster --workers sizes: refused, as --scheduler is
    with dask.config.set({"scheduler-address": "tcp://127.0.0.1:1"}):
        with pytest.raises(ConfigError, match=r"--workers sizes a local cluster, but Dask's "
                                              r"scheduler-address .* tcp://127\.0\.0\.1:1"):
            with cluster.client(None, 2, 1):
                pass
        code = cli.main(["report", "--profile", "smoke", "--dry-run", "--executor", "dask",
                         "--workers", "1", "--models-dir", str(tmp_path / "m")])
        err = capsys.readouterr().err
        assert code == 2 and "--workers sizes a local cluster" in err and err.count("\n") == 1
    for args, msg in ((["--scheduler", ""], "--scheduler is empty"),
                      (["--workers", str(executors.cores() + 1)],
                       f"is more than the {executors.cores()} cores")):
        code = cli.main(["report", "--profile", "smoke", "--models-dir", str(tmp_path / "m"),
                         "--executor", "dask", *args])
        err = capsys.readouterr().err
        assert code == 2 and msg in err and err.count("\n") == 1
    assert not (tmp_path / "m").exists()


def test_a_scheduler_address_that_is_not_one_is_one_line():
    """distributed raises ValueError ("missing port number") for text that is no address."""
    from approxlib.config import ConfigError
    with pytest.raises(ConfigError, match="cannot reach the Dask scheduler at not a url"):
        with cluster.client("not a url", None, 1):
            pass


def test_each_executor_names_the_device_and_threads_its_stages_run_on(monkeypatch):
    """What a dry run prices the missing entries at (`accounting.estimate`): a local run's
    processes share the cores out; a cluster's tasks take the client's threads, and a
    scheduler's workers a device only where the profile names one."""
    monkeypatch.setattr(parallel, "cores", lambda: 8)
    monkeypatch.setattr(executors, "cores", lambda: 8)
    p = load_profile("smoke")
    here = "cuda" if torch.cuda.is_available() else "cpu"
    local, dask = executors.of("local"), executors.of("dask")
    assert local.setting(p, {"workers": 2, "threads": None}) == {"device": here, "threads": 4}
    assert local.setting(p, {"workers": 1, "threads": 3}) == {"device": here, "threads": 3}
    with measure.num_threads(5):
        assert local.setting(p, {"workers": 1, "threads": None})["threads"] == 5
        far = {"address": "tcp://10.0.0.1:8786", "workers": None, "threads": None}
        assert dask.setting(p, far) == {"threads": 5}
        assert dask.setting({**p, "device": "cuda"}, far) == {"device": "cuda", "threads": 5}
        assert dask.setting(p, {**far, "address": None, "threads": 2}) == {"device": here,
                                                                           "threads": 2}
        # a local cluster of 2 without --threads shares the cores out as a local run does
        # (each took the client's 5: oversubscribed, without the warning --threads gives)
        assert dask.setting(p, {**far, "address": None, "workers": 2}) == {"device": here,
                                                                           "threads": 4}
