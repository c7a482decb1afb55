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

import io
import json
import math
import struct
import zlib
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import models as M
from . import store as S
from .config import CodecConfig, ConfigError, ModelConfig

MAGIC = b"\x89APX\r\n\x1a\n"
FORMAT_VERSION = 1
PREFIX = struct.Struct("<8sHHII")
MAX_HEADER = 32 << 20          # compressed or not; a ResNet-18 header is ~10 kB
MAX_FILE = 4 << 30
MAX_CODEBOOK = 1 << 16         # more distinct values than this: values stored raw
APX_CODECS = ("sparse", "packed", "huffman")
RAW_DTYPES = {"float32": np.dtype("<f4"), "float16": np.dtype("<f2"), "int64": np.dtype("<i8")}
TORCH_DTYPES = {"float32": torch.float32, "int64": torch.int64}


class ApxError(S.CheckpointError):
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
    need = math.ceil(n * width / 8)
    if len(buf) != need:
        raise ApxError(f"fixed-width stream holds {len(buf)} bytes, expected {need}")
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    bits = np.unpackbits(np.frombuffer(buf, dtype=np.uint8))[:n * width].reshape(n, width)
    weights = (1 << np.arange(width - 1, -1, -1, dtype=np.int64))
    return bits.astype(np.int64) @ weights


def huffman_encode(symbols: np.ndarray) -> tuple[bytes, dict]:
    """Canonical Huffman code of the symbols (bitarray's C coder); the table is the code-length
    counts and the symbols in canonical order, which is all a decoder needs."""
    from bitarray import bitarray
    from bitarray.util import canonical_huffman
    if len(symbols) == 0:
        return b"", {"count": [], "symbol": [], "nbits": 0}
    values, freq = np.unique(symbols, return_counts=True)
    code, count, order = canonical_huffman(dict(zip(values.tolist(), freq.tolist())))
    bits = bitarray(endian="big")
    bits.encode(code, symbols.tolist())
    return bits.tobytes(), {"count": list(count), "symbol": list(order), "nbits": len(bits)}


def huffman_decode(buf: bytes, table: dict, n: int, alphabet: int) -> np.ndarray:
    from bitarray import bitarray
    from bitarray.util import canonical_decode
    count, order, nbits = table["count"], table["symbol"], table["nbits"]
    if n == 0:
        if nbits or buf:
            raise ApxError("an empty Huffman stream carries data")
        return np.zeros(0, dtype=np.int64)
    if not (isinstance(count, list) and isinstance(order, list) and 0 < len(count) <= 64
            and 0 < len(order) <= alphabet and all(isinstance(c, int) for c in count)
            and all(isinstance(s, int) and 0 <= s < alphabet for s in order)
            and len(set(order)) == len(order) and isinstance(nbits, int)
            and math.ceil(nbits / 8) == len(buf)):
        raise ApxError("malformed Huffman table")
    bits = bitarray(endian="big")
    bits.frombytes(buf)
    del bits[nbits:]
    try:
        out = np.fromiter(canonical_decode(bits, count, order), dtype=np.int64, count=n)
    except ValueError as e:  # invalid table, or fewer symbols than promised
        raise ApxError(f"corrupt Huffman stream: {e}") from None
    # Every code length is known from the table: the symbols must use up exactly nbits.
    lengths = np.repeat(np.arange(len(count)), count)
    length_of = np.zeros(alphabet, dtype=np.int64)
    length_of[np.asarray(order, dtype=np.int64)] = lengths
    if int(length_of[out].sum()) != nbits:
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
    escape = (1 << index_bits) - 1
    is_esc = symbols == escape
    if int((~is_esc).sum()) != nnz:
        raise ApxError("relative indices do not match the non-zero count")
    ends = np.cumsum(np.where(is_esc, escape, symbols + 1))
    pos = ends[~is_esc] - 1
    if nnz and (pos[-1] >= numel):
        raise ApxError("relative indices run past the tensor")
    return pos


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
    bits = t.detach().cpu().contiguous().reshape(-1).view(torch.int32).numpy().view(np.uint32)
    positions = np.flatnonzero(bits)  # bit patterns: −0.0 is a value, +0.0 is "pruned"
    coding = "huffman" if cfg.codec == "huffman" else "fixed"
    rec = {"enc": "sparse", "nnz": len(positions), "index_bits": cfg.index_bits,
           "gaps": _stream(w, gaps_of(positions, cfg.index_bits), coding, cfg.index_bits)}
    values = bits[positions]
    book, codes = np.unique(values, return_inverse=True)
    if cfg.codec == "sparse" or not 0 < len(book) <= MAX_CODEBOOK:
        rec["values"] = {"coding": "raw", "data": w.add(values.astype("<u4").tobytes())}
    else:
        width = max(1, math.ceil(math.log2(len(book)))) if len(book) > 1 else 1
        rec["codebook"] = {"k": len(book), "data": w.add(book.astype("<u4").tobytes())}
        rec["values"] = _stream(w, codes.astype(np.int64), coding, width)
    return rec


def encode(model: nn.Module, model_cfg: ModelConfig, cfg: CodecConfig,
           meta: dict | None = None) -> tuple[bytes, list[dict]]:
    """The .apx bytes of a model, and one stats row per tensor (bytes, bits per non-zero)."""
    from .share import has_batchnorm
    if cfg.codec not in APX_CODECS:
        raise ConfigError(f"codec {cfg.codec!r} is not an .apx codec; valid: {', '.join(APX_CODECS)}")
    structure = "plain" if has_batchnorm(model) else "folded"
    expected = {k: tuple(v.shape) for k, v in skeleton(model_cfg, structure).state_dict().items()}
    state = model.state_dict()
    got = {k: tuple(v.shape) for k, v in state.items()}
    if got != expected:
        raise ConfigError(f"the model does not match the {structure} {model_cfg.name} structure "
                          f"its config describes")
    weights = {f"{n}.weight" for n, _ in M.prunable(model)}
    w, tensors, stats = _Writer(), [], []
    for name, t in state.items():
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
    hbytes = zlib.compress(json.dumps(header, separators=(",", ":")).encode(), 9)
    prefix = PREFIX.pack(MAGIC, FORMAT_VERSION, 0, len(hbytes), zlib.crc32(hbytes))
    return prefix + hbytes + payload, stats


def save(model: nn.Module, path: Path, cfg: CodecConfig, model_cfg: ModelConfig,
         meta: dict | None = None) -> list[dict]:
    """Write `model` as an .apx file (atomically); return the per-tensor stats."""
    data, stats = encode(model, model_cfg, cfg, meta)
    with S.atomic_path(Path(path)) as tmp:
        tmp.write_bytes(data)
    return stats


# ------------------------------------------------------------------------------- decoding

def skeleton(model_cfg: ModelConfig, structure: str) -> nn.Module:
    """The empty model an .apx file decodes into (BatchNorm folded away for `folded`)."""
    from .share import fold_batchnorm
    model = M.build(model_cfg).eval()
    return fold_batchnorm(model) if structure == "folded" else model


def _header(data: bytes) -> tuple[dict, memoryview]:
    if len(data) < PREFIX.size or data[:8] != MAGIC:
        raise ApxError("not an .apx file (bad magic number)")
    _, version, flags, hlen, hcrc = PREFIX.unpack_from(data)
    if version != FORMAT_VERSION:
        raise ApxError(f"format version {version}; this approxlib reads version {FORMAT_VERSION}")
    if flags != 0 or hlen > MAX_HEADER or PREFIX.size + hlen > len(data):
        raise ApxError("truncated or corrupt header")
    raw = data[PREFIX.size:PREFIX.size + hlen]
    if zlib.crc32(raw) != hcrc:
        raise ApxError("header checksum mismatch (the file is damaged)")
    try:
        d = zlib.decompressobj()
        text = d.decompress(raw, MAX_HEADER)
        if d.unconsumed_tail or not d.eof:
            raise ApxError("header too large or truncated")
        header = json.loads(text)
    except (zlib.error, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ApxError(f"unreadable header: {type(e).__name__}") from None
    if not isinstance(header, dict) or header.get("format") != "approxlib.apx":
        raise ApxError("header does not describe an approxlib model")
    return header, memoryview(data)[PREFIX.size + hlen:]


def _sections(header: dict, payload: memoryview) -> list[bytes]:
    secs = header["sections"]
    if header["payload_bytes"] != len(payload):
        raise ApxError(f"payload is {len(payload)} bytes, header says {header['payload_bytes']} "
                       f"(truncated or extended file)")
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
    raise ApxError(f"unknown stream coding {spec['coding']!r}")


def _decode_tensor(rec: dict, shape: tuple, dtype: torch.dtype, secs: list[bytes]) -> torch.Tensor:
    numel = math.prod(shape)
    if rec["enc"] == "raw":
        stored = RAW_DTYPES.get(rec["stored"])
        buf = secs[rec["data"]]
        if stored is None or len(buf) != numel * stored.itemsize:
            raise ApxError(f"raw tensor {rec['name']} has the wrong size or type")
        if (stored == RAW_DTYPES["int64"]) != (dtype == torch.int64):
            raise ApxError(f"raw tensor {rec['name']} has the wrong type")
        arr = np.frombuffer(buf, dtype=stored).astype(np.int64 if dtype == torch.int64 else np.float32)
        return torch.from_numpy(arr.copy()).reshape(shape)
    if rec["enc"] != "sparse" or dtype != torch.float32:
        raise ApxError(f"unknown encoding {rec['enc']!r}")
    nnz, ib = rec["nnz"], rec["index_bits"]
    if not (isinstance(nnz, int) and 0 <= nnz <= numel and isinstance(ib, int) and 1 <= ib <= 16):
        raise ApxError(f"tensor {rec['name']}: bad non-zero count or index width")
    max_gaps = nnz + numel // ((1 << ib) - 1) + 1
    positions = positions_of(_decode_stream(rec["gaps"], secs, 1 << ib, max_gaps), ib, nnz, numel)
    if nnz and np.any(np.diff(positions) <= 0):
        raise ApxError("relative indices are not increasing")
    values = rec["values"]
    if values.get("coding") == "raw":
        buf = secs[values["data"]]
        if len(buf) != 4 * nnz:
            raise ApxError(f"tensor {rec['name']}: value section has the wrong size")
        vals = np.frombuffer(buf, dtype="<u4")
    else:
        k = rec["codebook"]["k"]
        book_buf = secs[rec["codebook"]["data"]]
        if not (isinstance(k, int) and 1 <= k <= MAX_CODEBOOK) or len(book_buf) != 4 * k:
            raise ApxError(f"tensor {rec['name']}: bad codebook")
        book = np.frombuffer(book_buf, dtype="<u4")
        vals = book[_decode_stream(values, secs, k, nnz)] if nnz else book[:0]
        if len(vals) != nnz:
            raise ApxError(f"tensor {rec['name']}: value count differs from the non-zero count")
    if np.any(vals == 0):
        raise ApxError(f"tensor {rec['name']}: a stored value is +0.0")
    flat = np.zeros(numel, dtype=np.uint32)
    flat[positions] = vals
    return torch.from_numpy(flat.view(np.float32)).reshape(shape)


def decode(data: bytes) -> tuple[nn.Module, dict]:
    """The model an .apx byte string holds (CPU, eval mode), and its header."""
    if len(data) > MAX_FILE:
        raise ApxError("file larger than any model this format holds")
    header, payload = _header(data)
    try:
        secs = _sections(header, payload)
        cfg = ModelConfig(**header["model"])
        structure = header["structure"]
        if structure not in ("plain", "folded"):
            raise ApxError(f"unknown model structure {structure!r}")
        model = skeleton(cfg, structure)
        expected = model.state_dict()
        recs = header["tensors"]
        if [r["name"] for r in recs] != list(expected):
            raise ApxError(f"tensors do not match the {structure} {cfg.name} architecture")
        state = {}
        for rec in recs:
            ref = expected[rec["name"]]
            if list(rec["shape"]) != list(ref.shape) or rec["dtype"] != str(ref.dtype)[6:]:
                raise ApxError(f"tensor {rec['name']} has shape {rec['shape']}, the "
                               f"architecture {list(ref.shape)}")
            state[rec["name"]] = _decode_tensor(rec, tuple(ref.shape), ref.dtype, secs)
    except ApxError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError,
            ConfigError) as e:
        raise ApxError(f"malformed header ({type(e).__name__}: {str(e)[:80]})") from None
    model.load_state_dict(state)
    return model, header


def load(path: Path) -> tuple[nn.Module, dict]:
    """Read an .apx file: (model, header). Raises ApxError with one line for a bad file."""
    path = Path(path)
    if not path.is_file():
        raise ApxError(f"compressed model not found: {path}")
    if path.stat().st_size > MAX_FILE:
        raise ApxError(f"{path}: larger than any model this format holds")
    try:
        return decode(path.read_bytes())
    except ApxError as e:
        raise ApxError(f"{path}: {e}") from None


# --------------------------------------------------------------- general-purpose baselines

def general_compress(data: bytes, codec: str) -> bytes:
    """What a user would try first on a checkpoint, at each tool's strongest common setting."""
    import gzip
    import lzma
    if codec == "gzip":
        return gzip.compress(data, compresslevel=9, mtime=0)
    if codec == "xz":
        return lzma.compress(data, preset=9 | lzma.PRESET_EXTREME)
    if codec == "zstd":
        import zstandard
        return zstandard.ZstdCompressor(level=19).compress(data)
    raise ValueError(f"not a general-purpose codec: {codec!r}")


def general_decompress(data: bytes, codec: str, limit: int = MAX_FILE) -> bytes:
    import gzip
    import lzma

    import zstandard
    try:
        if codec == "gzip":
            return gzip.decompress(data)
        if codec == "xz":
            return lzma.decompress(data)
        if codec == "zstd":
            return zstandard.ZstdDecompressor().decompress(data, max_output_size=limit)
    except (OSError, EOFError, lzma.LZMAError, ValueError, zstandard.ZstdError) as e:
        raise S.CheckpointError(f"cannot decompress ({codec}): {e}") from None
    raise ValueError(f"not a general-purpose codec: {codec!r}")


def dense_state_dict_bytes(model_cfg: ModelConfig) -> int:
    """Bytes of `torch.save(state_dict)` of the dense float32 model: the ratio's numerator."""
    buf = io.BytesIO()
    torch.save(M.build(model_cfg).state_dict(), buf)
    return buf.tell()
