"""A static-INT8 PyTorch model as a QDQ ONNX graph: ONNX Runtime must run it on its integer
kernels and give PyTorch's outputs, up to rounding."""
import warnings

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from approxlib import data
from approxlib import models
from approxlib import qdq
from approxlib import quantize
from approxlib import runtime
from approxlib.config import ModelConfig


@pytest.fixture(scope="module", params=["resnet18", "mobilenetv2"])
def int8(request, fmnist_test):
    """(PyTorch INT8 model, real test images as floats), calibrated on 256 real images."""
    torch.manual_seed(0)
    x, y = data.to_float(fmnist_test[0][:768]), fmnist_test[1][:768]
    model = models.build(ModelConfig(request.param, 10, 1, "imagenet"))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for i in range(0, 256, 32):  # trained a little: a fresh MobileNetV2 answers one constant
        loss = nn.functional.cross_entropy(model(x[i:i + 32]), y[i:i + 32])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return quantize.quantize_static(model.eval(), x[:256]), x[512:]


def _last_scale(model: nn.Module) -> float:
    return float([m for m in model.modules() if isinstance(m, qdq.CONVS + qdq.LINEARS)][-1].scale)


def test_onnx_runtime_runs_the_int8_model_on_integer_kernels(int8, tmp_path):
    model, x = int8
    path = tmp_path / "m.onnx"
    runtime.export_onnx(model, path, 1, x.shape[-1])
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.optimized_model_filepath = str(tmp_path / "opt.onnx")
    so.log_severity_level = 3
    ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    ops = [n.op_type for n in onnx.load(str(tmp_path / "opt.onnx")).graph.node]
    convs = sum(isinstance(m, qdq.CONVS) for m in model.modules())
    assert ops.count("QLinearConv") == convs  # every convolution fused into an integer kernel
    assert "Conv" not in ops and ops.count("QGemm") == 1

    ort_out = runtime.OrtModel(path)(x).numpy()
    with torch.no_grad():
        ref = model(x).numpy()
    assert len(np.unique(ref)) > 20  # outputs that vary: a comparison that can fail
    steps = np.abs(ort_out - ref) / _last_scale(model)  # in the output's quantization steps
    assert np.median(steps) <= 1.0 and np.percentile(steps, 99) <= 4.0


def test_the_export_goes_through_the_store_atomically(int8, tmp_path):
    model, x = int8
    path = tmp_path / "m.onnx"
    runtime.export_onnx(model, path, 1, x.shape[-1])
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]
    assert onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"


def test_a_float_model_is_not_taken_for_an_int8_one():
    assert not qdq.is_quantized(models.build(ModelConfig("resnet18", 10, 1, "imagenet")))


def test_an_unknown_layer_is_named():
    m = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Upsample(scale_factor=2), nn.Flatten(),
                      nn.Linear(4 * 52 * 52, 10))
    q = quantize.quantize_static(m, torch.rand(8, 1, 28, 28))
    with pytest.raises(ValueError, match="no rule"):
        qdq.export(q, 1, 28)


def test_per_tensor_weights_export_as_one_scale_per_channel(fmnist_test, tmp_path):
    from torch.ao.quantization import QConfig, QConfigMapping, default_weight_observer
    from torch.ao.quantization.observer import MinMaxObserver
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                      nn.Linear(8 * 14 * 14, 10)).eval()
    x = data.to_float(fmnist_test[0][:256])
    qc = QConfig(activation=MinMaxObserver.with_args(quant_min=0, quant_max=127),
                 weight=default_weight_observer)  # per-tensor int8 weights
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's deprecation of quantized tensors
        prepared = prepare_fx(m, QConfigMapping().set_global(qc), (x[:1],))
        prepared(x)
        q = convert_fx(prepared)
    assert q.get_submodule("0").weight().qscheme() == torch.per_tensor_affine
    path = tmp_path / "m.onnx"
    runtime.export_onnx(q, path, 1, 28)
    with torch.no_grad():
        ref = q(x).numpy()
    steps = np.abs(runtime.OrtModel(path)(x).numpy() - ref) / _last_scale(q)
    assert len(np.unique(ref)) > 20 and np.percentile(steps, 99) <= 2.0
