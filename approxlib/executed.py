"""An executed section notebook, reused while nothing it reads has changed.

A notebook of a filled models folder re-executes to the same tables, figures and text, but each
costs a kernel start, the imports and its plots (≈13 s here; eight of them were most of a cached
report's minute). `approx report` therefore records, in the executed notebook's metadata, a
digest of everything the notebook reads (its inputs) and of the cells it produced, and executes it
again only when either differs: the notebook source, the approxlib source, the package versions,
the papermill parameters and the profile they resolve to, the section's rows of `results.csv`, the
digest sidecars of every cache entry the section reads (stages, evaluations, curves, and their
timing records: an entry computed again changes them) and the CPU. An unreadable or edited
executed notebook is executed again, never shown, and so is one whose own output files (section
F's per-layer tables) are gone.

What a reused notebook keeps from when it ran: the wall time papermill recorded and, for a section
that measures this CPU's matrix-multiply rate as it runs (`Spec.roofline`), that measurement (the
CPU is part of the inputs). The built-in datasets' files are not hashed here: the cache keys do
not cover them either, so changed files call for a new models folder (README, "Data"); an image
folder's digest is part of every key, and so of the sidecars'.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
import re
import stat
from pathlib import Path

import nbformat
import pandas as pd

from . import accounting
from . import store
from .measure import hardware

PACKAGE = Path(__file__).resolve().parent
VERSION = 1  # of the recorded digests; a new scheme re-executes every notebook once
META = "approx"  # the executed notebook's metadata key


def _sha256(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(hashlib.sha256(part).digest())  # each part's digest: no two splits collide
    return h.hexdigest()


def _versions() -> dict[str, str]:
    """The installed version of every package approxlib requires (pyproject.toml, extras
    included): a new matplotlib draws other figures, a new scipy other p-values."""
    try:
        wanted = importlib.metadata.requires("approxlib") or []
    except importlib.metadata.PackageNotFoundError:  # run from a source tree, not installed
        wanted = []
    found = {}
    for req in wanted:
        name = re.match(r"[A-Za-z0-9_.-]+", req).group(0)
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "absent"
    return found


def source_digest() -> str:
    """approxlib's own files (code and the built-in profiles), by relative path and content."""
    files = sorted(f for f in PACKAGE.rglob("*") if f.is_file() and f.suffix in (".py", ".yaml"))
    return _sha256(*(f"{f.relative_to(PACKAGE)}\n".encode() + f.read_bytes() for f in files))


def _sidecars(cache: store.Store, keys: set[str]) -> list[str]:
    """`kind/file` and its recorded digest for every local cache entry whose key the section
    uses: an entry computed again, set aside or moved changes the list. (A URL store's entries
    were fetched into its local cache, verified, by the stages.)"""
    found = []
    for kind, f in cache.entries():
        if f.name.split(".", 1)[0] in keys:
            try:
                recorded = store.read_small(Path(f"{f}{store.DIGEST}"), store.SIDECAR_BYTES)
            except OSError:  # none, not a file, or moved aside by a run sharing the store
                recorded = b"none"
            found.append(f"{kind}/{f.name} {hashlib.sha256(recorded).hexdigest()}")
    return found


def inputs_digest(notebook: Path, letter: str, params: dict, p: dict, out: Path,
                  cache: store.Store) -> str:
    """The digest of everything the section's executed notebook depends on (module docstring)."""
    keys = {e["key"] for e in accounting.entries(p, [letter])}
    results = out / "results.csv"
    rows = ""
    if results.is_file():
        df = pd.read_csv(results, dtype=str, keep_default_na=False)
        rows = df[df.section == letter].to_csv(index=False)
    hw = hardware()
    described = {"version": VERSION, "letter": letter, "params": params, "profile": p,
                 "packages": _versions(),
                 "cpu": [hw["cpu"], hw["cpu_count"], hw["gpu"]]}
    return _sha256(json.dumps(described, sort_keys=True, default=str).encode(),
                   notebook.read_bytes(), source_digest().encode(), rows.encode(),
                   "\n".join(_sidecars(cache, keys)).encode())


def _cells_digest(nb) -> str:
    """What the report shows of an executed notebook: its cells, outputs included."""
    return _sha256(json.dumps(nb.cells, sort_keys=True).encode())


def written_since(out: Path, since: float) -> list[str]:
    """Files under `out` a notebook wrote (modified at or after `since`), relative to `out`,
    the executed notebooks and hidden files (locks) aside: a reused notebook's own output files
    must still be there."""
    found = []
    for f in out.rglob("*"):
        parts = f.relative_to(out).parts
        if parts[0] == "notebooks" or any(part.startswith(".") for part in parts):
            continue
        try:  # a kernel beside this one may replace or remove a file meanwhile
            if stat.S_ISREG((st := f.stat()).st_mode) and st.st_mtime >= since:
                found.append(str(f.relative_to(out)))
        except FileNotFoundError:
            continue
    return sorted(found)


def stamp(path: Path, inputs: str, written: list[str]) -> None:
    """Record the inputs' and the cells' digests and the files it wrote in the freshly executed
    notebook at `path` (a temporary file, renamed into place by the caller)."""
    nb = nbformat.read(path, as_version=4)
    nb.metadata[META] = {"version": VERSION, "inputs": inputs, "cells": _cells_digest(nb),
                         "written": written}
    nbformat.write(nb, path)


def reusable(path: Path, inputs: str, out: Path) -> bool:
    """Whether the executed notebook at `path` was made from these inputs, is intact, and the
    files it wrote under `out` are still there."""
    if not path.is_file():
        return False
    try:
        nb = nbformat.read(path, as_version=4)
        meta = dict(nb.metadata.get(META) or {})
        cells = _cells_digest(nb)
        written = [out / str(f) for f in meta.get("written", [])]
    # nbformat raises ValueError, TypeError, AttributeError or KeyError on malformed notebooks,
    # by where the damage is; whichever it is, the notebook is executed again
    except (OSError, ValueError, TypeError, AttributeError, KeyError):
        return False
    return (meta.get("version") == VERSION and meta.get("inputs") == inputs
            and meta.get("cells") == cells and all(f.is_file() for f in written))
