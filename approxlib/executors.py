"""Where `approx report` computes its stages: each executor one registered class that checks its
command-line options, turns them into its run's keyword arguments and runs the stages, so that
the CLI and `publish` name an executor without testing its name. A new executor is one class
here. Light to import (the CLI checks options before PyTorch loads): what runs is imported when
it runs.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from .config import ConfigError


def cores() -> int:
    """The CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        os.cpu_count() or 1)


@dataclass(frozen=True)
class Executor:
    key: str
    help: str
    counts_computed = False  # its runner lists what this process computed
    trains_here = False  # this process or its helpers train (refuses a CUDA it lacks)

    def check(self, a) -> None:
        """ConfigError for an option it does not take (`a`: the parsed `approx report`)."""

    def options(self, a) -> dict:
        """The keyword arguments its `run` takes, from the checked options."""
        raise NotImplementedError

    def preflight(self, p: dict, sections: list[str], options: dict) -> None:
        """ConfigError before anything runs, where the run would refuse these sections."""

    def setting(self, p: dict, options: dict) -> dict:
        """The device and torch threads its stages will run on, as far as this process can
        tell (`accounting.estimate` prices a dry run's entries from records made so)."""
        raise NotImplementedError

    def run(self, p: dict, sections: list[str], models_dir, out, data_dir, progress: bool,
            **options) -> tuple:
        """The rows and the runner, as `pipeline.run` returns them."""
        raise NotImplementedError


class Local(Executor):
    """This process and `workers - 1` helpers beside it (`parallel.run`)."""
    counts_computed = True
    trains_here = True

    def check(self, a) -> None:
        if a.scheduler:
            raise ConfigError("--scheduler needs --executor dask")

    def options(self, a) -> dict:
        return {"workers": a.workers or 1, "threads": a.threads}

    def preflight(self, p, sections, options) -> None:
        from . import parallel
        parallel.check(p, sections, options["workers"])

    def setting(self, p, options) -> dict:
        from . import parallel, train
        return {"device": train.device_type(p["device"]),
                "threads": parallel.threads_of(options["workers"], options["threads"])}

    def run(self, p, sections, models_dir, out, data_dir, progress, **options):
        from . import parallel
        return parallel.run(p, sections, models_dir, out, data_dir, progress=progress, **options)


class Dask(Executor):
    """A Dask cluster: one at `address`, or a local one of `workers` (`cluster.run`)."""

    def check(self, a) -> None:
        if a.scheduler and a.workers:
            raise ConfigError("--workers sizes a local cluster; a --scheduler's cluster has its "
                              "own")
        # a local cluster of 64 workers on 2 cores ran nothing for minutes: refused as the
        # local executor refuses it
        if a.workers and not a.scheduler and a.workers > cores():
            raise ConfigError(f"--workers {a.workers} is more than the {cores()} cores this "
                              f"process may use")

    def options(self, a) -> dict:
        return {"address": a.scheduler, "workers": a.workers, "threads": a.threads}

    def preflight(self, p, sections, options) -> None:
        """Dask installed, its scheduler-address setting sound beside --workers, and a GPU for
        a local cluster asked to train on one: what the run's client refuses, refused before a
        dry run too."""
        from . import cluster
        address = cluster.scheduler_address(options["address"], options["workers"])
        if not address and cluster.on_gpus(p):
            cluster.check_local_gpus()

    def setting(self, p, options) -> dict:
        from . import cluster, train
        local = not cluster.scheduler_address(options["address"], options["workers"])
        # a scheduler's workers may have devices this machine has not: named where asked for
        device = {"device": train.device_type(p["device"])} if local or p["device"] != "auto" \
            else {}
        return {**device, "threads": cluster.threads_of(options["threads"], options["workers"],
                                                        local)}

    def run(self, p, sections, models_dir, out, data_dir, progress, **options):
        from . import cluster
        return cluster.run(p, sections, models_dir, out, data_dir, progress=progress, **options)


LOCAL = "local"  # the default
EXECUTORS: dict[str, Executor] = {e.key: e for e in (
    Local(LOCAL, "this process, and --workers - 1 helpers beside it"),
    Dask("dask", "a Dask cluster (pip install approxlib[cluster])"))}


def of(key: str) -> Executor:
    if key not in EXECUTORS:
        raise ConfigError(f"unknown executor {key!r}; valid: {', '.join(EXECUTORS)}")
    return EXECUTORS[key]
