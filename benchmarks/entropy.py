"""Does entropy coding past Huffman pay for the .apx format? Measured on real files.

    python benchmarks/entropy.py reports/quick/results.csv      # section F's Huffman .apx files
    python benchmarks/entropy.py models/encode/abc.apx ...       # or any Huffman-coded .apx files

For the weight streams of each file (relative indices and codebook indices, Huffman coded per
layer), against the bytes Huffman spends now:
- order-0: the empirical entropy of each stream, the floor for any coder that codes one symbol
  at a time with one table per stream (arithmetic/ANS coding without context reaches it);
- order-1: the conditional entropy given the previous symbol (a bound for a coder with that
  context; the cost of its tables is not counted, so the real gain would be smaller);
- DeepCABAC: NNCodec's context-adaptive binary arithmetic coder (MPEG NNC) on exactly the same
  symbols (each layer's signed codebook indices, 0 = pruned) plus 4 bytes per codebook value,
  round trip checked (needs `make nncodec`).
The Huffman tables themselves live in the file's zlib-compressed header and are not counted
here (the header column gives its bytes): the comparison slightly favours Huffman. The last line
sums over the files, as name=value pairs.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from approxlib import compress as Z  # noqa: E402
from approxlib import nncodec  # noqa: E402
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


def streams(path: Path) -> tuple[dict, int, int]:
    """Bits of Huffman, order-0 and order-1 over a file's Huffman streams; the codebook bytes;
    the compressed header's bytes (where the Huffman tables are)."""
    data = path.read_bytes()
    _, _, _, hlen, _ = Z.PREFIX.unpack_from(data)
    header = Z._parse_header(data[Z.PREFIX.size:Z.PREFIX.size + hlen],
                             Z.PREFIX.unpack_from(data)[4])
    secs = Z._sections(header, memoryview(data)[Z.PREFIX.size + hlen:])
    bits, book = {"huffman": 0.0, "order-0": 0.0, "order-1": 0.0}, 0
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
            x = Z._decode_stream(spec, secs, alphabet, spec["n"])
            bits["huffman"] += spec["nbits"]
            bits["order-0"] += entropy_bits(x)
            bits["order-1"] += conditional_bits(x)
    return bits, book, hlen


def files(args: list[str]) -> list[Path]:
    out = []
    for a in map(Path, args):
        if not a.is_file():
            raise SystemExit(f"entropy.py: error: {a} not found")
        if a.suffix == ".csv":
            d = pd.read_csv(a)
            out += [Path(p) for p in d[(d.codec == "huffman") & (d.control == "none")].artifact]
        else:
            out.append(a)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("inputs", nargs="+", help="results.csv files or .apx files")
    paths = files(ap.parse_args().inputs)
    try:
        nncodec.check_available()
    except ConfigError as e:
        raise SystemExit(f"entropy.py: error: {e}") from None
    rows = []
    for path in paths:
        bits, book, header = streams(path)
        model, _ = Z.load(path)
        cabac = nncodec.cabac_bytes(model)
        rows.append({"file": path.name, "model": model.__class__.__name__,
                     **{k: round(v / 8 + book) for k, v in bits.items()},
                     "deepcabac": cabac["total"], "header": header,
                     "deepcabac_decode_s": round(cabac["decode_seconds"], 2)})
    t = pd.DataFrame(rows)
    print("bytes of the weight streams (codebooks included) per file:")
    print(t.to_string(index=False))
    s = t[["huffman", "order-0", "order-1", "deepcabac"]].sum()
    print(f"huffman_bytes={s['huffman']} order0_vs_huffman={s['order-0'] / s['huffman']:.4f} "
          f"order1_vs_huffman={s['order-1'] / s['huffman']:.4f} "
          f"deepcabac_vs_huffman={s['deepcabac'] / s['huffman']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
