"""The report's stages in several local processes (`approx report --workers N`).

Why: on a few cores, one process leaves cores idle wherever a stage is single-threaded work
(loading and checking checkpoints, ONNX exports, k-means, codecs, an evaluation's Python), and
small-batch training gains little from a second thread: smoke's stages took 390 s in one
two-thread process and 254 s in two one-thread ones (2-core Xeon, 2026-12-06).

The processes share the models folder through the store's locks: each walks the same plan in
its own order (`route`) and skips a stage another process holds (`pipeline.Runner(wait=False)`
raises `store.Busy`), so every stage is computed once. This process computes too (it waits
where another holds a stage), and once every stage is made it stops the others, then computes
alone what needs every model (section F's bits curves) and the timings in turns, so no timing
shares the machine with training. A helper that dies costs time, not results: whatever it left
undone this process computes itself.
"""
from __future__ import annotations

import contextlib
import logging
import multiprocessing
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from . import measure
from . import pipeline
from . import store
from .config import ConfigError
from .executors import cores

LOG = logging.getLogger("approxlib")


def route(items: list, index: int, count: int) -> list:
    """The order helper `index` of `count` takes `items` in: the first backwards from the end,
    the others forwards from evenly spaced points (the run itself goes forwards from the
    start), so each meets a stage another holds late rather than at once."""
    if index == 0:
        return items[::-1]
    k = index * len(items) // count
    return items[k:] + items[:k]


def help_with(p: dict, sections: list[str], cache: store.Store, data_root, index: int,
              count: int, stop) -> list[str]:
    """Compute the plan's models and evaluations in helper `index`'s order until each is made
    or `stop()`; a chain that meets a stage another process holds is tried again after the
    others, so a helper never sits waiting while there is work it could do. Returns the keys
    it computed."""
    runner = pipeline.Runner(p, cache, data_root, progress=False, wait=False)
    todo = route([pipeline.chain(v, p) for v in pipeline.plan(p, sections)], index, count)
    while todo and not stop():
        busy = []
        for st in todo:
            if stop():
                break
            try:
                runner.evaluate(st)
            except store.Busy:
                busy.append(st)
        if len(busy) == len(todo):
            time.sleep(0.5)  # everything left is under way elsewhere
        todo = busy
    return runner.computed


@contextlib.contextmanager
def _children_started(change: Callable[[], Any], undo: Callable[[Any], Any]):
    """`change` ^C's handling in the main thread while child processes start, `undo` it after;
    another thread (a notebook's or a test's) starts its children as they are."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = change()
    try:
        yield
    finally:
        undo(old)


def holding_interrupts():
    """SIGINT blocked in this thread while child processes start, which keep the block (a
    signal mask survives exec) until they take ^C their own way (`_helper`): ^C reaches the
    whole process group, and a helper printed its KeyboardInterrupt traceback, even from its
    imports, above this process's one line (an interrupting stranger, 2026-12-07). This process
    still gets it: Python runs its handler whichever thread the signal reaches, and a ^C held
    here is delivered when the block ends. (Ignoring it instead lost a ^C that came while the
    helpers started.)"""
    return _children_started(
        lambda: signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT}),
        lambda old: signal.pthread_sigmask(signal.SIG_SETMASK, old))


def ignoring_interrupts():
    """SIGINT ignored while child processes start, which keep ignoring it (an ignored signal
    stays ignored across exec): a local Dask cluster's processes, which `holding_interrupts`
    does not keep quiet (its workers take SIGINT back and printed 36 lines of tracebacks). A
    ^C while they start is lost: press it again."""
    return _children_started(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
                             lambda old: signal.signal(signal.SIGINT, old))


def _end_quietly(signum, frame) -> None:
    sys.exit(128 + signum)  # SystemExit unwinds (locks, temps) and prints no traceback


def _helper(p, sections, models_dir, data_root, index, count, threads, stop_event,
            interruptible=True) -> None:
    """A helper process's body (spawned: importable, its arguments picklable). It stops when
    told, or when the run that started it is gone (killed: no `finally` of its ran). Started
    with ^C held (`holding_interrupts`), it ends quietly on one, one that came during its
    imports too, and what it starts (NNCodec's interpreter) gets ^C as usual."""
    # as the run takes ^C: a run started with it ignored (a background job) keeps its helpers
    signal.signal(signal.SIGINT, _end_quietly if interruptible else signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    torch.set_num_threads(threads)
    parent = multiprocessing.parent_process()
    help_with(p, sections, store.Store(models_dir), data_root, index, count,
              lambda: stop_event.is_set() or (parent is not None and not parent.is_alive()))


def check(p: dict, sections: list[str], workers: int) -> None:
    """ConfigError unless `workers` processes can compute these sections here: at most one per
    core (each holds its own data and models), and no evaluation that times its variant
    itself (`latency_rounds: 0`), which would time it beside the others' training."""
    if workers > 1 and any(pipeline.times_itself(v, p) for v in pipeline.plan(p, sections)):
        raise ConfigError("--workers above 1 needs latency_rounds above 0: with 0, each "
                          "evaluation times its variant beside the other processes' training")
    if workers > cores():
        raise ConfigError(f"--workers {workers} is more than the {cores()} cores this process "
                          f"may use")


def threads_of(workers: int, threads: int | None) -> int:
    """Each process's torch threads: `threads`, else this process's setting for one process,
    else this machine's cores shared out among the `workers`."""
    return threads or (torch.get_num_threads() if workers <= 1 else max(1, cores() // workers))


def run(p: dict, sections: list[str], models_dir, out_dir: Path | None, data_root,
        progress: bool = True, workers: int = 1, threads: int | None = None
        ) -> tuple[pd.DataFrame, pipeline.Runner]:
    """`pipeline.run` with `workers - 1` helper processes beside this one, each process on
    `threads` torch threads (default: one process keeps torch's setting; several share this
    machine's cores out)."""
    check(p, sections, workers)
    cache = store.Store(models_dir)
    threads = threads_of(workers, threads)
    if workers <= 1:
        with measure.num_threads(threads):
            return pipeline.run(p, sections, cache, out_dir, data_root, progress)
    pipeline.prepare_data(p, pipeline.plan(p, sections), cache, data_root)  # before the helpers
    ctx = multiprocessing.get_context("spawn")  # no fork of a process holding torch's threads
    stop = ctx.Event()
    interruptible = signal.getsignal(signal.SIGINT) is not signal.SIG_IGN
    helpers = [ctx.Process(target=_helper, daemon=True,
                           args=(p, sections, str(models_dir), data_root, i, workers - 1,
                                 threads, stop, interruptible))
               for i in range(workers - 1)]

    def stop_helpers() -> None:
        stop.set()
        for h in helpers:
            h.join()
        died = [h.exitcode for h in helpers if h.exitcode]
        if died:
            LOG.warning("%d helper process(es) ended with status %s; this process computed "
                        "what they left", len(died), ", ".join(map(str, died)))
    try:
        with holding_interrupts():  # ^C is this process's to answer: it ends the helpers
            for h in helpers:
                h.start()
        with measure.num_threads(threads):
            return pipeline.run(p, sections, cache, out_dir, data_root, progress,
                                every_stage_made=stop_helpers)
    except BaseException:  # a failure or ^C here: the helpers' work is not wanted
        for h in helpers:
            if h.pid is not None:  # started
                h.terminate()
        raise
    finally:
        stop.set()
        for h in (h for h in helpers if h.pid is not None):
            h.join(timeout=60)
            if h.is_alive():
                h.terminate()
