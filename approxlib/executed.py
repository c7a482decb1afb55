"""An executed section notebook, reused while nothing it reads has changed.

A notebook of a filled models folder re-executes to the same tables, figures and text, but each
costs a kernel start, the imports and its plots (≈13 s here; eight of them were most of a cached
report's minute). `approx report` therefore records, in the executed notebook's metadata, a
digest of everything the notebook reads (its inputs) and of the cells it produced, and executes it
again only when either differs: the notebook source, the approxlib source, the package versions,
the papermill parameters and the profile they resolve to, the section's rows of `results.csv`, the
digest sidecars of every cache entry the section reads (stages, evaluations, curves, and their
timing records: an entry computed again changes them) and the CPU. An unreadable or edited
executed notebook is executed again, never shown.

What a reused notebook keeps from when it ran: the wall time papermill recorded and, for a section
that measures this CPU's matrix-multiply rate as it runs (`Spec.roofline`), that measurement (the
CPU is part of the inputs). Data files are not hashed here: the cache keys do not cover them
either, so changed data files call for a new models folder (README, "Data").
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
from pathlib import Path

import nbformat
import pandas as pd

from . import accounting
from . import store
from .measure import hardware

PACKAGE = Path(__file__).resolve().parent
VERSION = 1  # of the recorded digests; a new scheme re-executes every notebook once
PACKAGES = ("torch", "torchvision", "numpy", "pandas", "matplotlib", "nbconvert", "nbformat",
            "papermill", "ipykernel", "onnxruntime")
META = "approx"  # the executed notebook's metadata key


def _sha256(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(hashlib.sha256(part).digest())  # each part's digest: no two splits collide
    return h.hexdigest()


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def source_digest() -> str:
    """approxlib's own files (code and the built-in profiles), by relative path and content."""
    files = sorted(f for f in PACKAGE.rglob("*") if f.is_file() and f.suffix in (".py", ".yaml"))
    return _sha256(*(f"{f.relative_to(PACKAGE)}\n".encode() + f.read_bytes() for f in files))


def _sidecars(cache: store.Store, keys: set[str]) -> list[str]:
    """`kind/file.sha256 digest size` of every local cache entry whose key the section uses (a
    URL store's entries were fetched into its local cache, verified, by the stages)."""
    found = []
    if not cache.root.is_dir():
        return found
    for kind in sorted(os.scandir(cache.root), key=lambda d: d.name):
        if not kind.is_dir() or kind.name in ("damaged", ".locks"):
            continue
        for f in sorted(os.scandir(kind.path), key=lambda d: d.name):
            if f.name.endswith(store.DIGEST) and f.name.split(".", 1)[0] in keys:
                found.append(f"{kind.name}/{f.name} {Path(f.path).read_text().strip()}")
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
                 "packages": {n: _version(n) for n in PACKAGES},
                 "cpu": [hw["cpu"], hw["cpu_count"], hw["gpu"]]}
    return _sha256(json.dumps(described, sort_keys=True, default=str).encode(),
                   notebook.read_bytes(), source_digest().encode(), rows.encode(),
                   "\n".join(_sidecars(cache, keys)).encode())


def _cells_digest(nb) -> str:
    return _sha256(json.dumps(nb.cells, sort_keys=True).encode())


def stamp(path: Path, inputs: str) -> None:
    """Record the inputs' and the cells' digests in the freshly executed notebook at `path`
    (a temporary file, renamed into place by the caller)."""
    nb = nbformat.read(path, as_version=4)
    nb.metadata[META] = {"version": VERSION, "inputs": inputs, "cells": _cells_digest(nb)}
    nbformat.write(nb, path)


def reusable(path: Path, inputs: str) -> bool:
    """Whether the executed notebook at `path` was made from these inputs and is intact."""
    if not path.is_file():
        return False
    try:
        nb = nbformat.read(path, as_version=4)
        meta = dict(nb.metadata.get(META) or {})
        cells = _cells_digest(nb)
    # nbformat raises ValueError, TypeError, AttributeError or KeyError on malformed notebooks,
    # by where the damage is; whichever it is, the notebook is executed again
    except (OSError, ValueError, TypeError, AttributeError, KeyError):
        return False
    return (meta.get("version") == VERSION and meta.get("inputs") == inputs
            and meta.get("cells") == cells)
