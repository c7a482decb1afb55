"""A PyTorch static-INT8 model (FX, x86: post-training or quantization-aware) as an ONNX graph in
QDQ form, so ONNX Runtime runs the very integers PyTorch does (section G's QAT in ONNX Runtime).

Written by hand because no exporter does it: torch.onnx exports float models, and the fake
quantization a QAT model trains with (`fused_moving_avg_obs_fake_quant`) has no ONNX symbolic;
ONNX Runtime's own quantizer would calibrate new ranges and round the weights again, discarding
what QAT learned. The converted model holds everything QDQ needs — int8 per-channel weights with
their scales, each activation's scale and zero point — so each node of its (small) FX graph
becomes DequantizeLinear → float op → QuantizeLinear, the pattern ONNX Runtime fuses into its
integer kernels (QLinearConv, QGemm, QLinearAdd). Biases become int32 at scale
input scale × weight scale, as ONNX Runtime's quantizer writes them.

The converted model's activations use reduce_range (7-bit, x86 qconfig), so uint8 × int8 pairs
cannot saturate ONNX Runtime's int16 accumulation on CPUs without VNNI with 8-bit weights; see
`runtime.quantize_onnx` for the layout ONNX Runtime's own quantizer needs instead.
"""
from __future__ import annotations

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn
from torch.ao.nn import intrinsic, quantized

OPSET = 17
CONVS = (quantized.Conv2d, intrinsic.quantized.ConvReLU2d)
LINEARS = (quantized.Linear, intrinsic.quantized.LinearReLU)
RELU_AFTER = (intrinsic.quantized.ConvReLU2d, intrinsic.quantized.LinearReLU)


def is_quantized(model) -> bool:
    """Whether `model` is a converted static-INT8 FX model (what `export` takes)."""
    return isinstance(model, torch.fx.GraphModule) and any(
        isinstance(m, CONVS + LINEARS) for m in model.modules())


def export(model: torch.fx.GraphModule, in_channels: int, size: int) -> onnx.ModelProto:
    """The QDQ ONNX model of a converted INT8 model; one float input of dynamic batch."""
    g = _Graph(model)
    g.inputs.append(helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                  ["batch", in_channels, size, size]))
    for node in model.graph.nodes:
        g.visit(node)
    graph = helper.make_graph(g.nodes, "approx-int8-qdq", g.inputs, g.outputs, g.inits)
    out = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                            producer_name="approxlib.qdq")
    out.ir_version = 8  # what every ONNX Runtime since 1.10 reads
    onnx.checker.check_model(out)
    return out


class _Graph:
    """The ONNX nodes built so far; `env` maps each FX node to its float tensor's name and `qp`
    to the (scale, zero point) it was quantized with."""

    def __init__(self, model: torch.fx.GraphModule):
        self.model, self.nodes, self.inits, self.inputs, self.outputs = model, [], [], [], []
        self.env, self.qp, self.consts, self.n = {}, {}, {}, 0

    def name(self, hint: str) -> str:
        self.n += 1
        return f"{hint.replace('.', '_')}_{self.n}"

    def const(self, hint: str, value: np.ndarray) -> str:
        name = self.name(hint)
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, kind: str, inputs: list[str], hint: str, **attrs) -> str:
        out = self.name(hint)
        self.nodes.append(helper.make_node(kind, inputs, [out], name=out, **attrs))
        return out

    def qdq(self, x: str, scale: float, zero_point: int, hint: str) -> str:
        """Quantize to uint8 and back: the activation as the INT8 model holds it."""
        s = self.const(f"{hint}_scale", np.float32(scale))
        z = self.const(f"{hint}_zp", np.uint8(zero_point))
        return self.op("DequantizeLinear", [self.op("QuantizeLinear", [x, s, z], hint), s, z],
                       hint)

    def out(self, node, x: str, qp: tuple[float, int] | None) -> None:
        """Record node's output; re-quantized when it carries quantization parameters."""
        self.env[node] = x if qp is None else self.qdq(x, *qp, node.name)
        self.qp[node] = qp

    def arg(self, a):
        return self.consts.get(a, a) if isinstance(a, torch.fx.Node) else a

    def visit(self, node) -> None:
        if node.op == "placeholder":
            self.env[node], self.qp[node] = "input", None
        elif node.op == "get_attr":
            self.consts[node] = _attr(self.model, node.target)
        elif node.op == "output":
            src = node.args[0]
            self.nodes.append(helper.make_node("Identity", [self.env[src]], ["logits"]))
            self.outputs.append(helper.make_tensor_value_info("logits", TensorProto.FLOAT,
                                                              ["batch", None]))
        elif node.op == "call_module":
            self.module(node, self.model.get_submodule(node.target))
        else:
            self.function(node)

    def module(self, node, m: nn.Module) -> None:
        x, qp = self.env[node.args[0]], self.qp[node.args[0]]
        if isinstance(m, CONVS + LINEARS):
            self.weighted(node, m, x, qp)
        elif isinstance(m, (nn.ReLU6, quantized.ReLU6)):  # the latter is an nn.ReLU
            lo, hi = self.const("lo", np.float32(0)), self.const("hi", np.float32(6))
            self.out(node, self.op("Clip", [x, lo, hi], node.name), qp)
        elif isinstance(m, nn.ReLU):
            self.out(node, self.op("Relu", [x], node.name), qp)
        elif isinstance(m, nn.MaxPool2d):
            self.out(node, self.op("MaxPool", [x], node.name, **_pool(m)), qp)
        elif isinstance(m, nn.AdaptiveAvgPool2d):
            self.out(node, self.global_pool(x, m.output_size, node.name), qp)
        elif isinstance(m, nn.Flatten):
            self.out(node, self.flatten(x, m.start_dim, m.end_dim, node.name), qp)
        elif isinstance(m, (nn.Dropout, nn.Identity)):  # eval: nothing to do
            self.env[node], self.qp[node] = x, qp
        else:
            raise ValueError(f"QDQ export: no rule for module {type(m).__name__} ({node.target})")

    def function(self, node) -> None:
        t, args = node.target, [self.arg(a) for a in node.args]
        if t is torch.quantize_per_tensor:
            self.out(node, self.env[node.args[0]], (float(args[1]), int(args[2])))
        elif node.op == "call_method" and t == "dequantize":
            self.env[node], self.qp[node] = self.env[node.args[0]], None
        elif t in (torch.ops.quantized.add, torch.ops.quantized.add_relu):
            y = self.op("Add", [self.env[node.args[0]], self.env[node.args[1]]], node.name)
            if t is torch.ops.quantized.add_relu:
                y = self.op("Relu", [y], node.name)
            self.out(node, y, (float(args[2]), int(args[3])))
        elif t is torch.flatten:
            start = args[1] if len(args) > 1 else node.kwargs.get("start_dim", 0)
            end = args[2] if len(args) > 2 else node.kwargs.get("end_dim", -1)
            src = node.args[0]
            self.out(node, self.flatten(self.env[src], start, end, node.name), self.qp[src])
        elif t is torch.nn.functional.adaptive_avg_pool2d:
            src = node.args[0]
            self.out(node, self.global_pool(self.env[src], args[1], node.name), self.qp[src])
        else:
            raise ValueError(f"QDQ export: no rule for {node.op} {t}")

    def flatten(self, x: str, start: int, end: int, hint: str) -> str:
        if end != -1:
            raise ValueError(f"QDQ export: flatten to dim {end} is not supported")
        return self.op("Flatten", [x], hint, axis=start)

    def global_pool(self, x: str, size, hint: str) -> str:
        if size not in (1, (1, 1), [1, 1]):
            raise ValueError(f"QDQ export: adaptive average pooling to {size} is not supported")
        return self.op("GlobalAveragePool", [x], hint)

    def weighted(self, node, m: nn.Module, x: str, qp) -> None:
        """A quantized convolution or linear layer: int8 weights per output channel, int32 bias
        at input scale × weight scale, the layer's output scale and zero point."""
        if qp is None:
            raise ValueError(f"QDQ export: {node.target}'s input is not quantized")
        w = m.weight()
        if w.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
            scales = w.q_per_channel_scales().numpy().astype(np.float32)
            zps = w.q_per_channel_zero_points().numpy().astype(np.int8)
        else:  # per tensor: the same scale for every channel
            scales = np.full(w.shape[0], w.q_scale(), np.float32)
            zps = np.full(w.shape[0], w.q_zero_point(), np.int8)
        wq = self.dq(node.name + "_w", w.int_repr().numpy(), scales, zps)
        ins = [x, wq]
        if m.bias() is not None:
            bscale = (scales * np.float32(qp[0])).astype(np.float32)
            b = m.bias().detach().numpy().astype(np.float64) / bscale
            bq = np.clip(np.round(b), -2**31, 2**31 - 1).astype(np.int32)
            ins.append(self.dq(node.name + "_b", bq, bscale, np.zeros_like(bq)))
        if isinstance(m, CONVS):
            y = self.op("Conv", ins, node.name, **_conv(m))
        else:
            y = self.op("Gemm", ins, node.name, transB=1)
        if isinstance(m, RELU_AFTER):
            y = self.op("Relu", [y], node.name)
        self.out(node, y, (float(m.scale), int(m.zero_point)))

    def dq(self, hint: str, q: np.ndarray, scales: np.ndarray, zps: np.ndarray) -> str:
        """Integers per output channel (axis 0), dequantized: a weight or a bias."""
        ins = [self.const(hint, q), self.const(hint + "_scale", scales),
               self.const(hint + "_zp", zps)]
        return self.op("DequantizeLinear", ins, hint, axis=0)


def _attr(model: nn.Module, target: str):
    v = model
    for part in target.split("."):
        v = getattr(v, part)
    return v.item() if isinstance(v, torch.Tensor) and v.numel() == 1 else v


def _pair(v) -> list[int]:
    return list(v) if isinstance(v, (tuple, list)) else [v, v]


def _conv(m: nn.Module) -> dict:
    if m.padding_mode != "zeros":
        raise ValueError(f"QDQ export: padding mode {m.padding_mode} is not supported")
    ph, pw = _pair(m.padding)
    return {"strides": _pair(m.stride), "pads": [ph, pw, ph, pw],
            "dilations": _pair(m.dilation), "group": m.groups}


def _pool(m: nn.MaxPool2d) -> dict:
    ph, pw = _pair(m.padding)
    return {"kernel_shape": _pair(m.kernel_size), "strides": _pair(m.stride or m.kernel_size),
            "pads": [ph, pw, ph, pw], "dilations": _pair(m.dilation),
            "ceil_mode": int(m.ceil_mode)}
