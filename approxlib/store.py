"""Artifacts on disk: atomic writes, safe checkpoints, and a content-addressed cache.

A checkpoint is a plain dict of tensors and JSON-able values saved with `torch.save`, loaded with
`torch.load(weights_only=True)`: loading never runs code. It carries the model config that rebuilds
its architecture (as torchvision's references save their args) and the quantization applied.
Every cached artifact is named by the hash of the config that produced it, chained to the hash of
its upstream artifact, so a changed parameter invalidates exactly what depends on it.
"""
from __future__ import annotations

import contextlib
import io
import dataclasses
import json
import os
import pickle
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import models as M
from . import quantize as Q
from .config import ConfigError, ModelConfig

FORMAT = "approxlib.checkpoint"
_UMASK = os.umask(0)
os.umask(_UMASK)
VERSION = 1
PACKED = ("int8-static",)  # quantizations saved with quantize.pack_state


class CheckpointError(ConfigError):
    """A checkpoint that is missing, unreadable or of the wrong kind."""


@contextlib.contextmanager
def atomic_path(path: Path):
    """Yield a temp path beside `path`; on success rename it over `path` (all or nothing)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; published files are world-readable
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=1, sort_keys=True, default=str))


def save_checkpoint(model: nn.Module, path: Path, model_cfg: ModelConfig, quant: str = "none",
                    meta: dict | None = None, shapes: dict | None = None) -> int:
    """Save atomically; return the file's size in bytes. `shapes` (structured.shapes) records
    layer sizes that differ from the architecture's (channel-pruned models)."""
    state = model.state_dict()
    obj = {"format": FORMAT, "version": VERSION, "model": dataclasses.asdict(model_cfg),
           "quant": quant, "meta": json.loads(json.dumps(meta or {}, default=str)),
           # static INT8 weights go into the compact layout of quantize.pack_state
           "state_dict": Q.pack_state(state) if quant in PACKED else state,
           "packed": quant in PACKED}
    if shapes:
        obj["shapes"] = shapes
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return Path(path).stat().st_size


def load_checkpoint(path: Path, expect: ModelConfig | None = None, data: bytes | None = None
                    ) -> tuple[nn.Module, dict]:
    """Rebuild the model a checkpoint describes and load its weights (CPU, eval mode).

    `data`, when given, holds the checkpoint's bytes (e.g. decompressed from `path`).
    Raises CheckpointError with one readable line for a missing, truncated or foreign file, or
    one whose architecture differs from `expect`.
    """
    path = Path(path)
    if data is None and not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with warnings.catch_warnings():
            # Quantized tensors are rebuilt through TypedStorage, which torch warns about.
            warnings.filterwarnings("ignore", message="TypedStorage is deprecated")
            obj = torch.load(io.BytesIO(data) if data is not None else path, map_location="cpu",
                             weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile,
            ValueError) as e:
        first = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"cannot read checkpoint {path} (truncated or not a checkpoint): "
                              f"{first}") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an approxlib checkpoint (save one with "
                              f"`approx train` or approxlib.store.save_checkpoint)")
    if obj.get("version") != VERSION:
        raise CheckpointError(f"{path} has checkpoint version {obj.get('version')!r}; this "
                              f"approxlib reads version {VERSION}")
    try:
        cfg = ModelConfig(**obj["model"])
    except (TypeError, ConfigError) as e:
        raise CheckpointError(f"{path} has an invalid model description: {e}") from None
    if expect is not None and cfg != expect:
        raise CheckpointError(f"{path} holds {_describe(cfg)}, expected {_describe(expect)}")
    model = M.build(cfg).eval()
    if obj.get("shapes"):
        from .structured import reshape_
        try:
            reshape_(model, obj["shapes"])
        except (TypeError, ValueError, AttributeError) as e:
            raise CheckpointError(f"{path} has invalid layer sizes: {e}") from None
    if obj["quant"] != "none":
        model = Q.rebuild(model, obj["quant"])
    state = obj["state_dict"]
    if obj.get("packed"):
        try:
            state = Q.unpack_state(state)
        except Q.PackError as e:
            raise CheckpointError(f"{path}: {e}") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(f"{path} does not match {_describe(cfg)}: "
                              f"{str(e).splitlines()[1].strip() if len(str(e).splitlines()) > 1 else e}"
                              ) from None
    info = {k: obj[k] for k in ("model", "quant", "meta")}
    info["shapes"] = obj.get("shapes")
    return model, info


def _describe(cfg: ModelConfig) -> str:
    return f"{cfg.name} ({cfg.in_channels} channels, {cfg.num_classes} classes, {cfg.stem} stem)"


def is_url(root) -> bool:
    """An artifact store given as an fsspec URL (s3://…, file://…) rather than a folder."""
    return "://" in str(root)


class Store:
    """The artifact cache: `<root>/<kind>/<key>.pt|.json`.

    `root` is a folder, or any fsspec URL (`s3://bucket/approx`, `gcs://...`, `file:///shared`)
    that every worker of a cluster can reach. A URL's artifacts are computed into a local cache
    folder (`cache`, default ~/.cache/approx-cnn/<hash of the URL>), then published: uploaded under
    a temporary name and moved into place, so a reader sees the whole file or none. Reads fetch
    into the local cache first (torch, ONNX Runtime and our decoders want local files).
    """

    def __init__(self, root: Path | str = "models", cache: Path | str | None = None):
        self.url = str(root)
        self.fs = None
        if is_url(self.url):
            import hashlib

            import fsspec
            try:
                self.fs, self.remote = fsspec.core.url_to_fs(self.url)
            except (ImportError, ValueError) as e:  # unknown protocol or its package missing
                raise ConfigError(f"cannot use artifact store {self.url}: {e}") from None
            self.remote = self.remote.rstrip("/")
            default = (Path.home() / ".cache" / "approx-cnn"
                       / hashlib.sha256(self.url.encode()).hexdigest()[:16])
            self.root = Path(cache or default)
        else:
            self.root = Path(root)

    def path(self, kind: str, key: str, suffix: str = ".pt") -> Path:
        """The artifact's local file (for a URL store, its place in the local cache)."""
        return self.root / kind / f"{key}{suffix}"

    def _remote(self, kind: str, key: str, suffix: str) -> str:
        return f"{self.remote}/{kind}/{key}{suffix}"

    def has(self, kind: str, key: str, suffix: str = ".pt") -> bool:
        return (self.path(kind, key, suffix).is_file()
                or (self.fs is not None and self.fs.isfile(self._remote(kind, key, suffix))))

    def fetch(self, kind: str, key: str, suffix: str = ".pt") -> Path | None:
        """The artifact's local file, downloaded first if only the store has it; None if absent."""
        path = self.path(kind, key, suffix)
        if path.is_file():
            return path
        if self.fs is None or not self.fs.isfile(self._remote(kind, key, suffix)):
            return None
        with atomic_path(path) as tmp:
            self.fs.get_file(self._remote(kind, key, suffix), str(tmp))
        return path

    def publish(self, kind: str, key: str, suffix: str = ".pt") -> None:
        """Make a locally written artifact visible to every worker (no-op for a folder)."""
        if self.fs is None:
            return
        import uuid
        final = self._remote(kind, key, suffix)
        tmp = f"{self.remote}/{kind}/.{key}{suffix}.{uuid.uuid4().hex}.tmp"
        self.fs.makedirs(f"{self.remote}/{kind}", exist_ok=True)
        try:
            self.fs.put_file(str(self.path(kind, key, suffix)), tmp)
            self.fs.mv(tmp, final)
        finally:
            if self.fs.exists(tmp):
                self.fs.rm(tmp)

    def read_json(self, kind: str, key: str) -> dict | None:
        p = self.fetch(kind, key, ".json")
        if p is None:
            return None
        try:
            return json.loads(p.read_text())
        except json.JSONDecodeError:
            return None  # a damaged entry is recomputed, not trusted

    def write_json(self, kind: str, key: str, obj: dict) -> None:
        write_json(self.path(kind, key, ".json"), obj)
        self.publish(kind, key, ".json")
