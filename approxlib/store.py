"""Artifacts on disk: atomic writes, safe checkpoints, and a content-addressed cache.

A checkpoint is a plain dict of tensors and JSON-able values saved with `torch.save`, loaded with
`torch.load(weights_only=True)`: loading never runs code. It carries the model config that rebuilds
its architecture (as torchvision's references save their args) and the quantization applied.
Every cached artifact is named by the hash of the config that produced it, chained to the hash of
its upstream artifact, so a changed parameter invalidates exactly what depends on it.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import datetime
import functools
import hashlib
import io
import json
import logging
import math
import os
import pickle
import re
import socket
import stat
import tempfile
import time
import uuid
import warnings
import zipfile
from pathlib import Path
from collections import OrderedDict
from typing import Any, Callable, Iterator

import filelock
import torch
from torch import nn

from . import models
from . import quantize
from . import quants
from .config import STEMS, ConfigError, ModelConfig
from .structured import reshape_

FORMAT = "approxlib.checkpoint"
DAMAGED = "damaged"  # the store's folder of entries set aside
_UMASK = os.umask(0)
os.umask(_UMASK)
VERSION = 1


class CheckpointError(ConfigError):
    """A checkpoint that is missing, unreadable or of the wrong kind."""


class Busy(Exception):
    """An entry another process is computing, met where the caller chose not to wait."""


LOG = logging.getLogger("approxlib")
HOST = socket.gethostname().replace("~", "-")
# Temp files name their writer (host, pid), so a later run can remove those of dead writers.
TEMP_SUFFIX = ".tmp"


@contextlib.contextmanager
def atomic_path(path: Path):
    """Yield a temp path beside `path`; on success rename it over `path` (all or nothing).

    The file and then its folder are fsynced, so after a crash the rename is either on disk
    with the whole file or not at all."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}~{HOST}~{os.getpid()}~",
                               suffix=TEMP_SUFFIX)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; published files are world-readable
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def remove_stale_temps(root: Path, max_age_s: float = 3600.0) -> list[Path]:
    """Delete temp files that no live writer owns: this host's whose process is gone, and any
    older than `max_age_s` (other hosts' and those named before writers were recorded).

    A SIGKILL during a save leaves its temp file; nothing else would ever remove it."""
    root, removed, now = Path(root), [], time.time()
    if not root.is_dir():
        return removed
    for f in root.rglob(f".*{TEMP_SUFFIX}"):
        parts = f.name[: -len(TEMP_SUFFIX)].rsplit("~", 3)
        with contextlib.suppress(FileNotFoundError):
            mine = len(parts) == 4 and parts[1] == HOST and parts[2].isdigit()
            if (mine and not _pid_alive(int(parts[2]))) or now - f.stat().st_mtime > max_age_s:
                f.unlink()
                removed.append(f)
    return removed


def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=1, sort_keys=True, default=str))


def save_checkpoint(model: nn.Module, path: Path, model_cfg: ModelConfig,
                    quant: str = quants.NONE.key,
                    meta: dict | None = None, shapes: dict | None = None) -> int:
    """Save atomically; return the file's size in bytes. `shapes` (structured.shapes) records
    layer sizes that differ from the architecture's (channel-pruned models)."""
    if quant == quants.NONE.key:  # else a file that loading refuses ("it lacks fc.weight")
        models.require_dense_float(model, f"saving {Path(path).name} as a float checkpoint")
    state = model.state_dict()
    packed = quantize.METHODS[quant].packed
    state = quantize.pack_state(state) if packed else state  # static INT8's compact layout
    meta = {**json.loads(json.dumps(meta or {}, default=str)), "weights_sha256": weights_digest(state)}
    obj = {"format": FORMAT, "version": VERSION, "model": dataclasses.asdict(model_cfg),
           "quant": quant, "meta": meta, "state_dict": state, "packed": packed}
    if shapes:
        obj["shapes"] = shapes
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        # to a file object: torch names the zip's folder "archive"; given a path it names it
        # after the file (here the writer's temp name: host, pid, random), so the same model's
        # size_bytes varied with the machine's host name and the writer's pid
        torch.save(obj, f)
    return Path(path).stat().st_size


# Issue 14: a checkpoint's bytes are checked before torch reads them, and its tensors' shapes
# before a model is built. torch.save writes an uncompressed zip; torch.load would also inflate
# deflated entries (a 0.25 MB file held 256 MiB, measured) and checks no CRC. Its weights-only
# unpickler runs at ~1 MiB of pickle a second (measured), and data.pkl is 16 kB for ResNet-18,
# 44 kB for MobileNetV2 (100 classes, 30 epochs of history).
MAX_PICKLE = 1 << 20
# torch.load(weights_only=True)'s refusal of a pickled class or function, which it names:
# "Unsupported global: GLOBAL x.y", or for a module it blocks (os, posix, subprocess, ...)
# "Trying to load unsupported GLOBAL posix.system whose module posix is blocked"
UNSAFE_GLOBAL = re.compile(r"unsupported (?:global: )?GLOBAL ([\w.]{1,200})", re.IGNORECASE)


def load_checkpoint(path: Path, expect: ModelConfig | None = None, data: bytes | None = None
                    ) -> tuple[nn.Module, dict]:
    """Rebuild the model a checkpoint describes and load its weights (CPU, eval mode).

    `data`, when given, holds the checkpoint's bytes (e.g. decompressed from `path`).
    Raises CheckpointError with one readable line for a missing, truncated, damaged or foreign
    file, one whose tensors do not fit the architecture it names, or one whose architecture
    differs from `expect`. Nothing is allocated on the file's word: its zip container is checked
    first, then its tensors' names and shapes against the architecture built on the meta device.
    """
    path = Path(path)
    if data is None and not path.is_file():
        raise CheckpointError(f"checkpoint {missing(path)}: {path}")
    obj = _read_checkpoint(path, data)
    cfg, quant = _checkpoint_fields(path, obj)
    if expect is not None and cfg != expect:
        raise CheckpointError(f"{path} holds {_describe(cfg)}, expected {_describe(expect)}")
    reference = _reference(path, cfg, quant, obj.get("shapes"))
    if not quantize.METHODS[quant].meta:  # its structure is built for real, and unpacked
        _enough_data(path, cfg, obj["state_dict"], reference)
    state = _state_of(path, obj)
    _check_classes(path, cfg, state, reference)
    if quantize.METHODS[quant].meta:  # int8 structures need real weights to build
        _compare(path, cfg, state, reference)
        model = _assign(path, cfg, reference, state)
    else:
        model = _rebuilt(path, cfg, quant, obj.get("shapes"), state, reference)
    info = {k: obj[k] for k in ("model", "quant", "meta")}
    info["shapes"] = obj.get("shapes")
    return model, info


def weights_digest(state: Any) -> str:
    """SHA-256 of a state dict's names, dtypes, shapes and exact values (a quantized tensor's
    integers, scales and zero points), in the order of the names: the same for the same
    weights whoever saved them and when, unlike the file, whose zip holds a random
    serialization id and whose meta holds seconds. A model derived from another records its upstream's (`pipeline.Runner._current`)."""
    h = hashlib.sha256()

    def add(name: str, v: Any) -> None:
        if isinstance(v, torch.Tensor):
            t = v.detach().cpu()
            t = t.to_dense() if t.layout != torch.strided else t
            if t.is_quantized:
                add(f"{name}.int", t.int_repr())
                if t.qscheme() in (torch.per_tensor_affine, torch.per_tensor_symmetric):
                    h.update(f"{name}|{t.q_scale()!r}|{t.q_zero_point()}|".encode())
                else:
                    add(f"{name}.scales", t.q_per_channel_scales())
                    add(f"{name}.zero_points", t.q_per_channel_zero_points())
                return
            t = t.contiguous()
            h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(v, dict):  # by name: a pruned model re-registers its weights last
            for k in sorted(v, key=str):
                add(f"{name}.{k}", v[k])
        elif isinstance(v, (list, tuple)):
            for i, x in enumerate(v):
                add(f"{name}.{i}", x)
        else:
            h.update(f"{name}={v!r}|".encode())
    add("", state)
    return h.hexdigest()


def checkpoint_meta(path: Path) -> dict:
    """The `meta` a checkpoint of the store was saved with, its tensors mapped rather than read
    (6 ms for a 45 MB ResNet-18 here): what the pipeline checks before it reuses a model derived
    from another. {} for a file without one or that cannot be read (loading it says why)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on quantized and typed storages
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, ValueError, TypeError):
        return {}
    meta = obj.get("meta") if isinstance(obj, dict) else None
    return meta if isinstance(meta, dict) else {}


def is_checkpoint(path: Path) -> bool:
    """Whether a .pt file is an approxlib checkpoint rather than weights saved elsewhere (a plain
    state dict), read as safely as either; CheckpointError for what is neither, with the fix
    where one is known (`_plain`)."""
    obj = _read_checkpoint(Path(path), None)
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        return True
    _plain(path, obj)
    return False


def _plain(path: Path, obj: Any) -> None:
    """CheckpointError unless `obj` is a plain state dict as far as its layout shows."""
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a state dict")
    hint = _saved_otherwise(obj)
    if hint:
        raise CheckpointError(f"{path} {hint}")


def load_weights(path: Path, cfg: ModelConfig) -> nn.Module:
    """A float model of architecture `cfg` from a file someone trained: an approxlib checkpoint
    or a plain state dict (`torch.save(model.state_dict(), path)`), read as safely as a
    checkpoint (zip checked, weights only); one line naming the first tensor that does not fit."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights {missing(path)}: {path}")
    obj = _read_checkpoint(path, None)
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        model, info = load_checkpoint(path, expect=cfg)
        if info["quant"] != quants.NONE.key or info["shapes"]:
            raise CheckpointError(f"{path} holds a {info['quant']} or channel-pruned model; "
                                  f"start from a dense float one")
        return check_weights(path, model)
    _plain(path, obj)
    state = _state_of(path, {"state_dict": obj})
    reference = _reference(path, cfg, quants.NONE.key, None)
    # BatchNorm's step counters, which many published weights leave out: 0, as torch's own
    # load_state_dict makes them (they count steps; no forward pass reads them)
    versions = getattr(state, "_metadata", {})  # kept for `_assign`
    state = OrderedDict({**{k: torch.tensor(0) for k in reference.state_dict()
                            if k.endswith(".num_batches_tracked") and k not in state}, **state})
    state._metadata = versions
    _compare(path, cfg, state, reference)
    return check_weights(path, _assign(path, cfg, reference, state))


def check_weights(path: Path, model: nn.Module) -> nn.Module:
    """Weights someone trained, refused where any is NaN or infinite (int8 ones as their scales
    make them), or a BatchNorm's variance negative: such a model predicts one class and scored
    10% without a word (attacks, 2026-12-07)."""
    for name, value in model.state_dict().items():
        for t in value if isinstance(value, tuple) else (value,):
            if not isinstance(t, torch.Tensor):
                continue
            t = t.dequantize() if t.is_quantized else t
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                bad = int((~torch.isfinite(t)).sum())
                raise CheckpointError(f"{path}: {name} holds {bad:,} NaN or infinite value"
                                      f"{'s' * (bad != 1)} (did its training diverge?)")
    for name, m in model.named_modules():
        var = getattr(m, "running_var", None)
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and var is not None \
                and bool((var < 0).any()):
            raise CheckpointError(f"{path}: {name}.running_var holds negative variances")
    return model



def missing(path: Path) -> str:
    """Why a file to read is not one: "not found", or what it is where it is there (a folder
    read "checkpoint not found", and a named pipe "weights not found", although each was)."""
    if Path(path).is_dir():
        return "is a folder, not a file"
    return "is not a regular file (a pipe, socket or device)" if Path(path).exists() else \
        "not found"


# Wrappers whose state dict prefixes every name, and what saves the model inside
WRAPPERS = {"module": ("DataParallel", "model.module.state_dict()"),
            "_orig_mod": ("torch.compile", "model._orig_mod.state_dict()"),
            "model": ("a Lightning module", "module.model.state_dict()")}


def _wrapper(state: dict) -> str | None:
    """The one name every entry of `state` starts with, if there is one."""
    firsts = {k.split(".", 1)[0] if isinstance(k, str) and "." in k else None for k in state}
    return firsts.pop() if len(firsts) == 1 and None not in firsts and len(state) > 1 else None


def _saved_otherwise(obj: dict) -> str | None:
    """How common ways of saving weights differ from a plain state dict, as the fix to make
    (they would fail on their first tensor's name): a training checkpoint holding the state
    dict as one entry, and a wrapper's names, each prefixed by one name (`WRAPPERS`; no
    torchvision classifier keeps all its weights under one module)."""
    inner = [k for k, v in obj.items() if isinstance(v, dict) and v
             and all(isinstance(t, torch.Tensor) for t in v.values())]
    # a state dict with one nested extra (an EMA copy, say) holds its weights at the top: its
    # first non-tensor entry is named where it is read (`_state_of`)
    top = sum(isinstance(v, torch.Tensor) for v in obj.values())
    if inner and top < max(len(obj[k]) for k in inner):
        entries = ", ".join(repr(k)[:40] for k in list(obj)[:6])
        weights = f"checkpoint[{repr(inner[0])[:40]}]"
        wrapper = _wrapper(obj[inner[0]])  # Lightning's: each name also starts with "model."
        if wrapper is not None:
            weights = (f"{{k.removeprefix({repr(wrapper + '.')[:40]}): v for k, v in "
                       f"{weights}.items()}}")
        return (f"is a training checkpoint (entries {entries}); save its weights alone: "
                f"torch.save({weights}, path)")
    first = _wrapper(obj)
    if first is not None:
        who, save = WRAPPERS.get(first, ("a wrapper", "the wrapped model's state_dict()"))
        return (f"holds weights saved from {who} (every name starts with "
                f"{repr(first + '.')[:40]}); save {save}")
    for wrapper in WRAPPERS:  # names joined from two saves: no torchvision module has these
        some = sum(isinstance(k, str) and k.startswith(wrapper + ".") for k in obj)
        if some:
            return (f"holds names of which {some} of {len(obj)} start with {wrapper + '.'!r} "
                    f"(saved from {WRAPPERS[wrapper][0]}); strip it from every name: "
                    f"{{k.removeprefix({wrapper + '.'!r}): v for k, v in state.items()}}")
    return None


# How torch's format before 1.6 (still saved by `_use_new_zipfile_serialization=False`, and
# common in old `.pth` downloads) begins: a pickle protocol opcode, then (after a frame header
# from protocol 4 on) its magic number
LEGACY_MAGIC = b"\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"


def _legacy(path: Path, data: bytes | None) -> int | None:
    """The pickle protocol of a checkpoint in torch's legacy (non-zip) format, else None: its
    reader has no container to check before it unpickles, so it is refused with the line that
    converts it (a user's old `.pth` read "truncated or not a checkpoint")."""
    try:
        with path.open("rb") if data is None else io.BytesIO(data[:32]) as f:
            head = f.read(32)
    except OSError:
        return None
    # protocol 4+ puts a frame header between the protocol and the magic number
    return head[1] if head[:1] == b"\x80" and LEGACY_MAGIC in head else None


def _safetensors(path: Path, data: bytes | None) -> bool:
    """Whether the file starts as a safetensors file does: an 8-byte little-endian header
    length, then the header's JSON (it read "File is not a zip file", 2026-12-07)."""
    try:
        with path.open("rb") if data is None else io.BytesIO(data[:9]) as f:
            head = f.read(9)
    except OSError:
        return False
    return len(head) == 9 and head[8:] == b"{" and int.from_bytes(head[:8], "little") < 1 << 30


def _legacy_line(path: Path, protocol: int) -> str:
    """How to convert it: torch's safe loader reads protocols 2 and 3 (torch's default), not
    the frames of 4 and 5, which only the code that wrote the file can save again."""
    how = ("torch.save(torch.load(path, weights_only=True), path)" if protocol <= 3 else
           "its pickle protocol {protocol} is one torch's safe loader cannot read, so save the "
           "weights again where they were made, with torch.save(model.state_dict(), path)"
           .format(protocol=protocol))
    return (f"{path} is in torch's legacy format (before torch 1.6), which is not read here; "
            f"save it again in the current one: {how}")


def _read_checkpoint(path: Path, data: bytes | None) -> Any:
    """torch.load(weights_only=True) of a checkpoint whose zip container passed _check_zip."""
    protocol = _legacy(path, data)
    if protocol is not None:
        raise CheckpointError(_legacy_line(path, protocol))
    if _safetensors(path, data):
        raise CheckpointError(f"{path} is a safetensors file, which is not read here; save the "
                              f"weights with torch.save(model.state_dict(), path)")
    try:
        _check_zip(path, io.BytesIO(data) if data is not None else path,
                   len(data) if data is not None else path.stat().st_size)
        with warnings.catch_warnings():
            # Quantized tensors are rebuilt through TypedStorage and quantized-tensor creation
            # functions, both of which torch warns about (once per process: a Dask worker's
            # first int8 load printed the second to the user).
            warnings.filterwarnings("ignore", message="TypedStorage is deprecated")
            warnings.filterwarnings("ignore", message=quantize.QUANTIZED_DEPRECATION)
            warnings.filterwarnings("ignore", message="Validating sparse tensor invariants")
            return torch.load(io.BytesIO(data) if data is not None else path, map_location="cpu",
                              weights_only=True)
    except CheckpointError:
        raise
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile,
            ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError,
            NotImplementedError, RecursionError) as e:
        code = UNSAFE_GLOBAL.search(str(e))
        if code:  # torch's own advice here is to load it unsafely: we never do
            raise CheckpointError(
                f"{path} holds pickled code ({code[1]}), e.g. a whole model saved with "
                f"torch.save(model); loading it would run that code: save "
                f"model.state_dict() instead") from None
        first = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"cannot read checkpoint {path} (truncated or not a checkpoint): "
                              f"{first}") from None


# The MS-DOS folder attribute of a zip entry. torch's reader (miniz) takes an entry with it, or
# whose name ends in "/", for a folder and reads it as zeros, while zipfile reads its bytes and
# its CRC holds: one flipped bit in the central directory zeroed a BatchNorm's running variance
# and loaded (found by test_limits' fuzzing, 2026-12-04).
ZIP_FOLDER = 0x10


def _check_zip(path: Path, source, size: int) -> None:
    """Stored entries only, none marked a folder, sizes within the file, data.pkl ≤
    MAX_PICKLE, every CRC right (zipfile reads the entries in 1 MiB chunks, so this costs no
    memory)."""
    with zipfile.ZipFile(source) as z:
        infos = z.infolist()
        if any(i.filename.endswith("/constants.pkl") for i in infos):  # what torch.jit.save adds
            raise CheckpointError(f"{path} is a TorchScript file (torch.jit.save), which is not "
                                  f"read here: save the weights with "
                                  f"torch.save(model.state_dict(), path)")
        for info in infos:
            if info.filename.endswith("/") or info.external_attr & ZIP_FOLDER:
                raise CheckpointError(f"{path}: zip entry {info.filename[-60:]} is marked a "
                                      f"folder (torch.save writes none: a damaged file)")
            if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
                raise CheckpointError(f"{path}: zip entry {info.filename[-60:]} is compressed "
                                      f"(torch.save never compresses; refused as a possible bomb)")
            if info.filename.endswith("/data.pkl") and info.file_size > MAX_PICKLE:
                raise CheckpointError(f"{path}: its pickle is {info.file_size} bytes, over the "
                                      f"{MAX_PICKLE >> 20} MiB a checkpoint needs")
        if sum(i.file_size for i in infos) > size:
            raise CheckpointError(f"{path}: its zip entries claim more bytes than the file has")
        bad = z.testzip()
        if bad is not None:
            raise CheckpointError(f"{path}: zip entry {bad[-60:]} fails its CRC (damaged file)")


def _checkpoint_fields(path: Path, obj: Any) -> tuple[ModelConfig, str]:
    """The model config and quantization of a loaded checkpoint dict, every field type-checked."""
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an approxlib checkpoint (save one with "
                              f"`approx train` or approxlib.store.save_checkpoint)")
    if obj.get("version") != VERSION:
        raise CheckpointError(f"{path} has checkpoint version {str(obj.get('version'))[:20]!r}; "
                              f"this approxlib reads version {VERSION}")
    for key, kind in (("model", dict), ("quant", str), ("meta", dict), ("state_dict", dict)):
        if not isinstance(obj.get(key), kind):
            found = "no" if key not in obj else f"a {type(obj[key]).__name__} as its"
            raise CheckpointError(f"{path} has {found} {key!r} (a {kind.__name__} in every "
                                  f"approxlib checkpoint)")
    if obj["quant"] not in quants.keys():
        raise CheckpointError(f"{path} has unknown quantization {obj['quant'][:40]!r}; "
                              f"valid: {', '.join(quants.keys())}")
    if not isinstance(obj.get("packed", False), bool):
        raise CheckpointError(f"{path} has a 'packed' flag that is not true or false")
    try:
        return ModelConfig(**obj["model"]), obj["quant"]
    except (TypeError, ValueError) as e:  # ValueError: ConfigError, a 5000-digit number
        raise CheckpointError(f"{path} has an invalid model description: "
                              f"{str(e).splitlines()[0][:120]}") from None


def _state_of(path: Path, obj: dict) -> dict:
    """The state dict (unpacked), checked to hold named tensors whose data the file contains:
    a tensor whose strides repeat a small storage (stride 0) is refused before it is copied."""
    state = obj["state_dict"]
    if obj.get("packed"):
        try:
            state = quantize.unpack_state(state)
        except quantize.PackError as e:
            raise CheckpointError(f"{path}: {e}") from None
    _check_versions(path, getattr(state, "_metadata", {}))
    for name, value in state.items():
        if not isinstance(name, str):
            raise CheckpointError(f"{path}: its state_dict has a key of type "
                                  f"{type(name).__name__} ({repr(name)[:40]}), not a name")
        for t in value if isinstance(value, tuple) else (value,):
            if isinstance(t, torch.dtype) or (t is None and isinstance(value, tuple)):
                continue
            if not isinstance(t, torch.Tensor):
                raise CheckpointError(f"{path}: state_dict entry {name} is a "
                                      f"{type(t).__name__}, not a tensor")
            if t.layout != torch.strided or t.device.type != "cpu":
                raise CheckpointError(f"{path}: tensor {name} is {t.layout} on {t.device}, not "
                                      f"a dense CPU tensor")
            if t.numel() * t.element_size() > t.untyped_storage().nbytes():
                raise CheckpointError(f"{path}: tensor {name} claims {list(t.shape)} over "
                                      f"{t.untyped_storage().nbytes()} bytes of data")
    return state


def _check_versions(path: Path, versions: Any) -> None:
    """A state dict's module versions (`_metadata`, which torch's loaders read) as torch writes
    them, {module name: {"version": int}}: any other value ended in a TypeError or
    AttributeError inside torch (attack, 2026-12-07)."""
    def fine(v) -> bool:
        return isinstance(v, dict) and all(
            k == "version" and isinstance(n, int) and not isinstance(n, bool) and n >= 0
            for k, n in v.items())
    if not (isinstance(versions, dict) and all(isinstance(k, str) and fine(v)
                                               for k, v in versions.items())):
        raise CheckpointError(f"{path}: its module versions (the state dict's _metadata) are "
                              f"not {{module: {{'version': int}}}} as torch writes them")


def _reference(path: Path, cfg: ModelConfig, quant: str, shapes: Any) -> nn.Module:
    """The architecture on the meta device (shapes, no memory): channel-pruned `shapes` applied
    (they may only shrink a layer), BatchNorm folded for `kmeans`."""
    if shapes is not None and not isinstance(shapes, dict):  # a falsy tensor would pass `if`
        raise CheckpointError(f"{path} has invalid layer sizes: a {type(shapes).__name__}, "
                              f"not a dict")
    model = models.build_meta(cfg)
    with torch.device("meta"):
        if shapes:
            try:
                reshape_(model, shapes)
            except (TypeError, ValueError, AttributeError) as e:
                raise CheckpointError(f"{path} has invalid layer sizes: {e}") from None
        return quantize.rebuild(model, quant) if quantize.METHODS[quant].meta else model


def _check_classes(path: Path, cfg: ModelConfig, state: dict, reference: nn.Module) -> None:
    """The class count the checkpoint claims is the one its classifier holds (float or int8)."""
    name, fc = models.classifier(reference)
    weight = state.get(f"{name}.weight")
    packed = state.get(f"{name}._packed_params._packed_params")
    if weight is None and isinstance(packed, tuple) and packed:
        weight = packed[0]
    if not isinstance(weight, torch.Tensor) or weight.dim() != fc.weight.dim():
        raise CheckpointError(f"{path} has no classifier weight {name}.weight")
    if weight.shape[0] != cfg.num_classes:
        raise CheckpointError(f"{path} claims {cfg.num_classes} classes; its classifier {name} "
                              f"holds {weight.shape[0]}")
    if list(weight.shape) != list(fc.weight.shape):
        raise CheckpointError(f"{path} does not match {_describe(cfg)}: classifier {name} is "
                              f"{list(weight.shape)}, the architecture's {list(fc.weight.shape)}")


def _compare(path: Path, cfg: ModelConfig, state: dict, reference: nn.Module) -> None:
    """Same tensor names, shapes and kinds as the meta architecture; names the first mismatch."""
    ref = reference.state_dict()
    classifier = f"{models.classifier(reference)[0]}.weight"  # as _check_classes finds it
    first = next((f"{n}.weight" for n, m in reference.named_modules()
                  if isinstance(m, nn.Conv2d)), None)
    for name, r in ref.items():
        t = state.get(name)
        if t is None:
            raise CheckpointError(f"{path} does not match {_describe(cfg)}: it lacks {name}")
        if not isinstance(t, torch.Tensor) or t.shape != r.shape or (
                t.dtype != r.dtype and not (t.is_floating_point() and r.is_floating_point())):
            got = (f"{t.dtype} {list(t.shape)}" if isinstance(t, torch.Tensor)
                   else type(t).__name__)
            raise CheckpointError(f"{path} does not match {_describe(cfg)}: {name} is {got}, "
                                  f"the architecture's {r.dtype} {list(r.shape)}"
                                  + (_fix(cfg, t, r, name == classifier, name == first)
                                     if isinstance(t, torch.Tensor) else ""))
    extra = [n for n in state if n not in ref]
    if extra:
        raise CheckpointError(f"{path} does not match {_describe(cfg)}: unexpected tensor "
                              f"{extra[0][:80] or repr(extra[0])}"
                              + _extra_modules(extra, reference))


def _extra_modules(extra: list[str], reference: nn.Module) -> str:
    """The fix where the extra tensors are whole modules the architecture as built lacks:
    GoogLeNet built torchvision's default way has auxiliary classifiers (aux1, aux2), which
    play no part in evaluation (a new user's walkthrough, 2026-12-07)."""
    built = {n for n, _ in reference.named_modules()}
    tops = list(dict.fromkeys(n.split(".", 1)[0] for n in extra))
    if any(t in built or not t or len(t) > 40 for t in tops) or len(tops) > 4:
        return ""
    return (f" and {len(extra) - 1} more, of module{'s' * (len(tops) > 1)} "
            f"{', '.join(tops)} that it does not have; leave "
            f"{'them' if len(tops) > 1 else 'it'} out: "
            f"{{k: v for k, v in state.items() if k.split('.')[0] not in {tuple(tops)!r}}}"
            if len(extra) > 1 else
            f" (of a module {tops[0]} that it does not have; leave it out)")


def _assign(path: Path, cfg: ModelConfig, reference: nn.Module, state: dict) -> nn.Module:
    """The checked tensors become the meta model's own (converted only where the dtype differs):
    no second copy of the weights, no random initialization."""
    ref = reference.state_dict()
    converted = OrderedDict((k, v if v.dtype == ref[k].dtype else v.to(ref[k].dtype))
                            for k, v in state.items())
    # each module's version as saved, else as this torchvision builds it: MNASNet's loader
    # refuses a state dict without one ("version should be set to 1 or 2"), and rebuilding
    # the dict had dropped them, so no MNASNet loaded (a new user's walkthrough, 2026-12-07)
    converted._metadata = OrderedDict({**getattr(ref, "_metadata", {}),
                                       **getattr(state, "_metadata", {})})
    try:
        reference.load_state_dict(converted, assign=True)
    except (KeyError, TypeError, ValueError, AttributeError) as e:  # a module's loader, read
        raise CheckpointError(f"{path} does not load into {_describe(cfg)} "  # by its version
                              f"({type(e).__name__}: {str(e)[:80]}): an older module version "
                              f"in its _metadata?") from None
    if any(t.is_meta for t in (*reference.parameters(), *reference.buffers())):
        raise CheckpointError(f"{path} does not match {_describe(cfg)}: tensors left undefined")
    return reference.eval()


# Int8 skeletons of architectures up to this many float weights are cached (about 1 byte a weight
# as int8: 8 cached ResNet-18s hold about 90 MB); larger ones, any torchvision model can be, are
# built for each load.
_SKELETON_MAX_WEIGHTS = 30_000_000


def _int8_structure(cfg: ModelConfig, quant: str, shapes_json: str) -> nn.Module:
    """The int8 structure of `cfg` a state dict loads into: a float model (random weights, all
    overwritten by the load) quantized by `quant`. Built with the caller's random state
    untouched, so loading never changes what later draws give. `shapes_json`: the shapes,
    already checked on the meta reference, as sorted JSON (hashable, for the cache)."""
    shapes = json.loads(shapes_json)
    with torch.random.fork_rng(devices=[]):  # building and tracing (example inputs) draw
        model = models.build(cfg).eval()
        return quantize.rebuild(reshape_(model, shapes) if shapes else model, quant)


# Static INT8 (and QAT, saved as it) is built through FX: 0.47-0.52 s a structure here against
# 0.05 s for a copy (ResNet-18, MobileNetV2); smoke loads 32 int8 checkpoints, quick more.
_int8_skeleton = functools.lru_cache(maxsize=8)(_int8_structure)


def _rebuilt(path: Path, cfg: ModelConfig, quant: str, shapes: Any, state: dict,
             reference: nn.Module) -> nn.Module:
    """An int8 model: the state dict loaded into the structure `quant` gives the float model
    (its sizes checked on `reference`): a copy of a cached skeleton for a static-INT8 model of
    at most `_SKELETON_MAX_WEIGHTS` weights, else built for this load. Tensors both share must
    have the same shapes."""
    ref = reference.state_dict()
    for name, t in state.items():
        if isinstance(t, torch.Tensor) and name in ref and t.shape != ref[name].shape:
            raise CheckpointError(f"{path} does not match {_describe(cfg)}: {name} is "
                                  f"{list(t.shape)}, the architecture's {list(ref[name].shape)}")
    key = (cfg, quant, json.dumps(shapes or {}, sort_keys=True))
    if quantize.METHODS[quant].skeleton and sum(p.numel() for p in reference.parameters()) \
            <= _SKELETON_MAX_WEIGHTS:
        model = copy.deepcopy(_int8_skeleton(*key))
    else:
        model = _int8_structure(*key)
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, ValueError, KeyError) as e:  # KeyError: a quantized
        lines = [x.strip() for x in str(e).splitlines() if x.strip()]  # module reads its own
        why = (lines[1] if len(lines) > 1 else lines[0] if lines else "")[:160]  # keys
        raise CheckpointError(f"{path} does not match {_describe(cfg)}: "
                              f"{why or type(e).__name__ + ' loading its tensors'}") from None
    return model


def _enough_data(path: Path, cfg: ModelConfig, stored: Any, reference: nn.Module) -> None:
    """An int8 structure is built for real before the state dict loads into it, so the file's
    tensors (`stored`: the state dict as saved, packed or not) must first hold at least a byte
    for each weight of its layers (int8's least): a 53 KB file naming ViT-H/14 built 6.3 GB of
    structure before its missing tensors were noticed (attack, 2026-12-07). Each storage counts
    once, however many tensors view it."""
    need = sum(p.numel() for p in reference.parameters() if p.dim() >= 2)
    storages = {}
    for t in _tensors(stored):
        s = t.untyped_storage()
        storages[s.data_ptr()] = s.nbytes()
    have = sum(storages.values())
    if have < need:
        raise CheckpointError(f"{path} does not match {_describe(cfg)}: it holds {have:,} "
                              f"bytes of tensors, fewer than the {need:,} weights of its "
                              f"layers take at one byte each")


def _tensors(x: Any, depth: int = 0) -> Iterator[torch.Tensor]:
    """Every tensor in nested dicts, tuples and lists (a packed state dict nests its blobs)."""
    if isinstance(x, torch.Tensor):
        yield x
    elif isinstance(x, (dict, tuple, list)) and depth < 8:
        for v in x.values() if isinstance(x, dict) else x:
            yield from _tensors(v, depth + 1)


def _describe(cfg: ModelConfig) -> str:
    channels = f"{cfg.in_channels} channel{'s' * (cfg.in_channels != 1)}"
    return f"{cfg.name} ({channels}, {cfg.num_classes} classes, {cfg.stem} stem)"


def _fix(cfg: ModelConfig, got: torch.Tensor, want: torch.Tensor, classifier: bool,
         first: bool) -> str:
    """What the user can change when a 4-D weight differs from the architecture's: the stem
    (profile `stem`) where only its kernel differs, the data where its input channels do
    (the first convolution's, which the dataset's images set); the data's classes where a
    classifier's outputs do (a shape alone left the user to work that out). `first`: the
    first convolution, the one layer the stem and the data's channels shape (SqueezeNet's
    3×3 classifier was told to try another stem, attack, 2026-12-07)."""
    if classifier and got.dim() == want.dim() and got.shape[1:] == want.shape[1:]:
        return f" (the weights classify {got.shape[0]} classes; the data has {cfg.num_classes})"
    if got.dim() != 4 or want.dim() != 4 or not first:
        return ""
    if got.shape[:2] == want.shape[:2] and got.shape[2:] != want.shape[2:]:
        other = next(s for s in STEMS if s != cfg.stem)
        return f" (weights of another first layer: try --set stem={other})"
    if got.shape[1] != want.shape[1] and want.shape[1] == cfg.in_channels:
        return (f" (the data has {cfg.in_channels}-channel images; the weights take "
                f"{got.shape[1]})")
    return ""


def is_url(root) -> bool:
    """An artifact store given as an fsspec URL (s3://…, file://…) rather than a folder."""
    return "://" in str(root)


def resolved(root):
    """One spelling of a store: a folder as its absolute path, a URL as given (results.csv's
    `artifact` paths were relative after one run and absolute after another)."""
    return root if is_url(root) else Path(root).resolve()


DIGEST = ".sha256"  # sidecar of every artifact: its SHA-256 and size, written under its lock
# a reader that finds a URL's entry not matching its digest looks again after this many
# seconds: a writer moves the digest, then the file, into place (`Store.publish`)
PUBLISH_PAUSE = 1.0
# seconds a URL store's local copy is used without asking the URL again whether it holds that
# version: a process (a whole run, a notebook's kernel) sees another machine's entries within it
PUBLISHED_TTL = 60.0
SIDECAR_BYTES = 256  # a digest sidecar: 64 hex digits, a space, a size, a newline
MAX_JSON = 64 << 20  # bytes: our largest JSON (metrics with 10,000 predictions) is ~0.2 MB


def digest_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _finite(x: Any) -> bool:
    """No NaN or infinity anywhere in a parsed JSON value."""
    if isinstance(x, float):
        return math.isfinite(x)
    if isinstance(x, dict):
        return all(_finite(v) for v in x.values())
    if isinstance(x, list):
        return all(_finite(v) for v in x)
    return True


def parse_json(raw: bytes) -> Any:
    """Strict JSON: UTF-8, finite numbers, Python's integer-digit limit; ValueError otherwise."""
    try:
        obj = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    return obj


def read_small(path: Path, limit: int) -> bytes:
    """A regular file's bytes, if at most `limit` of them (else OSError; FileNotFoundError if
    there is none): a FIFO would block the read and a device never end it, and what is read
    this way (a JSON entry, a digest sidecar) is small."""
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise OSError(f"{Path(path).name} is not a regular file")
    with open(path, "rb") as f:
        raw = f.read(limit + 1)
    if len(raw) > limit:
        raise OSError(f"{Path(path).name} is larger than {limit} bytes")
    return raw


def read_json_entry(path: Path, check: Callable[[Any], bool] | None = None) -> dict | str:
    """A JSON entry as a dict, or the reason it cannot be used (a string)."""
    try:
        obj = parse_json(read_small(path, MAX_JSON))
        if not isinstance(obj, dict) or not _finite(obj) or (check and not check(obj)):
            return "JSON entry without the expected fields"
    except (OSError, ValueError) as e:
        return f"unreadable JSON entry ({str(e)[:80]})"
    except RecursionError:  # json parses 400 nested lists; checking them recursed too deep
        return "JSON entry nested too deep"
    return obj


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number")


def check_url(url: str, fs) -> None:
    """ConfigError for a store URL (its filesystem `fs`) that names no folder: `file://` and
    `s3://` were the current folder and a bucket's root, `file:///` the file system's root,
    and `file://x` the current folder's x (its host, by the standard; a stranger's test,
    2026-12-07)."""
    from fsspec.implementations.local import LocalFileSystem
    protocol, _, rest = url.partition("://")
    local = isinstance(fs, LocalFileSystem)
    if not rest.strip("/"):
        raise ConfigError(f"store {url} names no folder: give its path, e.g. "
                          f"{protocol}://{'/srv' if local else 'bucket'}/approx")
    if local and not rest.startswith("/"):
        raise ConfigError(f"store {url}: a URL of this machine's files names an absolute path, "
                          f"{protocol}:///path/to/folder (or give the folder itself)")


def cache_base() -> Path:
    """The folder under which URL stores keep their local copies on this machine:
    $APPROX_CACHE if set (a machine whose home is read-only had no way to move it), else
    ~/.cache/approx-cnn."""
    return Path(os.environ.get("APPROX_CACHE") or Path.home() / ".cache" / "approx-cnn")


def local_cache(url: str) -> Path:
    """Where a URL store keeps its local copies on this machine, by default."""
    return cache_base() / hashlib.sha256(url.encode()).hexdigest()[:16]


# What follows a damaged entry set aside (a warning's last words): by default it is made again;
# a damaged local copy of a URL store's entry (whatever its kind) is fetched again
RECOMPUTING = "recomputing"
FETCHING = "fetching the store's copy"

class Store:
    """The artifact cache: `<root>/<kind>/<key>.pt|.json|…`, each beside its digest sidecar.

    `root` is a folder, or any fsspec URL (`s3://bucket/approx`, `gcs://...`, `file:///shared`)
    that every worker of a cluster can reach. A URL's artifacts are computed into a local cache
    folder (`cache`, default `local_cache(url)`), then published: uploaded under
    a temporary name and moved into place, so a reader sees the whole file or none. Reads fetch
    into the local cache first (torch, ONNX Runtime and our decoders want local files).

    Nothing is trusted that was not verified: `publish` records each artifact's SHA-256 in
    `<file>.sha256` (uploaded first to a URL store), `fetch` checks it, and an entry that is damaged, has no
    digest or (JSON) fails its check is moved to `<root>/damaged/` with one warning and reported
    missing, so its stage is recomputed. `lock` serializes the computation of one stage between
    processes (runs sharing a store compute each stage once).
    """

    def __init__(self, root: Path | str = "models", cache: Path | str | None = None):
        self.url = str(root)
        self.fs = None
        if is_url(self.url):
            import fsspec
            try:
                self.fs, self.remote = fsspec.core.url_to_fs(self.url)
            except (ImportError, ValueError) as e:  # unknown protocol or its package missing
                raise ConfigError(f"cannot use artifact store {self.url}: {e}") from None
            check_url(self.url, self.fs)
            self.remote = self.remote.rstrip("/")
            self.root = Path(cache or local_cache(self.url))
        else:
            self.root = Path(root)
        # path -> ((size, mtime_ns, inode), SHA-256) when checked
        self._verified: dict[Path, tuple] = {}
        # a URL store's local copy -> ((SHA-256, size), when) the URL was seen to hold it
        self._published: dict[Path, tuple] = {}

    def path(self, kind: str, key: str, suffix: str = ".pt") -> Path:
        """The artifact's local file (for a URL store, its place in the local cache)."""
        return self.root / kind / f"{key}{suffix}"

    def _remote(self, kind: str, key: str, suffix: str) -> str:
        return f"{self.remote}/{kind}/{key}{suffix}"

    def exists(self, kind: str, key: str, suffix: str = ".pt") -> bool:
        """Whether the entry is here or, for a URL store, at its URL (not verified: `has`)."""
        return self.path(kind, key, suffix).is_file() or (
            self.fs is not None and self.fs.isfile(self._remote(kind, key, suffix)))

    def has(self, kind: str, key: str, suffix: str = ".pt",
            check: Callable[[Any], bool] | None = None) -> bool:
        """Whether a run would use the entry: a local one verified (and, for JSON, `check`ed),
        a remote one present with its digest. Moves nothing (`approx report --dry-run`)."""
        path = self.path(kind, key, suffix)
        if path.is_file() and self.verify(path) is None and (
                self.fs is None or self._as_published(kind, key, suffix, path)):
            return suffix != ".json" or isinstance(read_json_entry(path, check), dict)
        return self.fs is not None and all(
            self.fs.isfile(self._remote(kind, key, suffix + s)) for s in ("", DIGEST))

    def fetch(self, kind: str, key: str, suffix: str = ".pt", then: str = RECOMPUTING
              ) -> Path | None:
        """The artifact's verified local file, downloaded first if only the store has it; None
        if absent or damaged (a damaged copy is moved aside, with a warning ending in `then`,
        what follows). For a URL store
        the URL is the store and this machine's folder a cache of it: a local copy is used
        while the URL holds that version (`_as_published`)."""
        path = self.path(kind, key, suffix)
        if path.is_file():  # on a URL store a damaged local copy is replaced by the store's
            intact = self._check(path, kind, key, then if self.fs is None else FETCHING)
            if self.fs is None or intact is None:  # None: its writer is at work
                return path if intact else None
            if intact and self._as_published(kind, key, suffix, path):
                return path
        if self.fs is None or not self.fs.isfile(self._remote(kind, key, suffix)):
            return None
        try:  # downloaded over the local copy and set aside only where no writer is at work
            with self.holding(kind, key, wait=False):
                self._download(kind, key, suffix, path)
                if self.verify(path) is not None:  # another machine between its two moves
                    time.sleep(PUBLISH_PAUSE)  # (`publish`): once more before judging
                    self._download(kind, key, suffix, path)
                if self._check(path, kind, key, then):
                    self._seen_published(path)
                    return path
                self._set_aside_remote(kind, key, suffix)
                return None
        except Busy:
            return None

    def _download(self, kind: str, key: str, suffix: str, path: Path) -> None:
        """The URL's copy of an entry over the local one, the digest first: what arrives is
        checked against it."""
        for s in (DIGEST, ""):
            if self.fs.isfile(self._remote(kind, key, suffix + s)):
                with atomic_path(Path(f"{path}{s}")) as tmp:
                    self.fs.get_file(self._remote(kind, key, suffix + s), str(tmp))

    def _as_published(self, kind: str, key: str, suffix: str, path: Path) -> bool:
        """Whether the URL holds the version of the entry that this machine's intact copy is
        (the digest it records and the file's size), asked again after PUBLISHED_TTL seconds.
        A machine used its own copies after another had made the entry again or deleted it
        from the URL, and published models derived from its old ones over the new (a
        stranger's test, 2026-12-07). A URL that cannot be reached (not a missing file)
        leaves the local copy in use, as before: a run from local copies needs no network."""
        seen = self.identity(path)
        if seen is None:
            return False
        if self._published.get(path, (None, -math.inf))[0] == seen and (
                time.monotonic() - self._published[path][1] < PUBLISHED_TTL):
            return True
        try:
            remote = self.fs.cat_file(self._remote(kind, key, suffix + DIGEST), start=0,
                                      end=SIDECAR_BYTES).decode("ascii").split()
            size = self.fs.size(self._remote(kind, key, suffix))
        except (FileNotFoundError, UnicodeDecodeError):
            return False
        except OSError as e:
            LOG.warning("approx: warning: %s unreachable (%s); using this machine's copy of "
                        "%s/%s%s", self.url, e, kind, key, suffix)
            return True
        if remote[:1] != [seen[0]] or size != seen[1]:
            return False
        self._seen_published(path)
        return True

    def _seen_published(self, path: Path) -> None:
        """Note that the URL holds this version of the local copy (just checked, uploaded or
        downloaded): asked again after PUBLISHED_TTL seconds."""
        seen = self.identity(path)
        if seen is not None:
            self._published[path] = (seen, time.monotonic())

    def verify(self, path: Path) -> str | None:
        """Why a local entry cannot be trusted (None: its bytes are the recorded ones)."""
        side = Path(f"{path}{DIGEST}")
        try:
            st = path.stat()
            if not stat.S_ISREG(st.st_mode):
                return "not a regular file"
            if self._verified.get(path, (None,))[0] == (st.st_size, st.st_mtime_ns, st.st_ino):
                return None
            recorded = read_small(side, SIDECAR_BYTES).decode("ascii").split()
        except FileNotFoundError:
            return "no recorded digest" if path.exists() else "missing"
        except (OSError, UnicodeDecodeError) as e:
            return f"unreadable digest ({e})"
        if len(recorded) != 2 or not recorded[1].isdigit():
            return "unreadable digest"
        if int(recorded[1]) != st.st_size:
            return f"{st.st_size} bytes, {recorded[1]} recorded (truncated or replaced)"
        if path.suffix == ".json" and st.st_size > MAX_JSON:  # not hashed to be refused
            return f"JSON entry larger than {MAX_JSON >> 20} MiB"
        if digest_file(path) != recorded[0]:
            return "SHA-256 differs from the recorded one (damaged)"
        self._verified[path] = ((st.st_size, st.st_mtime_ns, st.st_ino), recorded[0])
        return None

    def digest(self, path: Path) -> str | None:
        """The SHA-256 recorded for an intact local entry, None if it cannot be trusted. A
        measurement names the file it measured by it: a file made again since, by this process
        or another, has another digest unless its bytes are the same."""
        seen = self.identity(path)
        return None if seen is None else seen[0]

    def identity(self, path: Path) -> tuple[str, int] | None:
        """(SHA-256, size) of an intact local entry, both from the one check `verify` made (no
        second read or stat to race with a writer); None if it cannot be trusted."""
        if self.verify(path) is not None:
            return None
        (size, _, _), digest = self._verified[path]
        return digest, size

    def _check(self, path: Path, kind: str, key: str, then: str = RECOMPUTING
               ) -> bool | None:
        """True if the entry is intact; False if missing or damaged (then set aside); None if
        it is not intact while a writer holds its lock: a writer renames an entry into place
        and then records its digest, so in between a reader finds it without one (or,
        rewritten, with the old one). Such an entry is reported missing, and the reader that
        goes on to compute it waits for the lock and finds it whole."""
        problem = self.verify(path)
        if problem is None:
            return True
        if problem == "missing":
            return False
        try:
            with self.holding(kind, key, wait=False):  # re-entrant: a holder gets it
                problem = self.verify(path)  # the writer may have finished meanwhile
                if problem is not None and problem != "missing":
                    self.set_aside(path, problem, then)
                return problem is None
        except Busy:
            return None

    def set_aside(self, path: Path, why: str, then: str = RECOMPUTING) -> Path:
        """Move a local entry that cannot be trusted (and its digest) under `<root>/damaged/`:
        kept for inspection, never used again; the warning ends with what follows (`then`)."""
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S")
        rel = Path(path).relative_to(self.root)
        target = self.root / DAMAGED / rel.parent / f"{rel.name}.{stamp}-{uuid.uuid4().hex[:6]}"
        target.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.replace(path, target)
        with contextlib.suppress(FileNotFoundError):
            os.replace(f"{path}{DIGEST}", f"{target}{DIGEST}")
        self._verified.pop(Path(path), None)
        LOG.warning("approx: warning: %s: %s; moved to %s, %s", path, why, target, then)
        return target

    def _set_aside_remote(self, kind: str, key: str, suffix: str) -> None:
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S")
        moved = False
        for s in (suffix, suffix + DIGEST):
            src = self._remote(kind, key, s)
            if self.fs.exists(src):
                self.fs.makedirs(f"{self.remote}/damaged/{kind}", exist_ok=True)
                self.fs.mv(src, f"{self.remote}/damaged/{kind}/{key}{s}.{stamp}")
                moved = True
        if moved:
            LOG.warning("approx: warning: the store's copy of %s/%s%s moved to %s/damaged/%s/ "
                        "too", kind, key, suffix, self.url.rstrip("/"), kind)

    def publish(self, kind: str, key: str, suffix: str = ".pt") -> None:
        """Record a locally written artifact's digest and, for a URL store, upload both under
        temporary names, then move them into place one right after the other, the digest
        first: a reader finding the new digest beside the old file waits for the second move
        (`fetch`), which an upload in between made last seconds (a review, 2026-12-07). The
        writer holds `lock(kind, key)` from before it writes the file until this returns
        (see `_check`)."""
        path = self.path(kind, key, suffix)
        write_text(Path(f"{path}{DIGEST}"), f"{digest_file(path)} {path.stat().st_size}\n")
        if self.fs is None:
            return
        self.fs.makedirs(f"{self.remote}/{kind}", exist_ok=True)
        temps = {s: f"{self.remote}/{kind}/.{key}{suffix}{s}.{uuid.uuid4().hex}{TEMP_SUFFIX}"
                 for s in (DIGEST, "")}
        try:
            for s, tmp in temps.items():
                self.fs.put_file(f"{path}{s}", tmp)
            for s, tmp in temps.items():
                self.fs.mv(tmp, self._remote(kind, key, suffix + s))
        finally:
            for tmp in temps.values():
                if self.fs.exists(tmp):
                    self.fs.rm(tmp)
        self._seen_published(path)

    def read_json(self, kind: str, key: str, check: Callable[[Any], bool] | None = None,
                  then: str = RECOMPUTING) -> dict | None:
        """A verified JSON entry; None when absent, or damaged, unparsable or failing `check`
        (then moved aside: a damaged entry is recomputed, not trusted; `then` says what follows
        where that is not so)."""
        p = self.fetch(kind, key, ".json", then)
        if p is None:
            return None
        obj = read_json_entry(p, check)
        if isinstance(obj, str):
            self.set_aside(p, obj, then)
            return None
        return obj

    def peek_json(self, kind: str, key: str, check: Callable[[Any], bool] | None = None
                  ) -> dict | None:
        """This machine's verified copy of a JSON entry, else None; fetches and moves nothing
        (`approx report --dry-run` reads timing records so)."""
        path = self.path(kind, key, ".json")
        if self.verify(path) is not None:  # missing, not a regular file, or damaged
            return None
        obj = read_json_entry(path, check)
        return obj if isinstance(obj, dict) else None

    def write_json(self, kind: str, key: str, obj: dict) -> None:
        with self.lock(kind, key):  # re-entrant where the caller holds it (a stage's record)
            write_json(self.path(kind, key, ".json"), obj)
            self.publish(kind, key, ".json")

    def lock(self, kind: str, key: str) -> filelock.FileLock:
        """An inter-process lock for computing one entry (re-entrant within a thread)."""
        path = self.root / ".locks" / f"{kind}-{key}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        return filelock.FileLock(path, is_singleton=True)

    @contextlib.contextmanager
    def holding(self, kind: str, key: str, wait: bool = True):
        """`lock(kind, key)` held for the block; Busy at once, without waiting, if another
        process (or thread) holds it and `wait` is false."""
        lock = self.lock(kind, key)
        try:
            lock.acquire(timeout=-1 if wait else 0)
        except filelock.Timeout:
            raise Busy(f"{kind} {key} is being computed elsewhere") from None
        try:
            yield
        finally:
            lock.release()

    def entries(self):
        """Every local entry (kind, file), skipping digests, temp files, locks and set-aside
        copies."""
        if not self.root.is_dir():
            return
        for kind in sorted(d for d in self.root.iterdir() if d.is_dir()):
            if kind.name == DAMAGED or kind.name.startswith("."):  # locks, another tool's
                continue
            for f in sorted(kind.iterdir()):
                if f.is_file() and not f.name.startswith(".") and not f.name.endswith(DIGEST):
                    yield kind.name, f

    def remove_stale_temps(self) -> list[Path]:
        return remove_stale_temps(self.root)
