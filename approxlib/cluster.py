"""The report's stages as tasks on a Dask cluster (`approx report --executor dask`).

Why Dask (distributed) rather than Ray: it is pure Python and pip-installable anywhere our torch
wheel is, a local cluster starts in seconds on loopback (what the tests need), and the same client
code reaches SSH, HPC (dask-jobqueue), Kubernetes and cloud clusters; its scheduler already gives
what this needs: dependencies between futures, per-task abstract resources, retries, re-running
the tasks of a worker that died, and a live dashboard.

The work is the graph `pipeline.chain` builds: every stage is one task keyed by its content hash,
so the scheduler runs a stage once however many variants (or concurrent clients) need it, and a
stage already in the artifact store is not submitted at all. Tasks write through `store.Store`:
atomic local writes, and for an fsspec URL an upload under a temporary name then a move, so a
killed worker leaves no half-written artifact and its task simply runs again elsewhere.

Two phases keep latency honest: every model-producing stage first, in parallel (with the
evaluations that time nothing: those of sections timed in turns, and section H's, which times
nothing); then the evaluations that time CPU latency (sections A–G's when `latency_rounds` is
0), one at a time per host (a cluster-wide lock named after the host), so
no timing shares its machine with training. When everything is in the store,
`pipeline.run` assembles results.csv from the cache exactly as a local run does; notebooks are
unchanged and read the same cache. One measurement is not a task: each section's variants
timed in turns (`pipeline.latency_groups`; every section but H) run in `pipeline.run`, on the
machine that runs `approx report`, once the cluster is done (the rows' `cpu` names that
machine).
"""
from __future__ import annotations

import contextlib
import logging
import socket
from pathlib import Path

import torch
from tqdm.auto import tqdm

from . import executors
from . import parallel
from . import pipeline
from . import store
from .config import ConfigError


def _dask():
    try:
        import distributed
    except ImportError:
        raise ConfigError("the dask executor needs Dask: pip install 'approxlib[cluster]' "
                          "(or pip install 'dask[distributed]')") from None
    return distributed


def graph(p: dict, sections: list[str], artifacts: store.Store, models: dict | None = None
          ) -> tuple[list[pipeline.Stage], list[pipeline.Stage], list[pipeline.Variant]]:
    """The stages still missing from the store: model-producing ones (and untimed evaluations)
    in dependency order, the timed evaluations, and the variants whose bits curve (section F)
    must be computed."""
    seen, staged = set(), []
    variants = pipeline.plan(p, sections, models)
    for v in variants:
        for st in pipeline.stages(v, p):
            if st.key not in seen:
                seen.add(st.key)
                staged.append(st)
    # what a run finds missing or stale (a model made from other weights than its upstream
    # holds, with all derived from it): else the client remade those alone, after the cluster
    missing = pipeline.missing_keys(staged, artifacts)
    build = [st for st in staged if st.key in missing and not st.step.timed]
    evals = [st for st in staged if st.key in missing and st.step.timed]
    curves = [v for v in variants if pipeline.has_curve(v)]
    return build, evals, curves


def _runner(p: dict, store_url: str, cache: str | None, data_root, threads: int) -> pipeline.Runner:
    # Results depend on the thread count (float sums are split differently): every task uses the
    # same one, the client's unless --threads says otherwise, so a cluster run equals a local one.
    torch.set_num_threads(threads)
    return pipeline.Runner(p, store.Store(store_url, cache), data_root, progress=False)


def run_stage(p: dict, st: pipeline.Stage, store_url: str, cache: str | None, data_root,
              threads: int, after=None) -> str:
    """One task: materialize one stage (its upstream ones are in the store: `after` held their
    futures). Timed evaluations hold this host's lock, so their timings run alone on the
    machine."""
    runner = _runner(p, store_url, cache, data_root, threads)
    lock = contextlib.nullcontext()
    if st.step.timed and _in_worker():
        import distributed
        lock = distributed.Lock(f"approx-evaluate@{socket.gethostname()}")
    with lock:
        runner.materialize(st)
    return st.key


def run_curve(p: dict, v: pipeline.Variant, store_url: str, cache: str | None, data_root,
              threads: int, after=None) -> str:
    _runner(p, store_url, cache, data_root, threads).bits_curve(v)
    return v.label


def _in_worker() -> bool:
    try:
        from distributed import get_worker
        get_worker()
        return True
    except (ImportError, ValueError):
        return False


def resources(st: pipeline.Stage, p: dict, threads: int) -> dict:
    """What a task needs of a worker: its CPU threads, and a GPU for training on CUDA."""
    need = {"cpus": threads}
    if st.step.trains and on_gpus(p):
        need["gpus"] = 1
    return need


def on_gpus(p: dict) -> bool:
    """Whether training tasks ask for a worker's `gpus` resource."""
    return str(p["device"]).startswith("cuda")


def check_local_gpus() -> None:
    """A local cluster offers this machine's GPU: ConfigError where it has none (its tasks
    waited for ever for a `gpus` resource no worker offered, 2026-12-07)."""
    if not torch.cuda.is_available():
        raise ConfigError("device 'cuda' requested but this machine, where the local Dask "
                          "cluster runs, has no CUDA device; valid: auto, cpu, or give "
                          "--scheduler of a cluster whose workers offer gpus")


def scheduler_address(address: str | None, workers: int | None = None) -> str | None:
    """`address`, else Dask's `scheduler-address` setting (DASK_SCHEDULER_ADDRESS); None: a
    local cluster. ConfigError where the setting is blank, or where `workers` sizes a local
    cluster that the setting would silently replace by its own."""
    _dask()
    import dask
    if address:
        return address
    configured = dask.config.get("scheduler-address", None)
    if isinstance(configured, str) and not configured.strip():  # DASK_SCHEDULER_ADDRESS=" "
        raise ConfigError("Dask's scheduler-address (DASK_SCHEDULER_ADDRESS) is blank; give "
                          "an address, or unset it for a local cluster")
    if configured and workers:
        raise ConfigError(f"--workers sizes a local cluster, but Dask's scheduler-address "
                          f"(DASK_SCHEDULER_ADDRESS) names the cluster at {configured}; unset "
                          f"it for a local cluster, or leave --workers out")
    return configured or None


@contextlib.contextmanager
def client(address: str | None = None, workers: int | None = None, threads: int = 1,
           dashboard: bool = False, gpus: bool = False):
    """A client of the cluster at `address` (else Dask's `scheduler-address` setting or
    DASK_SCHEDULER_ADDRESS), or of a local cluster on loopback with `workers` processes, each
    offering `threads` CPUs as the `cpus` resource (and, where training asks for `gpus`, this
    machine's GPU: a local cluster offered none, and the run waited for ever, 2026-12-07)."""
    distributed = _dask()
    address = scheduler_address(address, workers)
    if address:
        _probe(address)
        try:
            c = distributed.Client(address, timeout=f"{CONNECT_S}s")
        except (OSError, ValueError) as e:  # ValueError: not an address ("missing port")
            raise ConfigError(f"cannot reach the Dask scheduler at {address}: {e}") from None
        try:
            _check_workers(c, threads, gpus)
            yield c
        finally:
            c.close()
        return
    n = workers or max(1, executors.cores() // threads)
    if gpus:
        check_local_gpus()
    with parallel.ignoring_interrupts():  # its processes: ^C is this client's to answer
        cluster = distributed.LocalCluster(
            n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address="127.0.0.1:8787" if dashboard else None,
            resources={"cpus": threads, **({"gpus": 1} if gpus else {})},
            silence_logs=logging.ERROR)
    with cluster, distributed.Client(cluster) as c:
        yield c


CONNECT_S = 20  # seconds to reach a scheduler
HANDSHAKE_S = 5  # ... and then to hear its handshake
WORKER_WAIT_S = 60  # seconds to wait for its first worker


def _probe(address: str) -> None:
    """One connection to `address` with its handshake, all within a deadline: distributed
    bounds the connection but not the handshake after it, so an HTTP server there hung the
    client for ever, and another server's reply, read as frame lengths, asked numpy for
    3 EiB (a stranger's walkthrough, 2026-12-07). Run in a thread of its own: a notebook's
    event loop may be running in this one."""
    import asyncio
    import concurrent.futures
    import struct
    from distributed.comm import connect
    from distributed.security import Security
    # what Client passes for TLS (dask's distributed.comm.tls settings): without it a TLS
    # scheduler was refused
    security = Security().get_connection_args("client")

    async def hello():
        comm = await asyncio.wait_for(connect(address, timeout=CONNECT_S, **security),
                                      CONNECT_S + HANDSHAKE_S)
        await comm.close()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        try:
            pool.submit(asyncio.run, hello()).result()
        except (asyncio.TimeoutError, TimeoutError) as e:
            why = _said(e, "is a Dask scheduler listening?")
            raise ConfigError(f"the Dask scheduler at {address} did not answer in "
                              f"{CONNECT_S + HANDSHAKE_S} s: {why}") from None
        except (OSError, ValueError) as e:  # ValueError: not an address ("missing port")
            raise ConfigError(f"cannot reach the Dask scheduler at {address}: {_said(e)}"
                              ) from None
        except (MemoryError, struct.error) as e:  # another protocol's bytes read as frames
            raise ConfigError(f"{address} does not answer as a Dask scheduler ("
                              f"{type(e).__name__} reading its reply)") from None


def _said(e: BaseException, otherwise: str = "") -> str:
    return " ".join(str(e).split()) or otherwise or type(e).__name__


def _check_workers(c, threads: int, gpus: bool = False) -> None:
    """Tasks ask for `cpus` (and training on CUDA for `gpus`): workers that do not offer
    enough would leave them waiting forever."""
    try:
        c.wait_for_workers(1, timeout=WORKER_WAIT_S)
    except TimeoutError:  # distributed's WorkerStartTimeoutError
        raise ConfigError(f"no Dask worker joined the scheduler at {c.scheduler.address} in "
                          f"{WORKER_WAIT_S} s; start workers with `dask worker "
                          f"{c.scheduler.address} --nthreads 1 --resources cpus={threads}`"
                          ) from None
    workers = c.scheduler_info()["workers"].values()
    if gpus and not any(w.get("resources", {}).get("gpus", 0) >= 1 for w in workers):
        raise ConfigError(f"device 'cuda': no Dask worker offers a GPU; start workers on GPU "
                          f"machines with `dask worker {c.scheduler.address} --nthreads 1 "
                          f"--resources \"cpus={threads} gpus=1\"`, or set device=cpu")
    offered = [w.get("resources", {}).get("cpus", 0) for w in workers]
    if max(offered, default=0) < threads:
        raise ConfigError(f"no Dask worker offers {threads} cpus; start workers with "
                          f"`dask worker {c.scheduler.address} --nthreads 1 --resources "
                          f"cpus={threads}` "
                          f"or pass a smaller --threads")


def execute(c, p: dict, sections: list[str], store_url: str, data_root, threads: int,
            cache: str | None = None, models: dict | None = None, progress: bool = True,
            retries: int = 2) -> int:
    """Compute every missing stage of `sections` on the cluster; return how many ran."""
    import distributed
    artifacts = store.Store(store_url, cache)
    build, evals, curves = graph(p, sections, artifacts, models)
    data_root = str(data_root) if data_root is not None else None
    if progress and c.dashboard_link:
        print(f"Dask dashboard: {c.dashboard_link}")
    futures: dict[str, object] = {}

    def submit(fn, item, key, after, res):
        return c.submit(fn, p, item, store_url, cache, data_root, threads, after, key=key,
                        resources=res, retries=retries, pure=False)

    for st in build:  # in dependency order: an upstream future always exists first
        up = futures.get(st.upstream.key) if st.upstream is not None else None
        futures[st.key] = submit(run_stage, st, f"{st.kind}-{st.key}", up,
                                 resources(st, p, threads))
    curve_futures = []
    for v in curves:
        gradual, _, _ = pipeline.curve_key(v, p)
        curve_futures.append(submit(run_curve, v, f"curve-{gradual.key}",
                                    futures.get(gradual.key), {"cpus": threads}))
    phase1 = list(futures.values()) + curve_futures
    _wait(distributed, phase1, "stages", progress)
    # Phase 2 only after every model exists: nothing trains while latency is timed.
    phase2 = [submit(run_stage, st, f"evaluate-{st.key}", None, resources(st, p, threads))
              for st in evals]
    _wait(distributed, phase2, "evaluations", progress)
    return len(phase1) + len(phase2)


def _wait(distributed, futures: list, what: str, progress: bool) -> None:
    bar = tqdm(total=len(futures), desc=f"cluster: {what}", disable=not progress)
    try:
        for f in distributed.as_completed(futures):
            f.result()  # re-raises the task's error (after its retries) here, with its message
            bar.update()
    finally:
        bar.close()


def threads_of(threads: int | None, workers: int | None = None, local: bool = False) -> int:
    """Each task's torch threads: --threads; else, on a local cluster of `workers` processes,
    this machine's cores shared out among them, as `parallel.threads_of` gives a local run's
    (the client's 2 threads each put 4 on 2 cores, a planner found, 2026-12-07); else the
    client's, so a cluster run equals a local one."""
    if local and workers:
        return parallel.threads_of(workers, threads)
    return threads or torch.get_num_threads()


def run(p: dict, sections: list[str], store_url: str | Path, out_dir: Path | None,
        data_root=None, progress: bool = True, models: dict | None = None,
        address: str | None = None, workers: int | None = None, threads: int | None = None,
        cache: str | None = None):
    """`pipeline.run` with the stages computed on a Dask cluster first; same return value."""
    threads = threads_of(threads, workers, local=not scheduler_address(address, workers))
    artifacts = store.Store(store_url, cache)
    with client(address, workers, threads, dashboard=progress, gpus=on_gpus(p)) as c:
        pipeline.prepare_data(p, pipeline.plan(p, sections, models), artifacts, data_root)
        execute(c, p, sections, str(store_url), data_root, threads, cache, models, progress)
    torch.set_num_threads(threads)
    return pipeline.run(p, sections, artifacts, out_dir, data_root, progress=False,
                        models=models)
