"""Does entropy coding past Huffman pay for the .apx format? Measured on real files.

    python benchmarks/entropy.py reports/quick/results.csv      # section F's Huffman .apx files
    python benchmarks/entropy.py models/encode/abc.apx ...       # or any Huffman-coded .apx files

For the weight streams of each file (relative indices and codebook indices, Huffman coded per
layer), against the bytes Huffman spends now:
- order-0: the empirical entropy of each stream, the floor for any coder that codes one symbol
  at a time with one table per stream (arithmetic/ANS coding without context reaches it);
- order-1: the conditional entropy given the previous symbol (a bound for a coder with that
  context; the cost of its tables is not counted, so the real gain would be smaller);
- order-1 + tables: what a static coder with one table per context spends, its tables (each
  context's id and symbol counts, zlib-compressed JSON) included. A codebook index's context is
  the previous index; a relative index's is the previous one's bucket (0, 1, 2, 3, 4–5, 6–7,
  8–11, 12–15, 16–31, 32–63, 64 and more zeros skipped, or the escape), not its exact value:
  one table per exact value would cost more than it saves;
- ANS: real bytes of an order-0 range-ANS coder (the `constriction` library, one table per
  stream, its counts as zlib-compressed JSON; round trip checked);
- DeepCABAC: NNCodec's context-adaptive binary arithmetic coder (MPEG NNC) on exactly the same
  symbols (each layer's signed codebook indices, 0 = pruned) plus 4 bytes per codebook value,
  round trip checked (needs `make nncodec`).
The Huffman tables themselves live in the file's zlib-compressed header and are not counted
here (the header column gives its bytes): the comparison slightly favours Huffman. The last line
sums over the files, as name=value pairs, with what a context-adaptive coder would cost to decode
through constriction's Python API: an order-1 model depends on the symbol before, so no batch
call can decode it, one call per symbol. Timed with static order-1 tables on the first file's
largest codebook-index stream (up to 200,000 symbols), in microseconds per symbol: a floor for a
Python-driven context coder (an adaptive one also updates its model per symbol).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from approxlib import cli  # noqa: E402
from approxlib import compress  # noqa: E402
from approxlib import nncodec  # noqa: E402
from approxlib import pipeline  # noqa: E402
from approxlib import store  # noqa: E402
from approxlib.config import ConfigError  # noqa: E402


def entropy_bits(x: np.ndarray) -> float:
    """Σ −log2 p(symbol) over the stream, p its empirical frequency (the order-0 floor)."""
    if len(x) == 0:
        return 0.0
    _, c = np.unique(x, return_counts=True)
    return float(-(c * np.log2(c / c.sum())).sum())


def conditional_bits(x: np.ndarray) -> float:
    """The stream's first symbol at order 0, then each given the one before it."""
    if len(x) < 2:
        return entropy_bits(x)
    prev, cur = x[:-1].astype(np.int64), x[1:].astype(np.int64)
    order = np.argsort(prev, kind="stable")
    groups = np.split(cur[order], np.flatnonzero(np.diff(prev[order])) + 1)
    return entropy_bits(x[:1]) + sum(entropy_bits(g) for g in groups)


GAP_EDGES = np.array([1, 2, 3, 4, 6, 8, 12, 16, 32, 64])  # lower edges of the gap buckets


def gap_context(prev: np.ndarray, escape: int) -> np.ndarray:
    """A relative index's context: the bucket of the one before it (0 zeros skipped, 1, 2, 3,
    4–5, …, 64 and more), the escape symbol its own."""
    return np.where(prev == escape, len(GAP_EDGES) + 1,
                    np.searchsorted(GAP_EDGES, prev, side="right"))


def table_bytes(groups: dict) -> int:
    """What storing each context's id and symbol counts costs: zlib-compressed JSON, as the
    header is."""
    counts = [[int(c), *map(np.ndarray.tolist, np.unique(g, return_counts=True))]
              for c, g in groups.items()]
    return len(zlib.compress(json.dumps(counts).encode(), 9))


def grouped(x: np.ndarray, ctx: np.ndarray) -> dict:
    """`x` split by context value: {context: its symbols, in order}."""
    order = np.argsort(ctx, kind="stable")
    cuts = np.flatnonzero(np.diff(ctx[order])) + 1
    return dict(zip(ctx[order][np.r_[0, cuts]].tolist(), np.split(x[order], cuts)))


def order1_with_tables(x: np.ndarray, ctx: np.ndarray) -> float:
    """Bits of a static order-1 coder: the first symbol at order 0, each other given its
    context (`ctx[i]` for `x[i + 1]`), plus the tables it must store."""
    if len(x) < 2:
        return entropy_bits(x) + 8 * table_bytes({-1: x})
    groups = grouped(x[1:], ctx)
    return (entropy_bits(x[:1]) + sum(entropy_bits(g) for g in groups.values())
            + 8 * table_bytes({**groups, -1: x[:1]}))


def ans_bits(x: np.ndarray) -> float:
    """Real bits of an order-0 ANS code of `x` through constriction, its table included; the
    round trip is checked."""
    import constriction
    if len(x) == 0:
        return 0.0
    u, inv, c = np.unique(x, return_inverse=True, return_counts=True)
    model = constriction.stream.model.Categorical(c / c.sum(), perfect=False)
    coder = constriction.stream.stack.AnsCoder()
    coder.encode_reverse(inv.astype(np.int32), model)
    words = coder.get_compressed()
    back = constriction.stream.stack.AnsCoder(words).decode(model, len(x))
    assert np.array_equal(u[back], x), "ANS round trip failed"
    return 32.0 * len(words) + 8 * table_bytes({0: x})


def sequential_decode_us(x: np.ndarray, limit: int = 200_000) -> float:
    """Microseconds per symbol to decode `x` (its first `limit` symbols) one call at a time
    with an order-1 model (one table per previous symbol), as a context coder must."""
    import constriction
    x = x[:limit].astype(np.int64)
    u, inv = np.unique(x, return_inverse=True)
    ctx = np.concatenate([[0], inv[:-1]])
    table = np.ones((len(u), len(u)))
    np.add.at(table, (ctx, inv), 1)
    models = [constriction.stream.model.Categorical(r / r.sum(), perfect=False) for r in table]
    coder = constriction.stream.stack.AnsCoder()
    for i in range(len(x) - 1, -1, -1):
        coder.encode_reverse(inv[i:i + 1].astype(np.int32), models[ctx[i]])
    dec = constriction.stream.stack.AnsCoder(coder.get_compressed())
    prev, out = 0, np.empty(len(x), dtype=np.int64)
    t0 = time.perf_counter()
    for i in range(len(x)):
        prev = out[i] = dec.decode(models[prev])
    seconds = time.perf_counter() - t0
    assert np.array_equal(out, inv), "order-1 round trip failed"
    return 1e6 * seconds / len(x)


def parsed(path: Path) -> tuple[dict, list[bytes], int]:
    """A .apx file's header, its payload sections and the compressed header's bytes."""
    data = path.read_bytes()
    try:
        hlen, hcrc = compress._prefix(data[:compress.PREFIX.size])
        header = compress._parse_header(data[compress.PREFIX.size:compress.PREFIX.size + hlen],
                                        hcrc)
        return header, compress._sections(header, memoryview(data)[compress.PREFIX.size + hlen:]), hlen
    except compress.ApxError as e:
        raise ConfigError(f"{path}: {e}") from None


def streams(path: Path) -> tuple[dict, int, int]:
    """Bits of Huffman, order-0 and order-1 over a file's Huffman streams; the codebook bytes;
    the compressed header's bytes (where the Huffman tables are)."""
    header, secs, hlen = parsed(path)
    bits = {"huffman": 0.0, "order-0": 0.0, "order-1": 0.0, "order-1 + tables": 0.0, "ANS": 0.0}
    book = 0
    for rec in header["tensors"]:
        if rec["enc"] != "sparse":
            continue
        book += 4 * rec.get("codebook", {}).get("k", 0)
        for part, alphabet in (("gaps", 1 << rec["index_bits"]),
                               ("values", rec.get("codebook", {}).get("k", 0))):
            spec = rec[part]
            if spec.get("coding") != "huffman":  # raw or fixed width (a one-value codebook):
                for k in bits:                   # the same bytes in every column
                    bits[k] += 8 * len(secs[spec["data"]])
                continue
            x = compress._decode_stream(spec, secs, alphabet, spec["n"]).astype(np.int64)
            bits["huffman"] += spec["nbits"]
            bits["order-0"] += entropy_bits(x)
            bits["order-1"] += conditional_bits(x)
            ctx = gap_context(x[:-1], alphabet - 1) if part == "gaps" else x[:-1]
            bits["order-1 + tables"] += order1_with_tables(x, ctx)
            bits["ANS"] += ans_bits(x)
    return bits, book, hlen


def huffman_records(path: Path) -> tuple[list[dict], list[bytes]]:
    """A file's tensors whose codebook indices are Huffman coded, and its sections; ConfigError
    for a file with none (fixed-width or raw streams: nothing here to compare)."""
    header, secs, _ = parsed(path)
    recs = [r for r in header["tensors"]
            if r["enc"] == "sparse" and r["values"].get("coding") == "huffman"]
    if not recs:
        raise ConfigError(f"{path} has no Huffman-coded codebook indices (its codec is not "
                          f"section F's huffman)")
    return recs, secs


def values_of(path: Path) -> np.ndarray:
    """The largest codebook-index stream of a file (what the decode timing runs on)."""
    recs, secs = huffman_records(path)
    rec = max(recs, key=lambda r: r["values"]["n"])
    return compress._decode_stream(rec["values"], secs, rec["codebook"]["k"], rec["values"]["n"])


def files(args: list[str]) -> list[Path]:
    """The .apx files named, or the Huffman-coded ones a results.csv lists; each checked
    before anything is measured."""
    out = []
    for a in map(Path, args):
        if a.suffix == ".csv":
            d = pipeline.read_results(a, need=("codec", "artifact", "control"))
            found = [Path(p) for p in d[(d.codec == "huffman") & (d.control == "none")].artifact]
            if not found:
                raise ConfigError(f"{a} lists no Huffman-coded .apx file (section F's rows)")
            out += found
        elif not a.is_file():
            raise ConfigError(f"{a} {store.missing(a)}")
        else:
            out.append(a)
    for path in out:
        if not path.is_file():
            raise ConfigError(f"{path} {store.missing(path)} (a results.csv names the files "
                              f"of the models folder it was made with)")
        huffman_records(path)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("inputs", nargs="+", help="results.csv files or .apx files")
    paths = files(ap.parse_args(argv).inputs)
    nncodec.check_available()
    try:
        import constriction  # noqa: F401
    except ImportError:
        raise ConfigError("needs constriction (.venv/bin/pip install constriction): the ANS "
                          "coder measured here") from None
    rows = []
    for path in paths:
        bits, book, header = streams(path)
        model, head = compress.load(path)
        cabac = nncodec.cabac_bytes(model)
        rows.append({"file": path.name, "model": head["model"]["name"],
                     **{k: round(v / 8 + book) for k, v in bits.items()},
                     "deepcabac": cabac["total"], "header": header,
                     "deepcabac_decode_s": round(cabac["decode_seconds"], 2)})
    t = pd.DataFrame(rows)
    print("bytes of the weight streams (codebooks included) per file:")
    print(t.to_string(index=False))
    cols = ["huffman", "order-0", "order-1", "order-1 + tables", "ANS", "deepcabac"]
    s = t[cols].sum()
    us = sequential_decode_us(values_of(paths[0]))
    print(f"huffman_bytes={s['huffman']} "
          + " ".join(f"{c.replace(' + ', '_').replace('-', '')}_vs_huffman="
                     f"{s[c] / s['huffman']:.4f}" for c in cols[1:])
          + f" order1_static_python_decode_us_per_symbol={us:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.guarded("entropy.py", main))
