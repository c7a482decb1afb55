"""Run Fraunhofer's NNCodec (the reference software of MPEG NNC, ISO/IEC 15938-17) on weights
handed over as an .npz file. Runs in its own virtualenv (`make nncodec`): NNCodec pins
numpy < 2, which the main environment does not, so nothing here imports approxlib.

    python nncodec_worker.py encode WEIGHTS.npz OUT.nnc QP QP_DENSITY
    python nncodec_worker.py decode IN.nnc WEIGHTS.npz
    python nncodec_worker.py cabac INDICES.npz

`cabac` codes integer tensors (codebook indices, 0 = pruned) with NNCodec's DeepCABAC layer coder
alone, as NNCodec's own codebook mode does, decodes them and checks the round trip: the bytes
DeepCABAC spends on exactly the symbols an .apx file Huffman-codes.

Each writes its output to the path it is given (the caller makes that path a temporary one and
renames it: the caller owns atomicity) and prints its result as one JSON line after RESULT: the
seconds NNCodec itself took. Arrays are read with allow_pickle=False: nothing loaded runs code.
"""
import json
import sys
import time
import types

import numpy as np


RESULT = "approx-nncodec-result: "


def _nnc():
    """NNCodec's `nnc` module without its model-framework glue. `nncodec.nnc.compression`
    imports `nncodec.framework` (PyTorch, TensorFlow and torchvision's datasets) at its top for
    `compress_model`, which this worker never calls: `compress` and `decompress` on arrays use
    none of it. That import took 3.4 of the 3.5 s of each call here (2026-12-06), an encode and
    a decode per section F variant; an empty module stands in for it, and `make test` runs
    both calls (a library that came to need the glue would fail there, not silently)."""
    if "nncodec.framework" not in sys.modules:
        glue = types.ModuleType("nncodec.framework")
        glue.tensorflow_model = glue.pytorch_model = glue.use_case_init = None
        sys.modules["nncodec.framework"] = glue
    from nncodec import nnc
    return nnc


def encode(src: str, out: str, qp: int, qp_density: int) -> dict:
    nnc = _nnc()
    with np.load(src, allow_pickle=False) as z:
        params = {k: np.ascontiguousarray(z[k], dtype=np.float32) for k in z.files}
    t0 = time.perf_counter()
    bs = nnc.compress(params, bitstream_path=None, qp=qp, qp_density=qp_density,
                      return_bitstream=True, verbose=False)
    seconds = time.perf_counter() - t0

    with open(out, "wb") as f:
        f.write(bytes(bs))
    return {"encode_seconds": seconds, "bytes": len(bs)}


def decode(src: str, out: str) -> dict:
    nnc = _nnc()
    with open(src, "rb") as f:
        bs = bytearray(f.read())
    t0 = time.perf_counter()
    params = nnc.decompress(bs, verbose=False)
    seconds = time.perf_counter() - t0

    with open(out, "wb") as f:  # a file object: np.savez would append ".npz" to a name
        np.savez(f, **{k: np.asarray(v, dtype=np.float32) for k, v in params.items()})
    return {"decode_seconds": seconds}


def cabac(src: str) -> dict:
    from nncodec.extensions import deepCABAC
    from nncodec.nnc_core.hdsp.hdsp_tool import HDSP_OPTS_OFF
    sizes, t_enc, t_dec = {}, 0.0, 0.0
    with np.load(src, allow_pickle=False) as z:
        for name in z.files:
            x = np.ascontiguousarray(z[name], dtype=np.int32)
            x = x.reshape(x.shape[0], -1) if x.ndim > 1 else x.reshape(1, -1)
            t0 = time.perf_counter()
            enc = deepCABAC.Encoder()
            enc.initCtxModels(10, 1)  # NNCodec's defaults: unary length 11, parameter optimization
            enc.encodeLayer(x, 0, 0, 0, 0, 0, np.zeros(x.shape[0], dtype=np.int32),
                            *HDSP_OPTS_OFF(), 0, 0)
            bs = bytearray(enc.finish().tobytes())
            t1 = time.perf_counter()
            dec = deepCABAC.Decoder()
            dec.setStream(bs)
            dec.initCtxModels(10)
            out = np.zeros_like(x)
            dec.decodeLayer(out, 0, 0, 0, 0, *HDSP_OPTS_OFF(), 0, 0)
            dec.finish()
            t_enc, t_dec = t_enc + t1 - t0, t_dec + time.perf_counter() - t1
            if not np.array_equal(out, x):
                raise RuntimeError(f"DeepCABAC round trip of {name} is not lossless")
            sizes[name] = len(bs)
    return {"bytes": sizes, "encode_seconds": t_enc, "decode_seconds": t_dec}


def main(argv: list[str]) -> int:
    if len(argv) == 5 and argv[0] == "encode":
        result = encode(argv[1], argv[2], int(argv[3]), int(argv[4]))
    elif len(argv) == 3 and argv[0] == "decode":
        result = decode(argv[1], argv[2])
    elif len(argv) == 2 and argv[0] == "cabac":
        result = cabac(argv[1])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    print(RESULT + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
