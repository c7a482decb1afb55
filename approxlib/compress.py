"""The `.apx` file: a pruned, weight-shared model in Deep Compression's storage layout.

Layout (all integers little-endian)::

    magic      8 bytes   b"\\x89APX\\r\\n\\x1a\\n"  (PNG's trick: catches text-mode and 7-bit damage)
    version    uint16    FORMAT_VERSION
    flags      uint16    0 (reserved)
    hlen       uint32    length of the compressed header
    hcrc       uint32    CRC-32 of the compressed header
    header     hlen      zlib-compressed UTF-8 JSON: model config, structure, tensors, sections
    payload    ...       the sections back to back; each has (offset, length, CRC-32) in the header

Each Conv2d/Linear weight is stored as Deep Compression stores it (section 4 of the paper):
the positions of its non-zero weights as relative indices (the gap to the previous one, at most
2^index_bits − 2; a longer gap is split with an escape symbol that advances 2^index_bits − 1
positions and carries no weight, the paper's "filler zero" without the wasted weight code), and
its values either raw float32 (`sparse`), or as indices into a per-layer codebook of the
distinct values, at fixed width (`packed`) or Huffman coded with a canonical code (`huffman`),
the gaps too. Every other tensor (biases, BatchNorm statistics) is stored raw, in float16 when
that is exact and float32 otherwise. The codebook is the set of distinct non-zero float32 bit
patterns of the weight, so decoding returns the encoded weights bit for bit; which values
those are (k-means) is `share`'s business, not the codec's.

Loading never unpickles and never runs code: the header is JSON, the payload is numbers, and
every count, offset and shape is checked (against the architecture the header names) before
anything is allocated. A truncated, extended, bit-flipped, future-version or foreign file raises
`ApxError` (one line) and nothing else.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import gzip
import io
import json
import lzma
import math
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import zstandard
from bitarray import bitarray
from bitarray.util import canonical_decode, canonical_huffman
from torch import nn

from . import models
from . import store
from .config import (GENERAL_CODECS, GZIP, PACKED_CODEC, SHIPPED_CODEC, SPARSE_CODEC, XZ, ZSTD,
                     CodecConfig, ConfigError, ModelConfig)
from .share import fold_batchnorm

MAGIC = b"\x89APX\r\n\x1a\n"
# What an .apx file decodes into: torchvision's model with every BatchNorm after a convolution
# folded into it (Deep Compression's file holds no BatchNorm), or as built
FOLDED = "folded"
STRUCTURES = (FOLDED, "plain")
FORMAT_VERSION = 1
PREFIX = struct.Struct("<8sHHII")
# Issue 14: every size is bounded before it is read or allocated. Headers measured: ResNet-18,
# shared + Huffman, 10 kB compressed / 32 kB of JSON; the largest, MobileNetV2 with unshared
# weights Huffman coded, 1.3 MB / 3.1 MB. Hostile JSON costs up to ~25 bytes of memory per byte
# of text (nested empty lists, measured): 8 MiB of it parses to ~180 MiB in ~1.2 s.
MAX_HEADER = 4 << 20           # compressed header bytes, checked before they are read
MAX_HEADER_TEXT = 8 << 20      # its JSON text; `encode` refuses to write more
MAX_INT_DIGITS = 18            # every integer in a header fits int64 (json alone allows 4300)
MAX_FILE = 4 << 30
MAX_OUTPUT = 256 << 20         # general_decompress when the architecture is unknown
MAX_CODEBOOK = 1 << 16         # more distinct values than this: values stored raw
CHUNK = 1 << 20                # symbols decoded per numpy step (bounds the temporaries)
RAW_DTYPES = {"float32": np.dtype("<f4"), "float16": np.dtype("<f2"), "int64": np.dtype("<i8")}


class ApxError(store.CheckpointError):
    """An .apx file that is not ours, damaged, or of a version this code does not read."""


# ----------------------------------------------------------------------------- bit streams

def pack_fixed(symbols: np.ndarray, width: int) -> bytes:
    """Symbols (< 2^width) as `width`-bit big-endian fields, vectorized through numpy."""
    if len(symbols) == 0:
        return b""
    shifts = np.arange(width - 1, -1, -1, dtype=np.uint32)
    bits = ((symbols.astype(np.uint32)[:, None] >> shifts) & 1).astype(np.uint8)
    return np.packbits(bits.ravel()).tobytes()


def unpack_fixed(buf: bytes, width: int, n: int) -> np.ndarray:
    """The symbols of a `pack_fixed` stream (width ≤ 32), as uint16 up to 16 bits: numpy
    re-packs each symbol's bits into whole bytes, so memory stays ~width + 4 bytes a symbol."""
    need = math.ceil(n * width / 8)
    if len(buf) != need:
        raise ApxError(f"fixed-width stream holds {len(buf)} bytes, expected {need}")
    dtype = np.uint16 if width <= 16 else np.uint32
    if n == 0:
        return np.zeros(0, dtype=dtype)
    bits = np.unpackbits(np.frombuffer(buf, dtype=np.uint8), count=n * width).reshape(n, width)
    rows = np.packbits(bits, axis=1)  # each symbol left-aligned in 1, 2, 3 or 4 bytes
    del bits
    if rows.shape[1] == 3:
        rows = np.pad(rows, ((0, 0), (0, 1)))
    nbytes = rows.shape[1]
    big = rows.view({1: ">u1", 2: ">u2", 4: ">u4"}[nbytes]).ravel()
    return (big >> (8 * nbytes - width)).astype(dtype)


def huffman_encode(symbols: np.ndarray) -> tuple[bytes, dict]:
    """Canonical Huffman code of the symbols (bitarray's C coder); the table is the code-length
    counts and the symbols in canonical order, which is all a decoder needs."""
    if len(symbols) == 0:
        return b"", {"count": [], "symbol": [], "nbits": 0}
    values, freq = np.unique(symbols, return_counts=True)
    code, count, order = canonical_huffman(dict(zip(values.tolist(), freq.tolist())))
    bits = bitarray(endian="big")
    bits.encode(code, symbols.tolist())
    return bits.tobytes(), {"count": list(count), "symbol": list(order), "nbits": len(bits)}


def huffman_decode(buf: bytes, table: dict, n: int, alphabet: int) -> np.ndarray:
    count, order, nbits = table["count"], table["symbol"], table["nbits"]
    dtype = np.uint16 if alphabet <= 1 << 16 else np.uint32
    if n == 0:
        if nbits or buf:
            raise ApxError("an empty Huffman stream carries data")
        return np.zeros(0, dtype=dtype)
    # Every code is 1 to 63 bits long (count[i] codes of i bits), so n ≤ nbits bounds the
    # output by the stream's own size before anything is allocated.
    if not (isinstance(count, list) and isinstance(order, list) and 1 < len(count) <= 64
            and 0 < len(order) <= alphabet and count[0] == 0
            and all(isinstance(c, int) and 0 <= c <= len(order) for c in count)
            and all(isinstance(s, int) and 0 <= s < alphabet for s in order)
            and len(set(order)) == len(order) and isinstance(nbits, int)
            and n <= nbits and math.ceil(nbits / 8) == len(buf)):
        raise ApxError("malformed Huffman table")
    bits = bitarray(endian="big")
    bits.frombytes(buf)
    del bits[nbits:]
    try:
        out = np.fromiter(canonical_decode(bits, count, order), dtype=dtype, count=n)
    except ValueError as e:  # invalid table, or fewer symbols than promised
        raise ApxError(f"corrupt Huffman stream: {e}") from None
    # Every code length is known from the table: the symbols must use up exactly nbits.
    lengths = np.repeat(np.arange(len(count), dtype=np.uint8), count)
    length_of = np.zeros(alphabet, dtype=np.uint8)
    length_of[np.asarray(order, dtype=np.int64)] = lengths
    if int(length_of[out].sum(dtype=np.int64)) != nbits:
        raise ApxError("Huffman stream longer than its symbol count")
    return out


# ------------------------------------------------------------------------ relative indices

def gaps_of(positions: np.ndarray, index_bits: int) -> np.ndarray:
    """Gap symbols for sorted positions: gap = zeros skipped before each kept weight; a gap of
    `escape` = 2^index_bits − 1 or more is emitted as escapes (each skips `escape` positions)."""
    escape = (1 << index_bits) - 1
    gaps = np.diff(positions, prepend=-1) - 1
    n_esc = gaps // escape
    total = n_esc + 1
    out = np.full(int(total.sum()), escape, dtype=np.int64)
    out[np.cumsum(total) - 1] = gaps % escape
    return out


def positions_of(symbols: np.ndarray, index_bits: int, nnz: int, numel: int) -> np.ndarray:
    """The positions `gaps_of` encoded, computed CHUNK symbols at a time so the int64
    temporaries stay small however long the stream (int32 positions where they fit)."""
    escape = (1 << index_bits) - 1
    if int(np.count_nonzero(symbols != escape)) != nnz:
        raise ApxError("relative indices do not match the non-zero count")
    out = np.empty(nnz, dtype=np.int32 if numel < 1 << 31 else np.int64)
    end, k = -1, 0
    for start in range(0, len(symbols), CHUNK):
        s = symbols[start:start + CHUNK].astype(np.int64)
        is_esc = s == escape
        ends = end + np.cumsum(np.where(is_esc, escape, s + 1))  # every step ≥ 1: increasing
        pos = ends[~is_esc]
        if len(pos) and pos[-1] >= numel:
            raise ApxError("relative indices run past the tensor")
        out[k:k + len(pos)] = pos
        k, end = k + len(pos), int(ends[-1])
    return out


# ------------------------------------------------------------------------------- encoding

class _Writer:
    def __init__(self):
        self.buf, self.sections = io.BytesIO(), []

    def add(self, data: bytes) -> int:
        self.sections.append([self.buf.tell(), len(data), zlib.crc32(data)])
        self.buf.write(data)
        return len(self.sections) - 1


def _encode_raw(w: _Writer, name: str, t: torch.Tensor) -> dict:
    arr = t.detach().cpu().contiguous().numpy()
    if t.dtype == torch.float32:
        with np.errstate(over="ignore"):  # beyond float16's range: inf, not equal, float32
            half = arr.astype("<f2")
        exact = np.array_equal(half.astype(np.float32).view(np.uint32), arr.view(np.uint32))
        stored = "float16" if exact else "float32"
    elif t.dtype == torch.int64:
        stored = "int64"
    else:
        raise ConfigError(f"cannot encode tensor {name} of dtype {t.dtype}")
    data = arr.astype(RAW_DTYPES[stored]).tobytes()
    return {"enc": "raw", "stored": stored, "data": w.add(data)}


def _stream(w: _Writer, symbols: np.ndarray, coding: str, width: int) -> dict:
    if coding == "huffman":
        data, table = huffman_encode(symbols)
        return {"coding": "huffman", "n": len(symbols), **table, "data": w.add(data)}
    return {"coding": "fixed", "n": len(symbols), "width": width,
            "data": w.add(pack_fixed(symbols, width))}


def _encode_sparse(w: _Writer, t: torch.Tensor, cfg: CodecConfig) -> dict:
    form = APX[cfg.codec]
    bits = t.detach().cpu().contiguous().reshape(-1).view(torch.int32).numpy().view(np.uint32)
    positions = np.flatnonzero(bits)  # bit patterns: −0.0 is a value, +0.0 is "pruned"
    rec = {"enc": "sparse", "nnz": len(positions), "index_bits": cfg.index_bits,
           "gaps": _stream(w, gaps_of(positions, cfg.index_bits), form.coding, cfg.index_bits)}
    values = bits[positions]
    book, codes = np.unique(values, return_inverse=True)
    if not form.codebook or not 0 < len(book) <= MAX_CODEBOOK:
        rec["values"] = {"coding": "raw", "data": w.add(values.astype("<u4").tobytes())}
    else:
        width = max(1, math.ceil(math.log2(len(book)))) if len(book) > 1 else 1
        rec["codebook"] = {"k": len(book), "data": w.add(book.astype("<u4").tobytes())}
        rec["values"] = _stream(w, codes.astype(np.int64), form.coding, width)
    return rec


def encode(model: nn.Module, model_cfg: ModelConfig, cfg: CodecConfig,
           meta: dict | None = None) -> tuple[bytes, list[dict]]:
    """The .apx bytes of a model, and one stats row per tensor (bytes, bits per non-zero)."""
    if cfg.codec not in APX:
        raise ConfigError(f"codec {cfg.codec!r} is not an .apx codec; valid: {', '.join(APX)}")
    state = model.state_dict()
    got = {k: tuple(v.shape) for k, v in state.items()}
    # the structure whose tensors the model has: "any BatchNorm left means unfolded" failed for
    # DenseNet and MaxViT, whose BatchNorms before a convolution stay when it is folded (a new
    # user's walkthrough, 2026-12-07: `compress` ended after its whole run)
    for structure in STRUCTURES:
        expected = {k: tuple(v.shape)
                    for k, v in _meta_skeleton(model_cfg, structure).state_dict().items()}
        if got == expected:
            break
    else:
        raise ConfigError(f"the model's tensors match neither the BatchNorm-folded nor the "
                          f"plain structure of {store._describe(model_cfg)}")
    weights = {f"{n}.weight" for n, _ in models.prunable(model)}
    w, tensors, stats = _Writer(), [], []
    # in the skeleton's order, which the decoder checks: a model's own may differ (removing
    # a parametrization, as weight sharing does, registers the weight again after the bias)
    for name in expected:
        t = state[name]
        start = len(w.sections)
        if name in weights and t.dtype == torch.float32:
            rec = _encode_sparse(w, t, cfg)
        else:
            rec = _encode_raw(w, name, t)
        tensors.append({"name": name, "shape": list(t.shape), "dtype": str(t.dtype)[6:], **rec})
        nbytes = sum(s[1] for s in w.sections[start:])
        nnz = rec.get("nnz", t.numel())
        stats.append({"tensor": name, "shape": "x".join(map(str, t.shape)) or "scalar",
                      "numel": t.numel(), "nonzero": nnz, "encoding": rec["enc"],
                      "codebook": rec.get("codebook", {}).get("k", 0),
                      "index_bits": (8 * w.sections[rec["gaps"]["data"]][1] / max(1, nnz)
                                     if "gaps" in rec else 0.0),
                      "value_bits": (8 * w.sections[rec["values"]["data"]][1] / max(1, nnz)
                                     if "values" in rec else 8 * nbytes / max(1, t.numel())),
                      "bytes": nbytes})
    payload = w.buf.getvalue()
    header = {"format": "approxlib.apx", "model": asdict(model_cfg), "structure": structure,
              "codec": cfg.codec, "tensors": tensors, "sections": w.sections,
              "payload_bytes": len(payload), "meta": json.loads(json.dumps(meta or {}, default=str))}
    text = json.dumps(header, separators=(",", ":")).encode()
    hbytes = zlib.compress(text, 9)
    if len(text) > MAX_HEADER_TEXT or len(hbytes) > MAX_HEADER:
        raise ConfigError(f"the .apx header would take {len(text) >> 20} MiB, more than a reader "
                          f"accepts ({MAX_HEADER_TEXT >> 20} MiB): share the weights first, or "
                          f"use codec 'sparse'")
    prefix = PREFIX.pack(MAGIC, FORMAT_VERSION, 0, len(hbytes), zlib.crc32(hbytes))
    return prefix + hbytes + payload, stats


def save(model: nn.Module, path: Path, cfg: CodecConfig, model_cfg: ModelConfig,
         meta: dict | None = None) -> list[dict]:
    """Write `model` as an .apx file (atomically); return the per-tensor stats."""
    data, stats = encode(model, model_cfg, cfg, meta)
    with store.atomic_path(Path(path)) as tmp:
        tmp.write_bytes(data)
    return stats


# ------------------------------------------------------------------------------- decoding

def skeleton(model_cfg: ModelConfig, structure: str, device: str | None = None) -> nn.Module:
    """The empty model an .apx file decodes into (BatchNorm folded away for `folded`). On the
    `meta` device it holds shapes but no memory: what a header claims is checked against it."""
    if device == "meta":
        model = models.build_meta(model_cfg)
    else:
        with torch.device(device) if device else contextlib.nullcontext():
            model = models.build(model_cfg).eval()
    with torch.device(device) if device else contextlib.nullcontext():
        return fold_batchnorm(model) if structure == FOLDED else model


@functools.lru_cache(maxsize=8)
def _meta_skeleton(model_cfg: ModelConfig, structure: str) -> nn.Module:
    """Cached: folding BatchNorm on the meta device takes ~0.1-0.3 s. Never mutate it."""
    return skeleton(model_cfg, structure, "meta")


def _prefix(buf: bytes) -> tuple[int, int]:
    """(header length, header CRC) from the fixed prefix, the first bytes read: a foreign,
    future-version or oversized file is refused before anything else is read."""
    if len(buf) < PREFIX.size or buf[:8] != MAGIC:
        raise ApxError("not an .apx file (bad magic number)")
    _, version, flags, hlen, hcrc = PREFIX.unpack_from(buf)
    if version != FORMAT_VERSION:
        raise ApxError(f"format version {version}; this approxlib reads version {FORMAT_VERSION}")
    if flags != 0 or hlen > MAX_HEADER:
        raise ApxError("truncated or corrupt header")
    return hlen, hcrc


def _header_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_INT_DIGITS:
        raise ApxError(f"header holds a {len(digits)}-digit integer (at most {MAX_INT_DIGITS})")
    return int(digits)


def _parse_header(raw: bytes, hcrc: int) -> dict:
    """The header's JSON, inflated to at most MAX_HEADER_TEXT bytes, integers int64-sized."""
    if zlib.crc32(raw) != hcrc:
        raise ApxError("header checksum mismatch (the file is damaged)")
    try:
        d = zlib.decompressobj()
        text = d.decompress(raw, MAX_HEADER_TEXT)
        if d.unconsumed_tail or d.unused_data or not d.eof:
            raise ApxError(f"header truncated or over {MAX_HEADER_TEXT >> 20} MiB of JSON")
        header = json.loads(text, parse_int=_header_int)
    except ApxError:
        raise
    except (zlib.error, ValueError, RecursionError) as e:  # ValueError: bad UTF-8 or JSON
        raise ApxError(f"unreadable header: {type(e).__name__}") from None
    if not isinstance(header, dict) or header.get("format") != "approxlib.apx":
        raise ApxError("header does not describe an approxlib model")
    return header


def _short(x) -> str:
    s = repr(x)
    return s if len(s) <= 60 else s[:57] + "..."


def _match(recs: list, expected: dict, what: str) -> None:
    """Every tensor record names, in order, a tensor of the architecture with its shape."""
    if not isinstance(recs, list):
        raise ApxError("the header's tensor list is not a list")
    for i, (name, ref) in enumerate(expected.items()):
        if i >= len(recs):
            raise ApxError(f"tensor {name} of {what} is missing")
        rec = recs[i]
        if rec["name"] != name:
            raise ApxError(f"tensor {i} is {_short(rec['name'])}; {what} has {name} there")
        if rec["shape"] != list(ref.shape) or rec["dtype"] != str(ref.dtype)[6:]:
            raise ApxError(f"tensor {name} is {_short(rec['dtype'])} {_short(rec['shape'])}; "
                           f"{what} has {str(ref.dtype)[6:]} {list(ref.shape)}")
    if len(recs) > len(expected):
        raise ApxError(f"{len(recs) - len(expected)} tensors more than {what} has")


def _payload_bound(expected: dict) -> int:
    """Most payload bytes the architecture can need: per element 1 value and ≤ 2 gap symbols of
    ≤ 64 bits each (a code table has ≤ 64 lengths), plus a full codebook per tensor."""
    return sum(24 * t.numel() + 4 * MAX_CODEBOOK + 8 for t in expected.values())


@contextlib.contextmanager
def _malformed():
    """A header field of the wrong type or size surfaces as one ApxError line."""
    try:
        yield
    except ApxError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError,
            ConfigError) as e:
        raise ApxError(f"malformed header ({type(e).__name__}: {str(e)[:80]})") from None


def _plan(header: dict, expect: ModelConfig | None) -> nn.Module:
    """The meta-device skeleton the header describes, once every tensor's name, shape and type
    and the payload's size are checked against it: a lying header allocates nothing."""
    with _malformed():
        cfg = ModelConfig(**header["model"])
        if expect is not None and cfg != expect:
            raise ApxError(f"holds {store._describe(cfg)}, expected {store._describe(expect)}")
        structure = header["structure"]
        if structure not in STRUCTURES:
            raise ApxError(f"unknown model structure {_short(structure)}")
        model = _meta_skeleton(cfg, structure)
        expected = model.state_dict()
        _match(header["tensors"], expected, f"the {structure} {cfg.name} architecture")
        size, bound = header["payload_bytes"], _payload_bound(expected)
        if not (isinstance(size, int) and 0 <= size <= bound):
            raise ApxError(f"payload of {_short(size)} bytes; the {structure} {cfg.name} "
                           f"architecture needs at most {bound}")
    return model


def _sections(header: dict, payload: memoryview) -> list[bytes]:
    secs = header["sections"]
    if header["payload_bytes"] != len(payload):
        raise ApxError(f"payload is {len(payload)} bytes, header says "
                       f"{_short(header['payload_bytes'])} (truncated or extended file)")
    out, pos = [], 0
    for off, length, crc in secs:
        if off != pos or not 0 <= length <= len(payload) - pos:
            raise ApxError("section table does not tile the payload")
        chunk = bytes(payload[off:off + length])
        if zlib.crc32(chunk) != crc:
            raise ApxError(f"section {len(out)} checksum mismatch (the file is damaged)")
        out.append(chunk)
        pos += length
    if pos != len(payload):
        raise ApxError("payload has bytes no section describes")
    return out


def _decode_stream(spec: dict, secs: list[bytes], alphabet: int, limit: int) -> np.ndarray:
    n = spec["n"]
    if not isinstance(n, int) or not 0 <= n <= limit:
        raise ApxError("stream length out of range")
    if spec["coding"] == "huffman":
        return huffman_decode(secs[spec["data"]], spec, n, alphabet)
    if spec["coding"] == "fixed" and isinstance(spec["width"], int) and 1 <= spec["width"] <= 16:
        out = unpack_fixed(secs[spec["data"]], spec["width"], n)
        if n and out.max() >= alphabet:
            raise ApxError("fixed-width symbol out of range")
        return out
    raise ApxError(f"unknown stream coding {_short(spec['coding'])}")


def _decode_raw(rec: dict, numel: int, dtype: torch.dtype, secs: list[bytes]) -> np.ndarray:
    stored = RAW_DTYPES.get(rec["stored"])
    buf = secs[rec["data"]]
    if stored is None or len(buf) != numel * stored.itemsize:
        raise ApxError(f"raw tensor {rec['name']} has the wrong size or type")
    if (stored == RAW_DTYPES["int64"]) != (dtype == torch.int64):
        raise ApxError(f"raw tensor {rec['name']} has the wrong type")
    return np.frombuffer(buf, dtype=stored).astype(np.int64 if dtype == torch.int64 else np.float32)


def _sparse_values(rec: dict, secs: list[bytes], nnz: int) -> tuple[np.ndarray, np.ndarray | None]:
    """(the non-zero values' bit patterns, None) or (a codebook, one code per non-zero)."""
    values = rec["values"]
    if values.get("coding") == "raw":
        buf = secs[values["data"]]
        if len(buf) != 4 * nnz:
            raise ApxError(f"tensor {rec['name']}: value section has the wrong size")
        table, codes = np.frombuffer(buf, dtype="<u4"), None
    else:
        k = rec["codebook"]["k"]
        book_buf = secs[rec["codebook"]["data"]]
        if not (isinstance(k, int) and 1 <= k <= MAX_CODEBOOK) or len(book_buf) != 4 * k:
            raise ApxError(f"tensor {rec['name']}: bad codebook")
        table, codes = np.frombuffer(book_buf, dtype="<u4"), _decode_stream(values, secs, k, nnz)
        if len(codes) != nnz:
            raise ApxError(f"tensor {rec['name']}: value count differs from the non-zero count")
    if np.any(table == 0):
        raise ApxError(f"tensor {rec['name']}: a stored value is +0.0")
    return table, codes


def _decode_tensor(rec: dict, shape: tuple, dtype: torch.dtype, secs: list[bytes]) -> torch.Tensor:
    numel = math.prod(shape)
    if rec["enc"] == "raw":
        return torch.from_numpy(_decode_raw(rec, numel, dtype, secs)).reshape(shape)
    if rec["enc"] != "sparse" or dtype != torch.float32:
        raise ApxError(f"unknown encoding {_short(rec['enc'])}")
    nnz, ib = rec["nnz"], rec["index_bits"]
    if not (isinstance(nnz, int) and 0 <= nnz <= numel and isinstance(ib, int) and 1 <= ib <= 16):
        raise ApxError(f"tensor {rec['name']}: bad non-zero count or index width")
    max_gaps = nnz + numel // ((1 << ib) - 1) + 1
    positions = positions_of(_decode_stream(rec["gaps"], secs, 1 << ib, max_gaps), ib, nnz, numel)
    table, codes = _sparse_values(rec, secs, nnz)
    flat = np.zeros(numel, dtype=np.uint32)  # calloc: pages no weight lands on cost nothing
    for i in range(0, nnz, CHUNK):
        part = slice(i, i + CHUNK)
        flat[positions[part]] = table[part] if codes is None else table[codes[part]]
    return torch.from_numpy(flat.view(np.float32)).reshape(shape)


def _build(header: dict, secs: list[bytes], skeleton_: nn.Module) -> nn.Module:
    """Decode every tensor and assign it into a copy of the checked meta-device skeleton (the
    decoded tensors become the model's: no second copy is allocated)."""
    model = copy.deepcopy(skeleton_)
    with _malformed():
        state = {name: _decode_tensor(rec, tuple(ref.shape), ref.dtype, secs)
                 for rec, (name, ref) in zip(header["tensors"], model.state_dict().items())}
    model.load_state_dict(state, assign=True)
    if any(t.is_meta for t in (*model.parameters(), *model.buffers())):
        raise ApxError("the header leaves some of the model's tensors undefined")
    return model.eval()


def decode(data: bytes, expect: ModelConfig | None = None) -> tuple[nn.Module, dict]:
    """The model an .apx byte string holds (CPU, eval mode), and its header. `expect`, when
    given, is the architecture it must hold."""
    if len(data) > MAX_FILE:
        raise ApxError("file larger than any model this format holds")
    hlen, hcrc = _prefix(data[:PREFIX.size])
    if PREFIX.size + hlen > len(data):
        raise ApxError("truncated or corrupt header")
    header = _parse_header(data[PREFIX.size:PREFIX.size + hlen], hcrc)
    with _malformed():  # checksums first: they refuse a damaged file in microseconds
        secs = _sections(header, memoryview(data)[PREFIX.size + hlen:])
    return _build(header, secs, _plan(header, expect)), header


def _read(f, size: int, expect: ModelConfig | None) -> tuple[nn.Module, dict]:
    """`decode` from an open file, reading each part only once the parts before it passed."""
    hlen, hcrc = _prefix(f.read(PREFIX.size))
    if PREFIX.size + hlen > size:
        raise ApxError("truncated or corrupt header")
    header = _parse_header(f.read(hlen), hcrc)
    model = _plan(header, expect)
    rest = size - PREFIX.size - hlen
    if header["payload_bytes"] != rest:
        raise ApxError(f"payload is {rest} bytes, header says {_short(header['payload_bytes'])} "
                       f"(truncated or extended file)")
    with _malformed():
        secs = _sections(header, memoryview(f.read(rest)))
    return _build(header, secs, model), header


def load(path: Path, expect: ModelConfig | None = None) -> tuple[nn.Module, dict]:
    """Read an .apx file: (model, header). Raises ApxError with one line for a bad file, or one
    that does not hold `expect` (when given)."""
    path = Path(path)
    if not path.is_file():
        raise ApxError(f"compressed model {store.missing(path)}: {path}")
    try:
        size = path.stat().st_size
        if size > MAX_FILE:
            raise ApxError("larger than any model this format holds")
        with path.open("rb") as f:
            return _read(f, size, expect)
    except ApxError as e:
        raise ApxError(f"{path}: {e}") from None
    except OSError as e:
        raise ApxError(f"cannot read {path}: {e.strerror or e}") from None


# --------------------------------------------------------------- general-purpose baselines

class Codec:
    """How section F writes a checkpoint to one file and reads it back (results.csv `codec`):
    each kind a subclass, each codec an entry of CODECS. `steps.Encode` and
    `pipeline.load_artifact` ask the codec, never its name; a new codec is one entry here."""
    name: str
    suffix: str

    @property
    def file_suffix(self) -> str:
        """How the files it writes end."""
        return self.suffix

    def write(self, source: Path, mc: ModelConfig, cc: CodecConfig, header: dict
              ) -> tuple[bytes, list[dict], float, float, bool]:
        """The file's bytes from the checkpoint at `source`, one stats row per tensor, the
        seconds to encode and to decode, and whether the round trip is bit-exact."""
        raise NotImplementedError

    def load(self, path: Path, expect: ModelConfig | None) -> tuple[nn.Module, dict]:
        """The model a file holds, and its checkpoint or header; CheckpointError (ApxError),
        one line, for a bad file."""
        raise NotImplementedError


@dataclass(frozen=True)
class Apx(Codec):
    """A layer of our .apx format (`encode`, `load`): how it codes its streams of gaps and
    values, and whether the values go through a codebook (else raw float32 bits)."""
    name: str
    coding: str  # of the position and codebook-index streams: "fixed" width or "huffman"
    codebook: bool
    suffix: str = ".apx"

    def write(self, source, mc, cc, header):
        model, _ = store.load_checkpoint(source, expect=mc)
        t0 = time.perf_counter()
        data, stats = encode(model, mc, cc, header)
        t1 = time.perf_counter()
        exact = models.fingerprint(decode(data)[0]) == models.fingerprint(model)
        return data, stats, t1 - t0, time.perf_counter() - t1, exact

    def load(self, path, expect):
        return load(path, expect)


@dataclass(frozen=True)
class Level:
    """One setting of a general-purpose tool: its command-line spelling, which the report
    prints beside the sizes, travels with the function that makes them."""
    setting: str  # as the tool's command line spells it
    compress: Callable[[bytes], bytes]


@dataclass(frozen=True)
class GeneralCodec(Codec):
    """A general-purpose compressor over the whole checkpoint file: what a user would try first.
    One entry per tool holds everything about it (file suffix, settings, both directions)."""
    name: str
    suffix: str  # appended to the checkpoint's .pt
    # by `CodecConfig.effort`: None, the strongest; "fast" (a dict: left out of the hash)
    levels: dict[str | None, Level] = field(hash=False)
    pieces: Callable[[bytes], Iterator[bytes]]  # decompression, a bounded piece at a time
    # what its decompressor raises on damaged data besides OSError and EOFError: a damaged
    # file is then one line and set aside, not a traceback
    errors: tuple[type[Exception], ...] = field(default=(), hash=False)

    def setting(self, effort: str | None = None) -> str:
        """How the tool's command line spells the level `effort` names (the report's words)."""
        return self.levels[effort].setting

    @property
    def file_suffix(self) -> str:
        return f".pt{self.suffix}"

    def write(self, source, mc, cc, header):
        raw = source.read_bytes()
        t0 = time.perf_counter()
        data = self.levels[cc.effort].compress(raw)
        t1 = time.perf_counter()
        exact = general_decompress(data, self.name, limit=len(raw)) == raw
        return data, [], t1 - t0, time.perf_counter() - t1, exact

    def load(self, path, expect):
        if not path.is_file():
            raise store.CheckpointError(f"checkpoint {store.missing(path)}: {path}")
        limit = checkpoint_limit(expect)
        if path.stat().st_size > limit:  # compressed, it can only be smaller than the limit
            raise store.CheckpointError(f"{path}: larger than any checkpoint of this architecture")
        raw = general_decompress(path.read_bytes(), self.name, limit)
        return store.load_checkpoint(path, expect, data=raw)


def _file_pieces(reader) -> Iterator[bytes]:
    """gzip's and lzma's file readers inflate at most CHUNK bytes a read (members and streams
    back to back, checksums and truncation checked by the library)."""
    with reader:
        while piece := reader.read(CHUNK):
            yield piece


def _zstd_pieces(data: bytes) -> Iterator[bytes]:
    """python-zstandard's decompressobj has no output limit and its stream_reader takes a
    truncated frame for a whole one, so the input goes in in 256-byte slices (a zstd block of
    ≥ 4 bytes holds ≤ 128 KiB: ≤ 8 MiB out per slice, 8 MiB measured on zeros) and every frame
    must reach its end."""
    view, pos = memoryview(data), 0
    while pos < len(view):
        d = zstandard.ZstdDecompressor().decompressobj()
        while not d.eof and pos < len(view):
            yield d.decompress(view[pos:pos + 256])
            pos = min(pos + 256, len(view))
        if not d.eof:
            raise EOFError("the zstd data is truncated")
        pos -= len(d.unused_data)


# Each tool at its strongest common setting (None) and at a quick one ("fast": on a ResNet-18
# checkpoint here, xz -3 took 2.9 s against xz -9e's 24.4 s and wrote a 3.5% larger file).
GENERAL = {c.name: c for c in (
    GeneralCodec(GZIP, ".gz", {
        None: Level("gzip -9", lambda d: gzip.compress(d, compresslevel=9, mtime=0)),
        "fast": Level("gzip -6", lambda d: gzip.compress(d, compresslevel=6, mtime=0))},
        lambda d: _file_pieces(gzip.GzipFile(fileobj=io.BytesIO(d))), (zlib.error,)),
    GeneralCodec(XZ, ".xz", {
        None: Level("xz -9e", lambda d: lzma.compress(d, preset=9 | lzma.PRESET_EXTREME)),
        "fast": Level("xz -3", lambda d: lzma.compress(d, preset=3))},
        lambda d: _file_pieces(lzma.LZMAFile(io.BytesIO(d))), (lzma.LZMAError,)),
    GeneralCodec(ZSTD, ".zst", {
        None: Level("zstd -19", lambda d: zstandard.ZstdCompressor(level=19).compress(d)),
        "fast": Level("zstd -9", lambda d: zstandard.ZstdCompressor(level=9).compress(d))},
        _zstd_pieces, (zstandard.ZstdError,)))}


APX: dict[str, Apx] = {c.name: c for c in (
    Apx(SPARSE_CODEC, "fixed", codebook=False),  # positions + float32 values
    Apx(PACKED_CODEC, "fixed", codebook=True),  # + the values as fixed-width codebook indices
    Apx(SHIPPED_CODEC, "huffman", codebook=True))}  # + Huffman coding of both streams
CODECS: dict[str, Codec] = {**APX, **GENERAL}


def general_codec(codec: str) -> GeneralCodec:
    if codec not in GENERAL:
        raise ValueError(f"not a general-purpose codec: {codec!r}; valid: "
                         f"{', '.join(GENERAL_CODECS)}")
    return GENERAL[codec]


def general_compress(data: bytes, codec: str, effort: str | None = None) -> bytes:
    """What a user would try first on a checkpoint, by default at each tool's strongest common
    setting."""
    return general_codec(codec).levels[effort].compress(data)


def general_decompress(data: bytes, codec: str, limit: int = MAX_OUTPUT) -> bytes:
    """`data` decompressed as a stream that stops as soon as the output passes `limit` bytes
    (issue 14: a 190 KiB .xz once inflated to 3.2 GiB); CheckpointError, one line, otherwise."""
    out, tool = io.BytesIO(), general_codec(codec)
    try:
        for piece in tool.pieces(data):
            if out.tell() + len(piece) > limit:
                break
            out.write(piece)
        else:
            return out.getvalue()
    except (OSError, EOFError, *tool.errors) as e:
        raise store.CheckpointError(f"cannot decompress ({codec}): {str(e)[:120]}") from None
    raise store.CheckpointError(f"{codec} data decompresses to more than {_mib(limit)}, the most "
                                f"this checkpoint can hold (a damaged file or a decompression bomb)")


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.0f} MiB" if n >= 1 << 20 else f"{n} bytes"


def checkpoint_limit(model_cfg: ModelConfig | None = None) -> int:
    """Most bytes a checkpoint of `model_cfg` may decompress to: twice its dense float32
    tensors (shapes from a meta-device build, nothing allocated) plus 16 MiB for the zip
    container and meta; MAX_OUTPUT when the architecture is not known."""
    if model_cfg is None:
        return MAX_OUTPUT
    tensors = models.build_meta(model_cfg).state_dict().values()
    return 2 * sum(t.numel() * t.element_size() for t in tensors) + (16 << 20)


def dense_state_dict_bytes(model_cfg: ModelConfig) -> int:
    """Bytes of `torch.save(state_dict)` of the dense float32 model: the ratio's numerator."""
    buf = io.BytesIO()
    torch.save(models.build(model_cfg).state_dict(), buf)
    return buf.tell()
