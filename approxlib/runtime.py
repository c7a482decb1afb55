"""Deployment runtimes: ONNX export (torch.onnx's TorchScript exporter) and ONNX Runtime
inference, including ONNX Runtime's own static INT8 (QDQ) quantization, behind one `predict` /
`forward` interface shared with PyTorch models.
"""
from __future__ import annotations

import logging
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.ao.nn.quantized.modules.utils import WeightedQuantizedModule

from . import data
from . import measure
from . import runtimes
from . import store

ONNX_SUFFIX = ".onnx"  # an exported model, run by ONNX Runtime


def export_onnx(model: nn.Module, path: Path, in_channels: int, size: int) -> None:
    """Export a model with a dynamic batch axis (atomically), float or static INT8, with
    torch.onnx's TorchScript exporter.

    INT8 needs it: it maps torch's quantized ops (quantized::conv2d, add, mul, hardswish, ...)
    to QuantizeLinear / DequantizeLinear around float ops, which ONNX Runtime fuses into its
    integer kernels (QLinearConv, QGemm, QLinearAdd), so ONNX Runtime runs the integers PyTorch
    does, QAT's included (its own quantizer would calibrate new ranges and round the weights
    again); the dynamo exporter has no quantized ops. Float models take the same path: the
    dynamo exporter took 4-11 s a model here against 0.4-0.5 s (smoke: 13 exports, about 80 s),
    for graphs ONNX Runtime ran at the same speed (timed in turns, 2026-12-03: ResNet-18
    1.95 vs 2.04 ms, MobileNetV2 0.387 vs 0.408 ms; their static INT8 0.639 vs 0.658 and
    0.315 vs 0.308 ms). TorchScript's exporter is deprecated but kept in the pinned torch
    (2.14.1)."""
    example = torch.rand(2, in_channels, size, size)
    with warnings.catch_warnings(), store.atomic_path(path) as tmp:
        warnings.simplefilter("ignore")  # the exporter's own deprecation note
        torch.onnx.export(model.cpu().eval(), (example,), str(tmp), dynamo=False,
                          opset_version=17, input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})


def is_int8(model) -> bool:
    """Whether `model` holds quantized layers (a converted static-INT8 FX model)."""
    return isinstance(model, nn.Module) and any(
        isinstance(m, WeightedQuantizedModule) for m in model.modules())


def quantize_onnx(src: Path, dst: Path, calib: torch.Tensor, batch_size: int = 64) -> None:
    """ONNX Runtime static INT8 in QDQ format: per-channel int8 weights, uint8 activations
    (the u8s8 layout x86 kernels want), calibrated on `calib` (training images).

    Weights use 7 bits (`reduce_range`): on CPUs without VNNI (AVX2 only, e.g. the AMD EPYC this
    was measured on) ORT's u8s8 kernels sum pairs of u8×s8 products in int16, which saturates
    with full-range weights. Measured on a 1-epoch ResNet-18: logit SNR 14.9 dB with 8-bit
    weights vs 35.6 dB with 7 (36.6 dB when the same QDQ graph is run unfused). One layout for
    every machine, so the cached artifact does not depend on where it was made."""
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self, name: str):
            self.batches = iter([{name: calib[i:i + batch_size].numpy()}
                                 for i in range(0, len(calib), batch_size)])

        def get_next(self):
            return next(self.batches, None)

    name = session(src, 1).get_inputs()[0].name
    root, level = logging.getLogger(), logging.getLogger().level
    with tempfile.TemporaryDirectory() as tmpdir, store.atomic_path(dst) as tmp:
        pre = Path(tmpdir) / "pre.onnx"
        root.setLevel(logging.ERROR)  # the quantization tools log every pass at INFO
        try:
            quant_pre_process(str(src), str(pre))
            quantize_static(str(pre), str(tmp), Reader(name), quant_format=QuantFormat.QDQ,
                            per_channel=True, weight_type=QuantType.QInt8,
                            activation_type=QuantType.QUInt8, reduce_range=True)
        finally:
            root.setLevel(level)


def session(path: Path, threads: int):
    """An ONNX Runtime CPU session with its thread count fixed (as PyTorch's is when timed)."""
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own (unexported) exception types
        raise store.CheckpointError(f"cannot load ONNX model {path}: {str(e).splitlines()[0][:120]}"
                                ) from None


def matmul_gflops(threads: int = 1, n: int = 1024, repeats: int = 5) -> float:
    """ONNX Runtime's float32 matrix-multiply rate (GFLOP/s) with `threads` threads, as
    `measure.peak_gflops` is PyTorch's. The two differ by CPU: on an AMD EPYC with AVX-512,
    PyTorch's MKL ran 107 GFLOP/s and ONNX Runtime's MLAS 237 (2026-12-05), so a ceiling taken
    from PyTorch alone was exceeded by ONNX Runtime's float32 models."""
    import onnxruntime as ort
    from onnx import TensorProto, helper
    spec = [helper.make_tensor_value_info(x, TensorProto.FLOAT, [n, n]) for x in "abc"]
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "matmul",
                              spec[:2], spec[2:])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    # IR and opset pinned: the installed onnx stamps its newest, which an older onnxruntime
    # (the versions pyproject allows) refuses
    model = helper.make_model(graph, ir_version=8, opset_imports=[helper.make_opsetid("", 13)])
    sess = ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    feed = {x: np.random.default_rng(0).random((n, n), dtype=np.float32) for x in "ab"}
    sess.run(None, feed)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        sess.run(None, feed)
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best / 1e9


def matmul_rates(threads: int) -> dict[str, float]:
    """Each runtime's float32 matrix-multiply rate on this CPU (GFLOP/s), by runtime key: the
    faster is the practical arithmetic ceiling section G sets its achieved rates against."""
    return {runtimes.EAGER.key: measure.peak_gflops(threads),
            runtimes.ORT.key: matmul_gflops(threads)}


class OrtModel:
    """An ONNX Runtime session that takes and returns torch tensors, like an nn.Module in eval."""

    def __init__(self, path: Path, threads: int = 1):
        self.path, self.threads = Path(path), threads
        self.sess = session(path, threads)
        self.input = self.sess.get_inputs()[0].name

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(self.sess.run(None, {self.input: x})[0])

    def eval(self):
        return self


def predict(model, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Predicted class per uint8 image, for a PyTorch model or an OrtModel.

    A PyTorch model runs channels-last, as training does, and is left so (set in place, as
    `eval()` is; outside inference mode, so its parameters stay ordinary tensors): oneDNN's
    float convolutions ran ResNet-18 1.8-1.9x and MobileNetV2 1.5x faster so on smoke's 28x28
    models, with the same class for every one of 2,000 images; quantized models, whose
    packed weights keep their layout, ran as fast as before (probe, 2026-12-05). Latency is
    timed on the model as it is stored (`measure`), not here."""
    layout = torch.contiguous_format
    if isinstance(model, nn.Module):
        with torch.no_grad():
            model.eval().to(memory_format=torch.channels_last)
        layout = torch.channels_last
    return _classes(model, x, batch_size, layout)


@torch.inference_mode()  # no autograd bookkeeping: 5-10% faster here, identical outputs
def _classes(model, x: torch.Tensor, batch_size: int, layout) -> torch.Tensor:
    """`predict`'s batches: each image's class, its batch in `layout`."""
    out = [model(data.to_float(x[i:i + batch_size]).contiguous(memory_format=layout)).argmax(1)
           for i in range(0, len(x), batch_size)]
    return torch.cat(out) if out else torch.empty(0, dtype=torch.long)
