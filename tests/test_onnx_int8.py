"""A static-INT8 PyTorch model (post-training or QAT) exported to ONNX: ONNX Runtime must run it
on its integer kernels and give PyTorch's outputs, up to rounding."""
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn
from torch.ao.nn import quantized

from approxlib import data
from approxlib import models
from approxlib import quantize
from approxlib import runtime
from approxlib.config import ModelConfig

ARCHS = ["resnet18", "mobilenetv2", "mobilenet_v3_small"]  # the third: Hardswish, SE's mul


def _trained(name: str, x: torch.Tensor, y: torch.Tensor, model: nn.Module | None = None):
    """A few SGD steps on real images: a fresh MobileNet answers one constant, which no
    comparison could fail on. BatchNorm averages those batches (MobileNetV3's momentum, 0.01,
    would leave its statistics at their initial values)."""
    torch.manual_seed(0)
    model = model or models.build(ModelConfig(name, 10, 1, "imagenet"))
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = None  # a cumulative average
            m.reset_running_stats()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    for i in range(0, 256, 32):
        loss = nn.functional.cross_entropy(model(x[i:i + 32]), y[i:i + 32])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def images(fmnist_test):
    return data.to_float(fmnist_test[0][:768]), fmnist_test[1][:768]


@pytest.fixture(scope="module", params=ARCHS)
def ptq(request, images):
    """(post-training INT8 model calibrated on 256 real images, 256 other real images)."""
    x, y = images
    return quantize.quantize_static(_trained(request.param, x, y), x[:256]), x[512:]


def _fused_ops(path, tmp_path) -> list[str]:
    so = ort.SessionOptions()
    so.optimized_model_filepath = str(tmp_path / "opt.onnx")
    so.log_severity_level = 3
    so.intra_op_num_threads = 1
    ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return [n.op_type for n in onnx.load(str(tmp_path / "opt.onnx")).graph.node]


def _errors(model: nn.Module, path, x) -> tuple[np.ndarray, float]:
    """|ONNX Runtime − PyTorch| per output, relative to the spread of PyTorch's outputs (the
    two requantize differently, and 50 layers add that up), and how often their top-1 agrees."""
    with torch.no_grad():
        ref = model(x).numpy()
    assert len(np.unique(ref)) > 20  # outputs that vary: a comparison that can fail
    out = runtime.OrtModel(path)(x).numpy()
    return np.abs(out - ref) / ref.std(), float((out.argmax(1) == ref.argmax(1)).mean())


def _close(model: nn.Module, path, x) -> None:
    err, agree = _errors(model, path, x)
    # measured: medians 0-0.14, 99th percentiles up to 1.13 (MobileNetV3-Small's coarse output
    # scale: a step is 0.14 of the spread), top-1 agreement 0.957-1; a wrong scale or bias is
    # off by the spread itself
    assert np.median(err) <= 0.25 and np.percentile(err, 99) <= 2.0 and agree >= 0.9


def test_onnx_runtime_runs_the_int8_model_on_integer_kernels(ptq, tmp_path):
    model, x = ptq
    path = tmp_path / "m.onnx"
    runtime.export_onnx(model, path, 1, x.shape[-1])
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]  # written atomically
    ops = _fused_ops(path, tmp_path)
    convs = sum(isinstance(m, quantized.Conv2d) for m in model.modules())
    linears = sum(isinstance(m, quantized.Linear) for m in model.modules())
    assert ops.count("QLinearConv") == convs  # every convolution fused into an integer kernel
    assert "Conv" not in ops and ops.count("QGemm") == linears
    _close(model, path, x)


def test_a_qat_model_exports_with_its_learned_ranges(images, tmp_path):
    x, y = images
    prepared = _trained("resnet18", x, y, quantize.prepare_qat(
        models.build(ModelConfig("resnet18", 10, 1, "imagenet"))))
    model = quantize.convert_qat(prepared)
    path = tmp_path / "qat.onnx"
    runtime.export_onnx(model, path, 1, 28)
    assert onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    _close(model, path, x[512:])


def test_a_float_model_is_not_taken_for_an_int8_one(ptq):
    assert runtime.is_int8(ptq[0])
    assert not runtime.is_int8(models.build(ModelConfig("resnet18", 10, 1, "imagenet")))


def test_per_tensor_weights_export_too(images, tmp_path):
    from torch.ao.quantization import QConfig, QConfigMapping, default_weight_observer
    from torch.ao.quantization.observer import MinMaxObserver
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx
    x, y = images
    m = _trained("", x, y, nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(),
                                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 14 * 14, 10)))
    qc = QConfig(activation=MinMaxObserver.with_args(quant_min=0, quant_max=127),
                 weight=default_weight_observer)  # per-tensor int8 weights
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's deprecation of quantized tensors
        prepared = prepare_fx(m, QConfigMapping().set_global(qc), (x[:1],))
        prepared(x[:256])
        q = convert_fx(prepared)
    assert q.get_submodule("0").weight().qscheme() == torch.per_tensor_affine
    path = tmp_path / "m.onnx"
    runtime.export_onnx(q, path, 1, 28)
    _close(q, path, x[512:])
